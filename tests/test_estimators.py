"""The public estimators: outputs, scikit-learn integration, persistence, learning."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import skmtl
from skmtl import ESMMClassifier, MMOEClassifier
from skmtl import _base as skmtl_base
from skmtl import _predict as skmtl_predict
from skmtl._encoding import UNKNOWN_CODE, TabularEncoder
from skmtl._encoding._tabular import _RowReader
from skmtl.datasets import fetch_census_income

from conftest import make_tasks

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=4, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")


@pytest.fixture(scope="module")
def mmoe(tasks):
    X, Y, _ = tasks
    return MMOEClassifier(**FAST).fit(X, Y)


@pytest.fixture(scope="module")
def esmm(tasks):
    X, _, funnel = tasks
    return ESMMClassifier(**FAST).fit(X, funnel)


# -- outputs -------------------------------------------------------------------


def test_mmoe_output_shapes_and_types(mmoe, holdout):
    X, Y, _ = holdout
    proba = mmoe.predict_proba(X)
    assert isinstance(proba, list) and len(proba) == 2
    for p in proba:
        assert p.shape == (len(X), 2) and p.dtype == np.float64
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    pred = mmoe.predict(X)
    assert pred.shape == (len(X), 2)
    for t in range(2):
        np.testing.assert_array_equal(pred[:, t], mmoe.classes_[t][proba[t].argmax(1)])
    assert [list(c) for c in mmoe.classes_] == [[0, 1], [0, 1]]
    assert mmoe.task_names_ == ["t1", "t2"]
    assert mmoe.n_features_in_ == 4
    assert list(mmoe.feature_names_in_) == ["color", "num_a", "shop", "num_b"]
    assert list(mmoe.is_categorical_) == [True, False, True, False]
    assert 0.0 <= mmoe.score(X, Y) <= 1.0


def test_mmoe_history_records_losses_per_task(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(early_stopping=True, **FAST).fit(X, Y)
    history = model.history_
    assert len(history) == model.n_iter_ <= 4
    for key in ("train_loss", "train_loss_t1", "train_loss_t2", "valid_loss",
                "valid_loss_t1", "valid_loss_t2", "valid_auc_t1", "valid_auc_t2"):
        assert all(np.isfinite(history[:, key])), key
    np.testing.assert_allclose(
        history[:, "train_loss"],
        np.add(history[:, "train_loss_t1"], history[:, "train_loss_t2"]), rtol=1e-5)
    assert history[-1, "train_loss"] < history[0, "train_loss"]
    without_validation = MMOEClassifier(early_stopping=False, **FAST).fit(X, Y)
    assert "valid_loss" not in without_validation.history_[-1]


def test_single_task_with_1d_y_follows_single_output_conventions(tasks):
    X, Y, _ = tasks
    y = np.where(Y["t1"] == 1, "yes", "no")
    model = MMOEClassifier(**FAST).fit(X, y)
    proba = model.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (len(X), 2)
    assert list(model.classes_) == ["no", "yes"]
    pred = model.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= {"no", "yes"}
    assert model.score(X, y) > 0.6


def test_multiclass_and_string_labels(tasks):
    X, Y, _ = tasks
    grade = np.select([X["num_a"] < -0.5, X["num_a"] < 0.5], ["low", "mid"], "high")
    Y = pd.DataFrame({"grade": grade, "t2": Y["t2"]})
    model = MMOEClassifier(**{**FAST, "max_epochs": 8}).fit(X, Y)
    proba = model.predict_proba(X)
    assert proba[0].shape == (len(X), 3) and proba[1].shape == (len(X), 2)
    assert list(model.classes_[0]) == ["high", "low", "mid"]
    pred = model.predict(X)
    assert pred.dtype == object and set(pred[:, 0]) <= {"high", "low", "mid"}
    assert np.mean(pred[:, 0] == grade) > 0.6


def test_predict_gives_one_numeric_dtype_for_tasks_of_several(tasks):
    # a task with missing labels reads as floats beside one of integers: predict
    # was an object array, which scikit-learn's metrics refuse as "unknown"
    X, Y, _ = tasks
    Y = Y.astype({"t1": np.int32}).astype({"t2": float})
    Y.loc[:9, "t2"] = np.nan
    model = MMOEClassifier(**FAST).fit(X, Y)
    pred = model.predict(X)
    assert pred.dtype == np.float64
    assert 0.5 < accuracy_score(Y.fillna(0).to_numpy(), pred) <= 1.0
    same_kind = MMOEClassifier(**FAST).fit(X, Y.fillna(0).astype({"t2": np.int64}))
    assert same_kind.predict(X).dtype == np.int64
    text = MMOEClassifier(**FAST).fit(X, Y.fillna(0).astype({"t2": int}).astype({"t1": str}))
    assert text.predict(X).dtype == object
    # where one dtype would change a label, each keeps its own (an object array)
    flags = MMOEClassifier(**FAST).fit(X, Y.fillna(0).astype({"t1": bool, "t2": int}))
    assert flags.predict(X).dtype == object and flags.predict(X)[:, 0].dtype == object
    assert {type(v) for v in flags.predict(X)[:, 0]} == {bool}
    big = Y.assign(t1=np.where(Y["t1"] == 1, 2 ** 53 + 1, 0))   # beside t2's floats
    pred = MMOEClassifier(**FAST).fit(X, big).predict(X)
    assert pred.dtype == object and set(pred[:, 0]) <= {0, 2 ** 53 + 1}


class _ThresholdedMMOE(MMOEClassifier):
    """A user's subclass in scikit-learn's pattern: a parameter of its own, some of the parent's."""

    def __init__(self, *, threshold=0.5, max_epochs=2, random_state=0):
        super().__init__(max_epochs=max_epochs, random_state=random_state, batch_size=128)
        self.threshold = threshold


def test_a_subclass_may_add_and_hide_parameters(tasks):
    X, Y, _ = tasks
    model = _ThresholdedMMOE(threshold=0.3)
    assert model.get_params() == {"threshold": 0.3, "max_epochs": 2, "random_state": 0}
    fitted = clone(model).set_params(max_epochs=1).fit(X, Y)
    assert fitted.n_iter_ == 1 and fitted.batch_size == 128 and fitted.threshold == 0.3


def test_esmm_outputs_and_product_identity(esmm, holdout):
    X, _, _ = holdout
    reach = esmm.predict_proba(X)
    conditional = esmm.predict_conditional_proba(X)
    assert len(reach) == len(conditional) == 2
    for p in reach + conditional:
        assert p.shape == (len(X), 2)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(reach[0], conditional[0])
    np.testing.assert_allclose(reach[1][:, 1], conditional[0][:, 1] * conditional[1][:, 1],
                               rtol=1e-6)
    assert np.all(reach[1][:, 1] <= reach[0][:, 1])
    assert esmm.predict(X).shape == (len(X), 2)
    assert [list(c) for c in esmm.classes_] == [[0, 1], [0, 1]]
    assert esmm.task_names_ == ["click", "conversion"]


