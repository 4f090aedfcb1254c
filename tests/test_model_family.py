"""The model family: every estimator's contract, per-task towers, gate weights, regressors, AITM."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import make_column_transformer
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

import skmtl
from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, MMOERegressor,
                   OMOEClassifier, OMOERegressor, PLEClassifier, PLERegressor,
                   SharedBottomClassifier, SharedBottomRegressor)
from skmtl import _base as skmtl_base
from skmtl import _predict as skmtl_predict
from skmtl._base import MultiTaskRegressorBase
from skmtl._funnel import FunnelClassifierBase
from skmtl.datasets import make_entire_space

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=3, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")
TASK_CLASSIFIERS = [MMOEClassifier, OMOEClassifier, PLEClassifier, SharedBottomClassifier]
FUNNELS = [ESMMClassifier, AITMClassifier]
REGRESSORS = [MMOERegressor, OMOERegressor, PLERegressor, SharedBottomRegressor]
ALL = TASK_CLASSIFIERS + FUNNELS + REGRESSORS
GATED = [MMOEClassifier, OMOEClassifier, PLEClassifier, MMOERegressor, OMOERegressor,
         PLERegressor]


def _regression_targets(X, seed=0):
    """Two real targets on very different scales, driven by the features of ``make_tasks``."""
    rng = np.random.default_rng(seed)
    shop = X["shop"].to_numpy(int)
    spend = (1000.0 + 300.0 * X["num_a"] + np.where(X["color"] == "red", 400.0, 0.0)
             + 50.0 * rng.normal(size=len(X)))
    minutes = 0.01 * np.sin(X["num_b"] / 4.0) + 0.002 * (shop % 3) + 0.001 * rng.normal(
        size=len(X))
    return pd.DataFrame({"spend": spend, "minutes": minutes})


def _data(cls, data):
    X, Y, funnel = data
    if issubclass(cls, MultiTaskRegressorBase):
        return X, _regression_targets(X)
    return X, (funnel if issubclass(cls, FunnelClassifierBase) else Y)


def _outputs(model, X):
    """Every prediction the model offers, as a flat list of arrays."""
    if isinstance(model, MultiTaskRegressorBase):
        outputs = [model.predict(X)]
    else:
        outputs = list(model.predict_proba(X)) + [model.predict(X)]
    if isinstance(model, FunnelClassifierBase):
        outputs += list(model.predict_conditional_proba(X))
    if hasattr(model, "gate_weights"):
        weights = model.gate_weights(X)
        outputs += weights if isinstance(weights, list) else [weights]
    return outputs


@pytest.fixture(scope="module")
def fitted(tasks):
    """One small fitted model of every estimator, by class."""
    return {cls: cls(**FAST).fit(*_data(cls, tasks)) for cls in ALL}


# -- learning ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", TASK_CLASSIFIERS[1:], ids=lambda c: c.__name__)
def test_classifiers_learn_every_task(cls, tasks, holdout):
    X, Y = _data(cls, tasks)
    X_test, Y_test = _data(cls, holdout)
    model = cls(max_epochs=15, random_state=0).fit(X, Y)
    aucs = [roc_auc_score(Y_test[name], p[:, 1])
            for name, p in zip(Y.columns, model.predict_proba(X_test))]
    assert min(aucs) > 0.75, aucs


@pytest.mark.parametrize("cls", REGRESSORS, ids=lambda c: c.__name__)
def test_regressors_learn_every_target_on_its_own_scale(cls, tasks, holdout):
    X, Y = _data(cls, tasks)
    X_test, Y_test = _data(cls, holdout)
    model = cls(max_epochs=15, random_state=0).fit(X, Y)
    Y_pred = model.predict(X_test)
    assert Y_pred.shape == Y_test.shape and Y_pred.dtype == np.float64
    r2 = r2_score(Y_test, Y_pred, multioutput="raw_values")
    assert np.all(r2 > 0.6), r2
    # predictions are mapped back to each target's scale
    np.testing.assert_allclose(Y_pred.mean(axis=0), Y_test.mean(axis=0), rtol=0.05)
    assert model.score(X_test, Y_test) == pytest.approx(r2.mean())


def test_aitm_learns_the_funnel_and_calibrates_it(tasks, holdout):
    X, _, funnel = tasks
    X_test, Y_test, funnel_test = holdout
    model = AITMClassifier(max_epochs=15, random_state=0).fit(X, funnel)
    reach = model.predict_proba(X_test)
    conditional = model.predict_conditional_proba(X_test)
    assert roc_auc_score(funnel_test["click"], reach[0][:, 1]) > 0.8
    assert roc_auc_score(funnel_test["conversion"], reach[1][:, 1]) > 0.75
    assert roc_auc_score(Y_test["t2"], conditional[1][:, 1]) > 0.65
    # the conditional probability is the ratio of the entire-space ones, at most 1
    ratio = np.minimum(reach[1][:, 1] / reach[0][:, 1], 1.0)
    np.testing.assert_allclose(conditional[1][:, 1], ratio, rtol=1e-5)
    np.testing.assert_allclose(conditional[0], reach[0])


def test_aitm_calibrator_penalises_a_later_stage_above_the_earlier(tasks):
    X, _, funnel = tasks

    def violations(weight):
        model = AITMClassifier(calibration_weight=weight, max_epochs=10, random_state=0)
        reach = model.fit(X, funnel).predict_proba(X)
        return np.mean(np.maximum(reach[1][:, 1] - reach[0][:, 1], 0.0))

    assert violations(20.0) < 0.5 * violations(0.0)


def test_aitm_takes_large_sample_weights_whose_losses_sum_beyond_float32():
    # the calibrator's penalty is a weighted sum: a finite step loss of 1e19 times
    # a batch's weight of 1e22 overflowed the epoch's float32 total ("task(s) []
    # became NaN or infinite")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"c": rng.choice(list("abc"), 200), "x": rng.normal(size=200)})
    click = rng.integers(0, 2, 200)
    # nearly every click buys: both stages start at about the same rate (the outputs
    # start at the label frequencies), so rows above their click probability abound
    funnel = pd.DataFrame({"click": click, "buy": click * (rng.integers(0, 50, 200) > 0)})
    model = AITMClassifier(max_epochs=1, learning_rate=1e-12, random_state=0,
                           numeric_encoding="piecewise_linear")  # (whose start has such rows)
    model.fit(X, funnel, sample_weight=np.full(200, 1e20))
    assert 1e18 < model.history_[-1, "train_loss"] < np.inf


def test_aitm_loss_adds_the_calibration_to_the_later_stage():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    without = skmtl.nn.AITMLoss(0.0)(logits, target)
    with_penalty = skmtl.nn.AITMLoss(0.5)(logits, target)
    excess = torch.sigmoid(torch.tensor(2.0)) - 0.5   # only row 0 violates; summed over rows
    torch.testing.assert_close(with_penalty - without, torch.tensor([0.0, 0.5 * excess]))
    weighted = skmtl.nn.AITMLoss(0.5)(logits, target, torch.tensor([3.0, 1.0]))
    unweighted_bce = skmtl.nn.AITMLoss(0.0)(logits, target, torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(weighted - unweighted_bce, torch.tensor([0.0, 1.5 * excess]))


def test_four_stage_funnel(tasks):
    X, Y, _ = tasks
    stage_3 = Y["t1"] * Y["t2"] * (X["num_a"] > 0)
    funnel = pd.DataFrame({"view": Y["t1"] | Y["t2"], "click": Y["t1"], "cart": Y["t1"] * Y["t2"],
                           "buy": stage_3.astype(int)})
    for cls in FUNNELS:
        model = cls(**FAST).fit(X, funnel)
        reach = np.column_stack([p[:, 1] for p in model.predict_proba(X)])
        conditional = np.column_stack([p[:, 1] for p in model.predict_conditional_proba(X)])
        assert reach.shape == (len(X), 4) and np.all((conditional >= 0) & (conditional <= 1))
        if cls is ESMMClassifier:
            np.testing.assert_allclose(reach, np.cumprod(conditional, axis=1), rtol=1e-5)


# -- the shared contract, for every estimator ----------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_save_load_joblib_and_reproducibility(cls, fitted, tasks, holdout, tmp_path):
    model = fitted[cls]
    X_test = holdout[0]
    expected = _outputs(model, X_test)
    model.save(tmp_path / "model.skmtl")
    loaded = skmtl.load(tmp_path / "model.skmtl")
    assert type(loaded) is cls and loaded.get_params() == model.get_params()
    joblib.dump(model, tmp_path / "model.joblib")
    for other in (loaded, joblib.load(tmp_path / "model.joblib"),
                  cls(**FAST).fit(*_data(cls, tasks))):   # same random_state, same model
        for a, b in zip(expected, _outputs(other, X_test)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_warm_start_early_stopping_and_history(cls, tasks):
    X, Y = _data(cls, tasks)
    model = cls(warm_start=True, early_stopping=True, max_epochs=2, batch_size=256,
                random_state=0).fit(X, Y)
    metric = "r2" if issubclass(cls, MultiTaskRegressorBase) else "auc"
    assert {f"valid_{metric}_{task}" for task in Y.columns} <= set(model.history_[-1])
    assert {f"train_loss_{task}" for task in Y.columns} <= set(model.history_[-1])
    before = _outputs(model, X)
    model.fit(X, Y)
    assert model.n_iter_ == 4
    assert any(not np.array_equal(a, b) for a, b in zip(before, _outputs(model, X)))
    with pytest.raises(ValueError, match="warm_start"):
        model.set_params(tower_units=(7,)).fit(X, Y)


@pytest.mark.parametrize("cls", [MMOEClassifier, OMOERegressor, PLERegressor,
                                 SharedBottomClassifier, ESMMClassifier, AITMClassifier],
                         ids=lambda c: c.__name__)   # each network once
def test_batch_norm_trains_saves_and_warm_starts(cls, tasks, holdout, tmp_path):
    X, Y = _data(cls, tasks)
    X, Y = X.iloc[:1025], Y.iloc[:1025]   # the last batch of 128 holds one row
    model = cls(**FAST, batch_norm=True, warm_start=True).fit(X, Y)
    norms = [m for m in model.net_.module_.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and all(int(m.num_batches_tracked) > 0 for m in norms)
    assert not any(isinstance(m, torch.nn.BatchNorm1d)
                   for m in cls(**FAST, batch_norm=False).fit(X, Y).net_.module_.modules())
    expected = _outputs(model, holdout[0])
    model.save(tmp_path / "model.skmtl")
    for a, b in zip(expected, _outputs(skmtl.load(tmp_path / "model.skmtl"), holdout[0])):
        np.testing.assert_array_equal(a, b)
    model.fit(X, Y)    # warm: on from the saved statistics
    assert model.n_iter_ == 6
    with pytest.raises(ValueError, match="warm_start"):
        model.set_params(batch_norm=False).fit(X, Y)
    model.set_params(batch_norm=True, warm_start=False).partial_fit(X.iloc[:1], Y.iloc[:1])


def test_models_pickled_before_batch_norm_predict_save_and_train_on(tasks, holdout, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, batch_norm=False, warm_start=True).fit(X, Y)
    expected = model.predict_proba(holdout[0])
    # what a model pickled (joblib) before the parameter holds: no batch_norm anywhere
    del model.__dict__["batch_norm"], model._fitted_network_params["batch_norm"]
    del model.net_.module_.experts.__dict__["norms"]
    old = pickle.loads(pickle.dumps(model))
    assert old.get_params()["batch_norm"] is False
    for a, b in zip(old.predict_proba(holdout[0]), expected):
        np.testing.assert_array_equal(a, b)
    old.save(tmp_path / "old.skmtl")
    assert skmtl.load(tmp_path / "old.skmtl").batch_norm is False
    old.fit(X, Y)   # warm: the network it has
    assert old.n_iter_ == 6


@pytest.mark.parametrize("cls", TASK_CLASSIFIERS + REGRESSORS, ids=lambda c: c.__name__)
def test_pipeline_with_column_transformer(cls, tasks):
    X, Y = _data(cls, tasks)
    categorical = ["color", "shop"]
    pre = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical),
        (StandardScaler(), ["num_a", "num_b"]),
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(pre, cls(categorical_features=categorical,
                                  **{**FAST, "numeric_encoding": "passthrough"})).fit(X, Y)
    assert list(pipe[-1].is_categorical_) == [True, True, False, False]
    unseen = X.assign(color="ultraviolet")
    predictions = (pipe.predict(unseen) if issubclass(cls, MultiTaskRegressorBase)
                   else np.column_stack(pipe.predict_proba(unseen)))
    assert np.all(np.isfinite(predictions))


def test_grid_search_swaps_models_by_roc_auc(tasks):
    X, Y, _ = tasks
    pipe = Pipeline([("model", MMOEClassifier())])
    grid = {"model": [cls(max_epochs=2, random_state=0) for cls in TASK_CLASSIFIERS]}
    search = GridSearchCV(pipe, grid, scoring="roc_auc", cv=2).fit(X, Y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all((scores > 0.6) & (scores <= 1.0))
    assert type(search.best_params_["model"]) in TASK_CLASSIFIERS


def test_grid_search_regressors_by_r2(tasks):
    X, _, _ = tasks
    Y = _regression_targets(X)
    grid = {"model": [cls(max_epochs=2, random_state=0) for cls in REGRESSORS]}
    search = GridSearchCV(Pipeline([("model", MMOERegressor())]), grid, scoring="r2",
                          cv=2).fit(X, Y)
    assert np.all(search.cv_results_["mean_test_score"] > 0.0)


def test_cross_val_predict(tasks):
    X, Y, funnel = tasks
    Y_reg = _regression_targets(X)
    Y_pred = cross_val_predict(PLERegressor(**FAST), X, Y_reg, cv=3)
    assert Y_pred.shape == Y_reg.shape and r2_score(Y_reg, Y_pred) > 0.2
    probas = cross_val_predict(AITMClassifier(**FAST), X, funnel, cv=3, method="predict_proba")
    assert [p.shape for p in probas] == [(len(X), 2), (len(X), 2)]
    labels = cross_val_predict(SharedBottomClassifier(**FAST), X, Y, cv=3)
    assert labels.shape == Y.shape


# -- per-task towers ----------------------------------------------------------------------


def _tower_widths(module):
    """Hidden widths of each task's tower, read from its Linear layers."""
    towers = module.towers
    widths = [tuple(layer.out_features for layer in tower if isinstance(layer, torch.nn.Linear))
              for tower in towers]
    # the task towers end in their output layer; AITM's stage towers do not
    return [w[:-1] for w in widths] if isinstance(towers, skmtl.nn.TaskTowers) else widths


