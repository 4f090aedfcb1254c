"""Training on and predicting Parquet data streamed with pyarrow (the ``parquet`` extra)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from skmtl import MMOEClassifier, MMOERegressor
from skmtl.parquet import fit_parquet, iter_frames, parquet_categories, predict_parquet

from conftest import make_tasks

COLORS = ["black", "blue", "green", "red"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three Parquet files of ``make_tasks`` rows; ``color`` dictionary-encoded in one."""
    path = tmp_path_factory.mktemp("parquet")
    X, Y, _ = make_tasks(3000, seed=0)
    frame = pd.concat([X.assign(shop=X["shop"].astype(int)), Y], axis=1)
    for k, start in enumerate(range(0, 3000, 1000)):
        part = frame.iloc[start:start + 1000]
        table = pa.Table.from_pandas(part, preserve_index=False)
        if k == 1:
            table = table.set_column(0, "color", table.column("color").dictionary_encode())
        pq.write_table(table, path / f"part-{k}.parquet", row_group_size=300)
    return path, frame


def test_iter_frames_streams_every_row_once(folder):
    path, frame = folder
    frames = list(iter_frames(path, batch_rows=256))
    assert [len(f) for f in frames[:3]] == [256, 256, 256]
    streamed = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, frame.reset_index(drop=True), check_dtype=False)
    assert streamed["color"].dtype != "category"  # dictionary columns are decoded


def test_iter_frames_shuffles_within_the_buffer(folder):
    path, frame = folder
    runs = [pd.concat(iter_frames(path, batch_rows=256, shuffle_buffer=1000, random_state=s),
                      ignore_index=True) for s in (0, 0, 1)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert not runs[0]["num_a"].equals(runs[2]["num_a"])
    assert not runs[0]["num_a"].equals(frame["num_a"].reset_index(drop=True))
    np.testing.assert_array_equal(np.sort(runs[0]["num_a"]), np.sort(frame["num_a"]))


def test_parquet_categories_reads_the_whole_data_set(folder):
    path, _ = folder
    categories = parquet_categories(path, ["color", "shop"])
    assert categories["color"] == COLORS
    assert categories["shop"] == list(range(30))


def _without(path, column, folder):
    """A copy of the Parquet file ``path`` without ``column``."""
    copy = folder / f"without_{column}.parquet"
    pq.write_table(pq.read_table(path).drop([column]), copy)
    return copy


def test_fit_and_predict_parquet(folder, tmp_path):
    path, frame = folder
    model = MMOEClassifier(categorical_features=["color", "shop"], random_state=0,
                           categories=parquet_categories(path, ["color", "shop"]))
    fit_parquet(model, path, ["t1", "t2"], epochs=3, batch_rows=500, shuffle_buffer=1500,
                random_state=0)
    assert model.n_iter_ == 18
    X_test, Y_test, _ = make_tasks(1000, seed=1)
    X_test = X_test.assign(shop=X_test["shop"].astype(int))
    proba = model.predict_proba(X_test)
    assert roc_auc_score(Y_test["t1"], proba[0][:, 1]) > 0.85
    assert roc_auc_score(Y_test["t2"], proba[1][:, 1]) > 0.7

    out = tmp_path / "predictions.parquet"
    test_path = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pandas(X_test.assign(row_id=np.arange(1000)),
                                        preserve_index=False), test_path)
    predict_parquet(model, test_path, out, batch_rows=300, keep_columns=["row_id"])
    written = pq.read_table(out).to_pandas()
    assert list(written.columns) == ["row_id", "proba_t1", "proba_t2"]
    np.testing.assert_array_equal(written["row_id"], np.arange(1000))
    np.testing.assert_allclose(written["proba_t1"], proba[0][:, 1], rtol=1e-6)
    np.testing.assert_allclose(written["proba_t2"], proba[1][:, 1], rtol=1e-6)
    # a feature kept beside the scores (an id to join on) is still a feature; other
    # columns of the input are not read
    predict_parquet(model, test_path, out, keep_columns=["shop"])
    written = pq.read_table(out).to_pandas()
    assert list(written.columns) == ["shop", "proba_t1", "proba_t2"]
    np.testing.assert_allclose(written["proba_t1"], proba[0][:, 1], rtol=1e-6)
    with pytest.raises(ValueError, match=r"Columns \['num_b'\] are not in the Parquet"):
        predict_parquet(model, _without(test_path, "num_b", tmp_path), out)


