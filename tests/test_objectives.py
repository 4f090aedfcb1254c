"""Training objectives: missing labels, task weights, loss weighting, scoring, counterfactual ESMM."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, MMOERegressor,
                   OMOEClassifier, PLEClassifier, PLERegressor, SharedBottomClassifier)
from skmtl._training import _per_task_auc, _per_task_r2
from skmtl.nn import AITMLoss, EntireSpaceLoss, MultiTaskLoss, MultiTaskSquaredLoss

FAST = dict(max_epochs=3, batch_size=128, random_state=0)


def _hide(Y, column, fraction, seed=0, missing=np.nan):
    """A copy of ``Y`` with ``fraction`` of ``column``'s labels replaced by ``missing``."""
    rng = np.random.default_rng(seed)
    hidden = Y.copy().astype({column: object if missing is None else float})
    rows = rng.random(len(Y)) < fraction
    hidden.loc[rows, column] = missing
    return hidden, rows


# -- missing labels: the losses ----------------------------------------------------


LOSSES = [
    (MultiTaskLoss([1, 3]), lambda g, n: torch.stack(
        [torch.randint(0, 2, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)],
        dim=1).float(), lambda g, n: (torch.randn(n, 1, generator=g),
                                      torch.randn(n, 3, generator=g))),
    (MultiTaskSquaredLoss(), lambda g, n: torch.randn(n, 2, generator=g),
     lambda g, n: (torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g))),
    (EntireSpaceLoss(), lambda g, n: torch.randint(0, 2, (n, 2), generator=g).float(),
     lambda g, n: torch.randn(n, 2, generator=g)),
    (AITMLoss(0.0), lambda g, n: torch.randint(0, 2, (n, 2), generator=g).float(),
     lambda g, n: torch.randn(n, 2, generator=g)),
]


def _rows_of(outputs, rows):
    return (tuple(o[rows] for o in outputs) if isinstance(outputs, tuple) else outputs[rows])


@pytest.mark.parametrize("loss, make_target, make_outputs", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_a_missing_label_leaves_only_its_task_loss(loss, make_target, make_outputs, weighted):
    g = torch.Generator().manual_seed(0)
    n = 64
    target, outputs = make_target(g, n), make_outputs(g, n)
    weight = torch.rand(n, generator=g) if weighted else None
    hidden = target.clone()
    missing = torch.rand(n, generator=g) < 0.4
    hidden[missing, 1] = float("nan")
    with_missing = loss(outputs, hidden, weight)
    assert torch.isfinite(with_missing).all()
    # task 0 sees every row; task 1 exactly the rows where its label is known
    full = loss(outputs, target, weight)
    known = loss(_rows_of(outputs, ~missing), target[~missing],
                 None if weight is None else weight[~missing])
    torch.testing.assert_close(with_missing[0], full[0])
    torch.testing.assert_close(with_missing[1], known[1])


def test_aitm_calibrator_still_sees_rows_with_missing_labels():
    logits = torch.tensor([[-2.0, 1.0], [0.0, 0.5]])  # row 0: p2 > p1
    target = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    with_penalty, without = AITMLoss(1.0)(logits, target), AITMLoss(0.0)(logits, target)
    assert with_penalty[1] > without[1] + 0.5


def test_validation_scores_leave_out_missing_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (200, 2)).astype(np.float32)
    scores = rng.random((200, 2))
    hidden = labels.copy()
    hidden[:80, 1] = np.nan
    proba = [torch.tensor(np.column_stack([1 - scores[:, t], scores[:, t]])) for t in range(2)]
    aucs = _per_task_auc([proba], [torch.tensor(hidden)], [None])
    assert aucs[0] == pytest.approx(roc_auc_score(labels[:, 0], scores[:, 0]))
    assert aucs[1] == pytest.approx(roc_auc_score(labels[80:, 1], scores[80:, 1]))
    r2 = _per_task_r2([[torch.tensor(scores[:, 0]), torch.tensor(scores[:, 1])]],
                      [torch.tensor(hidden)], [None])
    assert r2[1] == pytest.approx(r2_score(labels[80:, 1], scores[80:, 1]))


