"""Bad input, faults during training, and devices: clear errors, usable estimators."""

import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted

from skmtl import AITMClassifier, ESMMClassifier, MMOEClassifier, MMOERegressor
from skmtl._training import MultiTaskNet
from skmtl.exceptions import DivergenceError, TrainingInterruptedWarning
from skmtl.nn import MultiTaskLoss
from skmtl.nn.layers import batch_statistics

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=3, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")


# -- bad input ----------------------------------------------------------------------


def test_three_dimensional_input(tasks):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match="2-D X .* 3 dimension"):
        MMOEClassifier(**FAST).fit(np.zeros((10, 2, 2)), np.zeros(10))
    with pytest.raises(ValueError, match="Y must be 1-D .* 3 dimensions"):
        MMOEClassifier(**FAST).fit(X, np.zeros((len(X), 2, 2)))


def test_arrow_tables_are_read_as_dataframes(tasks):
    # np.asarray made a mixed table one object array: every column categorical, no names
    pa = pytest.importorskip("pyarrow")
    X, Y, _ = tasks
    from_arrow = MMOEClassifier(**FAST).fit(pa.table(X), pa.table(Y))
    from_pandas = MMOEClassifier(**FAST).fit(X, Y)
    assert list(from_arrow.feature_names_in_) == list(X.columns)
    assert from_arrow.task_names_ == list(Y.columns)
    np.testing.assert_array_equal(from_arrow._encoder.is_categorical_,
                                  from_pandas._encoder.is_categorical_)
    for a, b in zip(from_arrow.predict_proba(pa.table(X[:50])), from_pandas.predict_proba(X[:50])):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="must be in the same order as in fit"):
        from_arrow.predict(pa.table(X[X.columns[::-1]]))


def test_torch_tensors_are_read_as_arrays_and_lazy_frames_refused(tasks):
    # a tensor that requires grad (a feature another network computed) raised
    # torch's "Can't call numpy() on Tensor that requires grad"
    X, Y, _ = tasks
    numbers = X[["num_a", "num_b"]].to_numpy(np.float32).copy()
    features = torch.from_numpy(numbers).requires_grad_()
    labels = torch.from_numpy(Y.to_numpy().copy())
    model = MMOEClassifier(**FAST).fit(features, labels)
    expected = MMOEClassifier(**FAST).fit(numbers, Y.to_numpy())
    for a, b in zip(model.predict_proba(features), expected.predict_proba(numbers)):
        np.testing.assert_array_equal(a, b)

    class LazyFrame:  # polars' lazy query (polars is not a dependency)
        __module__ = "polars.lazyframe.frame"

        def collect(self):
            return X

    with pytest.raises(TypeError, match=r"X is a lazy frame \(polars.lazyframe.frame.LazyFrame"
                                        r"\), a query not yet run: pass X.collect\(\)"):
        model.predict(LazyFrame())
    with pytest.raises(TypeError, match=r"y is a lazy frame .* pass y.collect\(\)"):
        MMOEClassifier(**FAST).fit(X, LazyFrame())


def test_an_arrow_integer_column_with_nulls_keeps_its_integers(tasks):
    # to_pandas made it floats: every hashed id moved to another bucket
    pa = pytest.importorskip("pyarrow")
    X, Y, _ = tasks
    X = X.assign(user=np.arange(len(X)) % 13)
    model = MMOEClassifier(**FAST, hash_buckets={"user": 5},
                           categorical_features=["color", "shop", "user"]).fit(X, Y)
    rows = X[:50].assign(user=pd.array([None, *X["user"][1:50]], dtype="Int64"))
    # without pandas' metadata, as other writers make tables
    table = pa.Table.from_pandas(rows, preserve_index=False).replace_schema_metadata(None)
    assert table.schema.field("user").type == pa.int64() and table.column("user").null_count == 1
    for a, b in zip(model.predict_proba(table), model.predict_proba(X[:50])):
        np.testing.assert_array_equal(a[1:], b[1:])


