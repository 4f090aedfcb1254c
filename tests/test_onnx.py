"""skmtl.onnx: exported models reproduce the estimators' predictions in onnxruntime."""

import json

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

import skmtl
import skmtl.onnx
from skmtl.datasets import fetch_census_income, fetch_coat
from skmtl.onnx import expected_outputs, onnx_inputs, save_onnx, to_onnx

from conftest import make_tasks

pytestmark = pytest.mark.usefixtures("onnx_registry_built_once")

# float32 networks in torch and in onnxruntime sum in different orders
TOLERANCE = 1e-5

CLASSIFIERS = [skmtl.MMOEClassifier, skmtl.OMOEClassifier, skmtl.PLEClassifier,
               skmtl.SharedBottomClassifier]
FUNNELS = [skmtl.ESMMClassifier, skmtl.AITMClassifier]
REGRESSORS = [skmtl.MMOERegressor, skmtl.OMOERegressor, skmtl.PLERegressor,
              skmtl.SharedBottomRegressor]


def session(model):
    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def run(model, X):
    """The model's outputs for the rows of ``X``, by name."""
    served = session(model)
    names = [o.name for o in served.get_outputs()]
    return dict(zip(names, served.run(None, onnx_inputs(served, X))))


def assert_serves_predictions(estimator, model, X):
    """Every output of ``model`` equals the estimator's own prediction on ``X``."""
    outputs = run(model, X)
    expected = expected_outputs(estimator, X)
    n_outputs = {"proba": 0, "label": 0, "conditional": 0, "prediction": 0, "gate": 0}
    for name in expected:
        n_outputs[name.split("_")[0]] += 1
    n_tasks = len(estimator.task_names_)
    classifier = hasattr(estimator, "predict_proba")
    assert (n_outputs["proba"], n_outputs["label"], n_outputs["prediction"]) == (
        (n_tasks, n_tasks, 0) if classifier else (0, 0, n_tasks))
    assert n_outputs["conditional"] == (n_tasks if hasattr(
        estimator, "predict_conditional_proba") else 0)
    assert (n_outputs["gate"] > 0) == hasattr(estimator, "gate_weights")
    assert sorted(outputs) == sorted(expected)
    for name, values in expected.items():
        if name.startswith("label_"):  # the same labels, of the same Python types
            assert outputs[name].tolist() == values.tolist(), name
        else:
            assert outputs[name].shape == values.shape, name
            np.testing.assert_allclose(outputs[name], values, rtol=0, atol=TOLERANCE,
                                       err_msg=name)


def labels_for(estimator_class, Y, funnel, targets):
    """The fixture's labels that ``estimator_class`` fits: a funnel's, targets or classes."""
    return funnel if estimator_class in FUNNELS else (
        targets if estimator_class in REGRESSORS else Y)


@pytest.fixture(scope="module")
def data():
    """Training rows, and test rows with unseen and missing categories."""
    X, Y, funnel = make_tasks(1000, seed=0)
    X_test, _, _ = make_tasks(300, seed=1)
    X_test = X_test.astype({"color": object, "shop": object})
    X_test.loc[:19, "color"] = None
    X_test.loc[20:39, "color"] = "purple"
    X_test.loc[40:59, "shop"] = 999
    X_test.loc[60:69, "shop"] = np.nan
    X_test["shop"] = X_test["shop"].astype("category")
    targets = pd.DataFrame({"a": 1000 + 3 * X["num_a"], "b": X["num_b"]})
    return X, Y, funnel, targets, X_test


@pytest.mark.parametrize("estimator_class", CLASSIFIERS + FUNNELS + REGRESSORS,
                         ids=lambda c: c.__name__)
def test_exported_model_serves_the_estimators_predictions(estimator_class, data):
    X, Y, funnel, targets, X_test = data
    y = labels_for(estimator_class, Y, funnel, targets)
    estimator = estimator_class(max_epochs=2, random_state=0).fit(X, y)
    model = to_onnx(estimator, X.head())
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert inputs == {"color": onnx.TensorProto.STRING, "num_a": onnx.TensorProto.DOUBLE,
                      "shop": onnx.TensorProto.DOUBLE, "num_b": onnx.TensorProto.DOUBLE}
    assert_serves_predictions(estimator, model, X_test)
    # one row, as a service scores it
    assert_serves_predictions(estimator, model, X_test.iloc[[0]])


@pytest.mark.parametrize("numeric_encoding", ["standard", "passthrough", "quantile", "periodic",
                                              "piecewise_linear"])
def test_every_numeric_encoding_exports(numeric_encoding, data):
    X, Y, _, _, X_test = data
    # outside the fitted range, and constant
    X_test = X_test.assign(num_a=X_test["num_a"] * 5)
    estimator = skmtl.SharedBottomClassifier(max_epochs=1, random_state=0,
                                             numeric_encoding=numeric_encoding).fit(
        X.assign(constant=1.0), Y)
    assert_serves_predictions(estimator, to_onnx(estimator, X.assign(constant=1.0)),
                              X_test.assign(constant=-4.0))