def test_esmm_chain_of_three_stages(tasks):
    X, _, funnel = tasks
    stages = funnel.assign(purchase=funnel["conversion"] * (X["num_a"] > 0).astype(int))
    model = ESMMClassifier(**FAST).fit(X, stages)
    reach = model.predict_proba(X)
    conditional = model.predict_conditional_proba(X)
    assert len(reach) == 3
    np.testing.assert_allclose(
        reach[2][:, 1], np.prod([c[:, 1] for c in conditional], axis=0), rtol=1e-5)


# -- labels and input checks ---------------------------------------------------------


def test_esmm_rejects_conversion_without_click(tasks):
    X, _, funnel = tasks
    bad = funnel.copy()
    no_click = np.flatnonzero(bad["click"].to_numpy() == 0)[:7]
    bad.loc[no_click, "conversion"] = 1
    with pytest.raises(ValueError, match=r"7 row\(s\) have conversion=1 but click=0"):
        ESMMClassifier(**FAST).fit(X, bad)


@pytest.mark.parametrize("bad_value", [2, -1, 0.5, "yes"])
def test_esmm_rejects_non_binary_labels(tasks, bad_value):
    X, _, funnel = tasks
    bad = funnel.astype(object)
    bad.loc[3, "click"] = bad_value
    # (0.5 makes the numbers continuous, as in a float column)
    # the values other than 0 and 1 only (0, 1 and 2 were listed, as strings)
    message = (r"Labels of task 'click' are continuous" if bad_value == 0.5 else
               r"binary 0/1 labels \(or missing ones\); stage .click. holds strings" if
               bad_value == "yes" else
               rf"binary 0/1 labels \(or missing ones\); stage .click. has other values "
               rf"\(e.g. \[{bad_value}\]\)")
    with pytest.raises(ValueError, match=message):
        ESMMClassifier(**FAST).fit(X, bad)


def test_esmm_needs_two_stages(tasks):
    X, _, funnel = tasks
    with pytest.raises(ValueError, match="at least 2"):
        ESMMClassifier(**FAST).fit(X, funnel["click"])
    with pytest.raises(ValueError, match="at least 2"):
        ESMMClassifier(**FAST).fit(X, funnel[["click"]])


def test_esmm_accepts_boolean_labels(tasks):
    X, _, funnel = tasks
    model = ESMMClassifier(**{**FAST, "max_epochs": 1}).fit(X, funnel.astype(bool))
    assert [list(c) for c in model.classes_] == [[0, 1], [0, 1]]


def test_infinite_numeric_values_name_the_column(tasks):
    X, Y, _ = tasks
    bad = X.copy()
    bad.loc[5, "num_b"] = np.inf
    with pytest.raises(ValueError, match=r"Numeric columns \['num_b'\] contain infinite"):
        MMOEClassifier(**FAST).fit(bad, Y)


def test_infinity_at_predict_time(mmoe, holdout):
    X = holdout[0].copy()
    X.loc[0, "num_a"] = -np.inf
    with pytest.raises(ValueError, match=r"\['num_a'\] contain infinite"):
        mmoe.predict_proba(X)


