"""Tests of skmtl.datasets: data home, downloads, real-data loaders, generators.

The real-data tests read the shared data folder (SKMTL_DATA, else
``<repo>/../shared/data``) and never download: if the data is missing they
fail, they do not skip. The download tests use ``file://`` URLs and a local
HTTP server on 127.0.0.1; nothing goes to the internet.
"""

import gzip
import hashlib
import http.server
import shutil
import socket
import threading
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest

import skmtl.datasets._base as base
import skmtl.datasets._census_income as census_module
import skmtl.datasets._coat as coat_module
from skmtl.datasets import (
    fetch_census_income,
    fetch_coat,
    get_data_home,
    make_entire_space,
    make_multitask,
)
from skmtl.datasets._base import RemoteFile, fetch_file

@pytest.fixture
def no_network(monkeypatch):
    """Make any network access fail the test."""

    def forbidden(*args, **kwargs):
        pytest.fail(f"urlopen was called with {args!r}")

    monkeypatch.setattr(base, "urlopen", forbidden)


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _files_under(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------
# Data home
# ---------------------------------------------------------------------------


def test_get_data_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SKMTL_DATA", str(tmp_path / "from_env"))
    assert get_data_home(tmp_path / "explicit") == str(tmp_path / "explicit")
    assert get_data_home() == str(tmp_path / "from_env")

    monkeypatch.delenv("SKMTL_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == str(tmp_path / "home" / "skmtl_data")
    monkeypatch.setenv("SKMTL_DATA", "")  # empty means unset
    assert get_data_home() == str(tmp_path / "home" / "skmtl_data")
    assert get_data_home("~/elsewhere") == str(tmp_path / "home" / "elsewhere")
    with pytest.raises(ValueError, match="data_home is empty"):  # was the current folder
        get_data_home("")


def test_get_data_home_relative_path_and_no_creation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKMTL_DATA", "../data")
    expected = tmp_path.parent / "data"
    assert get_data_home() == str(expected)
    assert get_data_home("sub/dir") == str(tmp_path / "sub" / "dir")
    assert not (tmp_path / "sub").exists()


# ---------------------------------------------------------------------------
# fetch_file: cache, download, failures
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /good, a truncated body at /truncated, 404 elsewhere."""

    payload = b"skmtl test payload\n" * 1000

    def do_GET(self):  # noqa: N802 (http.server naming)
        if self.path == "/good":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)
        elif self.path == "/truncated":
            # Announce the full length, send half of it, then close.
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload[: len(self.payload) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def test_fetch_file_file_url(tmp_path, monkeypatch):
    source = tmp_path / "source.bin"
    source.write_bytes(b"hello data\n")
    remote = RemoteFile("data.bin", source.as_uri(), _sha256(b"hello data\n"))
    folder = tmp_path / "home" / "set"  # does not exist yet

    path = fetch_file(remote, folder)
    assert path == folder / "data.bin"
    assert path.read_bytes() == b"hello data\n"
    assert _files_under(folder) == [path]

    # Cached now: served without touching the network.
    monkeypatch.setattr(base, "urlopen", lambda *a, **k: pytest.fail("network"))
    assert fetch_file(remote, folder) == path


def test_fetch_file_http(tmp_path, http_url):
    payload = _Handler.payload
    remote = RemoteFile("good.bin", f"{http_url}/good", _sha256(payload))
    path = fetch_file(remote, tmp_path)
    assert path.read_bytes() == payload
    assert _files_under(tmp_path) == [path]


def test_fetch_file_without_checksum(tmp_path, http_url):
    remote = RemoteFile("good.bin", f"{http_url}/good", None)
    assert fetch_file(remote, tmp_path).read_bytes() == _Handler.payload


def test_fetch_file_checksum_mismatch_leaves_nothing(tmp_path, http_url):
    remote = RemoteFile("good.bin", f"{http_url}/good", "0" * 64)
    with pytest.raises(OSError, match="Checksum mismatch") as excinfo:
        fetch_file(remote, tmp_path)
    message = str(excinfo.value)
    assert "0" * 64 in message and _sha256(_Handler.payload) in message
    assert remote.url in message
    assert _files_under(tmp_path) == []


def test_failed_download_leaves_no_folders_behind(tmp_path, http_url):
    # the folders made to hold the download go again when it fails
    remote = RemoteFile("good.bin", f"{http_url}/good", "0" * 64)
    with pytest.raises(OSError, match="Checksum mismatch"):
        fetch_file(remote, tmp_path / "home" / "census-income")
    assert list(tmp_path.iterdir()) == []


def test_failed_coat_download_leaves_no_folders_behind(tmp_path, monkeypatch):
    # the data home stayed, empty: the next run's hint that it does not exist went
    def offline(remote, folder):
        raise OSError("offline")
    monkeypatch.setattr(coat_module, "fetch_file", offline)
    (tmp_path / "kept").mkdir()
    for home in (tmp_path / "new" / "home", tmp_path / "kept"):
        with pytest.raises(OSError, match="archive could not be downloaded .*offline"):
            fetch_coat(data_home=home)
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_coat_with_a_file_for_a_data_home(tmp_path):
    (tmp_path / "home").write_text("not a folder")
    with pytest.raises(OSError, match="is not a writable folder"):
        fetch_coat(data_home=tmp_path / "home")


def test_fetch_file_truncated_transfer_leaves_nothing(tmp_path, http_url):
    remote = RemoteFile("truncated.bin", f"{http_url}/truncated", None)
    with pytest.raises(OSError, match="interrupted") as excinfo:
        fetch_file(remote, tmp_path)
    assert remote.url in str(excinfo.value)
    assert _files_under(tmp_path) == []


def test_fetch_file_connection_reset_midway_leaves_nothing(tmp_path, monkeypatch):
    class BrokenResponse:
        headers = {}

        def __init__(self):
            self.calls = 0

        def read(self, size):
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("connection reset by peer")
            return b"x" * size

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(base, "urlopen", lambda *a, **k: BrokenResponse())
    remote = RemoteFile("data.bin", "https://example.invalid/data.bin", None)
    with pytest.raises(OSError, match="interrupted") as excinfo:
        fetch_file(remote, tmp_path)
    assert "https://example.invalid/data.bin" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, ConnectionResetError)
    assert _files_under(tmp_path) == []


def test_fetch_file_keyboard_interrupt_leaves_nothing(tmp_path, monkeypatch):
    class InterruptedResponse:
        headers = {}

        def read(self, size):
            raise KeyboardInterrupt

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(base, "urlopen", lambda *a, **k: InterruptedResponse())
    remote = RemoteFile("data.bin", "https://example.invalid/data.bin", None)
    with pytest.raises(KeyboardInterrupt):
        fetch_file(remote, tmp_path)
    assert _files_under(tmp_path) == []


def test_fetch_file_offline(tmp_path, closed_port_url):
    remote = RemoteFile("file.bin", closed_port_url, None)
    with pytest.raises(OSError, match="offline") as excinfo:
        fetch_file(remote, tmp_path)
    message = str(excinfo.value)
    assert closed_port_url in message
    assert str(tmp_path / "file.bin") in message
    assert isinstance(excinfo.value.__cause__, URLError)
    assert _files_under(tmp_path) == []


def test_fetch_file_offline_monkeypatched(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(base, "urlopen", unreachable)
    remote = RemoteFile("file.bin", "https://example.invalid/file.bin", None)
    with pytest.raises(OSError, match="not cached") as excinfo:
        fetch_file(remote, tmp_path)
    assert "https://example.invalid/file.bin" in str(excinfo.value)
    assert str(tmp_path / "file.bin") in str(excinfo.value)


def test_fetch_file_http_error(tmp_path, http_url):
    remote = RemoteFile("missing.bin", f"{http_url}/missing", None)
    with pytest.raises(OSError, match="HTTP 404"):
        fetch_file(remote, tmp_path)
    assert _files_under(tmp_path) == []


def test_fetch_file_download_if_missing_false(tmp_path, no_network):
    remote = RemoteFile("file.bin", "https://example.invalid/file.bin", None)
    folder = tmp_path / "absent"
    with pytest.raises(FileNotFoundError, match="download_if_missing") as excinfo:
        fetch_file(remote, folder, download_if_missing=False)
    message = str(excinfo.value)
    assert str(folder / "file.bin") in message
    assert remote.url in message
    assert "SKMTL_DATA" in message
    assert not folder.exists()


def test_fetch_file_cached_file_with_wrong_checksum(tmp_path, no_network):
    (tmp_path / "file.bin").write_bytes(b"corrupted")
    remote = RemoteFile("file.bin", "https://example.invalid/file.bin", _sha256(b"good"))
    with pytest.raises(OSError, match="Checksum mismatch") as excinfo:
        fetch_file(remote, tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path / "file.bin") in message
    assert _sha256(b"good") in message and _sha256(b"corrupted") in message


# ---------------------------------------------------------------------------
# Census-Income
# ---------------------------------------------------------------------------

CENSUS_NUMERIC = [
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
]


@pytest.fixture(scope="module")
def census(shared_data_home):
    # No data_home: SKMTL_DATA (set by shared_data_home) decides.
    return fetch_census_income(subset="test", download_if_missing=False)


def test_census_shapes_and_names(census):
    assert census.data.shape == (99762, 39)
    assert census.target.shape == (99762, 2)
    assert census.target_names == ["income_50k", "never_married"]
    assert list(census.target.columns) == census.target_names
    assert list(census.data.columns) == census.feature_names
    for leaked in ["marital_stat", "instance_weight", "income"]:
        assert leaked not in census.data.columns
    assert len(census.sample_weight) == 99762
    assert census.sample_weight.dtype == np.float64
    assert (census.sample_weight > 0).all()
    assert "Census" in census.DESCR and "Mixture-of-Experts" in census.DESCR


def test_census_dtypes(census):
    data = census.data
    for name in CENSUS_NUMERIC:
        assert pd.api.types.is_integer_dtype(data[name]), name
    categorical = [c for c in data.columns if c not in CENSUS_NUMERIC]
    assert len(categorical) == 32
    for name in categorical:
        assert isinstance(data[name].dtype, pd.CategoricalDtype), name
    assert census.categorical_features.tolist() == [
        c not in CENSUS_NUMERIC for c in data.columns
    ]
    assert data["year"].cat.categories.tolist() == [94, 95]
    assert data["age"].between(0, 90).all()
    # Whitespace stripped (citizenship has trailing spaces in the raw file).
    for name in categorical:
        levels = data[name].cat.categories
        if levels.dtype.kind in "OUT" or pd.api.types.is_string_dtype(levels):
            assert all(level == level.strip() for level in levels), name
    assert "Foreign born- Not a citizen of U S" in data["citizenship"].cat.categories
    # "?" is a level, not a missing value.
    assert "?" in data["migration_code_change_in_msa"].cat.categories
    assert not data.isna().any().any()


def test_census_targets(census):
    target = census.target
    assert set(np.unique(target.to_numpy())) == {0, 1}
    assert target["income_50k"].mean() == pytest.approx(0.062, abs=0.005)
    assert target["never_married"].mean() == pytest.approx(0.432, abs=0.01)
    assert target.dtypes.map(pd.api.types.is_integer_dtype).all()


def test_census_as_frame_false(shared_data_home, census):
    bunch = fetch_census_income(subset="test", as_frame=False, download_if_missing=False)
    assert isinstance(bunch.data, np.ndarray) and bunch.data.dtype == object
    assert bunch.data.shape == (99762, 39)
    np.testing.assert_array_equal(bunch.target, census.target.to_numpy())
    np.testing.assert_array_equal(bunch.sample_weight, census.sample_weight.to_numpy())
    assert bunch.data[0, bunch.feature_names.index("age")] == census.data["age"].iloc[0]


def test_census_invalid_subset():
    with pytest.raises(ValueError, match="subset"):
        fetch_census_income(subset="validation")


def test_census_missing_train_file(tmp_path, no_network):
    with pytest.raises(FileNotFoundError) as excinfo:
        fetch_census_income(subset="train", data_home=tmp_path, download_if_missing=False)
    message = str(excinfo.value)
    assert "census-income.data.gz" in message
    assert "archive.ics.uci.edu" in message
    assert str(tmp_path / "census-income") in message


def test_census_download(tmp_path, monkeypatch, shared_data_home):
    shared_test = shared_data_home / "census-income" / "census-income.test.gz"
    real = census_module._REMOTE_FILES["test"]
    local = RemoteFile(real.filename, shared_test.as_uri(), real.sha256)
    monkeypatch.setitem(census_module._REMOTE_FILES, "test", local)

    bunch = fetch_census_income(subset="test", data_home=tmp_path / "home")
    assert bunch.data.shape == (99762, 39)
    cached = tmp_path / "home" / "census-income" / "census-income.test.gz"
    assert _files_under(tmp_path / "home") == [cached]


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "truncated or not a readable gzip file"),
    (lambda data: b"", "holds no rows"),
    (lambda data: b"plain text, not gzip", "truncated or not a readable gzip file"),
])
def test_census_damaged_train_file(tmp_path, shared_data_home, damage, message):
    # the train file has no known checksum: its damage must still be a clear error
    with gzip.open(shared_data_home / "census-income" / "census-income.test.gz", "rt") as f:
        lines = [next(f) for _ in range(50)]
    folder = tmp_path / "census-income"
    folder.mkdir()
    (folder / "census-income.data.gz").write_bytes(
        damage(gzip.compress("".join(lines).encode())))
    with pytest.raises(ValueError, match=message):
        fetch_census_income(subset="train", data_home=tmp_path, download_if_missing=False)


def test_census_all_concatenates_train_and_test(tmp_path, shared_data_home):
    folder = tmp_path / "census-income"
    folder.mkdir()
    shared_test = shared_data_home / "census-income" / "census-income.test.gz"
    shutil.copy(shared_test, folder / "census-income.test.gz")
    # A small stand-in for the train file, with one class_of_worker level
    # unseen in the test split and one income label of each kind.
    with gzip.open(shared_test, "rt") as f:
        lines = [next(f) for _ in range(20)]
    fields = lines[0].rstrip("\n").split(", ")
    fields[1] = "Brand new level "
    lines.append(", ".join(fields) + "\n")
    with gzip.open(folder / "census-income.data.gz", "wt") as f:
        f.writelines(lines)

    train = fetch_census_income(subset="train", data_home=tmp_path, download_if_missing=False)
    assert train.data.shape == (21, 39)
    assert train.data["class_of_worker"].iloc[-1] == "Brand new level"

    both = fetch_census_income(subset="all", data_home=tmp_path, download_if_missing=False)
    assert both.data.shape == (21 + 99762, 39)
    assert list(both.data.columns) == train.feature_names
    for name in both.data.columns:
        if name not in CENSUS_NUMERIC:
            assert isinstance(both.data[name].dtype, pd.CategoricalDtype), name
    assert "Brand new level" in both.data["class_of_worker"].cat.categories
    pd.testing.assert_frame_equal(
        both.target.iloc[:21].reset_index(drop=True), train.target
    )


# ---------------------------------------------------------------------------
# Coat
# ---------------------------------------------------------------------------

COAT_FEATURES = [
    "user_id",
    "item_id",
    "user_gender",
    "user_age",
    "user_location",
    "user_fashioninterest",
    "item_gender",
    "item_jackettype",
    "item_color",
    "item_onfrontpage",
]


@pytest.fixture(scope="module")
def coat(shared_data_home):
    return fetch_coat(download_if_missing=False)


@pytest.fixture(scope="module")
def coat_ratings(shared_data_home):
    train = np.loadtxt(shared_data_home / "coat" / "train.ascii")
    test = np.loadtxt(shared_data_home / "coat" / "test.ascii")
    return train, test


def test_coat_shapes_and_names(coat, coat_ratings):
    train, test = coat_ratings
    assert coat.data.shape == (87000, 10)
    assert list(coat.data.columns) == COAT_FEATURES == coat.feature_names
    assert coat.target_names == ["click", "conversion"]
    assert list(coat.target.columns) == coat.target_names
    assert coat.test_data.shape == (np.count_nonzero(test), 10)
    assert list(coat.test_target.columns) == ["conversion", "rating"]
    assert coat.categorical_features.all()
    assert "Schnabel" in coat.DESCR


def test_coat_targets(coat, coat_ratings):
    train, test = coat_ratings
    click, conversion = coat.target["click"], coat.target["conversion"]
    assert click.sum() == np.count_nonzero(train)
    assert conversion.sum() == np.count_nonzero(train >= 4)
    assert (conversion <= click).all()
    # Row order is user-major: row u * 300 + i is (user u, item i).
    np.testing.assert_array_equal(click.to_numpy(), (train.ravel() > 0).astype(int))
    assert coat.data["user_id"].iloc[301] == 1 and coat.data["item_id"].iloc[301] == 1

    ratings = coat.test_target["rating"].to_numpy()
    assert ratings.min() >= 1 and ratings.max() <= 5
    users = coat.test_data["user_id"].to_numpy(dtype=int)
    items = coat.test_data["item_id"].to_numpy(dtype=int)
    np.testing.assert_array_equal(ratings, test[users, items])
    np.testing.assert_array_equal(coat.test_target["conversion"], (ratings >= 4).astype(int))


def test_coat_features(coat, shared_data_home):
    data = coat.data
    for name in COAT_FEATURES:
        assert isinstance(data[name].dtype, pd.CategoricalDtype), name
    # Same dtypes, hence same categories in the same order.
    assert (data.dtypes == coat.test_data.dtypes).all()
    for name in COAT_FEATURES:
        assert data[name].dtype == coat.test_data[name].dtype, name

    assert data["user_id"].cat.categories.tolist() == list(range(290))
    assert data["item_id"].cat.categories.tolist() == list(range(300))
    assert data["user_gender"].cat.categories.tolist() == ["men", "women"]
    assert data["item_onfrontpage"].cat.categories.tolist() == ["yes", "no"]
    assert len(data["item_jackettype"].cat.categories) == 16
    assert len(data["item_color"].cat.categories) == 13

    # Decoding agrees with the one-hot file.
    features = shared_data_home / "coat" / "user_item_features"
    user_one_hot = np.loadtxt(features / "user_features.ascii")
    levels = (features / "user_features_map.txt").read_text().splitlines()
    age_columns = [i for i, entry in enumerate(levels) if entry.startswith("age:")]
    first_rows = data.drop_duplicates("user_id")
    decoded_age = first_rows["user_age"].astype(str).to_numpy()
    expected_age = [
        levels[age_columns[np.argmax(row[age_columns])]].split(":", 1)[1]
        for row in user_one_hot
    ]
    np.testing.assert_array_equal(decoded_age, expected_age)


def _coat_zip(path, shared_data_home, *, corrupt=None):
    """Write a Coat-like archive (folder coat/ inside) from the shared files."""
    with zipfile.ZipFile(path, "w") as zf:
        for name in coat_module._FILES:
            content = (shared_data_home / "coat" / name).read_bytes()
            if name == corrupt:
                content = content.replace(b"5", b"4", 1)
            zf.writestr(f"coat/{name}", content)
        zf.writestr("coat/README.txt", b"readme\n")
    return path


def test_coat_download(tmp_path, monkeypatch, shared_data_home, coat):
    archive = _coat_zip(tmp_path / "coat.zip", shared_data_home)
    monkeypatch.setattr(
        coat_module, "_ARCHIVE", RemoteFile("coat.zip", archive.as_uri(), None)
    )
    home = tmp_path / "home"
    # One file already there: only the others are taken from the archive.
    (home / "coat").mkdir(parents=True)
    shutil.copy(shared_data_home / "coat" / "train.ascii", home / "coat" / "train.ascii")

    downloaded = fetch_coat(data_home=home)
    # DataFrame.equals: same values and dtypes (assert_frame_equal is slow on
    # categoricals).
    assert downloaded.data.equals(coat.data)
    assert (downloaded.data.dtypes == coat.data.dtypes).all()
    assert downloaded.target.equals(coat.target)
    assert downloaded.test_target.equals(coat.test_target)
    assert _files_under(home) == sorted(home / "coat" / name for name in coat_module._FILES)


def test_coat_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, shared_data_home):
    archive = _coat_zip(tmp_path / "coat.zip", shared_data_home, corrupt="test.ascii")
    monkeypatch.setattr(
        coat_module, "_ARCHIVE", RemoteFile("coat.zip", archive.as_uri(), None)
    )
    home = tmp_path / "home"
    with pytest.raises(OSError, match="Checksum mismatch") as excinfo:
        fetch_coat(data_home=home)
    assert "test.ascii" in str(excinfo.value)
    assert _files_under(home) == []


def test_coat_offline_names_where_to_put_the_files(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(base, "urlopen", unreachable)
    with pytest.raises(OSError, match="Temporary failure in name resolution") as excinfo:
        fetch_coat(data_home=tmp_path)
    message = str(excinfo.value)
    assert f"extract its coat/ folder into {tmp_path}" in message
    assert ".coat-download-" not in message  # the temporary folder, removed
    assert _files_under(tmp_path) == []


def test_coat_download_if_missing_false(tmp_path, no_network):
    with pytest.raises(FileNotFoundError) as excinfo:
        fetch_coat(data_home=tmp_path, download_if_missing=False)
    message = str(excinfo.value)
    assert str(tmp_path / "coat" / "train.ascii") in message
    assert "coat.zip" in message
    assert not (tmp_path / "coat").exists()


# ---------------------------------------------------------------------------
# make_entire_space
# ---------------------------------------------------------------------------


def test_make_entire_space_shapes_and_dtypes():
    ds = make_entire_space(500, n_numeric=4, n_categorical=2, n_categories=7, random_state=0)
    assert ds.data.shape == (500, 6)
    assert ds.feature_names == ["num_0", "num_1", "num_2", "num_3", "cat_0", "cat_1"]
    assert list(ds.target.columns) == ds.target_names == ["click", "conversion"]
    assert (ds.data.dtypes.iloc[:4] == np.float64).all()
    for name in ["cat_0", "cat_1"]:
        assert isinstance(ds.data[name].dtype, pd.CategoricalDtype)
        assert len(ds.data[name].cat.categories) == 7
    assert ds.categorical_features.tolist() == [False] * 4 + [True] * 2
    assert ds.click_proba.shape == ds.conversion_proba.shape == (500,)
    assert ((ds.click_proba > 0) & (ds.click_proba < 1)).all()

    arrays = make_entire_space(500, n_numeric=4, n_categorical=2, n_categories=7,
                               random_state=0, as_frame=False)
    assert arrays.data.shape == (500, 6) and arrays.data.dtype == np.float64
    np.testing.assert_array_equal(arrays.data[:, 4], ds.data["cat_0"].cat.codes)
    np.testing.assert_array_equal(arrays.target, ds.target.to_numpy())


def test_make_entire_space_is_deterministic():
    a = make_entire_space(300, random_state=42)
    b = make_entire_space(300, random_state=42)
    c = make_entire_space(300, random_state=43)
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.target, b.target)
    np.testing.assert_array_equal(a.conversion_proba, b.conversion_proba)
    assert not np.allclose(a.click_proba, c.click_proba)


def test_make_entire_space_labels_follow_probabilities():
    ds = make_entire_space(40000, click_rate=0.15, conversion_rate=0.3, random_state=0)
    click = ds.target["click"].to_numpy()
    conversion = ds.target["conversion"].to_numpy()
    assert set(np.unique(click)) <= {0, 1}
    assert (conversion <= click).all()
    assert ds.click_proba.mean() == pytest.approx(0.15, abs=1e-6)
    assert ds.conversion_proba.mean() == pytest.approx(0.3, abs=1e-6)
    se = np.sqrt(ds.click_proba.mean() * (1 - ds.click_proba.mean()) / len(click))
    assert abs(click.mean() - ds.click_proba.mean()) < 4 * se
    clicked = click == 1
    p = ds.conversion_proba[clicked]
    se = np.sqrt(p.mean() * (1 - p.mean()) / clicked.sum())
    assert abs(conversion[clicked].mean() - p.mean()) < 4 * se
    # The click probability depends on the features.
    assert ds.click_proba.std() > 0.05


def _selection_gap(selection_bias):
    ds = make_entire_space(40000, selection_bias=selection_bias, random_state=1)
    clicked = ds.target["click"].to_numpy() == 1
    return ds.conversion_proba[clicked].mean() - ds.conversion_proba[~clicked].mean()


def test_make_entire_space_selection_bias():
    unbiased = _selection_gap(0.0)
    biased = _selection_gap(1.0)
    strongly_biased = _selection_gap(3.0)
    reversed_bias = _selection_gap(-1.0)
    assert abs(unbiased) < 0.02
    assert biased > unbiased + 0.05
    assert strongly_biased > biased
    assert reversed_bias < unbiased - 0.05
    # a huge bias copies the click score (selection_bias**2 overflowed)
    for bias in (1e200, -1.7e308):
        ds = make_entire_space(2000, selection_bias=bias, random_state=1)
        logits = np.log(ds.conditional_proba / (1 - ds.conditional_proba))
        assert np.corrcoef(logits.T)[0, 1] == pytest.approx(np.sign(bias), abs=1e-9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"click_rate": 0.0}, "click_rate"),
        ({"click_rate": 1.5}, "click_rate"),
        ({"conversion_rate": 1.0}, "conversion_rate"),
        ({"n_categories": 1}, "n_categories"),
        ({"n_numeric": 1, "n_categorical": 0}, "at least 2 directions"),
        ({"n_stages": 1}, "n_stages"),
        ({"n_stages": 4, "n_numeric": 3, "n_categorical": 0}, "at least 4 directions"),
        ({"n_stages": 3, "conversion_rate": (0.2, 0.3, 0.4)}, "2 numbers"),
        ({"n_stages": 3, "conversion_rate": (0.2, 1.0)}, r"conversion_rate\[1\]"),
        ({"n_stages": 3, "conversion_rate": 0.0}, "conversion_rate"),
        ({"selection_bias": float("nan")}, "selection_bias"),
    ],
)
def test_make_entire_space_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_entire_space(**kwargs)


def test_make_entire_space_type_errors():
    with pytest.raises(TypeError, match="n_stages"):
        make_entire_space(n_stages=3.0)
    with pytest.raises(TypeError, match="conversion_rate"):
        make_entire_space(conversion_rate="0.2")


def test_make_entire_space_default_output_is_pinned():
    """The two-stage output is what it was before ``n_stages`` existed, draw for draw."""
    ds = make_entire_space(2000, random_state=0)
    target = np.ascontiguousarray(ds.target.to_numpy())
    assert target.sum(axis=0).tolist() == [218, 75]
    assert hashlib.sha256(target.tobytes()).hexdigest() == (
        "f623283ed8d21139b508b9555954162da10c6ff93094118a836528314e129561")
    np.testing.assert_allclose(
        ds.click_proba[:3], [0.07714400699012067, 0.01471134924410611, 0.06464227326535531],
        rtol=1e-12)
    np.testing.assert_allclose(
        ds.conversion_proba[:3], [0.16625977747728943, 0.10975915456264589, 0.4542812635110997],
        rtol=1e-12)
    assert ds.data.iloc[0, -3:].tolist() == ["v0", "v4", "v1"]
    assert ds.data.iloc[0, 0] == pytest.approx(1.764052345967664, rel=1e-15)

    ds = make_entire_space(2000, n_numeric=0, n_categorical=2, selection_bias=-0.5,
                           click_rate=0.3, conversion_rate=0.05, random_state=3)
    target = np.ascontiguousarray(ds.target.to_numpy())
    assert target.sum(axis=0).tolist() == [609, 25]
    assert hashlib.sha256(target.tobytes()).hexdigest() == (
        "8f14c35a73898e4b7826e095e8ed882c3f03a58c78aed7fcf0044f1078237e0a")
    np.testing.assert_allclose(
        ds.conversion_proba[:3], [0.08748812291840476, 0.20571139196415864,
                                  0.035266645219448056], rtol=1e-12)


def test_make_entire_space_two_stages_explicitly():
    default = make_entire_space(500, random_state=4)
    explicit = make_entire_space(500, n_stages=2, conversion_rate=[0.2], random_state=4)
    pd.testing.assert_frame_equal(default.data, explicit.data)
    pd.testing.assert_frame_equal(default.target, explicit.target)
    for bunch in (default, explicit):
        np.testing.assert_array_equal(
            bunch.conditional_proba, np.column_stack([default.click_proba,
                                                      default.conversion_proba]))
        np.testing.assert_allclose(bunch.entire_space_proba[:, 1],
                                   default.click_proba * default.conversion_proba)


def test_make_entire_space_four_stages():
    rates = (0.3, 0.4, 0.5)
    ds = make_entire_space(60000, n_stages=4, click_rate=0.15, conversion_rate=rates,
                           random_state=0)
    names = ["click", "stage_2", "stage_3", "stage_4"]
    assert list(ds.target.columns) == ds.target_names == names
    assert ds.conditional_proba.shape == ds.entire_space_proba.shape == (60000, 4)
    np.testing.assert_array_equal(ds.conditional_proba[:, 0], ds.click_proba)
    np.testing.assert_array_equal(ds.conditional_proba[:, 1], ds.conversion_proba)
    np.testing.assert_allclose(ds.entire_space_proba,
                               np.cumprod(ds.conditional_proba, axis=1), rtol=1e-12)
    np.testing.assert_allclose(ds.conditional_proba.mean(axis=0), (0.15,) + rates, atol=1e-6)

    reached = ds.target.to_numpy()
    assert set(np.unique(reached)) == {0, 1}
    assert (np.diff(reached, axis=1) <= 0).all()       # a stage needs the one before
    for k in range(1, 4):
        # among the rows that reached stage k - 1, stage k follows its true probability
        before = reached[:, k - 1] == 1
        p = ds.conditional_proba[before, k]
        se = np.sqrt(p.mean() * (1 - p.mean()) / before.sum())
        assert abs(reached[before, k].mean() - p.mean()) < 4 * se
        # selection bias: rows that reached stage k - 1 are likelier to pass stage k
        assert p.mean() > ds.conditional_proba[~before, k].mean() + 0.05
        # consecutive stage scores correlate by r / sqrt(1 + r**2) (r = 1 by default)
        logits = np.log(ds.conditional_proba / (1 - ds.conditional_proba))
        assert np.corrcoef(logits[:, k - 1], logits[:, k])[0, 1] == pytest.approx(
            1 / np.sqrt(2), abs=0.03)
    # the entire-space rate of each stage matches its labels
    se = np.sqrt(ds.entire_space_proba.mean(axis=0) / len(reached))
    assert (np.abs(reached.mean(axis=0) - ds.entire_space_proba.mean(axis=0)) < 4 * se).all()

    arrays = make_entire_space(60000, n_stages=4, click_rate=0.15, conversion_rate=rates,
                               random_state=0, as_frame=False)
    np.testing.assert_array_equal(arrays.target, reached)
    np.testing.assert_array_equal(arrays.conditional_proba, ds.conditional_proba)


def test_make_entire_space_one_rate_for_every_later_stage():
    one = make_entire_space(2000, n_stages=3, conversion_rate=0.25, random_state=1)
    listed = make_entire_space(2000, n_stages=3, conversion_rate=[0.25, 0.25], random_state=1)
    pd.testing.assert_frame_equal(one.target, listed.target)
    np.testing.assert_allclose(one.conditional_proba[:, 1:].mean(axis=0), 0.25, atol=1e-6)


def test_make_entire_space_only_categorical():
    ds = make_entire_space(200, n_numeric=0, n_categorical=2, random_state=0)
    assert ds.data.shape == (200, 2)
    assert ds.click_proba.std() > 0


# ---------------------------------------------------------------------------
# make_multitask
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_tasks", [2, 3])
@pytest.mark.parametrize("task_correlation", [-0.5, 0.0, 0.3, 0.9, 1.0])
def test_make_multitask_task_weights(n_tasks, task_correlation):
    ds = make_multitask(200, n_tasks=n_tasks, task_correlation=task_correlation,
                        random_state=0)
    w = ds.task_weights
    assert w.shape == (n_tasks, 10)
    cosine = (w @ w.T) / np.outer(np.linalg.norm(w, axis=1), np.linalg.norm(w, axis=1))
    expected = np.full((n_tasks, n_tasks), task_correlation)
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(cosine, expected, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0)


def test_make_multitask_two_tasks_minus_one():
    w = make_multitask(50, task_correlation=-1.0, random_state=0).task_weights
    np.testing.assert_allclose(w[0], -w[1], atol=1e-12)


def test_make_multitask_outputs():
    ds = make_multitask(1000, n_features=6, n_tasks=3, n_categorical=2, random_state=0)
    assert ds.data.shape == (1000, 6)
    assert list(ds.target.columns) == ds.target_names == ["task_0", "task_1", "task_2"]
    assert list(ds.target_scores.columns) == ds.target_names
    assert ds.categorical_features.tolist() == [False] * 4 + [True] * 2
    assert (ds.data.dtypes.iloc[:4] == np.float64).all()
    for name in ["x_4", "x_5"]:
        assert isinstance(ds.data[name].dtype, pd.CategoricalDtype)
        assert len(ds.data[name].cat.categories) == 10
    # Labels are the latent scores thresholded at their median: balanced.
    scores = ds.target_scores.to_numpy()
    np.testing.assert_array_equal(
        ds.target.to_numpy(), (scores > np.median(scores, axis=0)).astype(int)
    )
    np.testing.assert_allclose(ds.target.mean(), 0.5, atol=1e-3)

    arrays = make_multitask(1000, n_features=6, n_tasks=3, n_categorical=2,
                            random_state=0, as_frame=False)
    np.testing.assert_array_equal(arrays.target, ds.target.to_numpy())
    np.testing.assert_array_equal(arrays.data[:, :4], ds.data.iloc[:, :4].to_numpy())
    np.testing.assert_array_equal(arrays.data[:, 4], ds.data["x_4"].cat.codes)
    # The latent score depends on the inputs (numeric part carries signal).
    projections = arrays.data[:, :4] @ ds.task_weights[0, :4]
    assert abs(np.corrcoef(projections, scores[:, 0])[0, 1]) > 0.1


def test_make_multitask_is_deterministic():
    a = make_multitask(300, random_state=7)
    b = make_multitask(300, random_state=7)
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.target_scores, b.target_scores)
    c = make_multitask(300, random_state=8)
    assert not np.allclose(a.task_weights, c.task_weights)


def test_make_multitask_correlation_controls_label_agreement():
    def agreement(rho):
        y = make_multitask(20000, task_correlation=rho, random_state=0).target.to_numpy()
        return (y[:, 0] == y[:, 1]).mean()

    assert agreement(0.0) < agreement(0.5) < agreement(0.9) < agreement(1.0)
    assert agreement(1.0) > 0.95


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task_correlation": 1.5}, "task_correlation"),
        ({"task_correlation": -1.01}, "task_correlation"),
        ({"n_tasks": 0}, "n_tasks"),
        ({"n_tasks": 3, "task_correlation": -0.9}, "-1/\\(n_tasks - 1\\)"),
        ({"n_features": 2, "n_tasks": 3}, "n_features"),
        ({"n_categorical": 11}, "n_categorical"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_make_multitask_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multitask(**kwargs)


def test_make_multitask_type_errors():
    with pytest.raises(TypeError, match="n_tasks"):
        make_multitask(n_tasks=2.0)
    with pytest.raises(TypeError, match="task_correlation"):
        make_multitask(task_correlation="high")