@pytest.mark.parametrize("estimator_class", [skmtl.MMOEClassifier, skmtl.PLERegressor],
                         ids=lambda c: c.__name__)
def test_batch_normalisation_is_served_with_its_running_statistics(estimator_class, data):
    X, Y, funnel, targets, X_test = data
    y = labels_for(estimator_class, Y, funnel, targets)
    estimator = estimator_class(max_epochs=1, batch_norm=True, random_state=0).fit(X, y)
    assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X_test)


@pytest.mark.parametrize("estimator_class", [skmtl.MMOEClassifier, skmtl.ESMMClassifier,
                                             skmtl.SharedBottomRegressor],
                         ids=lambda c: c.__name__)
def test_cross_layers_are_served_in_the_network(estimator_class, data):
    X, Y, funnel, targets, X_test = data
    y = labels_for(estimator_class, Y, funnel, targets)
    estimator = estimator_class(max_epochs=1, cross_layers=2, random_state=0).fit(X, y)
    model = to_onnx(estimator, X.head())
    assert any("cross" in initializer.name for initializer in model.graph.initializer)
    assert_serves_predictions(estimator, model, X_test)


@pytest.mark.parametrize("estimator_class", [skmtl.MMOEClassifier, skmtl.AITMClassifier,
                                             skmtl.PLERegressor], ids=lambda c: c.__name__)
def test_leaf_trees_are_served_in_the_network(estimator_class, data):
    X, Y, funnel, targets, X_test = data
    y = labels_for(estimator_class, Y, funnel, targets)
    estimator = estimator_class(max_epochs=1, leaf_trees=3, random_state=0).fit(X, y)
    # unseen and missing categories (code 0), and numbers outside the fitted range
    X_test = X_test.assign(num_b=X_test["num_b"] * 10)
    assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X_test)


@pytest.mark.parametrize("estimator_class", [skmtl.MMOEClassifier, skmtl.ESMMClassifier,
                                             skmtl.MMOERegressor], ids=lambda c: c.__name__)
def test_frequent_values_are_coded_as_predict_codes_them(estimator_class, data):
    X, Y, funnel, targets, X_test = data
    y = labels_for(estimator_class, Y, funnel, targets)
    rng = np.random.default_rng(0)

    def with_amounts(frame, n_missing=0):
        # an int column, a float one of non-whole values and a float32 one whose rare
        # values lie a few float32 steps from a frequent one, each mostly one value
        common = rng.choice([0, 0, 0, 0, 5, 120], len(frame))
        rare = rng.random(len(frame)) < 0.1
        frame = frame.assign(
            count=np.where(rare, rng.integers(1, 10 ** 6, len(frame)), common).astype(np.int64),
            price=np.where(rare, rng.random(len(frame)), common * 0.1 + 0.05),
            ratio=np.where(rare, 1 + rng.integers(1, 20, len(frame)) * 2.0 ** -20,
                           (common > 0) * 999.0 + 1).astype(np.float32))
        frame.loc[frame.index[:n_missing], "price"] = np.nan
        return frame

    X, X_test = with_amounts(X), with_amounts(X_test, n_missing=10)
    estimator = estimator_class(max_epochs=1, leaf_trees=2, random_state=0).fit(X, y)
    frequent = estimator._encoder.numeric_.frequent_values_
    assert [len(frequent[i]) for i in estimator._encoder.numeric_.value_columns] == [3, 3, 2]
    assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X_test)


@pytest.mark.parametrize("fitted, served", [
    ("float64", "float32"), ("float32", "float64"), ("float64", "Float32"),
    ("float64", "float32[pyarrow]")])
def test_frequent_values_match_in_the_coarser_precision(data, fitted, served):
    # prices such as 9.99 differ between float32 and float64; predict codes them alike
    # in both (compared in the coarser precision), and so must the graph, whatever the
    # precision of its input
    X, Y, _, _, X_test = data
    rng = np.random.default_rng(0)

    def with_prices(frame):
        common = rng.choice([0.0, 0.0, 0.0, 9.99, 19.99, 0.3], len(frame))
        return frame.assign(price=np.where(rng.random(len(frame)) < 0.1,
                                           rng.lognormal(3, 1, len(frame)), common))

    X, X_test = with_prices(X), with_prices(X_test)
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(
        X.astype({"price": fitted}), Y)
    assert estimator._encoder.numeric_.frequent_dtypes[-1] == fitted
    model = to_onnx(estimator, X.head().astype({"price": served}))
    # a float32 column, nullable or Arrow too, is a float input: compared in float32
    inputs = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert inputs["price"] == (onnx.TensorProto.DOUBLE if served == "float64"
                               else onnx.TensorProto.FLOAT)
    # the rows to serve as double: predict's codes of the prices as they were fitted
    assert_serves_predictions(estimator, model, X_test)
    codes, _ = estimator._encoder.transform(X_test.astype({"price": fitted}))
    np.testing.assert_array_equal(estimator._encoder.transform(X_test)[0], codes)
    assert (codes[:, -1] > 0).mean() > 0.5


