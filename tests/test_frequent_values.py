"""frequent_values: numeric values that many rows share are embedded as categories too."""

import json
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

import skmtl
from skmtl import ESMMClassifier, MMOEClassifier, MMOERegressor
from skmtl._encoding import TabularEncoder
from skmtl._encoding._numeric import FREQUENT_VALUE_MIN_COUNT, MAX_FREQUENT_VALUES

SPECIAL = np.arange(12, 1000, 25)[:40]


def spikes(n, seed):
    """An ``amount`` mostly 0, else an integer of 1..1000; 40 of those values, each held
    by many rows, make the first task's label 1 (nine times in ten), their neighbours
    and the rest 0. A second task on a smooth column."""
    rng = np.random.default_rng(seed)
    kind = rng.random(n)
    amount = np.where(kind < 0.55, 0, rng.integers(1, 1001, n))
    amount = np.where(kind > 0.75, rng.choice(SPECIAL, n), amount).astype(float)
    z = rng.normal(size=n)
    special = np.isin(amount, SPECIAL) & (rng.random(n) < 0.9)
    X = pd.DataFrame({"amount": amount, "z": z})
    Y = pd.DataFrame({"special": special.astype(int),
                      "sign": (z + rng.normal(size=n) > 0).astype(int)})
    return X, Y


def encoder_frame(n=2000, seed=0):
    """A heavy-tailed column (mostly 0, a few common values, rare ones), a smooth one, a
    smooth one of few values and a categorical one."""
    rng = np.random.default_rng(seed)
    heavy = np.where(rng.random(n) < 0.7, 0.0, rng.lognormal(5, 1, n).round(3))
    heavy[:60], heavy[60:90], heavy[90:109] = 2.5, 7.0, 13.0  # 60, 30 and 19 rows
    return pd.DataFrame({"heavy": heavy, "smooth": rng.normal(size=n),
                         "dice": rng.integers(1, 7, n).astype(float),
                         "color": pd.Categorical(rng.choice(["a", "b"], n))})


@pytest.fixture(scope="module")
def spike_data():
    return spikes(3000, 0), spikes(2000, 1)


def test_auto_codes_the_frequent_values_of_heavy_columns_only():
    X = encoder_frame()
    encoder = TabularEncoder(frequent_values="auto", random_state=0)
    codes, numeric = encoder.fit_transform(X)
    frequent = encoder.numeric_.frequent_values_
    # 0, 2.5 and 7.0 are held by 20 rows or more, 13.0 by 19 and the lognormal values by
    # about one each; "smooth" and "dice" are neither mostly one value nor heavy-tailed
    assert frequent[0].tolist() == [0.0, 2.5, 7.0]
    assert [len(v) for v in frequent[1:]] == [0, 0]
    assert encoder.numeric_.value_columns == [0]
    assert codes.shape == (len(X), 2) and numeric.shape == (len(X), 3)
    assert encoder.cardinalities == [3, 4]  # color: a, b and unknown; heavy: 3 values and 0
    expected = np.select([X["heavy"] == 0.0, X["heavy"] == 2.5, X["heavy"] == 7.0], [1, 2, 3], 0)
    np.testing.assert_array_equal(codes[:, 1], expected)
    # a value not among them, a missing one and one never seen all get code 0
    test = X.head(4).assign(heavy=[7.0, 13.0, np.nan, -1.0])
    assert encoder.transform(test)[0][:, 1].tolist() == [3, 0, 0, 0]