@pytest.mark.parametrize("cls", TASK_CLASSIFIERS + [ESMMClassifier] + REGRESSORS,
                         ids=lambda c: c.__name__)
def test_tower_units_one_for_all_a_list_or_a_dict(cls, tasks):
    X, Y = _data(cls, tasks)
    first, second = Y.columns
    for tower_units, expected in [((16,), [(16,), (16,)]),
                                  ([(16, 8), ()], [(16, 8), ()]),
                                  ({second: (4,), first: (32, 16)}, [(32, 16), (4,)])]:
        model = cls(tower_units=tower_units, max_epochs=1, random_state=0).fit(X, Y)
        assert _tower_widths(model.net_.module_) == expected


def test_aitm_towers_per_stage(tasks):
    X, _, funnel = tasks
    model = AITMClassifier(tower_units={"click": (8,), "conversion": (16, 4)}, max_epochs=1,
                           random_state=0).fit(X, funnel)
    assert _tower_widths(model.net_.module_) == [(8,), (16, 4)]


@pytest.mark.parametrize("tower_units, message", [
    ({"t1": (8,)}, r"missing \['t2'\]"),
    ({"t1": (8,), "t2": (8,), "t3": (8,)}, r"unknown \['t3'\]"),
    ([(8,), (8,), (8,)], "3 towers, one per task, but y has 2"),
    ([(8,), 8], "tower_units must be"),
    ({"t1": (0,), "t2": (8,)}, "integers from 1 to"),
    ("wide", "tower_units"),
])
def test_bad_tower_units(tasks, tower_units, message):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match=message):
        MMOEClassifier(tower_units=tower_units, **FAST).fit(X, Y)