def test_frequent_values_that_round_alike_take_the_first_code(data):
    # 2**24 and 2**24 + 1 are both frequent in float64 and one float32 number: predict
    # and the graph both give the first one's code to a float32 row
    X, Y, _, _, X_test = data
    rng = np.random.default_rng(0)

    def with_counts(frame):
        return frame.assign(count=rng.choice([0.0, 0.0, 5.0, 2.0 ** 24, 2.0 ** 24 + 1],
                                             len(frame)))

    X, X_test = with_counts(X), with_counts(X_test)
    estimator = skmtl.MMOEClassifier(max_epochs=1, frequent_values="all", random_state=0)
    frequent = estimator.fit(X, Y)._encoder.numeric_.frequent_values_[-1]
    assert frequent.tolist() == [0.0, 5.0, 2.0 ** 24, 2.0 ** 24 + 1]
    X_float = X_test.astype({"count": np.float32})
    codes = estimator._encoder.transform(X_float)[0][:, -1]
    assert set(codes) == {1, 2, 3}
    assert_serves_predictions(estimator, to_onnx(estimator, X_float.head()), X_float)


@pytest.mark.parametrize("counterfactual", ["dr", "dcmt"])
def test_counterfactual_extra_towers_are_not_served(data, counterfactual):
    X, _, funnel, _, X_test = data

    def weights(model):  # the graph's parameters, in numbers
        return sum(int(np.prod(tensor.dims)) for tensor in model.graph.initializer)

    for estimator_class in FUNNELS:
        estimator = estimator_class(max_epochs=1, counterfactual=counterfactual, random_state=0)
        estimator.fit(X, funnel)
        model = to_onnx(estimator, X)
        # labels, probabilities and conditional ones per stage; the extra towers are
        # neither outputs nor computed
        assert len(model.graph.output) == 3 * len(funnel.columns)
        plain = estimator_class(max_epochs=1, random_state=0).fit(X, funnel)
        assert weights(model) == weights(to_onnx(plain, X))
        assert_serves_predictions(estimator, model, X_test)


def test_conditional_probabilities_of_rare_stages_stay_exact(data):
    # AITM's conditional probability is a ratio of two sigmoids: onnxruntime's own
    # Sigmoid, exact only in absolute terms, was off by 1.7e-5 here.
    X, _, _, _, X_test = data
    rng = np.random.default_rng(0)
    click = (rng.random(len(X)) < 1 / (1 + np.exp(6 - 2 * X["num_a"]))).astype(int)
    funnel = pd.DataFrame({"click": click, "conversion": click * (rng.random(len(X)) < 0.5)})
    estimator = skmtl.AITMClassifier(max_epochs=20, random_state=0).fit(X, funnel)
    assert estimator.predict_proba(X_test)[0][:, 1].min() < 0.01
    model = to_onnx(estimator, X)
    assert "Sigmoid" not in {node.op_type for node in model.graph.node}
    served = session(model)
    conditional = served.run(["conditional_proba_conversion"], onnx_inputs(served, X_test))[0]
    np.testing.assert_allclose(conditional, estimator.predict_conditional_proba(X_test)[1],
                               rtol=0, atol=2e-6)


def test_hashed_integer_columns_hash_as_in_training(data):
    X, Y, _, _, X_test = data
    rng = np.random.default_rng(0)
    X = X.assign(user=rng.integers(-100, 10**9, len(X)), shop=X["shop"].astype(int))
    X_test = X_test.assign(user=rng.integers(-100, 10**9, len(X_test)),
                           shop=X_test["shop"].astype(float).fillna(-1).astype(int))
    for dtype in (np.int64, np.int32):
        X, X_test = X.astype({"user": dtype}), X_test.astype({"user": dtype})
        estimator = skmtl.MMOEClassifier(
            max_epochs=1, categorical_features=["color", "shop", "user"],
            hash_buckets={"user": 50, "shop": 7}, random_state=0).fit(X, Y)
        model = to_onnx(estimator, X)
        assert_serves_predictions(estimator, model, X_test)


def test_extension_dtypes_export_as_predict_reads_them(data):
    """Columns predict takes (categories of nullable numbers, columns read with
    dtype_backend="pyarrow", numpy's long double) export, hashed or not."""
    pa = pytest.importorskip("pyarrow")
    X, Y, _, _, _ = data
    codes = X["shop"].astype(int).to_numpy()

    def dictionary(values):
        return pd.Series(pa.array(values).dictionary_encode().to_pandas(
            types_mapper=pd.ArrowDtype)).array

    X = X.assign(int64_categories=pd.Series(pd.array(codes, "Int64")).astype("category").array,
                 boolean_categories=pd.Series(pd.array(codes > 2, "boolean")).astype(
                     "category").array,
                 arrow_strings=dictionary([f"s{c}" for c in codes]),
                 arrow_integers=dictionary(codes),
                 arrow_plain_strings=pd.array([f"s{c}" for c in codes],
                                              dtype=pd.ArrowDtype(pa.string())),
                 long_double=X["num_a"].to_numpy(dtype=np.longdouble))
    # strings cannot be hashed in ONNX (test_string_hashing_cannot_be_exported_yet)
    hashable = ["int64_categories", "boolean_categories", "arrow_integers"]
    for hash_buckets in (None, dict.fromkeys(hashable, 5)):
        estimator = skmtl.MMOEClassifier(max_epochs=1, hash_buckets=hash_buckets,
                                         random_state=0).fit(X, Y)
        assert list(estimator.is_categorical_[-6:]) == [True] * 5 + [False]
        assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X.iloc[:200])