def test_all_codes_every_column_with_frequent_values_and_none_codes_none():
    X = encoder_frame()
    every = TabularEncoder(frequent_values="all", random_state=0).fit(X)
    assert [v.tolist() for v in every.numeric_.frequent_values_] == [
        [0.0, 2.5, 7.0], [], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    assert every.transform(X)[0].shape == (len(X), 3)
    none = TabularEncoder(frequent_values=None, random_state=0)
    codes, _ = none.fit_transform(X)
    assert codes.shape == (len(X), 1) and none.cardinalities == [3]


def test_rows_of_weight_zero_do_not_count():
    X = encoder_frame()
    weight = np.ones(len(X))
    weight[:41] = 0.0  # 19 of the 60 rows of 2.5 keep a weight
    encoder = TabularEncoder(frequent_values="auto", random_state=0).fit(X, weight)
    assert encoder.numeric_.frequent_values_[0].tolist() == [0.0, 7.0]
    assert FREQUENT_VALUE_MIN_COUNT == 20


def test_a_column_keeps_its_most_frequent_values():
    counts = np.arange(20, 20 + 300)  # value v held by 20 + v rows
    values = np.repeat(np.arange(300.0), counts)
    X = pd.DataFrame({"code": np.concatenate([values, np.zeros(len(values) + 1)])})
    X = X.sample(frac=1.0, random_state=0)
    encoder = TabularEncoder(frequent_values="auto", random_state=0).fit(X)
    kept = encoder.numeric_.frequent_values_[0]
    assert len(kept) == MAX_FREQUENT_VALUES == 255
    # 0 (the mode) and the values held by the most rows, in order
    np.testing.assert_array_equal(kept, np.concatenate([[0.0], np.arange(300 - 254, 300.0)]))


def test_the_codes_let_the_network_isolate_values(spike_data):
    (X, Y), (X_test, Y_test) = spike_data
    scores = {}
    for frequent_values in ("auto", None):
        model = MMOEClassifier(frequent_values=frequent_values, random_state=0).fit(X, Y)
        scores[frequent_values] = roc_auc_score(Y_test["special"],
                                                model.predict_proba(X_test)[0][:, 1])
    # 40 values of the label among 1,000 neighbours: more than the 32 target bins hold
    assert scores["auto"] > 0.9 and scores["auto"] > scores[None] + 0.05, scores


def test_estimators_default_to_auto_and_validate_the_parameter(spike_data):
    (X, Y), _ = spike_data
    for estimator_class in (MMOEClassifier, ESMMClassifier, MMOERegressor,
                            skmtl.PLEClassifier, skmtl.SharedBottomClassifier,
                            skmtl.OMOEClassifier, skmtl.AITMClassifier):
        assert estimator_class().get_params()["frequent_values"] == "auto"
    for bad in ("yes", True, 3):
        with pytest.raises(InvalidParameterError, match="frequent_values"):
            MMOEClassifier(frequent_values=bad).fit(X, Y)


def test_warm_start_keeps_the_codes_and_refuses_a_change(spike_data):
    (X, Y), (X_test, _) = spike_data
    model = MMOEClassifier(max_epochs=1, warm_start=True, random_state=0).fit(X, Y)
    cardinalities = model._encoder.cardinalities
    model.fit(X_test, Y.head(len(X_test)))  # other rows: the same vocabulary of values
    assert model._encoder.cardinalities == cardinalities
    model.set_params(frequent_values=None)
    with pytest.raises(ValueError, match="frequent_values was 'auto' and is now None"):
        model.fit(X, Y)


def test_partial_fit_learns_the_values_from_the_first_chunk(spike_data):
    (X, Y), (X_test, _) = spike_data
    model = MMOEClassifier(random_state=0)
    model.partial_fit(X.iloc[:1500], Y.iloc[:1500])
    first = [v.copy() for v in model._encoder.numeric_.frequent_values_]
    model.partial_fit(X.iloc[1500:], Y.iloc[1500:])
    # in 1,500 rows only 0 is held by 20 (each special value by about 9); all 3,000 rows
    # would make the special values frequent too: the first chunk decides
    assert first[0].tolist() == [0.0]
    assert len(MMOEClassifier(max_epochs=1).fit(X, Y)._encoder.numeric_.frequent_values_[0]) > 10
    np.testing.assert_array_equal(model._encoder.numeric_.frequent_values_[0], first[0])
    assert np.isfinite(model.predict_proba(X_test)[0]).all()


def test_save_and_load_keep_the_values(spike_data, tmp_path):
    (X, Y), (X_test, _) = spike_data
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    model.save(tmp_path / "m.skmtl")
    loaded = skmtl.load(tmp_path / "m.skmtl")
    assert loaded.get_params()["frequent_values"] == "auto"
    np.testing.assert_array_equal(loaded._encoder.numeric_.frequent_values_[0],
                                  model._encoder.numeric_.frequent_values_[0])
    for mine, theirs in zip(model.predict_proba(X_test), loaded.predict_proba(X_test)):
        np.testing.assert_array_equal(mine, theirs)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X_test)[0],
                                  model.predict_proba(X_test)[0])