def test_fit_parquet_with_hashing_and_a_regressor(folder, tmp_path):
    path, frame = folder
    regressor = MMOERegressor(hash_buckets={"color": 16}, categorical_features=["color"],
                              random_state=0)
    fit_parquet(regressor, path, "num_a", features=["color", "shop", "num_b"], epochs=2,
                batch_rows=1000, shuffle_buffer=None)
    assert regressor._single_output and regressor.n_iter_ == 6
    out = tmp_path / "regression.parquet"
    predict_parquet(regressor, path, out, keep_columns=["num_a", "t1", "t2"])
    assert list(pq.read_table(out).column_names) == ["num_a", "t1", "t2", "prediction_num_a"]


def test_integer_ids_with_nulls_hash_as_the_integers_they_are(folder, tmp_path):
    path, frame = folder
    model = MMOEClassifier(hash_buckets={"shop": 64}, categorical_features=["color", "shop"],
                           categories=parquet_categories(path, ["color"]), random_state=0)
    fit_parquet(model, path, ["t1", "t2"], epochs=1, batch_rows=1000)
    X = frame.drop(columns=["t1", "t2"]).head(300)
    # one missing id: pyarrow would turn the whole batch's ids into floats
    with_null = X.astype({"shop": "Int64"})
    with_null.loc[7, "shop"] = pd.NA
    source = tmp_path / "with_null.parquet"
    pq.write_table(pa.Table.from_pandas(with_null, preserve_index=False), source)
    assert next(iter_frames(source))["shop"].dtype == "Int64"
    predict_parquet(model, source, tmp_path / "out.parquet")
    written = pq.read_table(tmp_path / "out.parquet").to_pandas()["proba_t1"].to_numpy()
    expected = model.predict_proba(X)[0][:, 1]
    rows = np.arange(len(X)) != 7
    np.testing.assert_allclose(written[rows], expected[rows], rtol=1e-6)
    assert not np.isclose(written[7], expected[7])  # the missing id: the unknown code


def test_fit_parquet_errors(folder, tmp_path):
    path, _ = folder
    with pytest.raises(ValueError, match="'color'.*hash_buckets"):
        fit_parquet(MMOEClassifier(), path, ["t1", "t2"])
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the Parquet data set"):
        fit_parquet(MMOEClassifier(hash_buckets=8), path, ["t1", "nope"])
    with pytest.raises(ValueError, match="not a readable Parquet"):
        list(iter_frames(tmp_path / "missing"))
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        fit_parquet(MMOEClassifier(hash_buckets=8), path, ["t1", "t2"], epochs=0)
    with pytest.raises(TypeError, match="epochs must be an integer; got '2'"):
        fit_parquet(MMOEClassifier(hash_buckets=8), path, ["t1", "t2"], epochs="2")
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the Parquet data set"):
        parquet_categories(path, ["color", "nope"])
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pandas(_frame_of(path).head(0), preserve_index=False), empty)
    with pytest.raises(ValueError, match="holds no rows; nothing to fit"):
        fit_parquet(MMOEClassifier(hash_buckets=8), empty, ["t1", "t2"])
    model = fit_parquet(MMOEClassifier(hash_buckets=8), path, ["t1", "t2"], batch_rows=1500)
    with pytest.raises(ValueError, match="holds no rows; nothing was written"):
        predict_parquet(model, empty, tmp_path / "out.parquet", keep_columns=["t1", "t2"])
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(ValueError, match=r"\['proba_t1'\] have the names of prediction"):
        predict_parquet(model, path, tmp_path / "out.parquet", keep_columns=["proba_t1"])
    with pytest.raises(NotFittedError):
        predict_parquet(MMOEClassifier(), path, tmp_path / "out.parquet")


def _frame_of(path):
    return pq.read_table(next(iter(sorted(path.glob("*.parquet"))))).to_pandas()


def test_prediction_columns_of_the_same_name_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=300)})
    # task "ctr" with the class "1" and the binary task "ctr_1" both give proba_ctr_1
    Y = pd.DataFrame({"ctr": rng.choice(["1", "2", "3"], 300), "ctr_1": rng.integers(0, 2, 300)})
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    X.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(ValueError, match=r"several prediction columns named \['proba_ctr_1'\]"):
        predict_parquet(model, tmp_path / "in.parquet", tmp_path / "out.parquet")