def test_string_hashing_cannot_be_exported_yet(data):
    X, Y, _, _, _ = data
    estimator = skmtl.MMOEClassifier(max_epochs=1, hash_buckets={"color": 16}).fit(X, Y)
    with pytest.raises(NotImplementedError,
                       match=r"'color' is hashed .* string \(or mixed\) values"):
        to_onnx(estimator, X)


def test_arrays_multiclass_string_classes_and_one_task(data):
    X, Y, _, _, X_test = data
    numeric = X[["num_a", "num_b"]].to_numpy()
    classes = np.array(["low", "mid", "high"])[np.digitize(X["num_a"], [-0.5, 0.5])]
    estimator = skmtl.MMOEClassifier(max_epochs=2, random_state=0).fit(numeric, classes)
    model = to_onnx(estimator, numeric)
    assert [i.name for i in model.graph.input] == ["x0", "x1"]
    assert [o.name for o in model.graph.output] == ["label_task_0", "proba_task_0",
                                                    "gate_weights"]
    assert_serves_predictions(estimator, model, X_test[["num_a", "num_b"]].to_numpy())

    regressor = skmtl.PLERegressor(max_epochs=1, random_state=0).fit(X, X["num_b"])
    assert_serves_predictions(regressor, to_onnx(regressor, X), X_test)


def test_numeric_and_given_categories(data):
    X, Y, _, _, X_test = data
    # a float column as categorical, a vocabulary given up front
    X = X.assign(code=np.round(X["num_a"], 1), whole=np.floor(X["num_b"] / 10))
    X_test = X_test.assign(code=np.round(X_test["num_a"], 1), whole=np.floor(
        X_test["num_b"] / 10))
    X_test.loc[:4, ["code", "whole"]] = np.nan
    X_test.loc[5:9, "whole"] = 0.5
    estimator = skmtl.OMOEClassifier(
        max_epochs=1, categorical_features=["color", "shop", "code", "whole"],
        categories={"color": ["red", "green"]}, random_state=0).fit(X, Y)
    assert_serves_predictions(estimator, to_onnx(estimator, X), X_test)


@pytest.mark.parametrize("numeric_encoding", ["piecewise_linear", "standard", "quantile"])
def test_missing_numbers_are_served_as_predict_encodes_them(numeric_encoding, data):
    X, Y, _, _, X_test = data
    X = X.assign(num_a=X["num_a"].where(np.arange(len(X)) % 4 != 0))  # learned
    X_test = X_test.assign(num_a=X_test["num_a"].where(np.arange(len(X_test)) % 3 != 0),
                           num_b=X_test["num_b"].where(np.arange(len(X_test)) % 5 != 0))
    estimator = skmtl.MMOEClassifier(max_epochs=2, numeric_encoding=numeric_encoding,
                                     random_state=0).fit(X, Y)
    assert estimator._encoder.numeric_.learned_missing_ == [
        numeric_encoding == "piecewise_linear", False]
    assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X_test)


def test_an_object_column_of_numbers_without_one_in_the_sample(data):
    # the input became text (no number in the sample's rows to type it by): onnx_inputs
    # gave "" for every number and the graph's cast failed on every row
    X, Y, _, _, X_test = data
    as_objects = X.assign(num_a=X["num_a"].astype(object).where(np.arange(len(X)) >= 5, None))
    estimator = skmtl.MMOEClassifier(max_epochs=1, categorical_features=["color", "shop"],
                                     random_state=0).fit(as_objects, Y)
    model = to_onnx(estimator, as_objects.head())
    assert [i.type.tensor_type.elem_type for i in model.graph.input if i.name == "num_a"] == [
        onnx.TensorProto.DOUBLE]
    assert_serves_predictions(estimator, model, X_test.assign(
        num_a=X_test["num_a"].astype(object).where(np.arange(len(X_test)) % 3 != 0, None)))
    # skl2onnx types an object column as text whatever it holds: refused, saying what to do
    skl2onnx = pytest.importorskip("skl2onnx")
    skmtl.onnx.register()
    pipeline = Pipeline([("model", estimator)])
    with pytest.raises(ValueError, match=r"skl2onnx typed the input 'num_a' as text, but "
                                         r"MMOEClassifier reads its columns \['num_a'\] as "
                                         r"numbers.*X_sample.astype"):
        skl2onnx.to_onnx(pipeline, as_objects.iloc[5:10])
    converted = skl2onnx.to_onnx(pipeline, as_objects.iloc[5:10].astype({"num_a": float}))
    assert_serves_predictions(estimator, converted, as_objects.astype({"num_a": float}))


