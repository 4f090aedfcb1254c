"""Loader for the UCI Census-Income (KDD) data set, as used by the MMoE paper."""

import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sklearn.utils import Bunch

from ._base import RemoteFile, fetch_file, get_data_home

__all__ = ["fetch_census_income"]

_FOLDER = "census-income"
_BASE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"

_REMOTE_FILES = {
    "train": RemoteFile(
        filename="census-income.data.gz",
        url=_BASE_URL + "census-income.data.gz",
        # unverified: no copy of this file was available to hash
        sha256=None,
    ),
    "test": RemoteFile(
        filename="census-income.test.gz",
        url=_BASE_URL + "census-income.test.gz",
        sha256="5ac4cacd3ca9f1ecb10de1a0a41e4ac68fdc419e3fec190f5c0c6cc03b2ea659",
    ),
}

# The 42 columns of the raw files, in order (from census-income.names).
_COLUMNS = [
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income",
]

# Counts and amounts, returned as numbers.
_NUMERIC_COLUMNS = [
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
]

# Categorical variables written as numbers in the raw files: their values are
# codes, not quantities, so they are returned as categories (of integers).
_CODED_CATEGORICAL_COLUMNS = [
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "own_business_or_self_employed",
    "veterans_benefits",
    "year",
]

# Columns that are not features: the sampling weight and the two label
# sources (marital_stat gives the never-married label, so keeping it as a
# feature would leak that label).
_NON_FEATURE_COLUMNS = ["instance_weight", "marital_stat", "income"]

_FEATURE_NAMES = [c for c in _COLUMNS if c not in _NON_FEATURE_COLUMNS]
_TARGET_NAMES = ["income_50k", "never_married"]

_INCOME_LABELS = {"- 50000.": 0, "50000+.": 1}
_NEVER_MARRIED = "Never married"

DESCR = """\
Census-Income (KDD) data set
----------------------------

Weighted census records extracted from the 1994 and 1995 Current Population
Surveys of the U.S. Census Bureau, published in the UCI Machine Learning
Repository (donated by Terran Lane and Ronny Kohavi):
https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/

The original split has 199,523 training rows (``census-income.data.gz``) and
99,762 test rows (``census-income.test.gz``); each row has 40 attributes, a
sampling weight and the income label.

**Tasks.** As in the census experiment of the MMoE paper, two binary tasks:

- ``income_50k``: 1 if the yearly income exceeds 50,000 USD (about 6 % of rows);
- ``never_married``: 1 if the marital status is "Never married" (about 43 %).

``marital_stat`` (the source of the second label), ``income`` and
``instance_weight`` are not features. The instance weight says how many people
of the population a row stands for; it is returned as ``sample_weight``.

**Features.** 39 columns. Seven are numbers (age, wage_per_hour,
capital_gains, capital_losses, dividends_from_stocks,
num_persons_worked_for_employer, weeks_worked_in_year); the others are
categorical (``category`` dtype), including the numerically coded
detailed_industry_recode, detailed_occupation_recode,
own_business_or_self_employed, veterans_benefits and year. String values are
stripped of surrounding spaces. ``?`` is kept as a category level: it is a
real level of this data, not a missing value to impute (for instance the four
migration questions are ``?`` on every 1995 record, and ``?`` marks an
unknown country of birth). The categories of a column are the levels seen in
the loaded subset.

**References.**

- J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi. "Modeling Task
  Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts."
  KDD 2018. (Uses this data set with the tasks above.)
- D. Dua and C. Graff. UCI Machine Learning Repository. University of
  California, Irvine, 2019.
"""


