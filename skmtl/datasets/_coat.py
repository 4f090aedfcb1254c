"""Loader for the Coat shopping data set (Schnabel et al., 2016).

Coat is small (290 users, 300 coats) but has what click/conversion models
rarely get: ratings of items the users chose themselves (selection bias,
``train.ascii``) *and* ratings of items assigned to them at random
(``test.ascii``), which give an unbiased test set.
"""

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._base import (RemoteFile, check_sha256, fetch_file, file_sha256, get_data_home,
                    missing_folders, remove_empty_folders)

__all__ = ["fetch_coat"]

_FOLDER = "coat"

_ARCHIVE = RemoteFile(
    filename="coat.zip",
    url="https://www.cs.cornell.edu/~schnabts/mnar/coat.zip",
    # unverified: no copy of the zip was available to hash; the files
    # extracted from it are verified one by one (see _FILES).
    sha256=None,
)

# The files the loader reads, relative to <data_home>/coat/ (and to the
# coat/ folder of the archive), with the SHA-256 of the published copies.
_FILES = {
    "train.ascii": "a87bd9e7eaf3b89f976df3f25d4aa5d5d871be8a00b58947df9e6e015559bd37",
    "test.ascii": "de6714ab105a5e0be8166be7fd313901b29f9a09c3bea307901457d1d71847e6",
    "user_item_features/user_features.ascii": (
        "d8f9531b601c54a7272602f8b21fa6cb4652cbf122e35d8615ea9645ebbf1b1f"
    ),
    "user_item_features/item_features.ascii": (
        "edea8217ec5606779b4d3bf819f7591dc63bcd5194d619e8048c2322d07630b1"
    ),
    "user_item_features/user_features_map.txt": (
        "3b8c825ad4445d4a46a400629c5fb43c805ff5a7982b2e436b69e7262c8a013a"
    ),
    "user_item_features/item_features_map.txt": (
        "2675dfaa38b89a9cbb1997f0cfcd46ed7e0e366dc515d12d95508d1f356e5d25"
    ),
}

_CONVERSION_MIN_RATING = 4
_TARGET_NAMES = ["click", "conversion"]

DESCR = """\
Coat shopping data set
----------------------

Ratings (1 to 5) of 300 coats by 290 users of Amazon Mechanical Turk, collected
by Schnabel et al. (2016) to study recommendation under selection bias:
https://www.cs.cornell.edu/~schnabts/mnar/

Each user first searched the catalogue and rated 24 coats of their own choice
(``train.ascii``: missing not at random, biased towards coats they like), then
rated 16 coats drawn for them at random (``test.ascii``: missing completely at
random). User attributes (gender, age, location, fashion interest) and item
attributes (gender, jacket type, color, shown on the front page) are one-hot
files, decoded here into one categorical column per attribute.

**Click and conversion.** Every user x item pair is an impression (290 x 300 =
87,000 rows of ``data``). A pair is a *click* when the user chose to rate the
item (nonzero in ``train.ascii``) and a *conversion* when that self-selected
rating is 4 or more. Conversions are only observed after a click, on the items
the users selected: the sample selection bias that ESMM addresses.

**Unbiased test set.** ``test_data`` holds the pairs rated in ``test.ascii``.
The items were assigned at random, so whether a pair has a rating does not
depend on the user's taste, and ``test_target["conversion"]`` (rating >= 4)
estimates p(conversion | x) over the whole user x item space without selection
bias: the quantity that a CVR model trained on clicked rows only gets wrong.
``test_target["rating"]`` keeps the raw rating.

**Features.** ``user_id`` and ``item_id`` and the eight decoded attributes,
all categorical, with the same categories in ``data`` and ``test_data``.

**Reference.** T. Schnabel, A. Swaminathan, A. Singh, N. Chandak and
T. Joachims. "Recommendations as Treatments: Debiasing Learning and
Evaluation." ICML 2016.
"""