def test_export_under_a_float64_default_dtype(data):
    # the example inputs of the export took the caller's default dtype: float64 failed
    import torch

    X, Y, _, _, X_test = data
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = to_onnx(estimator, X.head())
    finally:
        torch.set_default_dtype(default)
    assert_serves_predictions(estimator, model, X_test)


def test_save_onnx_writes_a_model_a_fresh_session_runs(data, tmp_path):
    X, Y, _, _, X_test = data
    Y = Y.rename(columns={"t1": "clicked, then bought"})
    estimator = skmtl.SharedBottomClassifier(max_epochs=1, random_state=0).fit(X, Y)
    path = tmp_path / "model.onnx"
    save_onnx(estimator, path, X)
    served = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = served.get_modelmeta().custom_metadata_map
    assert metadata["skmtl_estimator"] == "SharedBottomClassifier"
    assert json.loads(metadata["skmtl_tasks"]) == ["clicked, then bought", "t2"]
    proba = served.run(["proba_t2"], onnx_inputs(served, X_test))[0]
    np.testing.assert_allclose(proba, estimator.predict_proba(X_test)[1], atol=TOLERANCE)


def test_bad_export_requests_are_clear_errors(data):
    X, Y, _, _, _ = data
    with pytest.raises(NotFittedError):
        to_onnx(skmtl.MMOEClassifier(), X)
    with pytest.raises(TypeError, match="exports a skmtl estimator"):
        to_onnx(LogisticRegression().fit(X[["num_a"]], Y["t1"]), X[["num_a"]])
    estimator = skmtl.SharedBottomClassifier(max_epochs=1).fit(X, Y)
    with pytest.raises(ValueError, match="Missing: \\['num_b'\\]"):
        to_onnx(estimator, X.drop(columns="num_b").assign(other=1.0))
    with pytest.raises(ValueError, match="X has 3 features"):
        to_onnx(estimator, X.drop(columns="num_b"))
    with pytest.raises(ValueError, match="must be a DataFrame"):
        to_onnx(estimator, X.to_numpy())
    with pytest.raises(ValueError, match="target_opset must be at least 18"):
        to_onnx(estimator, X, target_opset=13)
    with pytest.raises(TypeError, match="target_opset must be an integer; got '18'"):
        to_onnx(estimator, X, target_opset="18")
    with pytest.raises(ValueError, match="could not write operator set 99"):
        to_onnx(estimator, X, target_opset=99)
    with pytest.raises(TypeError, match="'color' of X_sample holds numbers"):
        to_onnx(estimator, X.assign(color=1))
    model = to_onnx(estimator, X)
    with pytest.raises(ValueError, match="differ from the model's inputs"):
        onnx_inputs(model, X.rename(columns={"num_a": "A"}))
    # the fitted estimator in place of its export (an AttributeError on 'get_inputs')
    with pytest.raises(TypeError, match=r"onnx.ModelProto or an onnxruntime.InferenceSession"
                                        r".*got SharedBottomClassifier \(a fitted estimator"):
        onnx_inputs(estimator, X)
    numeric_shop = X.assign(shop=X["shop"].astype(int))  # an int64 input
    model = to_onnx(skmtl.SharedBottomClassifier(max_epochs=1).fit(numeric_shop, Y),
                    numeric_shop)
    with pytest.raises(ValueError, match="'shop' has missing values"):
        onnx_inputs(model, numeric_shop.assign(shop=np.nan))
    unnamed = X.rename(columns={"num_b": ""})  # (onnx's checker: "required to be non-empty")
    with pytest.raises(ValueError, match="the empty name ''"):
        to_onnx(skmtl.SharedBottomClassifier(max_epochs=1).fit(unnamed, Y), unnamed)


def test_affine_encoding_in_float64_and_columns_named_like_internal_tensors():
    # timestamps within an hour: centred in float32 they would collapse to a few values
    rng = np.random.default_rng(0)
    stamps = 1.7e9 + rng.uniform(0, 3600, 500)
    X = pd.DataFrame({"const_9": stamps, "Cast_3": rng.normal(size=500),
                      "Sub_10": rng.choice(["a", "b"], 500)})
    targets = pd.DataFrame({"a": (stamps - stamps.mean()) / stamps.std(),
                            "b": X["Cast_3"] * 2})
    estimator = skmtl.SharedBottomRegressor(numeric_encoding="standard", max_epochs=3,
                                            random_state=0).fit(X, targets)
    assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X)


def test_integer_categories_a_double_input_cannot_hold_are_refused():
    rng = np.random.default_rng(0)
    ids = rng.choice([2 ** 60 + 1, 2 ** 60 + 3, 1234], 300)
    X = pd.DataFrame({"user": pd.Categorical(ids), "x": rng.normal(size=300)})
    Y = pd.DataFrame({"a": rng.integers(0, 2, 300), "b": rng.integers(0, 2, 300)})
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match=r"'user' has integer categories beyond 2\*\*53"):
        to_onnx(estimator, X)
    # served as int64, as the message says, the ids are exact
    as_int64 = X.assign(user=ids)
    assert_serves_predictions(estimator, to_onnx(estimator, as_int64), as_int64)