# -- missing labels: the estimators ------------------------------------------------


@pytest.mark.parametrize("missing", [np.nan, None, pd.NA])
def test_missing_labels_train_the_other_tasks(tasks, holdout, missing):
    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t2", 0.5, missing=missing)
    model = MMOEClassifier(**FAST).fit(X, hidden)
    X_test, Y_test, _ = holdout
    proba = model.predict_proba(X_test)
    assert [list(c) for c in model.classes_] == [[0, 1], [0, 1]]
    assert roc_auc_score(Y_test["t1"], proba[0][:, 1]) > 0.8
    assert roc_auc_score(Y_test["t2"], proba[1][:, 1]) > 0.7


def test_missing_labels_in_a_nullable_integer_column(tasks):
    X, Y, _ = tasks
    hidden = Y.astype("Int64")
    hidden.loc[::3, "t1"] = pd.NA
    model = MMOEClassifier(**FAST).fit(X, hidden)
    assert np.isfinite(model.history_[:, "train_loss"]).all()


def test_the_masked_task_loss_in_history_is_over_known_rows(tasks):
    X, Y, _ = tasks
    hidden, rows = _hide(Y, "t2", 0.5)
    model = MMOEClassifier(max_epochs=1, batch_size=len(X), learning_rate=1e-9,
                           random_state=0, early_stopping=False).fit(X, hidden)
    # one batch of every row with a learning rate of ~0: the recorded loss is
    # the cross-entropy of the initial predictions on the known rows
    proba = model.predict_proba(X)[1][:, 1]
    known = ~rows
    expected = -np.mean(np.log(np.where(Y["t2"][known] == 1, proba[known],
                                        1 - proba[known])))
    assert model.history_[-1, "train_loss_t2"] == pytest.approx(expected, rel=1e-3)


def test_missing_labels_with_sample_weight_and_early_stopping(tasks):
    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t1", 0.3)
    weight = np.random.default_rng(0).random(len(X))
    model = MMOEClassifier(**FAST, early_stopping=True).fit(X, hidden, sample_weight=weight)
    assert np.isfinite(model.history_[:, "valid_auc_t1"]).all()


def test_score_leaves_out_missing_labels(tasks, holdout):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    X_test, Y_test, _ = holdout
    hidden, rows = _hide(Y_test, "t2", 0.5)
    pred = model.predict(X_test)
    right = (pred[:, 0] == Y_test["t1"].to_numpy()) & (
        (pred[:, 1] == Y_test["t2"].to_numpy()) | rows)
    assert model.score(X_test, hidden) == pytest.approx(right.mean())
    single = MMOEClassifier(**FAST).fit(X, Y["t1"])
    hidden_1 = Y_test["t1"].astype(float).where(~rows)
    assert single.score(X_test, hidden_1) == pytest.approx(
        accuracy_score(Y_test["t1"][~rows], single.predict(X_test)[~rows]))


def test_regressor_with_missing_targets(tasks):
    X, _, _ = tasks
    rng = np.random.default_rng(0)
    Y = pd.DataFrame({"a": 5.0 + 3.0 * X["num_a"] + rng.normal(size=len(X)),
                      "b": -2.0 * X["num_b"] + rng.normal(size=len(X))})
    hidden, rows = _hide(Y, "b", 0.5)
    model = MMOERegressor(**FAST).fit(X, hidden)
    assert model._target_mean[1] == pytest.approx(Y["b"][~rows].mean())
    assert model._target_scale[1] == pytest.approx(Y["b"][~rows].std(ddof=0))
    pred = model.predict(X)
    expected = np.mean([r2_score(Y["a"], pred[:, 0]), r2_score(Y["b"][~rows], pred[~rows, 1])])
    assert model.score(X, hidden) == pytest.approx(expected)
    assert model.score(X, hidden) > 0.5