def _informative_missing_values(n_samples, seed=0):
    """Task ``a`` is 1 where ``x`` > 0 or is missing (30 % of rows); ``b`` follows ``z``."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n_samples), rng.normal(size=n_samples)
    missing = rng.random(n_samples) < 0.3
    X = pd.DataFrame({"x": np.where(missing, np.nan, x), "z": z,
                      "c": rng.choice(["u", "v"], n_samples)})
    Y = pd.DataFrame({"a": ((x > 0) | missing).astype(int), "b": (z > 0).astype(int)})
    return X, Y, missing


def test_missing_numbers_are_learned(tmp_path):
    # NaN in a numeric column was an error; gradient boosting learns where it goes
    X, Y, missing = _informative_missing_values(4000)
    train, test = slice(0, 3000), slice(3000, None)
    model = MMOEClassifier(max_epochs=10, random_state=0).fit(X[train], Y[train])
    encoding = model._encoder.numeric_
    assert encoding.learned_missing_ == [True, False]
    offsets = model.net_.module_.embedding.numeric_embedding.missing_offsets
    assert offsets.shape == (2, 8) and offsets[0].abs().sum() > 0 and not offsets[1].any()
    proba = model.predict_proba(X[test])[0][:, 1]
    assert roc_auc_score(Y["a"][test], proba) > 0.99
    assert proba[missing[test]].min() > 0.9  # not the median's (x = 0: the boundary)
    # a column without missing values in fit reads NaN as its median
    rows = X[test].head(20)
    at_median = rows.assign(z=np.median(X["z"][train]))
    np.testing.assert_allclose(model.predict_proba(rows.assign(z=np.nan))[1],
                               model.predict_proba(at_median)[1], atol=0.02)
    # None, pd.NA and nullable floats are missing values too
    nullable = rows.assign(x=pd.array(rows["x"], dtype="Float64"))
    np.testing.assert_allclose(model.predict_proba(nullable)[0], model.predict_proba(rows)[0])
    model.save(tmp_path / "m.skmtl")
    np.testing.assert_array_equal(skmtl.load(tmp_path / "m.skmtl").predict_proba(rows)[0],
                                  model.predict_proba(rows)[0])


@pytest.mark.parametrize("encoding", ["standard", "quantile", "periodic"])
def test_missing_numbers_count_as_the_median_in_other_encodings(encoding):
    X, Y, _ = _informative_missing_values(1500)
    model = MMOEClassifier(numeric_encoding=encoding, max_epochs=2, random_state=0).fit(X, Y)
    rows = X.head(50)
    known = X["x"].dropna()
    # the weighted median: the lower middle value of an even count (as np.quantile's
    # "inverted_cdf"), not the mean of both
    fill = known.mean() if encoding == "standard" else np.quantile(known, 0.5,
                                                                   method="inverted_cdf")
    np.testing.assert_allclose(model.predict_proba(rows.assign(x=np.nan))[0],
                               model.predict_proba(rows.assign(x=fill))[0], atol=1e-6)


def test_missing_numbers_refused_where_they_cannot_be_encoded(tasks, tmp_path):
    X, Y, _ = tasks
    bad = X.assign(num_a=X["num_a"].where(X.index != 5))
    with pytest.raises(ValueError, match=r"\['num_a'\] contain NaN, which numeric_encoding="
                                         "'passthrough' does not encode"):
        MMOEClassifier(**{**FAST, "numeric_encoding": "passthrough"}).fit(bad, Y)
    model = MMOEClassifier(**{**FAST, "numeric_encoding": "piecewise_linear"}).fit(X, Y)
    # a model saved before missing values were learned has no level for them
    state = model._encoder.to_dict()
    del state["numeric"]["missing_levels"], state["numeric"]["learned_missing"]
    model._encoder = type(model._encoder).from_dict(state)
    with pytest.raises(ValueError, match="saved before missing values were learned"):
        model.predict_proba(bad)
    # and one pickled then (joblib): neither its encoding nor its embedding has the
    # attributes (predict raised AttributeError, and so did save)
    older = MMOEClassifier(**{**FAST, "numeric_encoding": "piecewise_linear"}).fit(X, Y)
    del older._encoder.numeric_.missing_levels_, older._encoder.numeric_.learned_missing_
    del older.net_.module_.embedding.numeric_embedding.missing_offsets
    pickled = pickle.loads(pickle.dumps(older))
    np.testing.assert_array_equal(pickled.predict_proba(X)[0], model.predict_proba(X)[0])
    with pytest.raises(ValueError, match="saved before missing values were learned"):
        pickled.predict_proba(bad)
    pickled.save(tmp_path / "older.skmtl")
    with pytest.raises(ValueError, match="saved before missing values were learned"):
        skmtl.load(tmp_path / "older.skmtl").predict_proba(bad)


@pytest.mark.parametrize("encoding", ["piecewise_linear", "standard"])
def test_missing_numbers_do_not_rescan_the_rows(encoding, monkeypatch):
    # the check naming non-finite columns reads every row: once per block and column
    # with NaN, predict on many blocks went quadratic
    X, Y, _ = _informative_missing_values(600)
    model = MMOEClassifier(numeric_encoding=encoding, max_epochs=1, random_state=0).fit(X, Y)
    monkeypatch.setattr(_RowReader, "block_size", 50)
    monkeypatch.setattr(skmtl_predict, "PREDICT_BLOCK_SIZE", 50)
    scans = []
    original = _RowReader.check_numeric_finite
    monkeypatch.setattr(_RowReader, "check_numeric_finite",
                        lambda self, *a, **k: scans.append(1) or original(self, *a, **k))
    assert np.isfinite(model.predict_proba(X)[0]).all() and not scans


@pytest.mark.parametrize("encoding, key, value", [
    ("quantile", "missing_levels", 1e300), ("piecewise_linear", "missing_levels", -1.0),
    ("standard", "missing_levels", 0.5), ("standard", "scale", 0.0),
    ("standard", "mean", float("nan")), ("piecewise_linear", "learned_missing", 1)])
def test_crafted_missing_value_encodings_are_refused(tasks, encoding, key, value):
    # a level outside the encoding's range loaded, and predicted NaN for missing values
    X, Y, _ = tasks
    model = MMOEClassifier(**{**FAST, "numeric_encoding": encoding}).fit(
        X.assign(num_a=X["num_a"].where(X.index % 5 != 0)), Y)
    state = model._encoder.to_dict()
    state["numeric"][key][0] = value
    with pytest.raises(ValueError, match="inconsistent encoder state: invalid missing-value "
                                         "encoding or scaling"):
        TabularEncoder.from_dict(state)


def test_a_numeric_column_without_known_values(tasks):
    X, Y, _ = tasks
    empty = X.assign(num_b=np.nan)
    for encoding in ("piecewise_linear", "standard", "quantile"):
        with pytest.warns(UserWarning, match=r"Numeric columns \['num_b'\] have no known value"):
            model = MMOEClassifier(**{**FAST, "numeric_encoding": encoding}).fit(empty, Y)
        # its weights never trained: values at predict must not reach them
        # (standard fed them raw: a value of 5000 moved probabilities by 0.9)
        # (piecewise-linear embedded them without the offset NaN rows had learned)
        rows = empty.head(50)
        for value in (5000.0, 0.0):
            np.testing.assert_array_equal(model.predict_proba(rows.assign(num_b=value))[0],
                                          model.predict_proba(rows)[0])
        # infinity stays an error (standard read it as missing: inf / inf)
        with pytest.raises(ValueError, match=r"Numeric columns \['num_b'\] contain infinite"):
            model.predict_proba(rows.assign(num_b=np.where(rows.index % 2, np.inf, np.nan)))
    # known values only in rows of weight 0 (the validation rows, say) teach nothing either
    weight = np.r_[np.ones(1000), np.zeros(1000)]
    hidden = X.assign(num_b=np.r_[np.full(1000, np.nan), X["num_b"][1000:]])
    for encoding in ("piecewise_linear", "quantile"):
        with pytest.warns(UserWarning, match=r"\['num_b'\] have no known value"):
            model = MMOEClassifier(**{**FAST, "numeric_encoding": encoding}).fit(
                hidden, Y, sample_weight=weight)
        np.testing.assert_array_equal(model._encoder.numeric_.knots_[1], [0.0])


def test_numbers_of_an_object_array_with_pandas_missing_values():
    # DataFrame.to_numpy() of nullable columns holds pd.NA: "values that are not numbers"
    frame = pd.DataFrame({"a": pd.array([1.0, None, 2.0, 0.5] * 100, dtype="Float64"),
                          "b": pd.array([1, 2, None, 4] * 100, dtype="Int64")})
    as_floats = frame.astype("float64").to_numpy()
    y = np.arange(400) % 2
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(as_floats, y)
    np.testing.assert_array_equal(model.predict_proba(frame.to_numpy()),
                                  model.predict_proba(as_floats))
    assert frame.to_numpy().dtype == object


def test_numbers_in_an_object_array_are_numeric_columns():
    # np.asarray of a table of numbers and categories (Bagging, Stacking with
    # passthrough, ClassifierChain do it): every column was categorical, every float
    # a category of its own, and held-out rows unknown: AUC 0.49 inside Bagging
    from sklearn.ensemble import BaggingClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=1200), "c": rng.choice(["a", "b"], 1200),
                      "k": pd.array(rng.integers(0, 5, 1200), dtype="Int64"),
                      "flag": rng.random(1200) < 0.5})
    X.loc[3, "x"], X.loc[4, "k"] = np.nan, pd.NA
    y = (X["x"].fillna(0) > 0).astype(int).to_numpy()
    as_objects = X.to_numpy()
    assert as_objects.dtype == object
    model = MMOEClassifier(max_epochs=3, random_state=0).fit(as_objects[:900], y[:900])
    np.testing.assert_array_equal(model._encoder.is_categorical_, [False, True, False, False])
    assert roc_auc_score(y[900:], model.predict_proba(as_objects[900:])[:, 1]) > 0.8
    bagged = BaggingClassifier(MMOEClassifier(max_epochs=3, random_state=0), n_estimators=2,
                               random_state=0).fit(X[["x", "c"]][:900], y[:900])
    assert roc_auc_score(y[900:], bagged.predict_proba(X[["x", "c"]][900:])[:, 1]) > 0.8
    # strings, and arrays of one kind, keep the rule of their dtype
    assert MMOEClassifier(max_epochs=1).fit(X[["c"]].to_numpy(str), y)._encoder.is_categorical_[0]
    # a column of missing values only is numeric (and ignored), as a DataFrame's float column;
    # it was categorical, and hashed every number of later partial_fit chunks
    blank = as_objects.copy()
    blank[:, 0] = None
    with pytest.warns(UserWarning, match=r"Numeric columns \[0\] have no known value"):
        hashed = MMOEClassifier(max_epochs=1, hash_buckets=8).fit(blank, y)
    assert not hashed._encoder.is_categorical_[0]
    # numpy casts dates and bytes to numbers: datetime64("2020-01-01") was 18262 (days)
    for value in (np.datetime64("2020-01-01"), b"12"):
        bad = as_objects[900:].copy()
        bad[5, 0] = value
        with pytest.raises(ValueError, match=r"Numeric columns \[0\] hold values that are not"):
            model.predict(bad)


def test_rows_of_a_list_mixing_numbers_and_strings_keep_numeric_columns():
    # np.asarray printed every value as a string: the numeric column became a vocabulary
    # of its printed values, and every new number was unknown at predict (accuracy 0.48)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=1200), "b": rng.choice(["x", "y", "z"], 1200)})
    y = (X["a"] > 0).astype(int).to_numpy()
    rows = X.to_numpy().tolist()
    model = MMOEClassifier(max_epochs=3, random_state=0).fit(rows[:900], y[:900])
    np.testing.assert_array_equal(model._encoder.is_categorical_, [False, True])
    assert roc_auc_score(y[900:], model.predict_proba(rows[900:])[:, 1]) > 0.9
    np.testing.assert_array_equal(model.predict_proba(rows[900:]),
                                  model.predict_proba(X.iloc[900:].to_numpy()))
    # a list of strings alone stays categorical, as a string array is
    strings = [[value] for value in X["b"]]
    assert MMOEClassifier(max_epochs=1).fit(strings, y)._encoder.is_categorical_[0]


def test_unseen_and_missing_categories_at_predict_time(mmoe, holdout):
    X = holdout[0].copy()
    reference = mmoe.predict_proba(X)
    X["color"] = X["color"].astype(object)
    X.loc[:9, "color"] = "ultraviolet"
    X.loc[10:19, "color"] = None
    X["shop"] = X["shop"].cat.add_categories([999])
    X.loc[20:29, "shop"] = 999
    proba = mmoe.predict_proba(X)
    for p in proba:
        assert np.all(np.isfinite(p))
    np.testing.assert_allclose(proba[0][30:], reference[0][30:], rtol=1e-6)
    # an unknown category is embedded like a missing value
    np.testing.assert_allclose(proba[0][:10], mmoe.predict_proba(X.assign(
        color=[None] * 10 + list(X["color"][10:])))[0][:10], rtol=1e-6)


@pytest.mark.parametrize("name", ["mmoe", "esmm"])
def test_predictions_do_not_depend_on_block_and_batch_sizes(name, request, holdout,
                                                            monkeypatch):
    model = request.getfixturevalue(name)
    X = holdout[0].iloc[:53]
    reference = model.predict_proba(X)
    monkeypatch.setattr(skmtl_predict, "PREDICT_BLOCK_SIZE", 10)   # 6 blocks, the last short
    monkeypatch.setattr(skmtl_base, "PREDICT_BATCH_SIZE", 4)    # 3 batches a block
    for small, whole in zip(model.predict_proba(X), reference):
        np.testing.assert_allclose(small, whole, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(small.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("numeric_encoding", ["periodic", "piecewise_linear"])
def test_wide_tables_predict_in_smaller_batches(numeric_encoding, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 400))
    y = (X[:, 0] > 0).astype(int)
    model = MMOEClassifier(numeric_encoding=numeric_encoding, max_epochs=1,
                           random_state=0).fit(X, y)
    # 400 columns of 8-wide embeddings (periodic: and 16 frequencies): not 4096 rows
    assert 64 <= model._predict_batch_size() < 1000
    narrow = MMOEClassifier(numeric_encoding=numeric_encoding, max_epochs=1,
                            random_state=0).fit(X[:, :10], y)
    assert narrow._predict_batch_size() == skmtl_base.PREDICT_BATCH_SIZE
    proba = model.predict_proba(X)
    monkeypatch.setattr(skmtl_base, "PREDICT_BATCH_FLOATS", 2 ** 40)  # one batch
    np.testing.assert_allclose(model.predict_proba(X), proba, rtol=1e-6)


@pytest.mark.parametrize("dtype_categories", [["a", "b", "c"],        # as fitted
                                              ["a", "b"],             # a prefix
                                              ["c", "a", "b"],        # reordered
                                              ["a", "b", "c", "d"]])  # one unseen
def test_encoder_codes_of_category_columns(dtype_categories):
    fitted = pd.DataFrame({"x": pd.Categorical(["a", "b", "c", "a"])})
    encoder = TabularEncoder().fit(fitted)
    values = [v for v in ["c", "a", "b", "d"] if v in dtype_categories] + [None]
    X = pd.DataFrame({"x": pd.Categorical(values, categories=dtype_categories)})
    expected = [{"a": 1, "b": 2, "c": 3}.get(v, UNKNOWN_CODE) for v in values]
    np.testing.assert_array_equal(encoder.transform(X)[0][:, 0], expected)


def test_encoder_positions_of_a_dtype_follow_the_dtype_and_the_fit():
    # the positions of a dtype's categories are kept from call to call
    encoder = TabularEncoder().fit(pd.DataFrame({"x": pd.Categorical(["a", "b", "c", "a"])}))
    dtypes = [pd.CategoricalDtype(c) for c in (["a", "b", "c"], ["c", "a", "b"], ["c", "a", "b"],
                                               ["a", "b", "c", "d"])]
    for dtype in dtypes + dtypes[:1]:
        X = pd.DataFrame({"x": pd.Series(["c", "a", "b", None], dtype=dtype)})
        np.testing.assert_array_equal(encoder.transform(X)[0][:, 0], [3, 1, 2, UNKNOWN_CODE])
    # the same dtype object after a new fit (on strings): looked up among the new categories
    encoder.fit(pd.DataFrame({"x": ["c", "z"]}))
    X = pd.DataFrame({"x": pd.Series(["c", "a"], dtype=dtypes[0])})
    np.testing.assert_array_equal(encoder.transform(X)[0][:, 0], [1, UNKNOWN_CODE])
    restored = pickle.loads(pickle.dumps(encoder))
    assert "_lookups" in encoder.__dict__ and "_lookups" not in restored.__dict__
    np.testing.assert_array_equal(restored.transform(X)[0][:, 0], [1, UNKNOWN_CODE])


def test_encoder_names_every_non_finite_column_whatever_the_block(monkeypatch):
    monkeypatch.setattr(_RowReader, "block_size", 4)
    clean = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0), "c": np.arange(10.0)})
    encoder = TabularEncoder().fit(clean)
    X = clean.copy()
    X.loc[1, "a"] = -np.inf    # first block
    X.loc[8, "c"] = np.inf     # third block
    with pytest.raises(ValueError, match=r"Numeric columns \['a', 'c'\] contain infinite"):
        encoder.transform(X)


def test_encoder_category_lookups_are_a_cache(tasks):
    X = tasks[0].iloc[:200]
    encoder = TabularEncoder().fit(X)
    codes, _ = encoder.transform(X)
    # not carried in pickles, rebuilt on first use
    restored = pickle.loads(pickle.dumps(encoder))
    assert "_lookups" in encoder.__dict__ and "_lookups" not in restored.__dict__
    np.testing.assert_array_equal(restored.transform(X)[0], codes)
    # a new fit forgets the old categories
    other = X.assign(color=X["color"].map({"red": "cyan", "green": "cyan", "blue": "teal",
                                           "black": "teal"}))
    refit_codes, _ = encoder.fit(other).transform(other)
    color = list(X.columns[encoder.categorical_indices_]).index("color")
    assert set(refit_codes[:, color]) == {1, 2}   # cyan, teal: no unknown code 0


def test_categorical_features_specifications(tasks):
    X, Y, _ = tasks
    X = X.assign(shop=X["shop"].astype(int))
    by_name = MMOEClassifier(categorical_features=["color", "shop"], **FAST).fit(X, Y)
    by_index = MMOEClassifier(categorical_features=[0, 2], **FAST).fit(X, Y)
    by_mask = MMOEClassifier(categorical_features=[True, False, True, False], **FAST).fit(X, Y)
    for model in (by_name, by_index, by_mask):
        assert list(model.is_categorical_) == [True, False, True, False]
    np.testing.assert_allclose(by_name.predict_proba(X)[1], by_index.predict_proba(X)[1])
    from_dtype = MMOEClassifier(**FAST).fit(X, Y)
    assert list(from_dtype.is_categorical_) == [True, False, False, False]
    with pytest.raises(ValueError, match=r"\['nope'\] are not columns"):
        MMOEClassifier(categorical_features=["nope"], **FAST).fit(X, Y)
    with pytest.raises(ValueError, match="out of range"):
        MMOEClassifier(categorical_features=[7], **FAST).fit(X, Y)
    with pytest.raises(ValueError, match="hold values that are not numbers"):
        MMOEClassifier(categorical_features=None, **FAST).fit(X, Y)


def test_numeric_array_input(tasks):
    X, Y, _ = tasks
    array = X[["num_a", "num_b"]].to_numpy()
    model = MMOEClassifier(**FAST).fit(array, Y.to_numpy())
    assert model.task_names_ == ["task_0", "task_1"]
    assert not hasattr(model, "feature_names_in_")
    assert model.predict(array).shape == (len(X), 2)
    with pytest.raises(ValueError, match="X has 3 features, but MMOEClassifier is expecting 2"):
        model.predict(np.c_[array, array[:, :1]])


def test_columns_must_match_fit(mmoe, holdout):
    X = holdout[0]
    with pytest.raises(ValueError, match=r"Missing: \['num_b'\]"):
        mmoe.predict(X.drop(columns="num_b").assign(other=1.0))
    with pytest.raises(ValueError, match="same order"):
        mmoe.predict(X[X.columns[::-1]])


def test_standard_and_passthrough_numeric_encodings(tasks):
    X, Y, _ = tasks
    on = MMOEClassifier(**{**FAST, "numeric_encoding": "standard"}).fit(X, Y)
    off = MMOEClassifier(**{**FAST, "numeric_encoding": "passthrough"}).fit(X, Y)
    np.testing.assert_allclose(on._encoder.numeric_.mean_, X[["num_a", "num_b"]].mean(),
                               rtol=1e-5)
    _, numeric = off._encoder.transform(X)
    np.testing.assert_allclose(numeric, X[["num_a", "num_b"]].to_numpy(np.float32))
    _, numeric = on._encoder.transform(X)
    np.testing.assert_allclose(numeric.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(numeric.std(0), 1.0, rtol=1e-4)



def _smooth_and_heavy(n=600, seed=0):
    """A frame of two smooth columns and a label; and an amount that is 0 on 90 % of rows."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"normal": rng.normal(size=n), "uniform": rng.uniform(size=n)})
    amount = np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(8.0, 1.0, n))
    y = (X["normal"] + X["uniform"] + (amount > 0) + rng.normal(0, 0.5, n) > 1.0).astype(int)
    return X, amount, y