def fetch_coat(*, data_home=None, download_if_missing=True):
    """Load the Coat shopping data as a click / conversion problem.

    Every user x item pair is an impression. A pair is clicked when the user
    chose to rate the item (``train.ascii``) and converted when that
    self-selected rating is at least 4. The test set holds ratings of items
    assigned at random (``test.ascii``), free of selection bias.

    =================  ==========================================
    Impressions        87,000 (290 users x 300 items)
    Clicks             6,960 self-selected ratings
    Test rows          4,640 random-exposure ratings
    Features           10, all categorical
    =================  ==========================================

    The files are read from ``<data_home>/coat/``. If some are missing, the
    Coat archive is downloaded and its files are extracted there, each one
    checked against its known SHA-256 before being moved into place.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home` (None reads the ``SKMTL_DATA``
        environment variable, else uses ``~/skmtl_data``).
    download_if_missing : bool, default=True
        If False, raise ``FileNotFoundError`` (an ``OSError``) instead of
        downloading when a file is not cached.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        data : DataFrame of shape (87000, 10)
            One row per user x item pair (user-major order): ``user_id``,
            ``item_id``, ``user_gender``, ``user_age``, ``user_location``,
            ``user_fashioninterest``, ``item_gender``, ``item_jackettype``,
            ``item_color``, ``item_onfrontpage``, all of ``category`` dtype.
        target : DataFrame of shape (87000, 2)
            Int columns ``click`` (the user rated the item in ``train.ascii``)
            and ``conversion`` (that rating is >= 4; always 0 without click).
        test_data : DataFrame of shape (n_test, 10)
            The pairs rated in ``test.ascii``, same columns and dtypes as
            ``data``.
        test_target : DataFrame of shape (n_test, 2)
            Int columns ``conversion`` (rating >= 4) and ``rating`` (1 to 5).
        feature_names : list of str
            Names of the feature columns.
        target_names : list of str
            ``["click", "conversion"]``.
        categorical_features : ndarray of bool of shape (10,)
            Mask of the categorical features (all True).
        DESCR : str
            Description of the data set.

    Raises
    ------
    FileNotFoundError
        If a file is missing and ``download_if_missing`` is False.
    OSError
        If a file fails its checksum or the archive cannot be downloaded.
    ValueError
        If a file does not have the expected format.

    References
    ----------
    .. [1] T. Schnabel, A. Swaminathan, A. Singh, N. Chandak and T. Joachims,
       "Recommendations as Treatments: Debiasing Learning and Evaluation",
       ICML 2016.

    Examples
    --------
    >>> from skmtl.datasets import fetch_coat
    >>> coat = fetch_coat()
    >>> coat.data.shape, coat.target.mean().round(3).tolist()
    ((87000, 10), [0.08, 0.022])
    """
    folder = Path(get_data_home(data_home)) / _FOLDER
    paths = _fetch_coat_files(folder, download_if_missing=download_if_missing)

    train = _read_ratings(paths["train.ascii"])
    test = _read_ratings(paths["test.ascii"])
    if test.shape != train.shape:
        raise ValueError(
            f"{paths['test.ascii']} has shape {test.shape} but "
            f"{paths['train.ascii']} has shape {train.shape}."
        )
    n_users, n_items = train.shape
    user_attributes = _read_attributes(
        paths["user_item_features/user_features.ascii"],
        paths["user_item_features/user_features_map.txt"],
        prefix="user_",
        n_rows=n_users,
    )
    item_attributes = _read_attributes(
        paths["user_item_features/item_features.ascii"],
        paths["user_item_features/item_features_map.txt"],
        prefix="item_",
        n_rows=n_items,
    )

    def pairs(users, items):
        # Features of the given (user, item) pairs; category dtypes depend on
        # the number of users and items only, so they match across calls.
        frame = {
            "user_id": pd.Categorical.from_codes(users, categories=range(n_users)),
            "item_id": pd.Categorical.from_codes(items, categories=range(n_items)),
        }
        frame.update({name: col.take(users) for name, col in user_attributes.items()})
        frame.update({name: col.take(items) for name, col in item_attributes.items()})
        return pd.DataFrame(frame)

    all_users, all_items = np.divmod(np.arange(n_users * n_items), n_items)
    data = pairs(all_users, all_items)
    ratings = train.ravel()
    target = pd.DataFrame(
        {
            "click": (ratings > 0).astype(np.int64),
            "conversion": (ratings >= _CONVERSION_MIN_RATING).astype(np.int64),
        }
    )

    test_users, test_items = np.nonzero(test)
    test_data = pairs(test_users, test_items)
    test_ratings = test[test_users, test_items]
    test_target = pd.DataFrame(
        {
            "conversion": (test_ratings >= _CONVERSION_MIN_RATING).astype(np.int64),
            "rating": test_ratings.astype(np.int64),
        }
    )

    feature_names = list(data.columns)
    return Bunch(
        data=data,
        target=target,
        test_data=test_data,
        test_target=test_target,
        feature_names=feature_names,
        target_names=list(_TARGET_NAMES),
        categorical_features=np.ones(len(feature_names), dtype=bool),
        DESCR=DESCR,
    )


def _fetch_coat_files(folder, *, download_if_missing):
    """Return the verified paths of the Coat files, downloading them if needed.

    Returns a dict from the relative names of ``_FILES`` to paths.
    """
    paths = {name: folder / name for name in _FILES}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        if not download_if_missing:
            raise FileNotFoundError(
                f"Data not found and `download_if_missing` is False: "
                f"{', '.join(str(paths[name]) for name in missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist. The files come "
                f"from {_ARCHIVE.url}. Extract the archive's coat/ folder into "
                f"{folder.parent}, point the SKMTL_DATA environment variable (or "
                f"the `data_home` argument) at a data home that holds it, or pass "
                f"download_if_missing=True."
            )
        _download_and_extract(folder, missing)
    for name, path in paths.items():
        check_sha256(path, _FILES[name], source=_ARCHIVE.url)
    return paths


