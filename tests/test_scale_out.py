"""Scaling out: hashed and fixed vocabularies, partial_fit on chunks."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

import skmtl
from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, MMOERegressor, PLEClassifier,
                   SharedBottomClassifier)
from skmtl._encoding._categorical import UNKNOWN_CODE, hashed_code_reader

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=3, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")
COLORS = ["red", "green", "blue", "black"]


def _codes(values, n_buckets):
    values = pd.Series(values)
    out = np.empty(len(values), np.int32)
    hashed_code_reader(values, n_buckets)(0, len(values), out, np.empty(len(values), np.intp))
    return out


def _with_color_dtype(X):
    return X.assign(color=X["color"].astype(pd.CategoricalDtype(COLORS)))


# -- hashing ---------------------------------------------------------------------


def test_hashed_codes_are_the_same_in_another_process():
    values = ["user_1", "user_2", None, "user_1", "ünïcode", ""]
    here = _codes(values, 1000).tolist()
    script = ("import numpy as np, pandas as pd; from skmtl._encoding._categorical import "
              "hashed_code_reader as h; v = pd.Series(%r); o = np.empty(len(v), np.int32); "
              "h(v, 1000)(0, len(v), o, np.empty(len(v), np.intp)); print(o.tolist())" % values)
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123", "PATH": ""},
                           cwd=".").stdout
    assert eval(there) == here
    assert here[2] == 0 and here[0] == here[3] and all(1 <= c <= 1000 for c in here if c)


@pytest.mark.parametrize("dtype, numpy_dtype", [("Int64", np.int64), ("UInt8", np.uint8),
                                                ("boolean", np.bool_)])
def test_hashed_nullable_numbers_hash_alike_with_or_without_missing_values(dtype, numpy_dtype):
    # np.asarray turns a nullable column holding a missing value into floats: a block
    # with NA once hashed 1 as 1.0, a block without as the integer 1
    values = pd.Series([1, 0, None, 1], dtype=dtype)
    codes = _codes(values, 1000)
    np.testing.assert_array_equal(codes[[0, 1, 3]], _codes(np.array([1, 0, 1], numpy_dtype), 1000))
    assert codes[2] == 0
    np.testing.assert_array_equal(_codes(values[:2], 1000), codes[:2])


@pytest.mark.parametrize("values, numpy_dtype", [([True, False, None, True], np.bool_),
                                                  ([1.5, -0.25, None, 1.5], np.float64)])
def test_hashed_python_bools_and_floats_hash_as_their_numpy_type(values, numpy_dtype):
    # pandas holds bools or floats with a missing value as objects; Parquet gives them
    # back as boolean / float64: the buckets must not depend on the container
    codes = _codes(pd.Series(values, dtype=object), 1000)
    known = [v for v in values if v is not None]
    np.testing.assert_array_equal(codes[[0, 1, 3]], _codes(np.array(known, numpy_dtype), 1000))
    assert codes[2] == 0


def test_a_value_of_a_mixed_column_hashes_whatever_its_neighbours():
    # the type was decided per block: 1.5 hashed as a float beside floats, as text beside text
    mixed = pd.Series(["a", 1.5, True, 3, None, 2**70], dtype=object)
    codes = _codes(mixed, 1000)
    alone = [_codes(pd.Series([value], dtype=object), 1000)[0] for value in mixed]
    np.testing.assert_array_equal(codes, alone)
    np.testing.assert_array_equal(codes[1:4], [_codes(np.array([1.5]), 1000)[0],
                                               _codes(np.array([True]), 1000)[0],
                                               _codes(np.array([3]), 1000)[0]])
    assert codes[4] == 0


def test_hashed_codes_of_a_category_column_equal_those_of_its_values():
    values = ["a", "b", None, "c", "a"]
    np.testing.assert_array_equal(_codes(values, 7),
                                  _codes(pd.Series(values, dtype="category"), 7))


def test_hash_buckets_in_fit(tasks, holdout):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, hash_buckets={"shop": 8}).fit(X, Y)
    encoder = model._encoder
    assert encoder.hash_buckets_ == [0, 8]  # color learned, shop hashed
    assert encoder.cardinalities == [5, 9]
    everything = MMOEClassifier(**FAST, hash_buckets=64).fit(X, Y)
    assert everything._encoder.hash_buckets_ == [64, 64]
    # an int hashes the columns that have no vocabulary in categories (it was an error
    # naming "both categories and hash_buckets")
    mixed = MMOEClassifier(**FAST, hash_buckets=64, categories={"color": COLORS}).fit(X, Y)
    assert mixed._encoder.hash_buckets_ == [0, 64]
    np.testing.assert_array_equal(mixed._encoder.categories_[0], sorted(COLORS))
    X_test, Y_test, _ = holdout
    # a value never seen in fit still lands in a bucket, not in the unknown code
    unseen = X_test.assign(color="purple")
    codes, _ = everything._encoder.transform(unseen)
    assert (codes[:, 0] > 0).all()
    auc = roc_auc_score(Y_test["t1"], everything.predict_proba(X_test)[0][:, 1])
    assert auc > 0.8


def test_an_integer_hashes_alike_whatever_its_type():
    # an id read as int32 from a file and as int64 elsewhere lands in one bucket
    values = np.array([-5, 3, 7, -1000, 2**40])
    expected = _codes(values, 1000)
    for same in (values[:4].astype(np.int32), values[:4].astype(np.int16)):
        np.testing.assert_array_equal(_codes(same, 1000), expected[:4])
    for same in (pd.array(values, dtype="Int64"), pd.Series(values.tolist(), dtype=object),
                 pd.Series(values, dtype="category"), values.astype(np.uint64)[[1, 2, 4]]):
        np.testing.assert_array_equal(_codes(same, 1000),
                                      expected[[1, 2, 4]] if len(same) == 3 else expected)
    with_missing = _codes(pd.Series([3, None, 7], dtype=object), 1000)
    np.testing.assert_array_equal(with_missing, [expected[1], UNKNOWN_CODE, expected[2]])
    # numbers and their text stay apart
    assert _codes(np.array(["3"], dtype=object), 1000)[0] != expected[1]


def test_a_whole_float_hashes_as_its_integer():
    # pandas makes a column of integer ids floats once an id is missing: 3.0 hashed apart
    # from 3, and every row of the column moved to another bucket
    ids = np.array([-5, 3, 7, 0, 2**40, 2**63 + 11], dtype=object)
    expected = _codes(pd.Series(ids[:5].astype(np.int64)), 1000)
    for same in (ids[:5].astype(np.float64), np.array([-5.0, 3.0, 7.0, -0.0, 2.0**40], np.float32),
                 pd.array(ids[:5].astype(float), dtype="Float64"),
                 pd.Series([-5, 3.0, 7, 0.0, 2**40], dtype=object),
                 pd.Series(ids[:5].astype(float), dtype="category")):
        np.testing.assert_array_equal(_codes(same, 1000), expected)
    np.testing.assert_array_equal(_codes(np.array([np.nan, 3.0, 7.0]), 1000),
                                  [UNKNOWN_CODE, *expected[1:3]])
    assert _codes(np.array([2.0**63 + 2048]), 1000)[0] == _codes(
        np.array([2**63 + 2048], np.uint64), 1000)[0]
    # fractions, infinities and numbers beyond 64 bits stay floats
    for value in (3.5, np.inf, -np.inf, 2.0**64, -2.0**70):
        assert _codes(np.array([value]), 1000)[0] == 1 + int(
            pd.util.hash_array(np.array([value]))[0] % np.uint64(1000))
    # the rule of models saved before it
    older = pd.Series([3.0, 7.0])
    out = np.empty(2, np.int32)
    hashed_code_reader(older, 1000, whole_floats_as_integers=False)(0, 2, out, np.empty(2, np.intp))
    assert out[0] != expected[1]


def test_a_missing_hashed_id_leaves_the_other_rows_alone(tasks, tmp_path):
    X, Y, _ = tasks
    X = X.assign(user=np.arange(len(X)) % 13)
    model = MMOEClassifier(**FAST, hash_buckets={"user": 50},
                           categorical_features=["color", "shop", "user"]).fit(X, Y)
    rows = X[:60]
    with_missing = rows.assign(user=[np.nan, *rows["user"][1:]])
    assert with_missing["user"].dtype == np.float64
    for a, b in zip(model.predict_proba(with_missing), model.predict_proba(rows)):
        np.testing.assert_array_equal(a[1:], b[1:])
    model.save(tmp_path / "m.skmtl")
    loaded = skmtl.load(tmp_path / "m.skmtl")
    for a, b in zip(loaded.predict_proba(with_missing), model.predict_proba(with_missing)):
        np.testing.assert_array_equal(a, b)
    # a file saved before the rule (no such key) keeps hashing 3.0 apart from 3
    state = model._encoder.to_dict()
    del state["hash_whole_floats_as_integers"]
    older = type(model._encoder).from_dict(state)
    assert not older.hashes_whole_floats_as_integers
    assert (older.transform(with_missing)[0][1:, 2] != model._encoder.transform(
        with_missing)[0][1:, 2]).any()
    state["hash_whole_floats_as_integers"] = "yes"
    with pytest.raises(ValueError, match="hash_whole_floats_as_integers is not a bool"):
        type(model._encoder).from_dict(state)


@pytest.mark.parametrize("buckets, message", [
    ({"shop": 0}, "positive integer"), ({"shop": 2.5}, "positive integer"),
    ({"shop": 2**31}, "at most 2,147,483,647"),
    ({"shop": True}, "positive integer"), ({"num_a": 4}, "not categorical"),
    ({"nope": 4}, "not a column"),
])
def test_bad_hash_buckets(tasks, buckets, message):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match=message):
        MMOEClassifier(**FAST, hash_buckets=buckets).fit(X, Y)


def test_hash_buckets_below_one_is_an_invalid_parameter(tasks):
    X, Y, _ = tasks
    for buckets in (0, 2**31):
        with pytest.raises(InvalidParameterError, match="hash_buckets"):
            MMOEClassifier(**FAST, hash_buckets=buckets).fit(X, Y)


def test_fixed_categories(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, categories={"color": ["red", "green", "red"]}).fit(X, Y)
    np.testing.assert_array_equal(model._encoder.categories_[0], ["green", "red"])
    codes, _ = model._encoder.transform(X)
    np.testing.assert_array_equal(codes[:, 0] == 0, ~X["color"].isin(["red", "green"]))
    with pytest.raises(ValueError, match="both categories and hash_buckets"):
        MMOEClassifier(**FAST, categories={"color": ["red"]},
                       hash_buckets={"color": 4}).fit(X, Y)
    with pytest.raises(ValueError, match="must be a list of values"):
        MMOEClassifier(**FAST, categories={"color": "red"}).fit(X, Y)
    # shop holds the integers 0..29: a vocabulary of their text matches none of them
    with pytest.warns(UserWarning, match=r"categories\['shop'\] matches none of the "
                                         "column's values") as warned:
        MMOEClassifier(**FAST, categories={"shop": [str(i) for i in range(30)]}).fit(X, Y)
    assert warned[0].filename == __file__  # pointed at the caller's fit
    with pytest.warns(UserWarning, match=r"categories\['color'\] is empty: every row") as warned:
        MMOEClassifier(**FAST, categories={"color": []}).fit(X, Y)  # was silent
    assert warned[0].filename == __file__


def test_hashed_and_fixed_vocabularies_save_and_load(tasks, holdout, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, hash_buckets={"shop": 8},
                           categories={"color": COLORS}).fit(X, Y)
    model.save(tmp_path / "model.skmtl")
    loaded = skmtl.load(tmp_path / "model.skmtl")
    assert loaded.hash_buckets == {"shop": 8} and loaded._encoder.hash_buckets_ == [0, 8]
    for a, b in zip(model.predict_proba(holdout[0]), loaded.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)


# -- partial_fit ---------------------------------------------------------------------


def _chunks(X, Y, size):
    return [(X.iloc[i:i + size], Y.iloc[i:i + size]) for i in range(0, len(X), size)]


@pytest.mark.parametrize("cls", [MMOEClassifier, PLEClassifier, SharedBottomClassifier])
def test_partial_fit_learns_from_chunks(tasks, holdout, cls):
    X, Y, _ = tasks
    X_test, Y_test, _ = holdout
    model = cls(random_state=0)
    for _ in range(3):
        for X_chunk, Y_chunk in _chunks(_with_color_dtype(X), Y, 400):
            model.partial_fit(X_chunk, Y_chunk)
    assert model.n_iter_ == 15 and len(model.history_) == 15
    proba = model.predict_proba(_with_color_dtype(X_test))
    assert roc_auc_score(Y_test["t1"], proba[0][:, 1]) > 0.85
    assert roc_auc_score(Y_test["t2"], proba[1][:, 1]) > 0.75


def test_partial_fit_is_reproducible(tasks):
    X, Y, _ = tasks
    X = _with_color_dtype(X)
    runs = []
    for _ in range(2):
        model = MMOEClassifier(random_state=3)
        for X_chunk, Y_chunk in _chunks(X, Y, 500):
            model.partial_fit(X_chunk, Y_chunk)
        runs.append(model.predict_proba(X)[1])
    np.testing.assert_array_equal(*runs)


def test_partial_fit_takes_the_whole_category_list_of_the_dtype(tasks):
    X, Y, _ = tasks
    X = _with_color_dtype(X)
    first = X[X["color"] != "black"].iloc[:500]
    model = MMOEClassifier(random_state=0).partial_fit(first, Y.loc[first.index])
    np.testing.assert_array_equal(model._encoder.categories_[0], COLORS)
    codes, _ = model._encoder.transform(X[X["color"] == "black"].iloc[:5])
    assert (codes[:, 0] == COLORS.index("black") + 1).all()


def test_partial_fit_warns_of_chunk_categories_outside_the_vocabulary(tasks):
    # Dask partitions read with categories of their own: a later chunk's categories that
    # the first chunk's dtype did not list were coded unknown without a word
    X, Y, _ = tasks
    first = X[X["color"] != "black"].iloc[:500]
    model = MMOEClassifier(random_state=0).partial_fit(
        first.astype({"color": "category"}), Y.loc[first.index])
    later = X.iloc[500:1000].astype({"color": "category"})
    n_black = int((later["color"] == "black").sum())
    assert n_black > 0
    message = rf"'color'.*\['black'\]\): {n_black} of 500 rows"
    with pytest.warns(UserWarning, match=message) as record:
        model.partial_fit(later, Y.iloc[500:1000])
    assert record[0].filename == __file__
    no_black = _with_color_dtype(X.iloc[1000:1500]).query("color != 'black'")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.partial_fit(later, Y.iloc[500:1000])  # once per column, not per chunk
        # listed in the dtype, but no row of it
        model.partial_fit(no_black, Y.loc[no_black.index])
        model.partial_fit(X.iloc[1000:1500], Y.iloc[1000:1500])  # strings: unseen is normal


def test_warm_start_warns_of_categories_outside_the_first_fits_vocabulary(tasks):
    # a day's refit with warm_start coded a new category unknown without a word, where
    # partial_fit warned
    X, Y, _ = tasks
    first = X[X["color"] != "black"].iloc[:500]
    model = MMOEClassifier(max_epochs=1, random_state=0, warm_start=True).fit(
        first.astype({"color": "category"}), Y.loc[first.index])
    later = X.iloc[500:1000].astype({"color": "category"})
    n_black = int((later["color"] == "black").sum())
    with pytest.warns(UserWarning, match=rf"'color'.*vocabulary the first fit fixed "
                                         rf"\(e.g. \['black'\]\): {n_black} of 500 rows"):
        model.fit(later, Y.iloc[500:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X.iloc[1000:1500], Y.iloc[1000:1500])  # strings: unseen is normal


def test_partial_fit_needs_a_vocabulary_for_string_columns(tasks):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match=r"'color'.*category.*categories=.*hash_buckets="):
        MMOEClassifier().partial_fit(X, Y)
    MMOEClassifier(hash_buckets={"color": 16}, random_state=0).partial_fit(X, Y)
    MMOEClassifier(categories={"color": COLORS}, random_state=0).partial_fit(X, Y)


def test_partial_fit_classes(tasks):
    X, Y, _ = tasks
    X = _with_color_dtype(X)
    only_zeros = Y["t2"] == 0
    with pytest.raises(ValueError, match="fewer than two classes.*pass classes"):
        MMOEClassifier().partial_fit(X[only_zeros], Y[only_zeros])
    model = MMOEClassifier(random_state=0).partial_fit(X[only_zeros], Y[only_zeros],
                                                       classes=[[0, 1], [0, 1]])
    assert [list(c) for c in model.classes_] == [[0, 1], [0, 1]]
    model.partial_fit(X, Y)
    with pytest.raises(ValueError, match="fixed by the first call"):
        model.partial_fit(X, Y, classes=[[0, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"labels \[2\] outside its classes"):
        model.partial_fit(X, Y.assign(t2=Y["t2"] * 2))
    with pytest.raises(ValueError, match="at least two classes"):
        MMOEClassifier().partial_fit(X, Y, classes=[[0, 1], [1]])
    with pytest.raises(ValueError, match="2 arrays of classes for 1 task"):
        MMOEClassifier().partial_fit(X, Y[["t1"]], classes=[[0, 1], [0, 1]])
    single = MMOEClassifier(random_state=0).partial_fit(X, Y["t1"], classes=[0, 1])
    assert list(single.classes_) == [0, 1]
    # the same classes with a repeat, on every call (as dask-ml's Incremental passes them)
    single.partial_fit(X, Y["t1"], classes=[1, 0, 1])
    # NaN was a class no row can have (NaN is a missing label); None a numpy TypeError
    with pytest.raises(ValueError, match="classes of task 't2' holds a missing value"):
        MMOEClassifier().partial_fit(X, Y, classes=[[0, 1], [0, 1, np.nan]])
    with pytest.raises(ValueError, match="classes of task 't1' holds a missing value"):
        MMOEClassifier().partial_fit(X, Y.astype(str), classes=[["0", "1", None], ["0", "1"]])
    with pytest.raises(ValueError, match="classes of task 't1' mixes types"):
        MMOEClassifier().partial_fit(X, Y, classes=[np.array([0, 1, "2"], object), [0, 1]])


def test_partial_fit_checks_later_chunks(tasks):
    X, Y, _ = tasks
    X = _with_color_dtype(X)
    model = MMOEClassifier(random_state=0).partial_fit(X, Y)
    with pytest.raises(ValueError, match="same tasks"):
        model.partial_fit(X, Y.rename(columns={"t2": "other"}))
    with pytest.raises(ValueError, match="Not seen in fit: \\['extra'\\]"):
        model.partial_fit(X.assign(extra=1.0).drop(columns="num_b"), Y)
    with pytest.raises(ValueError, match="X has 5 features"):
        model.partial_fit(X.assign(extra=1.0), Y)
    n_iter = model.n_iter_
    model.set_params(n_bins=8)
    with pytest.raises(ValueError, match="n_bins was 32 and is now 8"):
        model.partial_fit(X, Y)
    assert model.n_iter_ == n_iter


def test_partial_fit_after_fit_keeps_fits_encoders(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)   # string column: vocabulary from fit
    encoder = model._encoder
    model.partial_fit(X.iloc[:500], Y.iloc[:500])
    assert model._encoder is encoder and model.n_iter_ == 4


def test_partial_fit_funnels_and_regressors(tasks, holdout):
    X, Y, funnel = tasks
    X = _with_color_dtype(X)
    X_test, Y_test, funnel_test = holdout
    no_conversion = funnel["conversion"] == 0
    for cls in (ESMMClassifier, AITMClassifier):
        with pytest.raises(ValueError, match=r"Stage 'conversion' has only one class among "
                                             r"the known labels of the first partial_fit chunk.*"
                                             r"pass classes=\[\[0, 1\]\] \* 2"):
            cls().partial_fit(X[no_conversion], funnel[no_conversion])
        model = cls(random_state=0).partial_fit(X[no_conversion], funnel[no_conversion],
                                                classes=[[0, 1], [0, 1]])
        for _ in range(3):
            for X_chunk, Y_chunk in _chunks(X, funnel, 500):
                model.partial_fit(X_chunk, Y_chunk)
        ctcvr = model.predict_proba(_with_color_dtype(X_test))[1][:, 1]
        assert roc_auc_score(funnel_test["conversion"], ctcvr) > 0.75
    rng = np.random.default_rng(0)
    targets = pd.DataFrame({"a": 3.0 * X["num_a"] + rng.normal(size=len(X)),
                            "b": X["num_b"] + rng.normal(size=len(X))})
    regressor = MMOERegressor(random_state=0)
    with pytest.raises(ValueError, match="classes is for classifiers"):
        regressor.partial_fit(X, targets, classes=[[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="classes is for classifiers"):  # on later calls too
        clone(regressor).partial_fit(X, targets).partial_fit(X, targets, classes=[[0, 1]] * 2)
    for _ in range(3):
        for X_chunk, Y_chunk in _chunks(X, targets, 500):
            regressor.partial_fit(X_chunk, Y_chunk)
    assert regressor._target_mean[0] == pytest.approx(targets["a"][:500].mean())
    assert r2_score(targets, regressor.predict(X)) > 0.6


def test_partial_fit_model_saves_and_loads(tasks, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(random_state=0, hash_buckets=32)
    for X_chunk, Y_chunk in _chunks(X, Y, 500):
        model.partial_fit(X_chunk, Y_chunk)
    model.save(tmp_path / "model.skmtl")
    loaded = skmtl.load(tmp_path / "model.skmtl")
    np.testing.assert_array_equal(model.predict_proba(X)[0], loaded.predict_proba(X)[0])
    loaded.partial_fit(X.iloc[:500], Y.iloc[:500])
    assert loaded.n_iter_ == model.n_iter_ + 1


# -- sparse embedding updates ------------------------------------------------------


def _ids_frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 40, n)
    X = pd.DataFrame({"user": pd.Series(ids).map("u{}".format), "x": rng.standard_normal(n)})
    Y = pd.DataFrame({"a": ((ids % 3 == 0) ^ (X["x"] > 1)).astype(int),
                      "b": (X["x"] > 0).astype(int)})
    # a vocabulary with an id no row has: its embedding is never looked up
    return X, Y, {"user": sorted(X["user"].unique()) + ["never seen"]}


def _embedding_table(model):
    return model.net_.module_.embedding.embedding.weight


def _rows_looked_up(model, X):
    categorical, _ = model._encoder.transform(X)
    offsets = model.net_.module_.embedding.offsets.numpy()
    used = np.zeros(_embedding_table(model).shape[0], bool)
    used[np.unique(categorical + offsets)] = True
    return used


def _train_recording_gradients(model, train):
    """Run ``train()`` with a hook on the embedding table: the layouts of its gradients."""
    sparse = []
    hook = _embedding_table(model).register_hook(lambda grad: sparse.append(grad.is_sparse))
    try:
        train()
    finally:
        hook.remove()
    return sparse


@pytest.mark.parametrize("sparse_embeddings", [True, False])
def test_sparse_embeddings_train_the_rows_a_batch_looks_up(sparse_embeddings):
    X, Y, vocabulary = _ids_frame()
    model = MMOEClassifier(**FAST, categories=vocabulary, warm_start=True,
                           sparse_embeddings=sparse_embeddings).fit(X, Y)
    before = _embedding_table(model).detach().clone()
    layouts = _train_recording_gradients(model, lambda: model.fit(X, Y))
    assert layouts and set(layouts) == {sparse_embeddings}
    after = _embedding_table(model).detach()
    used = _rows_looked_up(model, X)
    assert 0 < (~used).sum() < len(used)
    assert (after[used] != before[used]).any(dim=1).all()
    if sparse_embeddings:
        # a row no batch looks up ("never seen") shrinks towards zero by Adam's weight
        # decay alone, as in dense steps: the sparse ones catch up with the steps it missed
        # (Adam's steps are about learning_rate long: a value near 0 may cross it)
        bound = torch.clamp(before[~used].abs(), min=model.learning_rate)
        assert (after[~used].abs() <= bound).all()
        assert (after[~used].abs() < before[~used].abs()).any()
    # and the rows the sparse steps left behind were caught up at each epoch's end
    assert all("last_update" not in state for state in model.net_.optimizer_.state.values())
    # the fitted module is left with dense gradients, for a plain PyTorch optimizer
    assert not any(getattr(layer, "sparse", False) for layer in model.net_.module_.modules())
    gradient = _embedding_table(model).grad
    assert (gradient is None) if sparse_embeddings else (gradient.layout == torch.strided)
    assert model.score(X, Y) > 0.6


@pytest.mark.parametrize("loss_weighting, threshold, expected", [
    ("equal", None, False),       # a small table: dense updates
    ("equal", 1, True),
    ("uncertainty", 1, True),
    ("pcgrad", 1, False),         # every task's dense gradient of the shared parameters
])
def test_sparse_embeddings_auto(monkeypatch, loss_weighting, threshold, expected):
    import skmtl._base
    if threshold is not None:
        monkeypatch.setattr(skmtl._base, "AUTO_SPARSE_EMBEDDING_VALUES", threshold)
    X, Y, _ = _ids_frame()
    model = MMOEClassifier(**FAST, warm_start=True, loss_weighting=loss_weighting).fit(X, Y)
    layouts = _train_recording_gradients(model, lambda: model.fit(X, Y))
    assert layouts and set(layouts) == {expected}


def test_sparse_embeddings_in_partial_fit_save_and_load(tmp_path):
    X, Y, vocabulary = _ids_frame()
    model = MMOEClassifier(random_state=0, categories=vocabulary, sparse_embeddings=True)
    model.partial_fit(X, Y)
    before = _embedding_table(model).detach().clone()
    assert _train_recording_gradients(model, lambda: model.partial_fit(X, Y))[0] is True
    unused = ~_rows_looked_up(model, X)
    after = _embedding_table(model).detach()
    assert (after[unused].abs() <= before[unused].abs()).all()
    assert not torch.equal(after[unused], before[unused])
    model.save(tmp_path / "model.skmtl")
    loaded = skmtl.load(tmp_path / "model.skmtl")
    assert loaded.get_params()["sparse_embeddings"] is True
    assert _train_recording_gradients(loaded, lambda: loaded.partial_fit(X, Y))[0] is True
    assert loaded.n_iter_ == 3


def test_sparse_embeddings_checks():
    X, Y, _ = _ids_frame()
    for weighting in ("gradnorm", "pcgrad"):
        with pytest.raises(ValueError, match=f"sparse_embeddings=True cannot be used with "
                                             f"loss_weighting='{weighting}'"):
            MMOEClassifier(sparse_embeddings=True, loss_weighting=weighting).fit(X, Y)
    with pytest.raises(InvalidParameterError, match="sparse_embeddings"):
        MMOEClassifier(sparse_embeddings="yes").fit(X, Y)
    # no categorical column: nothing to update sparsely
    model = MMOEClassifier(**FAST, sparse_embeddings=True).fit(X[["x"]], Y)
    assert model.net_.module_.embedding.embedding is None
    assert (np.asarray(model.predict(X[["x"]]))[:, 1] == Y["b"]).mean() > 0.9


@pytest.mark.parametrize("early_stopping", [False, True])
def test_sparse_embeddings_interrupted_mid_epoch(monkeypatch, tmp_path, early_stopping):
    from skmtl._training import BestWeightsEarlyStopping, MultiTaskNet
    from skmtl.exceptions import TrainingInterruptedWarning

    train_step, calls = MultiTaskNet.train_step, {"n": 0}

    def interrupting_step(self, batch, **fit_params):
        calls["n"] += 1
        if calls["n"] > 7:   # in the second epoch of 5 steps
            raise KeyboardInterrupt
        return train_step(self, batch, **fit_params)

    monkeypatch.setattr(MultiTaskNet, "train_step", interrupting_step)
    X, Y, vocabulary = _ids_frame()
    model = MMOEClassifier(**FAST, categories=vocabulary, sparse_embeddings=True,
                           early_stopping=early_stopping, validation_fraction=0.2)
    with pytest.warns(TrainingInterruptedWarning):
        model.fit(X, Y)
    # the steps the rows missed in the cut epoch were taken: the state is dense Adam's, and
    # the saved model loads (load checks the optimizer's state)
    assert all(set(state) == {"step", "exp_avg", "exp_avg_sq"}
               for state in model.net_.optimizer_.state.values())
    if early_stopping:
        # and before the best epoch's weights were restored, not after: they stay as saved
        stopper = next(cb for _, cb in model.net_.callbacks_
                       if isinstance(cb, BestWeightsEarlyStopping))
        assert torch.equal(_embedding_table(model),
                           stopper.best_model_weights_["embedding.embedding.weight"])
    model.save(tmp_path / "model.skmtl")
    np.testing.assert_array_equal(skmtl.load(tmp_path / "model.skmtl").predict_proba(X)[0],
                                  model.predict_proba(X)[0])