def test_values_a_double_input_cannot_hold_are_named(data):
    X, Y, _, _, _ = data
    X = X.assign(shop=X["shop"].astype(object))  # integers of an object column: a double input
    estimator = skmtl.SharedBottomClassifier(max_epochs=1, random_state=0).fit(X, Y)
    served = session(to_onnx(estimator, X))
    with pytest.raises(ValueError, match="'shop' holds values that are not numbers .*'new'"):
        onnx_inputs(served, X.assign(shop="new"))
    hashed = skmtl.SharedBottomClassifier(max_epochs=1, hash_buckets={"shop": 8}).fit(X, Y)
    with pytest.raises(NotImplementedError, match="'shop' is hashed .* served as doubles"):
        to_onnx(hashed, X)


def test_categorical_inputs_refuse_values_predict_reads_otherwise(data):
    # the inputs parsed "3" as 3 (a known category; predict: unknown) and hashed 3.0 as 3
    X, Y, _, _, _ = data
    X = X.assign(user=np.arange(len(X)) % 7, shop=X["shop"].astype(int))
    estimator = skmtl.MMOEClassifier(max_epochs=1, categorical_features=["color", "shop", "user"],
                                     hash_buckets={"user": 11}, random_state=0).fit(X, Y)
    model = to_onnx(estimator, X.head())
    served = session(model)
    onnx_inputs(served, X.assign(shop=X["shop"].astype(float)))  # whole floats: the same codes
    for column, values in [("shop", X["shop"].astype(str)), ("user", X["user"].astype(str)),
                           ("shop", X["shop"].astype(str).str.encode("ascii"))]:
        with pytest.raises(ValueError, match=f"'{column}' holds values that are not numbers"):
            onnx_inputs(served, X.assign(**{column: values}))
    # whole floats hash as the integers they equal (the ids of a column pandas made floats)
    as_floats = X.head(60).assign(user=X["user"].head(60).astype(float))
    assert_serves_predictions(estimator, model, as_floats)
    with pytest.raises(ValueError, match="'user' holds numbers that are not whole"):
        onnx_inputs(served, as_floats.assign(user=as_floats["user"] + 0.5))
    # a model fitted before that rule hashed 3.0 apart from 3: its inputs refuse floats
    estimator._encoder.hash_whole_floats_as_integers_ = False
    older = session(to_onnx(estimator, X.head()))
    with pytest.raises(ValueError, match="'user' holds floats, but the model hashes integers"):
        onnx_inputs(older, as_floats)


def test_inputs_refuse_numbers_their_type_would_change(data):
    # a float 2.0 became True in a bool input (predict hashes it as 2), and 2**32 + 1
    # wrapped round in an int32 one: the served buckets differed from predict's, silently
    X, Y, _, _, _ = data
    X = X.assign(flag=np.arange(len(X)) % 3 == 0, small=(np.arange(len(X)) % 7).astype(np.int32))
    estimator = skmtl.MMOEClassifier(max_epochs=1, categorical_features=["color", "flag", "small"],
                                     hash_buckets={"flag": 5, "small": 11},
                                     random_state=0).fit(X, Y)
    model = to_onnx(estimator, X.head())
    served = session(model)
    for flags in (X["flag"].astype(float), X["flag"].astype(int)):
        with pytest.raises(ValueError, match="'flag' holds numbers, but the model hashes booleans"):
            onnx_inputs(served, X.assign(flag=flags))
    with pytest.raises(ValueError, match=r"'small' holds numbers beyond its int32 input's range"):
        onnx_inputs(served, X.assign(small=X["small"].astype(np.int64) + 2**32))
    # whole floats within the range are served as predict hashes them
    assert_serves_predictions(estimator, model,
                              X.head(40).assign(small=X["small"].head(40).astype(float)))
    numeric_flag = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)  # bool: numeric
    with pytest.raises(ValueError, match="'flag' holds numbers other than 0 and 1"):
        onnx_inputs(to_onnx(numeric_flag, X.head()), X.assign(flag=2))


def test_values_that_are_not_text_in_a_string_input_are_unknown_categories(data):
    # the input read 3 as "3", a known category; predict reads the number as unknown
    X, Y, _, _, _ = data
    X = X.assign(shop=X["shop"].astype(int).astype(str))
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    model = to_onnx(estimator, X.head())
    served = X.head(40).assign(shop=[3, 4.0, b"5", "6", None] * 8)
    assert_serves_predictions(estimator, model, served)
    assert_serves_predictions(estimator, model, served.astype({"shop": "category"}))


def test_classes_of_another_type_cannot_be_exported(data):
    X, Y, _, _, _ = data
    days = pd.Series(pd.to_datetime(Y.iloc[:, 0], unit="D"), name="day")
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, days)
    with pytest.raises(NotImplementedError, match=r"are of type\(s\) \['datetime'\]"):
        to_onnx(estimator, X.head())