@pytest.mark.parametrize("cls", [MMOEClassifier, PLERegressor])
def test_target_aware_bins_with_missing_labels(tasks, cls):
    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t2", 0.7)
    model = cls(**FAST, bin_strategy="target").fit(X, hidden)
    knots = model._encoder.numeric_.knots_
    assert all(len(k) > 3 for k in knots)


def test_a_task_without_known_labels_is_an_error(tasks):
    X, Y, _ = tasks
    hidden = Y.astype(float)
    hidden["t2"] = np.nan
    with pytest.raises(ValueError, match="Every label of task 't2' is missing"):
        MMOEClassifier(**FAST).fit(X, hidden)
    hidden = Y.astype(float)
    hidden.loc[Y["t2"] == 1, "t2"] = np.nan
    with pytest.raises(ValueError, match="Task 't2' has only one class"):
        MMOEClassifier(**FAST).fit(X, hidden)


def test_labels_known_only_on_validation_rows_are_an_error(tasks):
    X, Y, _ = tasks
    hidden = Y.astype(float)
    hidden.loc[10:, "t2"] = np.nan
    with pytest.raises(ValueError, match="Task 't2' has no known label on a training row"):
        MMOEClassifier(**FAST, early_stopping=True, validation_fraction=len(X) - 10).fit(
            X, hidden)


def test_funnel_fills_in_what_the_funnel_implies(tasks):
    X, _, funnel = tasks
    hidden = funnel.astype(float)
    no_click = np.flatnonzero(funnel["click"] == 0)[:5]
    converted = np.flatnonzero(funnel["conversion"] == 1)[:5]
    clicked = np.flatnonzero((funnel["click"] == 1) & (funnel["conversion"] == 0))[:5]
    hidden.loc[no_click, "conversion"] = np.nan     # implied 0
    hidden.loc[converted, "click"] = np.nan         # implied 1
    hidden.loc[clicked, "conversion"] = np.nan      # unknown
    model = ESMMClassifier(**FAST)
    columns = model._prepare_labels([hidden[c].to_numpy() for c in hidden], ["click",
                                    "conversion"], False)
    assert (columns[1][no_click] == 0).all()
    assert (columns[0][converted] == 1).all()
    assert np.isnan(columns[1][clicked]).all()
    assert np.isnan(columns[1]).sum() == len(clicked)
    model.fit(X, hidden)
    assert [list(c) for c in model.classes_] == [[0, 1], [0, 1]]


@pytest.mark.parametrize("cls", [ESMMClassifier, AITMClassifier])
def test_funnel_with_unknown_conversions(tasks, holdout, cls):
    X, _, funnel = tasks
    hidden = funnel.astype(float)
    clicked = np.flatnonzero(funnel["click"] == 1)
    hidden.loc[clicked[::2], "conversion"] = np.nan
    model = cls(**FAST).fit(X, hidden)
    X_test, _, funnel_test = holdout
    ctcvr = model.predict_proba(X_test)[1][:, 1]
    assert roc_auc_score(funnel_test["conversion"], ctcvr) > 0.75


def test_funnel_rejects_a_missing_click_before_a_contradiction(tasks):
    X, _, funnel = tasks
    bad = funnel.astype(float)
    row = np.flatnonzero(funnel["click"] == 0)[0]
    bad.loc[row, "conversion"] = 1.0
    with pytest.raises(ValueError, match="have conversion=1 but click=0"):
        ESMMClassifier(**FAST).fit(X, bad)


@pytest.mark.parametrize("cls", [OMOEClassifier, PLEClassifier, SharedBottomClassifier])
def test_every_classifier_accepts_missing_labels(tasks, cls):
    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t1", 0.5)
    model = cls(**FAST).fit(X, hidden)
    assert np.isfinite(model.history_[:, "train_loss_t1"]).all()