def _download_and_extract(folder, names):
    """Download the Coat archive and move the files ``names`` into ``folder``.

    The archive and the extracted files live in a temporary folder inside the
    data home, removed at the end whatever happens. Each file is checked
    against its SHA-256 and then moved with ``os.replace``: a file under its
    final name is always complete and verified.
    """
    data_home = folder.parent
    created = missing_folders(data_home)  # removed again if the download fails
    try:
        data_home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".coat-download-", dir=data_home))
    except OSError as exc:
        remove_empty_folders(created)
        raise OSError(
            f"The Coat files are not in {folder} and cannot be downloaded there: the data "
            f"home {data_home} is not a writable folder ({exc}). Point the SKMTL_DATA "
            "environment variable (or the `data_home` argument) at a writable folder or at "
            "one that already holds the data.") from exc
    try:
        try:
            archive = fetch_file(_ARCHIVE, work)
        except OSError as exc:
            # fetch_file's advice would name the temporary folder, removed below
            reason = exc.__cause__ if exc.__cause__ is not None else exc
            raise OSError(
                f"The Coat files are not in {folder} and the archive could not be "
                f"downloaded from {_ARCHIVE.url} ({reason}). Download it elsewhere "
                f"and extract its coat/ folder into {data_home}, or point the "
                f"SKMTL_DATA environment variable (or the `data_home` argument) at "
                f"a data home that holds it."
            ) from exc
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [
                    m for m in zf.namelist()
                    if not m.endswith("/") and not m.startswith("__MACOSX/")
                ]
                extracted = {}
                for name in names:
                    member = _find_member(members, name)
                    target = work / "extracted" / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # Read the member ourselves rather than zf.extract(): the
                    # archive's paths never decide where we write.
                    with zf.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    actual = file_sha256(target)
                    if actual != _FILES[name]:
                        raise OSError(
                            f"Checksum mismatch for {member} in the archive "
                            f"downloaded from {_ARCHIVE.url}: expected SHA-256 "
                            f"{_FILES[name]}, got {actual}. Nothing was written "
                            f"to {folder}."
                        )
                    extracted[name] = target
        except zipfile.BadZipFile as exc:
            raise OSError(
                f"{_ARCHIVE.url} did not give a valid zip archive ({exc})."
            ) from exc
        for name, source in extracted.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, folder / name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        remove_empty_folders(created)
        raise
    shutil.rmtree(work, ignore_errors=True)


def _find_member(members, name):
    """Name of the archive member holding ``name`` (e.g. ``coat/train.ascii``)."""
    candidates = [m for m in members if m == name or m.endswith("/" + name)]
    if not candidates:
        raise OSError(f"The archive {_ARCHIVE.url} has no file {name!r}.")
    return min(candidates, key=len)


def _read_ratings(path):
    """Read a users x items matrix of integer ratings (0 = not rated)."""
    ratings = np.loadtxt(path, ndmin=2)
    if np.any(ratings != np.round(ratings)) or ratings.min() < 0 or ratings.max() > 5:
        raise ValueError(f"{path} should hold integer ratings from 0 to 5.")
    return ratings.astype(np.int64)


def _read_attributes(one_hot_path, map_path, *, prefix, n_rows):
    """Decode a one-hot attribute file into one categorical column per attribute.

    The map file names the columns of the one-hot file, one ``attribute:level``
    per line; the columns of an attribute are consecutive.

    Returns
    -------
    columns : dict of str to pandas.Categorical
        ``prefix + attribute`` to the level of each row, the categories in
        the order of the map file.
    """
    with open(map_path, encoding="utf-8") as f:
        entries = [line.strip() for line in f if line.strip()]
    one_hot = np.loadtxt(one_hot_path, ndmin=2)
    if one_hot.shape != (n_rows, len(entries)):
        raise ValueError(
            f"{one_hot_path} has shape {one_hot.shape}; expected ({n_rows}, "
            f"{len(entries)}) from the ratings and from {map_path}."
        )

    groups = {}  # attribute -> (list of column indices, list of levels)
    for index, entry in enumerate(entries):
        attribute, sep, level = entry.partition(":")
        if not sep:
            raise ValueError(f"{map_path}: line {entry!r} is not 'attribute:level'.")
        indices, levels = groups.setdefault(attribute, ([], []))
        indices.append(index)
        levels.append(level)

    columns = {}
    for attribute, (indices, levels) in groups.items():
        block = one_hot[:, indices]
        if not np.all((block == 0) | (block == 1)) or np.any(block.sum(axis=1) != 1):
            raise ValueError(
                f"{one_hot_path}: the columns of attribute {attribute!r} are not "
                f"one-hot (each row must have exactly one 1 among them)."
            )
        columns[prefix + attribute] = pd.Categorical.from_codes(
            block.argmax(axis=1), categories=levels
        )
    return columns