def test_bytes_categories_cannot_be_exported(data):
    X, Y, _, _, _ = data
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(
        X.assign(shop=X["shop"].astype(str).str.encode("ascii")), Y)
    with pytest.raises(TypeError, match="'shop': the model learned bytes categories"):
        to_onnx(estimator, X.assign(shop=X["shop"].astype(int)))


def test_pipeline_with_column_transformer_converts_through_skl2onnx(data):
    skl2onnx = pytest.importorskip("skl2onnx")  # part of the onnx extra: installed in CI
    X, Y, funnel, targets, X_test = data
    X, X_test = X.astype({"shop": int}), X_test.assign(shop=X_test["shop"].astype(float).fillna(
        -1).astype(int)).assign(color=X_test["color"].fillna("purple"))
    # a heavy-tailed column: its frequent values, once scaled, are no float32 numbers, and
    # skl2onnx's scaler computes them in float32
    rng = np.random.default_rng(0)
    X, X_test = ((frame.assign(gains=np.where(rng.random(len(frame)) < 0.7, 0.0, rng.choice(
        [3.0, 7.5, 99.0], len(frame)))) for frame in (X, X_test)))
    skmtl.onnx.register()
    for model, y in [(skmtl.MMOEClassifier(max_epochs=1, categorical_features=[0, 1]),
                      Y.astype(np.int32)),
                     # (AITM's outputs are ESMM's; its export is tested above)
                     (skmtl.ESMMClassifier(max_epochs=1, categorical_features=[0, 1]), funnel),
                     (skmtl.PLERegressor(max_epochs=1, categorical_features=[0, 1]), targets)]:
        columns = ColumnTransformer([
            ("codes", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
             ["color", "shop"]),
            ("scaled", StandardScaler(), ["num_a", "num_b", "gains"])])
        pipeline = Pipeline([("columns", columns), ("model", model)]).fit(X, y)
        assert len(model._encoder.numeric_.frequent_values_[2]) == 4
        converted = skl2onnx.to_onnx(pipeline, X.head())
        feed = {name: X_test[[name]].to_numpy() for name in X_test.columns}
        served = session(converted)
        outputs = dict(zip([o.name for o in served.get_outputs()], served.run(None, feed)))
        if hasattr(pipeline, "predict_proba"):
            for task, proba in zip(model.task_names_, pipeline.predict_proba(X_test)):
                # skl2onnx's StandardScaler computes in float32
                np.testing.assert_allclose(outputs[f"proba_{task}"], proba, atol=1e-5)
        else:
            predictions = pipeline.predict(X_test)
            for t, task in enumerate(model.task_names_):
                np.testing.assert_allclose(outputs[f"prediction_{task}"][:, 0],
                                           predictions[:, t], atol=1e-4)


@pytest.mark.slow
def test_census_and_coat_test_rows():
    census = fetch_census_income(subset="test", download_if_missing=False)
    X, Y = census.data.iloc[:6000], census.target.iloc[:6000]
    X_test = census.data.iloc[-500:].copy()
    X_test["education"] = X_test["education"].cat.add_categories(["not in training"])
    X_test.iloc[:20, X_test.columns.get_loc("education")] = "not in training"
    X_test.iloc[20:40, X_test.columns.get_loc("race")] = np.nan
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    assert_serves_predictions(estimator, to_onnx(estimator, X.head()), X_test)

    coat = fetch_coat(download_if_missing=False)
    X_test = coat.test_data.copy()
    X_test["item_id"] = X_test["item_id"].cat.add_categories([100_000])
    X_test.iloc[:20, X_test.columns.get_loc("item_id")] = 100_000
    X_test.iloc[20:40, X_test.columns.get_loc("user_location")] = np.nan
    esmm = skmtl.ESMMClassifier(max_epochs=1, random_state=0)
    esmm.fit(coat.data, coat.target[["click", "conversion"]])
    assert_serves_predictions(esmm, to_onnx(esmm, coat.data.head()), X_test)


def test_vocabularies_labels_and_missing_strings_keep_their_meaning(data):
    X, Y, _, _, X_test = data
    big = 2 ** 53 + 1  # ids beyond float64's integers stay exact
    ids = np.where(np.arange(len(X)) % 2 == 0, big, 5)
    X = X.assign(user=ids, rating=np.tile([1.0, 1.5, 2.0], len(X))[:len(X)],
                 color=X["color"].astype(object).where(X["num_a"] > 0, ""))
    X_test = X_test.assign(user=np.where(np.arange(len(X_test)) % 3 == 0, big - 1, big),
                           rating=np.tile([1.0, 1.5, 2.5], len(X_test))[:len(X_test)])
    X_test.loc[:9, "color"] = ""  # a category of its own; None (rows 0-19) is missing
    labels = Y.astype(object).where(Y == 1, False).where(Y == 0, True)  # bool labels
    labels.loc[:99, "t2"] = None
    estimator = skmtl.SharedBottomClassifier(
        max_epochs=2, categorical_features=["color", "shop", "user", "rating"],
        categories={"rating": [1, 1.5, 2]}, random_state=0).fit(X, labels)
    assert estimator.classes_[0].tolist() == [False, True]
    model = to_onnx(estimator, X)
    assert_serves_predictions(estimator, model, X_test)
    assert run(model, X_test.head())["label_t1"].dtype == bool