def _rewrite_config(path, change):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["skmtl.json"])
    change(config)
    members["skmtl.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_file_from_before_frequent_values_loads_without_them(spike_data, tmp_path):
    (X, Y), (X_test, _) = spike_data
    model = MMOEClassifier(max_epochs=1, frequent_values=None, random_state=0).fit(X, Y)
    model.save(tmp_path / "m.skmtl")

    def as_before(config):
        del config["params"]["frequent_values"]
        del config["encoder"]["numeric"]["frequent_values"]
        del config["encoder"]["numeric"]["frequent_dtypes"]
        config["format_version"] = 7

    _rewrite_config(tmp_path / "m.skmtl", as_before)
    loaded = skmtl.load(tmp_path / "m.skmtl")
    # not the default "auto": a warm start goes on with the network the file holds
    assert loaded.get_params()["frequent_values"] is None
    assert loaded._encoder.numeric_.value_columns == []
    np.testing.assert_array_equal(loaded.predict_proba(X_test)[0],
                                  model.predict_proba(X_test)[0])
    loaded.set_params(warm_start=True, max_epochs=1).fit(X, Y)


@pytest.mark.parametrize("values, message", [
    ([[3.0, 1.0], []], "invalid frequent values"),
    ([[1.0, float("nan")], []], "invalid frequent values"),
    ([[1.0]], "invalid frequent values"),
    ([list(range(MAX_FREQUENT_VALUES + 1)), []], "invalid frequent values"),
    ([["a"], []], "invalid frequent values"),
])
def test_a_file_with_broken_values_is_refused(spike_data, tmp_path, values, message):
    (X, Y), _ = spike_data
    MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y).save(tmp_path / "m.skmtl")

    def broken(config):
        config["encoder"]["numeric"]["frequent_values"] = values

    _rewrite_config(tmp_path / "m.skmtl", broken)
    with pytest.raises(ValueError, match=message):
        skmtl.load(tmp_path / "m.skmtl")


def prices(n, seed):
    """A ``price`` mostly one of a few values that float32 does not hold exactly (9.99,
    19.99, 0.3), which make the label; else a lognormal amount."""
    rng = np.random.default_rng(seed)
    common = rng.choice([9.99, 19.99, 0.3], n)
    price = np.where(rng.random(n) < 0.6, common, rng.lognormal(3, 1, n).round(2))
    X = pd.DataFrame({"price": price, "z": rng.normal(size=n)})
    Y = pd.DataFrame({"bought": (np.isin(price, [9.99, 0.3]) ^ (rng.random(n) < 0.1)),
                      "sign": X["z"] > 0}).astype(int)
    return X, Y


@pytest.mark.parametrize("fitted, read", [
    ("float32", "float64"), ("float64", "float32"), ("Float32", "float64"),
    ("float64", "Float32"), ("float16", "float64"), ("float64", "float16"),
    ("Sparse[float32]", "float64"), ("float32[pyarrow]", "float64")])
def test_float32_and_float64_copies_of_the_numbers_get_the_same_codes(fitted, read):
    # a Parquet file's float32 column served from JSON as float64, or astype("float32")
    # to save memory: the values are compared in the coarser of the two precisions
    X, Y = prices(2000, 0)
    X_test, _ = prices(500, 1)
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X.astype({"price": fitted}), Y)
    encoding = model._encoder.numeric_
    assert encoding.frequent_dtypes == [("float16" if "16" in fitted else "float32"
                                         if "32" in fitted else "float64"), "float64"]
    assert len(encoding.frequent_values_[0]) == 3
    codes = model._encoder.transform(X_test.astype({"price": fitted}))[0]
    assert (codes[:, 0] > 0).mean() > 0.5
    np.testing.assert_array_equal(model._encoder.transform(X_test.astype({"price": read}))[0],
                                  codes)


