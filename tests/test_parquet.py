"""Training on and predicting Parquet data streamed with pyarrow (the ``parquet`` extra)."""

import os
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

import skmtl.parquet
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


@pytest.fixture(scope="module")
def numeric():
    """300 rows of three numeric features and a label, and a model fitted on them as an array."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)) * [1.0, 10.0, 100.0], columns=["a", "b", "c"])
    y = (X["a"] + X["b"] / 10 > 0).astype(int)
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X.to_numpy(), y.to_numpy())
    return X, y, model


def _write_parts(folder, *parts):
    """Write each frame of ``parts`` to ``folder``/part-<k>.parquet; return ``folder``."""
    folder.mkdir(exist_ok=True)
    for k, part in enumerate(parts):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       folder / f"part-{k}.parquet")
    return folder


def test_a_failed_prediction_leaves_the_destination_as_it_was(numeric, tmp_path, monkeypatch):
    X, _, model = numeric
    source = _write_parts(tmp_path / "in", X)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"the scores of yesterday")
    blocks, predict = [], skmtl.parquet.prediction_columns

    def interrupted(estimator, features):
        blocks.append(len(features))
        if len(blocks) == 2:  # after a first block was written
            raise KeyboardInterrupt
        return predict(estimator, features)

    monkeypatch.setattr(skmtl.parquet, "prediction_columns", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_parquet(model, source, out, batch_rows=100)
    assert out.read_bytes() == b"the scores of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "scores.parquet"]
    monkeypatch.undo()

    umask = os.umask(0)
    os.umask(umask)
    predict_parquet(model, source, out, batch_rows=100)
    assert len(pq.read_table(out)) == 300
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "scores.parquet"]


def test_a_model_fitted_on_an_array_reads_the_columns_in_the_data_sets_order(numeric, tmp_path):
    X, _, model = numeric
    with_id = X.assign(id=range(300))
    # the second file orders its columns otherwise, the kept id first
    source = _write_parts(tmp_path / "in", with_id.iloc[:150],
                          with_id.iloc[150:][["id", "c", "b", "a"]])
    out = tmp_path / "scores.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X has feature names" per block
        predict_parquet(model, source, out, batch_rows=100, keep_columns=["id"])
    written = pq.read_table(out).to_pandas()
    np.testing.assert_array_equal(written["id"], np.arange(300))
    np.testing.assert_allclose(written["proba_task_0"], model.predict_proba(X.to_numpy())[:, 1],
                               rtol=1e-6)


def test_files_without_a_needed_column_are_refused_before_any_work(numeric, tmp_path):
    X, y, fitted = numeric
    frame = X.assign(label=y)
    source = _write_parts(tmp_path / "in", frame.iloc[:150], frame.iloc[150:].drop(columns="b"))
    missing = r"Columns \['b'\] are not in the Parquet file '.*part-1.parquet'"
    model = MMOEClassifier(max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match=missing):
        fit_parquet(model, source, "label", batch_rows=100, shuffle_buffer=None)
    assert not hasattr(model, "net_")  # the first file was not trained on
    with pytest.raises(ValueError, match=missing):
        predict_parquet(fitted, source, tmp_path / "scores.parquet")
    assert not (tmp_path / "scores.parquet").exists()
    with pytest.raises(ValueError, match=missing):
        next(iter_frames(source, ["a", "b"]))
    assert len(pd.concat(iter_frames(source, ["a", "c"]))) == 300


def test_the_predictions_are_not_written_into_the_input(numeric, tmp_path):
    X, _, model = numeric
    source = _write_parts(tmp_path / "in", X)
    part = source / "part-0.parquet"
    for sources, destination in [(source, source / "scores.parquet"),
                                 (str(source), source / "sub" / "scores.parquet"),
                                 (part, part), ([tmp_path / "other.parquet", source], part)]:
        with pytest.raises(ValueError, match="inside the data set"):
            predict_parquet(model, sources, destination)
    assert sorted(p.name for p in source.iterdir()) == ["part-0.parquet"]
    predict_parquet(model, [part], source.parent / "scores.parquet")  # beside the file: fine
    assert len(pq.read_table(source.parent / "scores.parquet")) == 300
    # a URI goes to pyarrow's file systems
    predict_parquet(model, [part], f"file://{source.parent / 'uri.parquet'}")
    assert len(pq.read_table(source.parent / "uri.parquet")) == 300


def test_kept_columns_get_one_type_over_the_files(numeric, tmp_path):
    X, y, model = numeric
    frame = X.assign(label=y)
    # integers in the first file, fractions in the second: written as floats
    source = _write_parts(tmp_path / "in", frame.iloc[:150], frame.iloc[150:].assign(label=0.5))
    out = tmp_path / "scores.parquet"
    predict_parquet(model, source, out, batch_rows=100, keep_columns="label")
    written = pq.read_table(out)
    assert written.column_names == ["label", "proba_task_0"]
    assert written.schema.field("label").type == pa.float64()
    np.testing.assert_array_equal(written.column("label").to_numpy(),
                                  np.r_[y.iloc[:150], np.full(150, 0.5)])
    source = _write_parts(tmp_path / "other", frame.iloc[:150],
                          frame.iloc[150:].assign(label="yes"))
    with pytest.raises(ValueError, match="Column 'label' is int64 in some Parquet files and "
                                         "(large_)?string in '.*part-1.parquet'"):
        predict_parquet(model, source, tmp_path / "other.parquet", keep_columns=["label"])
    assert not (tmp_path / "other.parquet").exists()


def test_parquet_categories_reads_each_file_with_its_types(tmp_path):
    pq.write_table(pa.table({"uid": pa.array([1, 2], pa.int32()), "x": [1, 2]}),
                   tmp_path / "a.parquet")
    pq.write_table(pa.table({"uid": pa.array([3, 2**40], pa.int64()), "x": [2.5, 1.0]}),
                   tmp_path / "b.parquet")
    assert parquet_categories(tmp_path, ["uid", "x"]) == {"uid": [1, 2, 3, 2**40],
                                                          "x": [1, 2, 2.5]}
    assert parquet_categories(tmp_path, "uid") == {"uid": [1, 2, 3, 2**40]}


def test_the_row_index_pandas_stored_is_no_feature(numeric, tmp_path):
    # DataFrame.to_parquet stores an index other than a range as __index_level_0__,
    # which fit_parquet learned as a feature: the same rows, other predictions
    X, y, array_model = numeric
    sampled = X.assign(label=y).sample(frac=1.0, random_state=0)
    (tmp_path / "train").mkdir()
    sampled.to_parquet(tmp_path / "train" / "part-0.parquet")
    model = fit_parquet(MMOEClassifier(max_epochs=1, random_state=0), tmp_path / "train",
                        "label", batch_rows=300)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert list(next(iter_frames(tmp_path / "train")).columns) == ["a", "b", "c", "label"]
    scores = []
    for k, index in enumerate([range(10, 310), range(10**6, 10**6 + 300)]):
        (tmp_path / f"new{k}").mkdir()
        X.set_axis(list(index)).rename_axis("row").to_parquet(tmp_path / f"new{k}" / "x.parquet")
        predict_parquet(model, tmp_path / f"new{k}", tmp_path / f"scores{k}.parquet")
        scores.append(pq.read_table(tmp_path / f"scores{k}.parquet")["proba_label"].to_numpy())
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_allclose(scores[0], model.predict_proba(X)[:, 1], rtol=1e-6)
    # a model fitted on an array reads every column but the index ("row" here)
    predict_parquet(array_model, tmp_path / "new1", tmp_path / "array.parquet")
    np.testing.assert_allclose(pq.read_table(tmp_path / "array.parquet")["proba_task_0"],
                               array_model.predict_proba(X.to_numpy())[:, 1], rtol=1e-6)


def test_parquet_categories_of_mixed_types_and_nan(tmp_path):
    pq.write_table(pa.table({"store": [1, 2], "x": [1.0, np.nan]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"store": ["3", "4"], "x": [2.0, None]}), tmp_path / "b.parquet")
    # NaN is missing, as null is (it came back as a category)
    assert parquet_categories(tmp_path, "x") == {"x": [1.0, 2.0]}
    with pytest.raises(ValueError, match=r"Column 'store' holds values of types that cannot be "
                                         r"compared across the files \(int64 in .*a\.parquet, "
                                         r"string in .*b\.parquet\)"):
        parquet_categories(tmp_path, ["x", "store"])


def test_wrappers_of_a_model_get_a_hint(numeric, tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, model = numeric
    source = _write_parts(tmp_path / "in", X.assign(label=y))
    pipeline = make_pipeline(StandardScaler(), MMOEClassifier(max_epochs=1)).fit(X, y)
    with pytest.raises(TypeError, match=r"predict_parquet takes a skmtl estimator; got "
                                        r"Pipeline \(for a Pipeline, pass its last step"):
        predict_parquet(pipeline, source, tmp_path / "scores.parquet")
    with pytest.raises(TypeError, match="fit_parquet takes a skmtl estimator; got Pipeline"):
        fit_parquet(make_pipeline(StandardScaler(), MMOEClassifier()), source, "label")
    # repeated columns, and a target among the features ("X has duplicate column names")
    with pytest.raises(ValueError, match=r"targets names \['label'\] more than once"):
        fit_parquet(MMOEClassifier(), source, ["label", "label"])
    with pytest.raises(ValueError, match=r"Columns \['label'\] are features and also targets"):
        fit_parquet(MMOEClassifier(), source, "label", features=["a", "label"])
    # a folder as the destination: refused before any work, not by open() at the end
    with pytest.raises(ValueError, match="destination .* is a folder; give the path"):
        predict_parquet(model, source, tmp_path)


def test_a_single_column_name_is_one_column_and_batch_rows_is_checked(numeric, tmp_path):
    X, y, _ = numeric
    source = _write_parts(tmp_path / "in", X.assign(label=y, id=range(300)))
    model = fit_parquet(MMOEClassifier(max_epochs=1, random_state=0), source, "label",
                        features="a", batch_rows=300)
    assert list(model.feature_names_in_) == ["a"]
    predict_parquet(model, source, tmp_path / "scores.parquet", keep_columns="id")
    assert pq.read_table(tmp_path / "scores.parquet").column_names == ["id", "proba_label"]
    assert list(next(iter_frames(source, "id")).columns) == ["id"]
    with pytest.raises(TypeError, match="batch_rows must be an integer; got 1000.5"):
        next(iter_frames(source, batch_rows=1000.5))
    with pytest.raises(ValueError, match="batch_rows must be at least 1; got 0"):
        fit_parquet(MMOEClassifier(), source, "label", batch_rows=0)
    with pytest.raises(ValueError, match="shuffle_buffer must be at least 1; got 0"):
        next(iter_frames(source, shuffle_buffer=0))