@pytest.mark.parametrize("params", [{"numeric_encoding": "quantile"},
                                    {"numeric_encoding": "periodic"},
                                    {"bin_strategy": "quantile"}])
def test_a_numeric_range_wider_than_float64s_maximum(params):
    # knots 2e308 apart: a slope of 0 times a distance of inf gave NaN in the graph
    # (or an index out of bounds), where NumPy measures from the segment's end
    rng = np.random.default_rng(0)
    x = np.where(rng.normal(size=200) > 0, 1e308, -1e308)
    X = pd.DataFrame({"x": x, "y": rng.normal(size=200)})
    Y = pd.DataFrame({"a": (x > 0).astype(int), "b": np.arange(200) % 2})
    estimator = skmtl.MMOEClassifier(max_epochs=1, random_state=0, **params).fit(X, Y)
    inside = np.concatenate([np.linspace(-1.5e308, 0, 100), np.linspace(0, 1.5e308, 100)])
    served = X.assign(x=inside)
    assert_serves_predictions(estimator, to_onnx(estimator, X), served)


def test_uint64_categories_beyond_int64(data):
    X, Y, _, _, _ = data
    big = np.uint64(2 ** 64 - 1)
    ids = np.where(np.arange(len(X)) % 2 == 0, big, np.uint64(5))
    # a NumPy uint64 input holds them exactly
    exact = skmtl.SharedBottomClassifier(
        max_epochs=1, categorical_features=["color", "shop", "user"], random_state=0,
    ).fit(X.assign(user=ids), Y)
    assert_serves_predictions(exact, to_onnx(exact, X.assign(user=ids)), X.assign(user=ids))
    # a category column's double input cannot: refused (the check read the keys wrapped
    # round to int64, -1, and the export served those rows as unknown)
    as_category = X.assign(user=pd.Categorical(ids))
    model = skmtl.SharedBottomClassifier(max_epochs=1, random_state=0).fit(as_category, Y)
    with pytest.raises(ValueError, match="beyond 2\\*\\*53 \\(e.g. 18446744073709551615\\)"):
        to_onnx(model, as_category)


def test_onnx_inputs_refuse_what_predict_refuses(data):
    X, Y, _, _, _ = data
    X = X.assign(age=np.arange(len(X)) % 90)  # an int64 input
    estimator = skmtl.SharedBottomClassifier(max_epochs=1, random_state=0).fit(X, Y)
    model = to_onnx(estimator, X)
    with pytest.raises(ValueError, match=r"Numeric columns \['num_a'\] contain infinite"):
        onnx_inputs(model, X.assign(num_a=np.inf))
    passthrough = skmtl.SharedBottomClassifier(max_epochs=1, numeric_encoding="passthrough",
                                               random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match=r"\['num_a'\] contain infinite values or NaN"):
        onnx_inputs(to_onnx(passthrough, X), X.assign(num_a=np.nan))
    with pytest.raises(ValueError, match="'age' holds numbers that are not whole"):
        onnx_inputs(model, X.assign(age=50.9))
    # text in the int64 input: digits are the numbers predict reads, other text and bytes
    # are refused as predict refuses them (a bare TypeError of NumPy's before)
    as_text = X.assign(age=X["age"].astype(str))
    np.testing.assert_array_equal(onnx_inputs(model, as_text)["age"],
                                  onnx_inputs(model, X)["age"])
    for text, shown in ((["1", "x"], "'x'"), ([b"1", b"2"], "b'1'")):
        with pytest.raises(ValueError, match=f"'age' holds values that are not numbers .*"
                                             f"{shown}"):
            onnx_inputs(model, X.iloc[:2].assign(age=pd.Series(text, dtype=object).array))
    with pytest.raises(ValueError, match="'age' has missing values"):  # "NaN": as predict
        onnx_inputs(model, X.iloc[:2].assign(age=pd.Series(["NaN", "2"], dtype=object).array))
    # dates and durations, which numpy would make numbers (NaT a finite one)
    days = pd.Series(pd.date_range("2020-01-01", periods=len(X)))
    for dates in [days.astype(object).where(np.arange(len(X)) % 3 > 0, None), days,
                  days - days.iloc[0], np.array([np.datetime64("2020-01-01")] * len(X), object)]:
        with pytest.raises(ValueError, match="'num_a' holds values that are not numbers"):
            onnx_inputs(model, X.assign(num_a=np.asarray(dates) if isinstance(dates, np.ndarray)
                                        else dates.array))
    with pytest.raises(ValueError, match=r"Columns \['proba_t1'\] have the names"):
        to_onnx(skmtl.SharedBottomClassifier(max_epochs=1).fit(
            X.rename(columns={"num_b": "proba_t1"}), Y), X.rename(columns={"num_b": "proba_t1"}))