def test_the_precision_is_saved_and_files_before_it_compare_in_float64(tmp_path):
    X, Y = prices(2000, 0)
    X_test, _ = prices(500, 1)
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X.astype({"price": "float32"}), Y)
    model.save(tmp_path / "m.skmtl")
    loaded = skmtl.load(tmp_path / "m.skmtl")
    assert loaded._encoder.numeric_.frequent_dtypes == ["float32", "float64"]
    np.testing.assert_array_equal(loaded.predict_proba(X_test)[0], model.predict_proba(X_test)[0])

    def as_format_8(config):
        del config["encoder"]["numeric"]["frequent_dtypes"]
        config["format_version"] = 8

    _rewrite_config(tmp_path / "m.skmtl", as_format_8)
    before = skmtl.load(tmp_path / "m.skmtl")
    # as format 8 compared them: the float32 values fitted against float64 prices, apart
    assert before._encoder.numeric_.frequent_dtypes == ["float64", "float64"]
    assert (before._encoder.transform(X_test)[0][:, 0] == 0).all()
    np.testing.assert_array_equal(
        before._encoder.transform(X_test.astype({"price": "float32"}))[0],
        model._encoder.transform(X_test)[0])


@pytest.mark.parametrize("dtypes, message", [
    (["int8", "float64"], "invalid precisions"), (["float64"], "invalid precisions"),
    ([], "invalid precisions"), ("float64", "invalid precisions"),
    ([None, None], "invalid precisions"),
    # 9.99 is no float32 number: these values were not read in float32
    (["float32", "float64"], "invalid precisions"),
    (None, "have no precisions")])
def test_a_file_with_broken_precisions_is_refused(tmp_path, dtypes, message):
    X, Y = prices(2000, 0)
    MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y).save(tmp_path / "m.skmtl")

    def broken(config):
        if dtypes is None:  # a file of format 9 must have them
            del config["encoder"]["numeric"]["frequent_dtypes"]
        else:
            config["encoder"]["numeric"]["frequent_dtypes"] = dtypes

    _rewrite_config(tmp_path / "m.skmtl", broken)
    with pytest.raises(ValueError, match=message):
        skmtl.load(tmp_path / "m.skmtl")


def test_values_beyond_the_precision_read_match_nothing_and_warn_nothing():
    # 99,999 is frequent in float64 but beyond float16's range: a float16 column's
    # values are compared with it as infinity, which none of them is
    X, Y = prices(2000, 0)
    X["price"] = np.where(X["price"] == 19.99, 99_999.0, X["price"])
    model = MMOEClassifier(max_epochs=1, frequent_values="all", random_state=0).fit(X, Y)
    assert model._encoder.numeric_.frequent_values_[0][-1] == 99_999.0
    X_half = X.assign(price=X["price"].clip(upper=6e4)).astype({"price": "float16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codes = model._encoder.transform(X_half)[0]
    assert set(codes[:, 0]) == {0, 1, 2}  # 0.3, 9.99 and others; never 99,999's 3


def test_a_model_pickled_before_frequent_values_still_predicts(spike_data):
    (X, Y), (X_test, _) = spike_data
    model = MMOEClassifier(max_epochs=1, frequent_values=None, random_state=0).fit(X, Y)
    expected = model.predict_proba(X_test)[0]
    del model.__dict__["frequent_values"]
    del model._encoder.numeric_.__dict__["frequent_values_"]
    del model._encoder.numeric_.__dict__["frequent_dtypes_"]
    del model._encoder.__dict__["frequent_values"]
    restored = pickle.loads(pickle.dumps(model))
    assert restored.frequent_values is None
    np.testing.assert_array_equal(restored.predict_proba(X_test)[0], expected)


def test_leaf_trees_read_the_codes_too(spike_data, tmp_path):
    (X, Y), (X_test, _) = spike_data
    # the trees grow on the inputs the network reads: the codes of amount's values,
    # then the two numbers (as the saved file's check of the trees counts them)
    model = MMOEClassifier(max_epochs=1, leaf_trees=3, random_state=0).fit(X, Y)
    model.save(tmp_path / "m.skmtl")
    np.testing.assert_array_equal(skmtl.load(tmp_path / "m.skmtl").predict_proba(X_test)[0],
                                  model.predict_proba(X_test)[0])