def fetch_census_income(
    *, subset="train", data_home=None, download_if_missing=True, as_frame=True
):
    """Load the Census-Income (KDD) data set with the two tasks of the MMoE paper.

    The tasks are ``income_50k`` (income above 50,000 USD) and
    ``never_married`` (marital status "Never married"). ``marital_stat``, the
    source of the second label, is removed from the features, and so are
    ``income`` and ``instance_weight`` (returned as ``sample_weight``).

    =================  ===========================================
    Rows               199,523 (train), 99,762 (test)
    Features           39 (7 numeric, 32 categorical)
    Tasks              2 binary: income_50k, never_married
    =================  ===========================================

    The files are read from, or downloaded to, ``<data_home>/census-income/``.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        Which split to load. ``"all"`` is the train rows followed by the test
        rows.
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home` (None reads the ``SKMTL_DATA``
        environment variable, else uses ``~/skmtl_data``).
    download_if_missing : bool, default=True
        If False, raise ``FileNotFoundError`` (an ``OSError``) instead of
        downloading a file that is not cached.
    as_frame : bool, default=True
        If True, return pandas objects. If False, return NumPy arrays:
        ``data`` is an object array holding Python numbers in the numeric
        columns and the raw values (strings, or integer codes) in the
        categorical ones; ``target`` an int array; ``sample_weight`` a float
        array.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        data : DataFrame of shape (n_samples, 39) or ndarray
            Features. Categorical columns have the ``category`` dtype and
            numeric ones an integer dtype.
        target : DataFrame of shape (n_samples, 2) or ndarray
            Int labels ``income_50k`` and ``never_married``.
        sample_weight : Series of shape (n_samples,) or ndarray
            The census instance weight (float).
        feature_names : list of str
            Names of the feature columns.
        target_names : list of str
            ``["income_50k", "never_married"]``.
        categorical_features : ndarray of bool of shape (39,)
            Mask of the categorical features, usable as the
            ``categorical_features`` parameter of the estimators.
        DESCR : str
            Description of the data set.

    Raises
    ------
    FileNotFoundError
        If a file is missing and ``download_if_missing`` is False.
    OSError
        If a file fails its checksum or cannot be downloaded.
    ValueError
        If ``subset`` is invalid or a file does not have the expected format.

    Notes
    -----
    ``?`` is kept as a category level: it is a real level of this data (for
    instance every 1995 record answers ``?`` to the migration questions), not
    a missing value.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling
       Task Relationships in Multi-task Learning with Multi-gate
       Mixture-of-Experts", KDD 2018.

    Examples
    --------
    >>> from skmtl.datasets import fetch_census_income
    >>> census = fetch_census_income(subset="test")
    >>> census.data.shape, census.target_names
    ((99762, 39), ['income_50k', 'never_married'])
    """
    if subset == "all":
        splits = ["train", "test"]
    elif subset in ("train", "test"):
        splits = [subset]
    else:
        raise ValueError(
            f"subset must be 'train', 'test' or 'all'; got {subset!r}."
        )

    folder = Path(get_data_home(data_home)) / _FOLDER
    paths = [
        fetch_file(_REMOTE_FILES[split], folder, download_if_missing=download_if_missing)
        for split in splits
    ]
    frame = _concat([_read(path) for path in paths])

    data = frame[_FEATURE_NAMES]
    target = pd.DataFrame(
        {
            "income_50k": _income_labels(frame["income"]),
            "never_married": (frame["marital_stat"] == _NEVER_MARRIED).astype(np.int64),
        }
    )
    sample_weight = frame["instance_weight"].astype(np.float64)
    categorical_features = np.array(
        [name not in _NUMERIC_COLUMNS for name in _FEATURE_NAMES]
    )

    if not as_frame:
        data = data.astype(object).to_numpy()
        target = target.to_numpy()
        sample_weight = sample_weight.to_numpy()

    return Bunch(
        data=data,
        target=target,
        sample_weight=sample_weight,
        feature_names=list(_FEATURE_NAMES),
        target_names=list(_TARGET_NAMES),
        categorical_features=categorical_features,
        DESCR=DESCR,
    )


def _read(path):
    """Read one raw file into typed columns (numbers, categories, income)."""
    dtypes = {}
    for name in _COLUMNS:
        if name in _NUMERIC_COLUMNS or name in _CODED_CATEGORICAL_COLUMNS:
            dtypes[name] = np.int64
        elif name == "instance_weight":
            dtypes[name] = np.float64
        elif name == "income":
            dtypes[name] = str
        else:
            dtypes[name] = "category"
    try:
        frame = pd.read_csv(
            path,
            header=None,
            names=_COLUMNS,
            sep=",",
            skipinitialspace=True,
            dtype=dtypes,
            # "?", "Not in universe", ... are levels of the data, not missing.
            na_filter=False,
            # A row with more fields than names would silently become the index.
            index_col=False,
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(
            f"{path} is not a Census-Income (KDD) file of {len(_COLUMNS)} "
            f"comma-separated columns: {exc}"
        ) from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a truncated or damaged gzip
        raise ValueError(f"{path} is truncated or not a readable gzip file ({exc}); delete "
                         "it and fetch it again.") from exc
    if frame.empty:
        raise ValueError(f"{path} holds no rows; delete it and fetch it again.")
    # skipinitialspace removed the leading spaces; some values also have
    # trailing ones ("Foreign born- Not a citizen of U S ").
    frame["income"] = frame["income"].str.strip()
    for name in _COLUMNS:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = _strip_categories(frame[name])
        if name in _CODED_CATEGORICAL_COLUMNS:
            frame[name] = frame[name].astype("category")
    return frame


def _strip_categories(column):
    """Strip surrounding spaces from the levels of a categorical Series."""
    stripped = column.cat.categories.str.strip()
    if stripped.is_unique:
        column = column.cat.rename_categories(stripped)
        return column.cat.reorder_categories(stripped.sort_values())
    # Two raw levels differ by their spaces only: merge them.
    return column.astype(str).str.strip().astype("category")


def _concat(frames):
    """Concatenate the splits, categorical columns on the union of levels."""
    if len(frames) == 1:
        return frames[0]
    columns = {}
    for name in _COLUMNS:
        parts = [frame[name] for frame in frames]
        if isinstance(parts[0].dtype, pd.CategoricalDtype):
            columns[name] = pd.Series(
                union_categoricals(parts, sort_categories=True, ignore_order=True)
            )
        else:
            columns[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns)


def _income_labels(income):
    labels = income.map(_INCOME_LABELS)
    unknown = labels.isna()
    if unknown.any():
        raise ValueError(
            f"Unexpected values in the income column of the Census-Income data: "
            f"{sorted(set(income[unknown]))[:5]}; expected {sorted(_INCOME_LABELS)}. "
            f"(An empty value means a row with fewer than {len(_COLUMNS)} fields.)"
        )
    return labels.astype(np.int64)