def test_auto_numeric_encoding_bins_only_columns_that_need_them(tmp_path):
    X, amount, y = _smooth_and_heavy()
    fast = dict(max_epochs=2, random_state=0)
    smooth = MMOEClassifier(**fast).fit(X, y)
    assert smooth.numeric_encoding == "auto" and smooth.numeric_encoding_ == "standard"
    standard = MMOEClassifier(numeric_encoding="standard", **fast).fit(X, y)
    np.testing.assert_array_equal(smooth.predict_proba(X), standard.predict_proba(X))
    # one heavy column bins the table, with the very bins "piecewise_linear" fits
    heavy_X = X.assign(amount=amount)
    heavy = MMOEClassifier(**fast).fit(heavy_X, y)
    assert heavy.numeric_encoding_ == "piecewise_linear"
    binned = MMOEClassifier(numeric_encoding="piecewise_linear", **fast).fit(heavy_X, y)
    np.testing.assert_array_equal(heavy.predict_proba(heavy_X), binned.predict_proba(heavy_X))
    del heavy.numeric_encoding_  # pickled before the attribute existed
    assert pickle.loads(pickle.dumps(heavy)).numeric_encoding_ == "piecewise_linear"
    # a skewed column without a mass point, and missing values, choose the bins too
    skewed = MMOEClassifier(**fast).fit(X.assign(normal=np.exp(2 * X["normal"])), y)
    assert skewed.numeric_encoding_ == "piecewise_linear"
    gappy = X.copy()
    gappy.loc[::50, "uniform"] = np.nan
    learned = MMOEClassifier(**fast).fit(gappy, y)
    assert learned.numeric_encoding_ == "piecewise_linear"
    assert learned._encoder.numeric_.learned_missing_ == [False, True]
    # a 0/1 column is neither; nor is a mass point in rows of weight 0
    flag = MMOEClassifier(**fast).fit(X.assign(flag=(amount > 0).astype(float)), y)
    assert flag.numeric_encoding_ == "standard"
    weight = np.where(amount > 0, 1.0, 0.0)
    weight[:200] = 1.0  # 0 on about 60 % of the rows
    zeros_unweighted = X.assign(amount=np.where(weight > 0, X["normal"], 0.0))
    assert MMOEClassifier(**fast).fit(zeros_unweighted, y).numeric_encoding_ == \
        "piecewise_linear"
    assert MMOEClassifier(**fast).fit(zeros_unweighted, y, sample_weight=weight) \
        .numeric_encoding_ == "standard"
    # the choice is the fitted model's: saved, loaded, continued
    smooth.save(tmp_path / "smooth.skmtl")
    loaded = skmtl.load(tmp_path / "smooth.skmtl")
    assert loaded.numeric_encoding_ == "standard" and loaded.numeric_encoding == "auto"
    np.testing.assert_array_equal(loaded.predict_proba(X), smooth.predict_proba(X))
    skewed_X = X.assign(normal=np.exp(2 * X["normal"]))  # would choose bins anew
    smooth.set_params(warm_start=True).fit(skewed_X, y)
    assert smooth.numeric_encoding_ == "standard" and smooth.n_iter_ == 4
    # a table without numeric columns; a column without a known value has nothing to learn
    codes = pd.DataFrame({"c": pd.Categorical(np.arange(600) % 3)})
    assert MMOEClassifier(**fast).fit(codes, y).numeric_encoding_ == "standard"
    with pytest.warns(UserWarning, match="no known value"):
        empty = MMOEClassifier(**fast).fit(X.assign(empty=np.nan), y)
    assert empty.numeric_encoding_ == "standard"
    # a value beyond float32 that "standard" cannot hold, in a row the choice does not
    # sample (weight 0 here): bins, not an error naming an encoding never asked for
    huge = X.assign(uniform=np.where(np.arange(600) == 7, 1e39, X["uniform"]))
    zero = np.where(np.arange(600) == 7, 0.0, 1.0)
    assert MMOEClassifier(**fast).fit(huge, y, sample_weight=zero).numeric_encoding_ == \
        "piecewise_linear"