def test_tower_units_dict_survives_save_and_warm_start(tasks, tmp_path):
    X, Y, _ = tasks
    model = PLEClassifier(tower_units={"t1": [16, 8], "t2": [4]}, warm_start=True,
                          **FAST).fit(X, Y)
    model.save(tmp_path / "m.skmtl")
    loaded = skmtl.load(tmp_path / "m.skmtl")
    assert loaded.tower_units == {"t1": (16, 8), "t2": (4,)}
    loaded.fit(X, Y)   # the same towers, written as tuples: no change
    assert loaded.n_iter_ == 2 * FAST["max_epochs"]


# -- gate weights --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", GATED, ids=lambda c: c.__name__)
def test_gate_weights_shapes_and_sums(cls, fitted, holdout):
    model = fitted[cls]
    X = holdout[0]
    weights = model.gate_weights(X)
    if cls in (PLEClassifier, PLERegressor):
        n_experts = model.n_shared_experts + 2 * model.n_task_experts
        assert [w.shape for w in weights] == [(len(X), 3, n_experts), (len(X), 2, n_experts)]
        last = weights[-1]
        # task 0's gate sees the shared experts and its own, not task 1's
        assert np.all(last[:, 0, 4:] == 0) and np.all(last[:, 1, 2:4] == 0)
        assert np.all(last[:, 0, :4] > 0)
    else:
        n_gates = 1 if cls in (OMOEClassifier, OMOERegressor) else 2
        weights = [weights]
        assert weights[0].shape == (len(X), n_gates, model.n_experts)
    for w in weights:
        assert w.dtype == np.float64
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-6)


