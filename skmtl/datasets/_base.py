"""Data home resolution and the download machinery shared by the loaders.

A loader describes each file it needs with a :class:`RemoteFile` and asks
:func:`fetch_file` for a local path. :func:`fetch_file` returns the cached copy
when there is one (after checking its SHA-256 when it is known) and otherwise
downloads it, atomically: the bytes go to a temporary file in the target
folder, are checked, and only then renamed to their final name, so a failed or
interrupted download never leaves a half-written file behind.
"""

import hashlib
import http.client
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

__all__ = ["RemoteFile", "fetch_file", "file_sha256", "get_data_home"]

logger = logging.getLogger(__name__)

#: Environment variable that sets the data home when ``data_home`` is None.
DATA_HOME_ENV = "SKMTL_DATA"

#: Data home used when neither ``data_home`` nor ``SKMTL_DATA`` is given.
DEFAULT_DATA_HOME = "~/skmtl_data"

# Seconds to wait for the server to answer (and between two received chunks).
_TIMEOUT = 60
_CHUNK_SIZE = 1 << 16


def get_data_home(data_home=None):
    """Return the path of the skmtl data folder.

    The folder caches the downloaded data sets, one sub-folder per data set
    (``census-income/``, ``coat/``), in the layout of the original downloads.
    It is chosen, in this order, by:

    1. the ``data_home`` argument;
    2. the ``SKMTL_DATA`` environment variable, when set and not empty;
    3. ``~/skmtl_data``.

    A leading ``~`` is expanded and a relative path is resolved against the
    current working directory. The folder is *not* created here: the loaders
    create it only when they are about to download into it, so a read-only
    data home that already holds the files works.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to use. None means: read ``SKMTL_DATA``, else ``~/skmtl_data``.

    Returns
    -------
    data_home : str
        Absolute path of the data folder.

    Examples
    --------
    >>> from skmtl.datasets import get_data_home
    >>> get_data_home("/srv/data")
    '/srv/data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    elif not os.fspath(data_home):  # abspath would make it the current folder
        raise ValueError("data_home is empty; give a folder, or None for SKMTL_DATA "
                         "or ~/skmtl_data.")
    return os.path.abspath(os.path.expanduser(os.fspath(data_home)))


@dataclass(frozen=True)
class RemoteFile:
    """Where a data file comes from and what it must hash to.

    Parameters
    ----------
    filename : str
        Name of the file in its cache folder.
    url : str
        Where to download it from (``https://``, ``http://`` or ``file://``).
    sha256 : str or None
        Expected SHA-256 of the file, as lowercase hex. None means that the
        file is not verified (each constant that uses None says why).
    """

    filename: str
    url: str
    sha256: str | None


def file_sha256(path):
    """Return the SHA-256 of a file as lowercase hex, reading it in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path, expected, *, source=None):
    """Raise ``OSError`` if the file at ``path`` does not hash to ``expected``.

    Parameters
    ----------
    path : path-like
        File to check.
    expected : str or None
        Expected SHA-256 (lowercase hex). None skips the check.
    source : str, default=None
        Where the file came from, named in the error message.
    """
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected:
        origin = f" (from {source})" if source else ""
        raise OSError(
            f"Checksum mismatch for {os.fspath(path)}{origin}: expected SHA-256 "
            f"{expected}, got {actual}. The file is corrupted or is not the "
            f"expected version; delete it so that it is downloaded again."
        )