def test_parameters_are_validated_at_fit_not_init(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(learning_rate=-1.0)
    assert model.learning_rate == -1.0
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        model.fit(X, Y)
    with pytest.raises(InvalidParameterError, match="n_experts"):
        MMOEClassifier(n_experts=0).fit(X, Y)
    with pytest.raises(ValueError, match="expert_units"):
        MMOEClassifier(expert_units=(8, 0)).fit(X, Y)


@pytest.mark.parametrize("estimator, params", [
    (skmtl.PLEClassifier, {"n_levels": 10**12}),  # filled the memory in a loop over levels
    (skmtl.PLEClassifier, {"n_shared_experts": 10**6}),
    (skmtl.PLERegressor, {"n_task_experts": 2**70}),
    (MMOEClassifier, {"n_experts": 10**12}),
    (MMOEClassifier, {"embedding_dim": 10**12}),
    (skmtl.AITMClassifier, {"transfer_units": 2**70}),
])
def test_network_sizes_beyond_any_use_name_the_parameter(tasks, estimator, params):
    # a torch allocation error or an overflow in torch.empty, naming nothing, before
    X, Y, funnel = tasks
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        estimator(max_epochs=1, **params).fit(X, funnel if name == "transfer_units" else Y)


@pytest.mark.parametrize("name", ["expert_units", "tower_units"])
def test_layer_widths_beyond_any_use_name_the_parameter(tasks, name):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match=f"{name} must be a sequence of integers from 1 to "
                                         f"{skmtl_base.MAX_UNITS}"):
        MMOEClassifier(max_epochs=1, **{name: (8, 10**12)}).fit(X, Y)