def test_numpy_bytes_columns_of_a_dataframe_are_categories():
    X = pd.DataFrame(np.array([[b"a", b"x"], [b"b", b"y"]] * 50))
    y = np.array([0, 1] * 50)
    model = MMOEClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(model._encoder.transform(X)[0][:2], [[1, 1], [2, 2]])
    assert model.score(X, y) == 1.0


def test_sparse_input_is_refused_clearly(tasks):
    X, Y, _ = tasks
    matrix = sparse.csr_matrix(X[["num_a", "num_b"]].to_numpy())
    with pytest.raises(TypeError, match="sparse input; convert it with X.toarray"):
        MMOEClassifier(**FAST).fit(matrix, Y)
    model = MMOEClassifier(**FAST).fit(matrix.toarray(), Y)
    with pytest.raises(TypeError, match="sparse"):
        model.predict(matrix)


def test_length_mismatch_and_empty_input(tasks):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match="different numbers of samples: 2000 and 1999"):
        MMOEClassifier(**FAST).fit(X, Y.iloc[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        MMOEClassifier(**FAST).fit(X.iloc[:0], Y.iloc[:0])
    with pytest.raises(ValueError, match="0 feature"):
        MMOEClassifier(**FAST).fit(X.iloc[:, :0], Y)
    with pytest.raises(ValueError, match="requires y"):
        MMOEClassifier(**FAST).fit(X, None)


def test_continuous_labels(tasks):
    X, _, _ = tasks
    with pytest.raises(ValueError, match="continuous"):
        MMOEClassifier(**FAST).fit(X, np.linspace(0, 1, len(X)))
    # in an object array (Y.to_numpy() of a string and a float column) they were 2000 classes
    labels = pd.DataFrame({"clicked": np.where(X["num_a"] > 0, "yes", "no"),
                           "spend": np.linspace(0, 1, len(X))})
    with pytest.raises(ValueError, match="Labels of task 'task_1' are continuous"):
        MMOEClassifier(**FAST).fit(X, labels.to_numpy())
    with pytest.raises(ValueError, match="Labels of task 'spend' are continuous"):
        MMOEClassifier(**FAST).fit(X, labels.astype(object))
    # whole numbers among None in an object array are classes
    classes = labels.assign(spend=np.where(np.arange(len(X)) % 3, np.arange(len(X)) % 2, None))
    model = MMOEClassifier(**FAST).fit(X, classes.to_numpy())
    assert [len(c) for c in model.classes_] == [2, 2]
    with pytest.raises(ValueError, match="Labels of task 'task_0': Input contains infinity"):
        MMOEClassifier(**FAST).fit(X, np.where(X["num_a"] > 0, 1.0, np.inf))


def test_object_column_with_mixed_types_names_the_column(tasks):
    X, Y, _ = tasks
    X = X.assign(color=X["color"].astype(object))
    X.loc[5, "color"] = 7
    with pytest.raises(TypeError, match=r"'color' mixes value types \(number, string\)"):
        MMOEClassifier(**FAST).fit(X, Y)


def test_boolean_columns_are_accepted(tasks):
    X, Y, _ = tasks
    X = X.assign(flag=X["num_a"] > 0, maybe=(X["num_b"] > 0).astype(object))
    model = MMOEClassifier(**FAST).fit(X, Y)
    # a bool column is numeric (0/1); an object column of booleans is categorical
    assert list(model.is_categorical_[-2:]) == [False, True]
    assert np.all(np.isfinite(model.predict_proba(X)[0]))


def test_very_high_cardinality_categorical(tasks):
    X, Y, _ = tasks
    X = X.assign(user=[f"user-{i}" for i in range(len(X))])
    model = MMOEClassifier(**FAST).fit(X, Y)
    table = model.net_.module_.embedding.embedding
    n_codes = (4 + 1) + (30 + 1) + (len(X) + 1)
    assert table.num_embeddings == n_codes
    # one table of n_codes x embedding_dim floats: memory grows linearly, ~64 kB here
    assert table.weight.numel() == n_codes * model.embedding_dim
    unseen = X.assign(user=[f"new-{i}" for i in range(len(X))])
    assert np.all(np.isfinite(model.predict_proba(unseen)[1]))


def test_wrong_task_count_for_the_model(tasks):
    X, Y, funnel = tasks
    model = MMOEClassifier(warm_start=True, **FAST).fit(X, Y)
    with pytest.raises(ValueError, match="same tasks"):
        model.fit(X, Y.assign(t3=Y["t1"]))
    one = MMOEClassifier(warm_start=True, **FAST).fit(X, Y["t1"])  # a 1-D y: task 't1'
    with pytest.raises(ValueError, match="needs y shaped as in the fit it continues: a 1-D y, "
                                         "got a 2-D one"):
        one.fit(X, Y[["t1"]])
    with pytest.raises(ValueError, match="at least 2"):
        ESMMClassifier(**FAST).fit(X, funnel[["click"]])


def test_numeric_column_with_text_names_the_column(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    bad = X.assign(num_a=X["num_a"].astype(object))
    bad.loc[0, "num_a"] = "oops"
    with pytest.raises(ValueError, match=r"Numeric columns \['num_a'\] hold values"):
        model.predict(bad)


@pytest.mark.parametrize("device, message", [("gpu", "not a valid torch device"),
                                             ("cuda", "CUDA is not available"),
                                             ("meta", "'cpu' or 'cuda' devices, not 'meta'"),
                                             ("mps", "'cpu' or 'cuda' devices, not 'mps'")])
def test_unusable_device(tasks, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.fail("this test assumes a machine without CUDA")
    X, Y, _ = tasks
    with pytest.raises(ValueError, match=message):
        MMOEClassifier(device=device, **FAST).fit(X, Y)


@pytest.mark.parametrize("device", ["cpu:0", torch.device("cpu", 0)])
def test_an_indexed_cpu_device_pickles(tasks, device):
    # skorch restored the tensors onto "cpu:0", which torch cannot
    X, Y, _ = tasks
    model = MMOEClassifier(device=device, **FAST).fit(X, Y)
    restored = pickle.loads(pickle.dumps(model))
    for a, b in zip(restored.predict_proba(X[:20]), model.predict_proba(X[:20])):
        np.testing.assert_array_equal(a, b)


def test_unhashable_categories_name_the_column(tasks):
    X, Y, _ = tasks
    X = X.assign(tags=[["a", "b"]] * len(X))
    with pytest.raises(TypeError, match="'tags' holds values that cannot be categories"):
        MMOEClassifier(**FAST).fit(X, Y)


def test_nullable_labels_keep_their_type_and_score_leaves_missing_ones_out(tasks):
    X, Y, _ = tasks
    Y_nullable = Y.astype("Int64")
    Y_nullable.loc[::5, "t2"] = pd.NA
    model = MMOEClassifier(**FAST).fit(X, Y_nullable)
    assert [c.dtype.kind for c in model.classes_] == ["i", "i"]  # not floats
    Y_pred = model.predict(X)
    assert Y_pred.dtype == np.int64
    known = Y_nullable["t2"].notna().to_numpy()
    expected = np.mean((Y_pred[:, 0] == Y["t1"]) & ((Y_pred[:, 1] == Y["t2"]) | ~known))
    assert model.score(X, Y_nullable) == pytest.approx(expected)
    as_objects = Y_nullable.astype(object)  # pd.NA in object columns
    assert model.score(X, as_objects) == pytest.approx(expected)

    target = pd.Series(2.0 * X["num_a"], dtype=object)
    target[:10] = pd.NA
    regressor = MMOERegressor(**FAST).fit(X, target)
    r2 = 1 - (np.sum((regressor.predict(X)[10:] - target[10:].astype(float)) ** 2)
              / np.sum((target[10:].astype(float) - target[10:].astype(float).mean()) ** 2))
    assert regressor.score(X, target) == pytest.approx(r2)


def test_score_checks_y_against_the_model_and_x(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    with pytest.raises(ValueError, match=r"fitted on 2 task\(s\) \['t1', 't2'\]"):
        model.score(X, Y[["t1"]])
    with pytest.raises(ValueError, match="different numbers of samples: 2000 and 10"):
        model.score(X, Y.head(10))
    with pytest.raises(ValueError, match="sample_weight"):
        model.score(X, Y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="Every label in y is missing"):
        model.score(X, np.full(Y.shape, np.nan))
    # by position, each column was scored against the other task's predictions
    with pytest.raises(ValueError, match=r"name the fitted tasks \['t1', 't2'\] in another order"):
        model.score(X, Y[["t2", "t1"]])
    with pytest.raises(ValueError, match="another order"):
        model.score(X, Y.set_axis(["t2", "other"], axis=1))
    assert model.score(X, Y.set_axis(["a", "b"], axis=1)) == model.score(X, Y.to_numpy())
    regressor = MMOERegressor(**FAST).fit(X, X[["num_a", "num_b"]])
    with pytest.raises(ValueError, match=r"fitted on 2 task\(s\)"):
        regressor.score(X, X[["num_a", "num_b"]].assign(third=1.0))
    # labels read as numbers where the model learned strings (or the other way) equal no
    # class: an error, not an accuracy of 0
    text = MMOEClassifier(**FAST).fit(X, Y.astype(str))
    assert text.score(X, Y.astype(str)) > 0.5
    with pytest.raises(ValueError, match=r"task 't1' in y include [01] \(int\), but its classes "
                                         r"are strings \('0', '1'\)"):
        text.score(X, Y)
    with pytest.raises(ValueError, match=r"include '1' \(str\), but its classes are not"):
        model.score(X, Y.astype(object).assign(t2=Y["t2"].astype(str)))


def test_funnel_labels_given_as_strings(tasks):
    X, _, funnel = tasks
    with pytest.raises(ValueError, match="'click' holds strings"):
        ESMMClassifier(**FAST).fit(X, funnel.astype(str))
    as_booleans = funnel.astype(bool)
    model = ESMMClassifier(**FAST).fit(X, as_booleans)
    assert model.score(X, as_booleans) == model.score(X, funnel) > 0.5


def test_partial_fit_classes_given_in_the_wrong_form(tasks):
    X, Y, funnel = tasks
    X = X.astype({"color": "category", "shop": "category"})
    with pytest.raises(ValueError, match="one 1-D array of classes per task"):
        MMOEClassifier(**FAST).partial_fit(X, Y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \[2\] outside its classes \[0, 1\]"):
        MMOEClassifier(**FAST).partial_fit(X, Y.assign(t1=Y["t1"] * 2),
                                           classes=[[0, 1], [0, 1]])
    for classes in ([0, 1], [[0, 1]]):
        with pytest.raises(ValueError, match=r"one \[0, 1\] per stage \(2 stages\)"):
            ESMMClassifier(**FAST).partial_fit(X, funnel, classes=classes)


def test_partial_fit_chunk_without_labels_of_one_task_trains_the_others(tasks):
    X, Y, _ = tasks
    X = X.astype({"color": "category", "shop": "category"})
    model = MMOEClassifier(**FAST).partial_fit(X, Y)
    before = model.predict_proba(X)
    model.partial_fit(X[:500], Y[:500].astype(float).assign(t2=np.nan))
    after = model.predict_proba(X)
    assert not np.allclose(after[0], before[0])
    assert all(np.isfinite(p).all() for p in after)
    last = model.history_[-1]
    assert np.isnan(last["train_loss_t2"]) and last["train_loss"] == last["train_loss_t1"] > 0
    with pytest.raises(ValueError, match="Every label of task 't2' is missing"):
        MMOEClassifier(**FAST).partial_fit(X[:500], Y[:500].astype(float).assign(t2=np.nan))


@pytest.mark.parametrize("make", [lambda: MMOEClassifier(**FAST), lambda: MMOERegressor(**FAST),
                                  lambda: ESMMClassifier(**FAST),
                                  lambda: MMOEClassifier(loss_weighting="uncertainty", **FAST)])
def test_partial_fit_chunk_without_any_label_leaves_the_model(tasks, make):
    X, Y, funnel = tasks
    X = X.astype({"color": "category"})
    labels = funnel if isinstance(make(), ESMMClassifier) else Y.astype(float)
    model = make().partial_fit(X, labels)
    # batch normalisation's running statistics (the classifiers' default) learn from
    # the features, labels or not (docs/objectives.md); every weight stays
    statistics = set(batch_statistics(model.net_.module_))
    assert bool(statistics) == isinstance(model, MMOEClassifier)

    def weights():
        return {name: value.clone() for name, value in model.net_.module_.state_dict().items()
                if name not in statistics}

    before = weights()
    model.partial_fit(X[:500], labels[:500].astype(float) * np.nan)
    assert all(torch.equal(value, weights()[name]) for name, value in before.items())
    assert np.isnan(model.history_[-1]["train_loss"])
    # nor do labels on rows of weight 0 only
    chunk = labels[:500].astype(float)
    chunk.iloc[:250] = np.nan
    model.partial_fit(X[:500], chunk, sample_weight=np.repeat([1.0, 0.0], 250))
    assert all(torch.equal(value, weights()[name]) for name, value in before.items())


def test_partial_fit_chunk_without_labels_still_trains_aitms_calibrator(tasks):
    # the calibrator (p(stage k) <= p(stage k - 1)) teaches without labels: a step is taken
    X, _, funnel = tasks
    model = AITMClassifier(calibration_weight=0.0, **FAST).fit(X, funnel)
    model.set_params(calibration_weight=5.0)
    before = copy.deepcopy(model.net_.module_.state_dict())
    model.partial_fit(X[:500], funnel[:500].astype(float) * np.nan)
    assert not all(torch.equal(value, model.net_.module_.state_dict()[name])
                   for name, value in before.items())


@pytest.mark.parametrize("cls", [MMOEClassifier, ESMMClassifier])
def test_partial_fit_first_chunk_without_a_class_does_not_start_certain(tasks, cls):
    # the class's frequency in the first chunk is 0: no prior, rather than p = 1e-6
    X, Y, funnel = tasks
    X = X.astype({"color": "category"})
    labels = (funnel if cls is ESMMClassifier else Y).copy()
    labels.iloc[:, 1] = 0
    model = cls(**FAST).partial_fit(X[:300], labels[:300], classes=[[0, 1], [0, 1]])
    assert model.predict_proba(X)[1][:, 1].mean() > 1e-3


def test_partial_fit_first_chunk_without_a_tasks_labels_given_the_classes(tasks):
    # a task labelled on a few rows: whether fit_parquet's first shuffled frame had one
    # decided whether it fitted ("Every label of task 't2' is missing")
    X, Y, _ = tasks
    X = X.astype({"color": "category"})
    unlabelled = Y.astype(float).assign(t2=np.nan)
    with pytest.raises(ValueError, match="Every label of task 't2' is missing"):
        MMOEClassifier(**FAST).partial_fit(X[:300], unlabelled[:300])
    with pytest.raises(ValueError, match="Every label of task 't2' is missing"):
        MMOERegressor(**FAST).partial_fit(X[:300], unlabelled[:300], classes=None)
    model = MMOEClassifier(**FAST).partial_fit(X[:300], unlabelled[:300],
                                               classes=[[0, 1], [0, 1]])
    assert model.predict_proba(X)[1][:, 1].mean() == pytest.approx(0.5, abs=0.2)
    model.partial_fit(X[300:], Y[300:])
    assert roc_auc_score(Y["t2"], model.predict_proba(X)[1][:, 1]) > 0.6
    # no task labelled at all: the target bins fall back to quantile bins (the trees
    # had no target column: "Found array with 0 feature(s)")
    none = MMOEClassifier(**FAST).partial_fit(X[:300], Y[:300].astype(float) * np.nan,
                                              classes=[[0, 1], [0, 1]])
    assert none.numeric_encoding_ == "piecewise_linear"
    assert all(n > 1 for n in none._encoder.numeric_.n_bins_)
    none.partial_fit(X[300:], Y[300:])
    assert roc_auc_score(Y["t1"], none.predict_proba(X)[0][:, 1]) > 0.6


def test_a_class_without_weight_leaves_the_other_tasks_prior(tasks):
    # a rare class of t1 whose one row weighs 0 (or went to the validation rows): t1 starts
    # neutral, t2 at its base rate
    X, Y, _ = tasks
    Y = Y.assign(t2=(np.random.default_rng(1).random(len(Y)) < 0.05).astype(int))
    Y.iloc[6, 0] = 2
    model = MMOEClassifier(max_epochs=1, learning_rate=1e-12, early_stopping=False,
                           random_state=0)
    model.fit(X, Y, sample_weight=np.where(np.arange(len(X)) == 6, 0.0, 1.0))
    assert model.predict_proba(X)[1][:, 1].mean() == pytest.approx(Y["t2"].mean(), abs=0.01)
    assert model.predict_proba(X)[0][:, 2].mean() > 0.1


def test_bad_labels_at_warm_start(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(warm_start=True, **FAST).fit(X, Y)
    with pytest.raises(ValueError, match=r"labels \[7\] outside its classes"):
        model.fit(X, Y.assign(t2=np.where(Y["t2"] == 1, 7, 0)))


# -- faults during training ---------------------------------------------------------------


def test_divergence_raises_and_leaves_no_fitted_model(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(learning_rate=1e12, **FAST)
    with pytest.raises(DivergenceError, match=r"task\(s\) \[.+\] became NaN"):
        model.fit(X, Y)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)


def test_divergence_in_the_last_step_is_caught(tasks):
    X, Y, _ = tasks
    X = X.astype({"color": "category", "shop": "category"})
    # one step: the loss (before the step) is finite, the weights after it are not usable
    for fit in (lambda m: m.fit(X, Y), lambda m: m.partial_fit(X, Y)):
        model = MMOEClassifier(learning_rate=1e10, max_epochs=1, batch_size=len(X),
                               random_state=0)
        with pytest.raises(DivergenceError, match="outputs became NaN or infinite after the "
                                                  "last step of epoch 1"):
            fit(model)
        with pytest.raises(NotFittedError):
            check_is_fitted(model)


def test_labels_of_mixed_or_other_types(tasks):
    X, Y, _ = tasks
    mixed = Y.astype(object)
    mixed.loc[:99, "t1"] = mixed.loc[:99, "t1"].map({0: "a", 1: "b"})
    with pytest.raises(ValueError, match=r"task 't1' mix types that cannot be compared "
                                         r"\(int, str\)"):
        MMOEClassifier(**FAST).fit(X, mixed)
    with pytest.raises(ValueError, match=r"task 't1' are bytes; decode them"):
        MMOEClassifier(**FAST).fit(X, Y.assign(t1=np.where(Y["t1"] == 1, b"yes", b"no")))
    words = Y.assign(t1=np.where(Y["t1"] == 1, "yes", "no"))
    model = MMOEClassifier(**FAST, warm_start=True).fit(X, Y)
    with pytest.raises(ValueError, match=r"'t1' has labels of another type than its classes"):
        model.fit(X, words)


def test_task_weights_by_integer_column_names(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, task_weights={0: 2.0}).fit(X, Y.set_axis([0, 1], axis=1))
    assert model.history_[-1]["task_weight_0"] == 1.0  # the ratios: divided by the largest
    assert model.history_[-1]["task_weight_1"] == 0.5


def test_divergence_names_the_task(tasks, monkeypatch):
    X, Y, _ = tasks
    forward = MultiTaskLoss.forward

    def second_task_diverges(self, logits, target, sample_weight=None):
        losses = forward(self, logits, target, sample_weight)
        return losses * torch.tensor([1.0, float("nan")])

    monkeypatch.setattr(MultiTaskLoss, "forward", second_task_diverges)
    with pytest.raises(DivergenceError, match=r"task\(s\) \['t2'\]"):
        MMOEClassifier(**FAST).fit(X, Y)


def test_divergence_during_warm_start_keeps_the_previous_model(tasks, holdout):
    X, Y, _ = tasks
    model = MMOEClassifier(warm_start=True, **FAST).fit(X, Y)
    before = model.predict_proba(holdout[0])
    model.set_params(learning_rate=1e12)
    model.net_.set_params(lr=1e12)
    with pytest.raises(DivergenceError):
        model.fit(X, Y)
    for a, b in zip(before, model.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)
    assert model.n_iter_ == 3 and len(model.history_) == 3


def _interrupt_after(monkeypatch, n_steps):
    train_step = MultiTaskNet.train_step
    calls = {"n": 0}

    def interrupting_step(self, batch, **fit_params):
        calls["n"] += 1
        if calls["n"] > n_steps:
            raise KeyboardInterrupt
        return train_step(self, batch, **fit_params)

    monkeypatch.setattr(MultiTaskNet, "train_step", interrupting_step)


def test_keyboard_interrupt_keeps_best_weights(tasks, monkeypatch, validation_sets):
    X, Y, _ = tasks
    # 2000 rows at 64 per batch: 29 training steps per epoch; stop inside epoch 6.
    _interrupt_after(monkeypatch, 29 * 5 + 10)
    model = MMOEClassifier(early_stopping=True, max_epochs=50, batch_size=64,
                           learning_rate=0.05, n_iter_no_change=50, random_state=0)
    with pytest.warns(TrainingInterruptedWarning, match="after 5 complete epoch"):
        model.fit(X, Y)
    assert model.n_iter_ == 5
    assert all("valid_loss" in row for row in model.history_)
    # the fitted model does not keep the validation rows (nor pickle them)
    assert model.net_.train_split is None
    (valid,) = validation_sets
    with torch.no_grad():
        features, (target, _) = valid.batch(slice(None))
        loss = model.net_.criterion_(model.net_.module_.eval()(**features), target).sum()
    assert loss.item() == pytest.approx(min(model.history_[:, "valid_loss"]), rel=1e-4)
    assert np.all(np.isfinite(model.predict_proba(X)[0]))


def test_keyboard_interrupt_when_the_best_epoch_is_the_last_complete_one(
        tasks, monkeypatch, validation_sets):
    # a small learning rate: every epoch improves, so the best is the last complete one,
    # and the epoch cut short must not leave its weights in the model
    X, Y, _ = tasks
    _interrupt_after(monkeypatch, 29 * 2 + 10)
    model = MMOEClassifier(early_stopping=True, max_epochs=50, batch_size=64,
                           learning_rate=1e-3, n_iter_no_change=50, random_state=0)
    with pytest.warns(TrainingInterruptedWarning, match="after 2 complete epoch.*best weights"):
        model.fit(X, Y)
    assert np.argmin(model.history_[:, "valid_loss"]) == 1
    (valid,) = validation_sets
    with torch.no_grad():
        features, (target, _) = valid.batch(slice(None))
        loss = model.net_.criterion_(model.net_.module_.eval()(**features), target).sum()
    assert loss.item() == pytest.approx(model.history_[-1, "valid_loss"], rel=1e-5)


def test_keyboard_interrupt_in_the_first_epoch_keeps_a_usable_model(tasks, monkeypatch):
    X, Y, _ = tasks
    _interrupt_after(monkeypatch, 3)
    model = MMOEClassifier(early_stopping=True, max_epochs=5, batch_size=64, random_state=0)
    with pytest.warns(TrainingInterruptedWarning, match="after 0 complete epoch.*latest weights"):
        model.fit(X, Y)
    assert model.n_iter_ == 0 and np.all(np.isfinite(model.predict_proba(X)[0]))
    # a warm fit counts its own epochs
    monkeypatch.undo()
    model.set_params(warm_start=True, max_epochs=2).fit(X, Y)
    _interrupt_after(monkeypatch, 29 + 5)
    with pytest.warns(TrainingInterruptedWarning, match="after 1 complete epoch"):
        model.fit(X, Y)
    assert model.n_iter_ == 3


def test_early_stopping_is_not_reported_as_an_interrupt(tasks, recwarn):
    X, Y, _ = tasks
    model = MMOEClassifier(early_stopping=True, n_iter_no_change=1, max_epochs=50,
                           learning_rate=0.05, random_state=0).fit(X, Y)
    assert model.n_iter_ < 50
    assert not [w for w in recwarn if issubclass(w.category, TrainingInterruptedWarning)]


def test_model_trained_on_cuda_loads_on_cpu(tasks, holdout, tmp_path):
    # No GPU here: mark a CPU-trained model as trained on "cuda" the way a GPU
    # fit leaves it, then load it on this machine.
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    expected = model.predict_proba(holdout[0])
    model.set_params(device="cuda")
    model.net_.device = "cuda"
    joblib.dump(model, tmp_path / "gpu.joblib")
    if torch.cuda.is_available():
        pytest.fail("this test assumes a machine without CUDA")
    with pytest.warns(UserWarning, match="CUDA"):
        loaded = joblib.load(tmp_path / "gpu.joblib")
    for a, b in zip(expected, loaded.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)
    assert loaded.device == "cpu"
    loaded.partial_fit(X, Y)  # trains on, where the network now is
    model.save(tmp_path / "gpu.skmtl")
    from skmtl import load
    with pytest.warns(UserWarning, match="trained on cuda, but CUDA is not available here"):
        loaded = load(tmp_path / "gpu.skmtl")
    assert loaded.net_.device == torch.device("cpu") and loaded.device == "cpu"
    for a, b in zip(expected, loaded.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)
    loaded.partial_fit(X, Y)
    model.set_params(device="cpu").save(tmp_path / "cpu.skmtl")
    with pytest.warns(UserWarning, match="device='cuda' was asked for, but CUDA is not"):
        load(tmp_path / "cpu.skmtl", device="cuda")
    with pytest.raises(ValueError, match="device='bogus' is not a valid torch device"):
        load(tmp_path / "cpu.skmtl", device="bogus")


def test_aitm_stays_finite_for_numbers_far_beyond_the_fitted_range(tasks):
    # its attention scores are products of two projections: for inputs of about 1e20 they
    # overflowed, inf - inf made the conversion stage NaN, and predict turned NaN into 0
    X, _, funnel = tasks
    model = AITMClassifier(**{**FAST, "numeric_encoding": "standard"}).fit(X, funnel)
    far = X.head(3).copy()
    far.loc[far.index[0], "num_a"] = 1e25
    far.loc[far.index[1], "num_b"] = -1e30
    for proba in model.predict_proba(far):
        assert np.isfinite(proba).all()
    model.predict(far)


def test_a_non_finite_output_at_predict_is_a_clear_error(tasks, monkeypatch):
    # (a network that overflows on some rows, such as PLE with batch_norm=True on a
    # standardised value of 3e38, still inside float32's range)
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    forward = type(model.net_.module_).forward

    def overflowing(module, categorical, numeric, **kwargs):
        logits = forward(module, categorical, numeric, **kwargs)
        return [logit.index_fill(0, torch.tensor([1]), torch.nan) for logit in logits]

    monkeypatch.setattr(type(model.net_.module_), "forward", overflowing)
    with pytest.raises(ValueError, match=r"NaN or infinite for 1 row\(s\) of X \(the first: "
                                         r"row 1\)"):
        model.predict_proba(X.head(10))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(X.head(10))