def fetch_file(remote, folder, *, download_if_missing=True):
    """Return the local path of a remote file, downloading it if needed.

    Parameters
    ----------
    remote : RemoteFile
        The file to get.
    folder : str or path-like
        Cache folder of the file (the data set's sub-folder of the data home).
        It is created only if a download is needed.
    download_if_missing : bool, default=True
        If False and the file is not in ``folder``, raise instead of
        downloading; the network is then never touched.

    Returns
    -------
    path : pathlib.Path
        Path of the verified local file, ``folder / remote.filename``.

    Raises
    ------
    FileNotFoundError
        If the file is not cached and ``download_if_missing`` is False.
        ``FileNotFoundError`` is a subclass of ``OSError``, which is what
        scikit-learn's loaders raise in that case.
    OSError
        If the cached or downloaded file fails its checksum, or the download
        fails (server unreachable, HTTP error, interrupted transfer). No file
        is left under the final name, nor any temporary file.
    """
    path = Path(folder) / remote.filename
    if path.exists():
        check_sha256(path, remote.sha256, source=remote.url)
        return path
    if not download_if_missing:
        raise FileNotFoundError(
            f"Data not found and `download_if_missing` is False: {path} does not "
            f"exist. It comes from {remote.url}. Put the file there, point the "
            f"{DATA_HOME_ENV} environment variable (or the `data_home` argument) "
            f"at a data home that holds it, or pass download_if_missing=True."
        )
    _download(remote, path)
    return path


def _download(remote, path):
    """Download ``remote`` to ``path`` through a checked temporary file."""
    logger.info("Downloading %s to %s", remote.url, path)
    folder = path.parent
    tmp_path = folder / f".{path.name}.{uuid.uuid4().hex}.part"
    created = missing_folders(folder)  # removed again if the download fails
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # "xb" honours the umask (unlike tempfile.mkstemp, which makes 0600).
        tmp_file = open(tmp_path, "xb")
    except OSError as exc:
        raise OSError(
            f"{path} is not cached and cannot be downloaded from {remote.url}: "
            f"the folder {folder} is not writable ({exc}). Point the "
            f"{DATA_HOME_ENV} environment variable (or the `data_home` argument) "
            f"at a writable folder or at one that already holds the data."
        ) from exc
    try:
        with tmp_file:
            digest = _copy_url_to(remote.url, tmp_file, path)
        if remote.sha256 is not None and digest != remote.sha256:
            raise OSError(
                f"Checksum mismatch for {path} downloaded from {remote.url}: "
                f"expected SHA-256 {remote.sha256}, got {digest}. The download "
                f"was discarded."
            )
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        remove_empty_folders(created)
        raise


def missing_folders(folder):
    """``folder`` and those of its parents that do not exist yet, innermost first."""
    return [parent for parent in (folder, *folder.parents) if not parent.exists()]


def remove_empty_folders(folders):
    """Remove ``folders`` (innermost first) as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _copy_url_to(url, out, path):
    """Stream ``url`` into the open binary file ``out``; return its SHA-256.

    ``path`` is the final destination, only used in error messages.
    """
    digest = hashlib.sha256()
    try:
        with urlopen(url, timeout=_TIMEOUT) as response:
            expected_size = response.headers.get("Content-Length")
            size = 0
            for chunk in iter(lambda: response.read(_CHUNK_SIZE), b""):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except HTTPError as exc:
        raise OSError(
            f"Could not download {url} to {path}: the server answered "
            f"HTTP {exc.code} ({exc.reason})."
        ) from exc
    except URLError as exc:
        raise OSError(
            f"Could not download {url} to {path} ({exc.reason}). The data is not "
            f"cached and this machine seems to be offline (or the server is "
            f"unreachable). Copy the file to {path}, or point the {DATA_HOME_ENV} "
            f"environment variable (or the `data_home` argument) at a data home "
            f"that already holds it."
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise OSError(
            f"Download of {url} to {path} was interrupted ({exc!r}); the partial "
            f"file was discarded."
        ) from exc
    # http.client does not complain when the connection closes before the
    # announced Content-Length has arrived: check it here.
    if expected_size is not None and expected_size.isdigit():
        if size != int(expected_size):
            raise OSError(
                f"Download of {url} to {path} was interrupted: received {size} "
                f"of {int(expected_size)} bytes; the partial file was discarded."
            )
    return digest.hexdigest()