def test_predict_before_fit_raises_not_fitted(holdout):
    with pytest.raises(NotFittedError):
        MMOEClassifier().predict(holdout[0])
    with pytest.raises(NotFittedError):
        ESMMClassifier().predict_conditional_proba(holdout[0])


# -- training behaviour --------------------------------------------------------------


def test_same_random_state_same_predictions(tasks, holdout):
    X, Y, _ = tasks
    first = MMOEClassifier(**FAST).fit(X, Y).predict_proba(holdout[0])
    second = MMOEClassifier(**FAST).fit(X, Y).predict_proba(holdout[0])
    other = MMOEClassifier(**{**FAST, "random_state": 1}).fit(X, Y).predict_proba(holdout[0])
    for a, b, c in zip(first, second, other):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_fit_does_not_disturb_the_global_torch_rng(tasks):
    X, Y, _ = tasks
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MMOEClassifier(**{**FAST, "max_epochs": 1}).fit(X, Y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_fits_in_threads_are_reproducible_and_leave_the_global_rng_alone(tasks):
    # torch's random state is one per process: threaded fits (joblib's
    # "threading" backend) must not draw from each other's seeded stream
    X, Y, _ = tasks
    params = {**FAST, "max_epochs": 1, "dropout": 0.3}
    expected = MMOEClassifier(**params).fit(X, Y).predict_proba(X)[0]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with ThreadPoolExecutor(2) as pool:
        probas = list(pool.map(lambda _: MMOEClassifier(**params).fit(X, Y).predict_proba(X)[0],
                               range(4)))
    for proba in probas:
        np.testing.assert_array_equal(proba, expected)
    assert torch.equal(torch.get_rng_state(), state)


def test_early_stopping_restores_best_weights(tasks, validation_sets):
    X, Y, _ = tasks
    # A large learning rate makes the validation loss bounce, so the last epoch
    # is rarely the best one.
    model = MMOEClassifier(early_stopping=True, n_iter_no_change=3, max_epochs=30,
                           learning_rate=0.05, batch_size=64, random_state=0).fit(X, Y)
    valid_losses = model.history_[:, "valid_loss"]
    assert len(valid_losses) < 30
    best = int(np.argmin(valid_losses))
    assert best < len(valid_losses) - 1
    (valid,) = validation_sets
    module = model.net_.module_.eval()
    with torch.no_grad():
        features, (target, _) = valid.batch(slice(None))
        loss = model.net_.criterion_(module(**features), target).sum().item()
    assert loss == pytest.approx(valid_losses[best], rel=1e-4)


@pytest.fixture
def splits(monkeypatch):
    """The ``(train_rows, valid_rows)`` of each fit in the test, in order."""
    recorded = []
    split_rows = skmtl_base.MultiTaskEstimatorBase._split_rows
    def recording(self, *args):
        recorded.append(split_rows(self, *args))
        return recorded[-1]

    monkeypatch.setattr(skmtl_base.MultiTaskEstimatorBase, "_split_rows", recording)
    return recorded


@pytest.mark.parametrize("random_state", [None, np.random.RandomState(0)])
def test_warm_fits_hold_out_the_first_fits_validation_rows(tasks, splits, tmp_path, random_state):
    # without an int random_state each fit drew a new split: a warm fit stopped on rows
    # the network had trained on
    import skmtl

    X, Y, _ = tasks
    model = MMOEClassifier(max_epochs=1, early_stopping=True, warm_start=True,
                           random_state=random_state).fit(X, Y)
    model.fit(X, Y)
    pickle.loads(pickle.dumps(model)).fit(X, Y)
    if random_state is None:
        model.save(tmp_path / "model.skmtl")
        skmtl.load(tmp_path / "model.skmtl").fit(X, Y)
    first_valid = splits[0][1]
    for _, valid in splits[1:]:
        np.testing.assert_array_equal(valid, first_valid)
    model.set_params(warm_start=False).fit(X, Y)  # a new fit draws a new split
    assert not np.array_equal(splits[-1][1], first_valid)


def test_warm_fits_hold_out_the_first_fits_rows_whatever_the_new_int_seed(tasks, splits,
                                                                          monkeypatch):
    # with an int random_state the split followed the current one: after
    # set_params(random_state=1) 40 of 50 validation rows had been trained on
    seeds = []
    torch_seed = skmtl_base._torch_seed
    monkeypatch.setattr(skmtl_base, "_torch_seed",
                        lambda seed, device: seeds.append(seed) or torch_seed(seed, device))
    X, Y, _ = tasks
    model = MMOEClassifier(max_epochs=1, early_stopping=True, warm_start=True,
                           random_state=0).fit(X, Y)
    reference = MMOEClassifier(max_epochs=1, early_stopping=True, warm_start=True,
                               random_state=0).fit(X, Y)
    model.set_params(random_state=1).fit(X, Y)
    np.testing.assert_array_equal(splits[2][1], splits[0][1])
    # an unchanged int draws the same split from its own stream
    reference.fit(X, Y)
    np.testing.assert_array_equal(splits[3][1], splits[0][1])
    assert model._split_seed == reference._split_seed == 0
    # the new int's later draws (the fit's torch seed) are those it always gives
    MMOEClassifier(max_epochs=1, early_stopping=True, warm_start=True,
                   random_state=1).fit(X, Y).fit(X, Y)
    assert seeds[2] == seeds[5] and seeds[2] != seeds[0]


def test_warm_fits_after_partial_fit_hold_out_the_same_rows(tasks, splits):
    X, Y, _ = tasks
    model = MMOEClassifier(max_epochs=1, early_stopping=True, warm_start=True,
                           categories={"color": ["black", "blue", "green", "red"]})
    model.partial_fit(X, Y)  # draws no split
    model.fit(X, Y)
    model.fit(X, Y)
    np.testing.assert_array_equal(splits[0][1], splits[1][1])


def test_a_failed_new_fit_leaves_the_kept_split_seed(tasks, splits):
    from skmtl.exceptions import DivergenceError

    X, Y, _ = tasks
    model = MMOEClassifier(max_epochs=1, early_stopping=True).fit(X, Y)
    with pytest.raises(DivergenceError):
        model.set_params(learning_rate=1e30).fit(X, Y)   # a new split, then no model
    model.set_params(learning_rate=6e-3, warm_start=True).fit(X, Y)
    np.testing.assert_array_equal(splits[-1][1], splits[0][1])
    assert not np.array_equal(splits[1][1], splits[0][1])


def test_early_stopping_auto_depends_on_sample_count(tasks):
    X, Y, _ = tasks
    auto = MMOEClassifier(early_stopping="auto")
    assert auto._early_stopping_enabled(len(X)) is False
    assert auto._early_stopping_enabled(20_000) is True
    # off by default, on any number of rows: every row trains
    assert MMOEClassifier()._early_stopping_enabled(20_000) is False
    with pytest.raises(ValueError, match="validation_fraction"):
        MMOEClassifier(early_stopping=True, validation_fraction=len(X)).fit(X, Y)


def test_every_row_trains_by_default_on_many_rows():
    defaults = {name: getattr(skmtl, name)().early_stopping for name in skmtl.__all__
                if hasattr(getattr(skmtl, name), "get_params")}
    # AITM keeps "auto": its later stages need the best epoch restored
    assert defaults.pop("AITMClassifier") == "auto"
    assert len(defaults) == 9 and set(defaults.values()) == {False}
    X, Y, _ = make_tasks(10_500, seed=3)
    default = MMOEClassifier(max_epochs=1, batch_size=512, random_state=0).fit(X, Y)
    auto = MMOEClassifier(max_epochs=1, batch_size=512, early_stopping="auto",
                          random_state=0).fit(X, Y)
    assert "valid_loss" not in default.history_[-1] and "valid_loss" in auto.history_[-1]
    # the default trains on all 10,500 rows, "auto" on the 9,450 it does not hold out
    assert default.history_[-1, "train_batch_count"] == 21   # ceil(10,500 / 512)
    assert auto.history_[-1, "train_batch_count"] == 19      # ceil(9,450 / 512)


def test_classifiers_default_to_batch_normalisation_and_regressors_do_not():
    from sklearn.base import clone

    from skmtl._base import CLASSIFIER_DEFAULTS, with_defaults

    estimators = {name: getattr(skmtl, name)() for name in skmtl.__all__
                  if hasattr(getattr(skmtl, name), "get_params")}
    normalised = {name for name, e in estimators.items() if e.batch_norm}
    assert normalised == {"MMOEClassifier", "OMOEClassifier", "PLEClassifier",
                          "SharedBottomClassifier"}
    for name, estimator in estimators.items():
        expected = ((True, 1e-4, 4) if name in normalised
                    else (False, 1e-5, estimator.max_epochs))
        assert (estimator.batch_norm, estimator.weight_decay, estimator.max_epochs) == expected
    # each classifier's own signature: what get_params, clone and repr read
    assert skmtl.MMOERegressor().max_epochs == 5 and skmtl.PLERegressor().max_epochs == 6
    model = clone(MMOEClassifier(batch_norm=False))
    assert model.batch_norm is False and repr(model) == "MMOEClassifier(batch_norm=False)"
    assert CLASSIFIER_DEFAULTS == {"batch_norm": True, "weight_decay": 1e-4, "max_epochs": 4}
    with pytest.raises(TypeError, match=r"no keyword parameters \['n_trees'\]"):
        with_defaults(n_trees=3)(type("Copy", (skmtl.MMOERegressor,), {}))


def test_warm_start_continues_training(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(warm_start=True, **{**FAST, "max_epochs": 2}).fit(X, Y)
    weights = model.net_.module_.experts.first.weight.detach().clone()
    model.fit(X, Y)
    assert model.n_iter_ == 4
    assert model.net_.module_.experts.first.weight.shape == weights.shape
    cold = MMOEClassifier(**{**FAST, "max_epochs": 2}).fit(X, Y)
    # a cold fit restarts from the same initial weights: one epoch pair, not two
    assert cold.n_iter_ == 2
    with pytest.raises(ValueError, match="same tasks"):
        model.fit(X, Y.rename(columns={"t2": "other"}))


def test_sample_weight(tasks):
    X, Y, _ = tasks
    ones = MMOEClassifier(**FAST).fit(X, Y, sample_weight=np.ones(len(X)))
    none = MMOEClassifier(**FAST).fit(X, Y)
    for a, b in zip(ones.predict_proba(X), none.predict_proba(X)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Up-weighting the positives of t1 raises the predicted rate of t1.
    weight = np.where(Y["t1"] == 1, 10.0, 1.0)
    heavy = MMOEClassifier(**FAST).fit(X, Y, sample_weight=weight)
    assert heavy.predict_proba(X)[0][:, 1].mean() > none.predict_proba(X)[0][:, 1].mean() + 0.1
    with pytest.raises(ValueError):
        MMOEClassifier(**FAST).fit(X, Y, sample_weight=np.ones(3))


def test_mmoe_learns_every_task(tasks, holdout):
    X, Y, _ = tasks
    X_test, Y_test, _ = holdout
    model = MMOEClassifier(max_epochs=15, random_state=0).fit(X, Y)
    proba = model.predict_proba(X_test)
    aucs = [roc_auc_score(Y_test[name], p[:, 1]) for name, p in zip(Y.columns, proba)]
    assert min(aucs) > 0.75, aucs


def test_esmm_learns_click_and_conversion(tasks, holdout):
    X, _, funnel = tasks
    X_test, Y_test, funnel_test = holdout
    model = ESMMClassifier(max_epochs=15, random_state=0).fit(X, funnel)
    reach = model.predict_proba(X_test)
    conditional = model.predict_conditional_proba(X_test)
    assert roc_auc_score(funnel_test["click"], reach[0][:, 1]) > 0.8
    assert roc_auc_score(funnel_test["conversion"], reach[1][:, 1]) > 0.75
    # pCVR is judged on every row against the conversion propensity, clicked or not
    assert roc_auc_score(Y_test["t2"], conditional[1][:, 1]) > 0.65


@pytest.mark.parametrize("estimator", ["mmoe", "esmm", "aitm"])
def test_outputs_start_at_the_label_frequencies(tasks, estimator):
    # a learning rate too small to move them leaves the initial output biases
    X, Y, funnel = tasks
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.5, 2.0, len(X))
    still = dict(max_epochs=1, learning_rate=1e-12, early_stopping=True,
                 validation_fraction=0.25, random_state=0)

    def frequencies(labels, rows):  # weighted, over the known labels of the rows
        rows = rows & labels.notna().to_numpy()
        return [np.average(labels[rows] == c, weights=weight[rows])
                for c in np.unique(labels.dropna())]

    if estimator == "mmoe":
        labels = Y.assign(t2=Y["t2"].where(rng.random(len(Y)) < 0.5),  # missing labels
                          t3=rng.choice([0, 1, 2], len(Y), p=[0.6, 0.3, 0.1]))
        model = MMOEClassifier(**still).fit(X, labels, sample_weight=weight)
        biases = [tower[-1].bias.detach() for tower in model.net_.module_.towers]
        starts = [torch.sigmoid(biases[0]), torch.sigmoid(biases[1]), torch.softmax(biases[2], 0)]
        expected = [lambda rows: frequencies(labels["t1"], rows)[1:],
                    lambda rows: frequencies(labels["t2"], rows)[1:],
                    lambda rows: frequencies(labels["t3"], rows)]
    else:
        model_class = ESMMClassifier if estimator == "esmm" else skmtl.AITMClassifier
        model = model_class(**still).fit(X, funnel, sample_weight=weight)
        module = model.net_.module_
        biases = ([tower[-1].bias for tower in module.towers] if estimator == "esmm"
                  else [head.bias for head in module.heads])
        starts = [torch.sigmoid(bias.detach()) for bias in biases]
        clicked = (funnel["click"] == 1).to_numpy()
        expected = [lambda rows: frequencies(funnel["click"], rows)[1:],
                    # ESMM's conversion tower: p(conversion | click); AITM's head: p(conversion)
                    lambda rows: frequencies(funnel["conversion"],
                                             rows & clicked if estimator == "esmm" else rows)[1:]]
    # from the training rows only: not the validation rows
    training = np.ones(len(X), bool)
    training[model._split_rows(len(X), np.random.RandomState(model._split_seed), True)[1]] = False
    for task, (start, frequency) in enumerate(zip(starts, expected)):
        np.testing.assert_allclose(start.numpy(), frequency(training), rtol=1e-4,
                                   err_msg=f"task {task}")


@pytest.mark.shipped_batch_floor
def test_a_short_fit_on_few_rows_ranks_a_rare_class_forwards():
    # 500 Census rows (6 % earn over 50k), 24 steps: starting from p = 0.5 the first
    # steps lowered every row's income logit, most where activations were largest,
    # the high earners': test AUC 0.21-0.29 on three splits
    data = fetch_census_income(subset="test", download_if_missing=False)
    rng = np.random.RandomState(0)
    rows = rng.permutation(len(data.data))
    train, test = rows[:500], rows[500:10500]
    model = MMOEClassifier(random_state=0).fit(data.data.iloc[train], data.target.iloc[train])
    proba = model.predict_proba(data.data.iloc[test])
    aucs = [roc_auc_score(data.target.iloc[test][task], p[:, 1])
            for task, p in zip(data.target.columns, proba)]
    assert min(aucs) > 0.8, aucs


# -- scikit-learn integration ------------------------------------------------------------


def test_grid_search_with_roc_auc(tasks):
    X, Y, _ = tasks
    search = GridSearchCV(MMOEClassifier(max_epochs=3, random_state=0), {"n_experts": [2, 4]},
                          scoring="roc_auc", cv=3).fit(X, Y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all((scores > 0.6) & (scores <= 1.0))
    assert search.best_params_["n_experts"] in (2, 4)


def test_cross_val_score_and_clone(tasks):
    X, _, funnel = tasks
    model = ESMMClassifier(max_epochs=3, random_state=0)
    scores = cross_val_score(model, X, funnel, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and np.all(scores > 0.6)
    copy = clone(model.set_params(embedding_dim=4))
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "net_")


def test_pipeline_with_column_transformer(tasks):
    X, Y, _ = tasks
    categorical, numeric = ["color", "shop"], ["num_a", "num_b"]
    pre = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical),
        (StandardScaler(), numeric),
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(pre, MMOEClassifier(categorical_features=categorical,
                                             **{**FAST, "numeric_encoding": "passthrough"}))
    pipe.fit(X, Y)
    assert list(pipe[-1].is_categorical_) == [True, True, False, False]
    proba = pipe.predict_proba(X)
    assert [p.shape for p in proba] == [(len(X), 2), (len(X), 2)]
    pipe.set_params(mmoeclassifier__n_experts=2, mmoeclassifier__max_epochs=1)
    assert pipe.get_params()["mmoeclassifier__n_experts"] == 2
    pipe.fit(X, Y)
    assert pipe[-1].net_.module_.experts.n_experts == 2
    unseen = X.assign(color="ultraviolet")
    assert np.all(np.isfinite(pipe.predict_proba(unseen)[0]))


@pytest.mark.parametrize("name", ["mmoe", "esmm"])
def test_joblib_round_trip(name, request, holdout, tmp_path):
    model = request.getfixturevalue(name)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    for a, b in zip(model.predict_proba(holdout[0]), loaded.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(holdout[0]), loaded.predict(holdout[0]))