def test_gate_weights_are_batched(fitted, holdout, monkeypatch):
    X = holdout[0]
    expected = fitted[PLEClassifier].gate_weights(X)
    monkeypatch.setattr(skmtl_predict, "PREDICT_BLOCK_SIZE", 300)
    monkeypatch.setattr(skmtl_base, "PREDICT_BATCH_SIZE", 64)
    for a, b in zip(expected, fitted[PLEClassifier].gate_weights(X)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not hasattr(fitted[ESMMClassifier], "gate_weights")
    assert not hasattr(fitted[SharedBottomClassifier], "gate_weights")
    with pytest.raises(NotFittedError):
        MMOEClassifier().gate_weights(X)


def test_gate_weights_follow_the_module(fitted, holdout):
    model = fitted[MMOEClassifier]
    X = holdout[0].iloc[:10]
    categorical, numeric = model._encoder.transform(X)
    with torch.no_grad():
        direct = model.net_.module_.gate_weights(torch.from_numpy(categorical).long(),
                                                 torch.from_numpy(numeric))
    np.testing.assert_allclose(model.gate_weights(X), direct.numpy(), rtol=1e-6)


# -- regression targets ------------------------------------------------------------------


@pytest.mark.parametrize("bad, message", [
    (["a", "b"], "not numeric"),
    (["1.5", "2"], "not numeric"),
    (pd.Categorical(["low", "high"]), "categorical"),
    (pd.Categorical([1, 2]), "categorical"),
    ([np.inf, 1.0], "infinite"),
])
def test_regressor_rejects_targets_it_cannot_fit(tasks, bad, message):
    X = tasks[0].iloc[:200]
    y = pd.Series(np.resize(np.asarray(bad, dtype=object), 200))
    if isinstance(bad, pd.Categorical):
        y = pd.Series(pd.Categorical(np.resize(np.asarray(bad), 200)))
    with pytest.raises(ValueError, match=message):
        MMOERegressor(**FAST).fit(X, y)


def test_regressor_names_dates_as_targets(tasks):
    X = tasks[0].iloc[:200]
    for y in (pd.Series(pd.date_range("2020-01-01", periods=200)),
              pd.Series(pd.to_timedelta(np.arange(200), unit="s"))):
        with pytest.raises(ValueError, match="are dates or durations"):
            MMOERegressor(**FAST).fit(X, y)


def test_regressor_1d_target_and_constant_target(tasks):
    X = tasks[0]
    y = _regression_targets(X)["spend"]
    model = SharedBottomRegressor(**FAST).fit(X, y)
    assert model.predict(X).shape == (len(X),)
    constant = SharedBottomRegressor(**FAST).fit(X, np.full(len(X), 7.5))
    np.testing.assert_allclose(constant.predict(X), 7.5, atol=0.1)
    # constant at first, varying later: the first scaling (1) serves the later targets too
    X = X.astype({"color": "category"})
    y = np.where(np.arange(len(X)) < 300, 1e-20, _regression_targets(X)["spend"] / 100)
    incremental = SharedBottomRegressor(random_state=0).partial_fit(X[:300], y[:300])
    for _ in range(3):
        incremental.partial_fit(X[300:], y[300:])
    assert incremental.score(X[300:], y[300:]) > 0.5


def test_a_constant_sample_weight_leaves_the_target_scaling_alone():
    # fit passes float32 weights; summed in float32 over many rows of two tasks,
    # their total was off by 1e-5 of itself: on targets near 1e6 with a spread
    # of 1, a mean 12 spreads too high
    rng = np.random.default_rng(0)
    targets = [1e6 + rng.standard_normal(200_000) for _ in range(2)]
    weight = np.full(200_000, 0.37, dtype=np.float32)
    model = MMOERegressor()
    mean, scale = model._local_target_state(targets, ["a", "b"], None)
    weighted_mean, weighted_scale = model._local_target_state(targets, ["a", "b"], weight)
    np.testing.assert_allclose(weighted_mean, mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(weighted_scale, scale, rtol=1e-6)


@pytest.mark.parametrize("spread", [1e-200, 1e160])
def test_targets_whose_squared_spread_leaves_float64_are_scaled(spread):
    # their variance underflowed (scale 1: predictions 1e197 spreads off) or
    # overflowed (refused as "too large to standardise")
    values = np.random.default_rng(0).normal(size=1000)
    mean, scale = MMOERegressor()._local_target_state([values * spread], ["a"], None)
    np.testing.assert_allclose(scale, [values.std() * spread], rtol=1e-12)
    np.testing.assert_allclose(mean, [values.mean() * spread], rtol=1e-12)


def test_regressor_rejects_targets_beyond_float32_when_standardised(tasks):
    X = tasks[0].iloc[:100]
    y = np.zeros(100)
    y[:2] = [1.7e308, 1.7e308]   # finite, but their sum (so their mean) overflows float64
    with pytest.raises(ValueError, match="too large to standardise"):
        MMOERegressor(**FAST).fit(X, y)
    y[:2] = [1e308, -1e308]      # a spread whose square overflows is measured
    assert np.isfinite(MMOERegressor(**FAST).fit(X, y).predict(X)).all()


def test_classifier_rejects_continuous_targets_and_regressor_categorical(tasks):
    X, _, _ = tasks
    with pytest.raises(ValueError, match="continuous"):
        PLEClassifier(**FAST).fit(X, _regression_targets(X))
    with pytest.raises(ValueError, match="not numeric"):
        PLERegressor(**FAST).fit(X, pd.DataFrame({"a": ["x", "y"] * (len(X) // 2),
                                                  "b": np.arange(len(X))}))


def test_aitm_rejects_a_stage_reached_without_the_previous(tasks):
    X, _, funnel = tasks
    bad = funnel.assign(click=0)
    with pytest.raises(ValueError, match="conversion=1 but click=0"):
        AITMClassifier(**FAST).fit(X, bad)
    with pytest.raises(ValueError, match="at least 2"):
        AITMClassifier(**FAST).fit(X, funnel["click"])
    # every broken pair of stages is counted, not only the first
    data = make_entire_space(300, n_stages=3, random_state=0)
    three = data.target.copy()
    three.iloc[0], three.iloc[1], three.iloc[2] = [1, 0, 1], [0, 1, 1], [0, 1, 0]
    with pytest.raises(ValueError, match=r"^3 row\(s\) break the funnel: 2 row\(s\) have "
                                         r"stage_2=1 but click=0; 1 row\(s\) have stage_3=1 "
                                         r"but stage_2=0; in a funnel"):
        AITMClassifier(**FAST).fit(data.data, three)


@pytest.mark.parametrize("params", [dict(n_levels=0), dict(n_task_experts=0),
                                    dict(expert_units=()), dict(expert_units=(0,))])
def test_ple_bad_parameters(tasks, params):
    X, Y, _ = tasks
    with pytest.raises(ValueError):
        PLEClassifier(**params, **FAST).fit(X, Y)


def test_ple_with_one_level_is_cgc(tasks):
    X, Y, _ = tasks
    model = PLEClassifier(n_levels=1, **FAST).fit(X, Y)
    weights = model.gate_weights(X)
    assert len(weights) == 1 and weights[0].shape == (len(X), 2, 6)
    assert model.net_.module_.levels[0].shared_gate is None


def test_new_estimators_validate_their_own_parameters(tasks):
    X, Y, funnel = tasks
    with pytest.raises(ValueError, match="bottom_units"):
        SharedBottomClassifier(bottom_units=(0,), **FAST).fit(X, Y)
    with pytest.raises(ValueError, match="transfer_units"):
        AITMClassifier(transfer_units=0, **FAST).fit(X, funnel)
    with pytest.raises(ValueError, match="calibration_weight"):
        AITMClassifier(calibration_weight=-1.0, **FAST).fit(X, funnel)
    with pytest.raises(ValueError, match=r"calibration_weight.*1e\+30"):
        AITMClassifier(calibration_weight=1e39, **FAST).fit(X, funnel)
    with pytest.raises(ValueError, match="n_experts"):
        OMOERegressor(n_experts=0, **FAST).fit(X, _regression_targets(X))


def test_warm_start_uses_a_changed_calibration_weight(tasks):
    X, _, funnel = tasks
    model = AITMClassifier(warm_start=True, **FAST).fit(X, funnel)
    assert model.net_.criterion_.calibration_weight == 0.6
    model.set_params(calibration_weight=0.0).fit(X, funnel)
    assert model.net_.criterion_.calibration_weight == 0.0


def test_tower_units_dict_with_non_string_task_names_saves(tasks, tmp_path):
    X, Y, _ = tasks
    Y = Y.set_axis([0, 1], axis=1)   # integer column names: tasks "0" and "1"
    model = MMOEClassifier(tower_units={0: (8,), 1: (4,)}, **FAST).fit(X, Y)
    assert _tower_widths(model.net_.module_) == [(8,), (4,)]
    model.save(tmp_path / "m.skmtl")
    loaded = skmtl.load(tmp_path / "m.skmtl")
    for a, b in zip(model.predict_proba(X), loaded.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [MMOEClassifier, MMOERegressor], ids=lambda c: c.__name__)
def test_weights_on_one_side_of_the_validation_split(cls, tasks):
    X, Y = _data(cls, tasks)
    params = dict(early_stopping=True, validation_fraction=0.5, **FAST)
    train, valid = cls(**params)._split_rows(len(X), np.random.RandomState(FAST["random_state"]),
                                             early_stopping=True)
    for rows, part in ((valid, "training"), (train, "validation")):
        weight = np.zeros(len(X))
        weight[rows] = 1.0
        with pytest.raises(ValueError, match=f"zero on every {part} row"):
            cls(**params).fit(X, Y, sample_weight=weight)
