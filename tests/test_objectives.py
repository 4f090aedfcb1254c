"""Training objectives: missing labels, task weights, loss weighting, scoring, counterfactual."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError
from torch.nn import functional as F

from conftest import make_tasks

import skmtl
from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, MMOERegressor,
                   OMOEClassifier, PLEClassifier, PLERegressor, SharedBottomClassifier)
from skmtl._training import _per_task_auc, _per_task_r2, binary_auc
from skmtl.datasets import make_entire_space
from skmtl.nn import (AITM, ESMM, PLE, AITMLoss, EntireSpaceLoss, MMoE, MultiTaskLoss,
                       MultiTaskSquaredLoss)
from skmtl.nn.counterfactual import CounterfactualRisk, conditional_log_proba_from_reach
from skmtl.nn.weighting import (DynamicWeightAverage, GradNorm, LossWeighting, PCGrad,
                                UncertaintyWeighting, project_conflicting, split_parameters,
                                task_gradients)

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=3, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")


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


def test_binary_auc_is_roc_auc_score():
    # the AUC of every epoch's validation: ties, weights (some zero), float32 scores
    rng = np.random.default_rng(1)
    for trial in range(40):
        n = int(rng.integers(3, 300))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = np.round(rng.random(n), 1 + trial % 3).astype([np.float32, np.float64][trial % 2])
        weight = None if trial % 4 == 0 else rng.random(n) * (rng.random(n) > 0.3)
        weight = None if weight is not None and not (
            weight[labels == 1].sum() > 0 and weight[labels == 0].sum() > 0) else weight
        assert binary_auc(labels, scores, weight) == pytest.approx(
            roc_auc_score(labels, scores, sample_weight=weight), abs=1e-12)
    assert np.isnan(binary_auc(np.ones(5), rng.random(5)))  # one class
    assert np.isnan(binary_auc(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9]),
                               np.array([0.0, 1.0, 1.0])))  # the negatives weigh nothing
    assert np.isnan(binary_auc(np.array([0, 1]), np.array([0.2, np.nan])))  # a diverged score
    assert np.isnan(binary_auc(np.array([]), np.array([])))


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


def test_missing_labels_in_a_category_column_of_integers(tasks):
    X, Y, _ = tasks
    hidden = Y.astype("category")
    hidden.loc[::3, "t1"] = np.nan
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X, hidden)
    assert model.classes_[0].dtype.kind == "i"  # not the floats pandas gives with NaN
    assert model.predict(X).dtype.kind == "i"


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


@pytest.mark.parametrize("weighted", [False, True])
def test_a_sparsely_labelled_task_trains_by_its_share_of_known_labels(tasks, monkeypatch,
                                                                      weighted):
    # each known label pulls alike whichever task it belongs to: the task losses trained
    # on are the recorded means over known labels times the task's share of the batch
    from skmtl.nn.weighting import LossWeighting

    X, Y, _ = tasks
    hidden, rows = _hide(Y, "t2", 0.75)
    weight = np.random.default_rng(0).random(len(X)) + 0.5 if weighted else None
    trained, shares = [], []
    backward = LossWeighting.backward

    def recording_backward(self, losses, *split, label_shares=None, mean_losses=None):
        trained.append(losses.detach().clone())
        shares.append(label_shares)
        return backward(self, losses, *split, label_shares, mean_losses)

    monkeypatch.setattr(LossWeighting, "backward", recording_backward)
    model = MMOEClassifier(max_epochs=1, batch_size=len(X), early_stopping=False,
                           random_state=0).fit(X, hidden, sample_weight=weight)
    share = 1.0 - (rows.mean() if weight is None else weight[rows].sum() / weight.sum())
    assert len(trained) == 1  # one batch
    recorded = [model.history_[-1, f"train_loss_{task}"] for task in ("t1", "t2")]
    np.testing.assert_allclose(trained[0].numpy(), [recorded[0], recorded[1] * share],
                               rtol=1e-4)
    np.testing.assert_allclose(shares[0].numpy(), [1.0, share], rtol=1e-5)
    # every label known: nothing is scaled
    trained.clear()
    complete = MMOEClassifier(max_epochs=1, batch_size=len(X), early_stopping=False,
                              random_state=0).fit(X, Y)
    np.testing.assert_allclose(trained[0].numpy(), [complete.history_[-1, "train_loss_t1"],
                                                    complete.history_[-1, "train_loss_t2"]],
                               rtol=1e-4)


def test_aitm_with_missing_labels_trains_its_calibrator_unscaled_and_pickles(tasks):
    # the calibrator's part of a stage's loss needs no label: it is not scaled by the
    # stage's share of known labels, and nothing of the graph stays on the criterion
    X, _, funnel = tasks
    hidden = funnel.astype(float)
    hidden.loc[:, "conversion"] = np.nan
    hidden.loc[hidden.index[:50], "conversion"] = funnel["conversion"][:50]
    model = AITMClassifier(**{**FAST, "early_stopping": False}, calibration_weight=5.0)
    model.fit(X, hidden)
    assert "label_free_" not in model.net_.criterion_.__dict__
    loaded = pickle.loads(pickle.dumps(model))
    proba = loaded.predict_proba(X)
    assert (proba[1][:, 1] <= proba[0][:, 1] + 1e-3).mean() > 0.99  # the calibrator acted


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
    # a task without a known target (a fold of a sparse task) is left out of the mean; it
    # was an error, and sample_weight 0 on every known row one naming no task
    none_known = hidden.assign(b=np.nan)
    assert model.score(X, none_known) == pytest.approx(r2_score(Y["a"], pred[:, 0]))
    weight = np.where(rows, 1.0, 0.0)
    assert model.score(X, hidden, sample_weight=weight) == pytest.approx(
        r2_score(Y["a"], pred[:, 0], sample_weight=weight))
    with pytest.raises(ValueError, match="No task has a known target in y; score needs"):
        model.score(X, hidden * np.nan)
    with pytest.raises(ValueError, match="on a row of positive sample_weight"):
        model.score(X, hidden.assign(a=np.nan), sample_weight=weight)


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
    with pytest.raises(ValueError, match=r"Task 't2' has only one class \(0.0\) in the "):
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
    # a missing middle stage implied by a later one: the message says so
    three = bad.assign(cart=bad["conversion"]).loc[:, ["click", "cart", "conversion"]]
    three.loc[row, "cart"] = np.nan
    with pytest.raises(ValueError, match=r"have cart=1 \(or, where cart is missing, a later "
                                         r"stage = 1\) but click=0"):
        ESMMClassifier(**FAST).fit(X, three)


@pytest.mark.parametrize("cls", [OMOEClassifier, PLEClassifier, SharedBottomClassifier])
def test_every_classifier_accepts_missing_labels(tasks, cls):
    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t1", 0.5)
    model = cls(**FAST).fit(X, hidden)
    assert np.isfinite(model.history_[:, "train_loss_t1"]).all()


# -- task weights and loss weighting: the modules ------------------------------------


def _network_and_losses(seed=0):
    torch.manual_seed(seed)
    module = MMoE([20, 30], 3, [1, 1], embedding_dim=4, n_experts=3, expert_units=(8,),
                  tower_units=(4,))
    categorical = torch.randint(0, 20, (64, 2))
    numeric = torch.randn(64, 3)
    target = torch.randint(0, 2, (64, 2)).float()
    logits = module(categorical, numeric)
    return module, MultiTaskLoss([1, 1])(logits, target)


def test_split_parameters_follows_the_networks_task_specific_parts():
    module, _ = _network_and_losses()
    shared, specific = split_parameters(module)
    names = {id(p): n for n, p in module.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in shared} == {"embedding", "experts"}
    assert {names[id(p)].split(".")[0] for p in specific} == {"gates", "towers"}


def _funnel_network_and_losses(kind):
    torch.manual_seed(0)
    categorical, numeric = torch.randint(0, 5, (64, 2)), torch.randn(64, 3)
    click = (torch.rand(64) < 0.6).float()
    conversion = click * (torch.rand(64) < 0.6).float()
    target = torch.stack([click, conversion, conversion * (torch.rand(64) < 0.6).float()], 1)
    if kind == "esmm":
        module, loss = ESMM([5, 5], 3, 3, imputation=True), EntireSpaceLoss("dr")
    else:
        module, loss = AITM([5, 5], 3, 3, imputation=True), AITMLoss(counterfactual="dr")
        with torch.no_grad():  # later stages likelier than earlier: the calibrator acts
            for k, head in enumerate(module.heads):
                head.bias.fill_(float(k))
    return module, loss(module(categorical, numeric), target)


def _ple_network_and_losses():
    torch.manual_seed(0)
    module = PLE([5, 5], 3, [1, 1, 1], n_levels=3, expert_units=(8,), tower_units=(8,))
    logits = module(torch.randint(0, 5, (64, 2)), torch.randn(64, 3))
    return module, MultiTaskLoss([1, 1, 1])(logits, torch.randint(0, 2, (64, 3)).float())


@pytest.mark.parametrize("network", ["mmoe", "ple", "esmm", "aitm"])
def test_task_specific_parameters_are_those_one_task_trains(network):
    # GradNorm and PCGrad balance the gradients of the shared parameters: a
    # parameter that several tasks' losses train must be among them (ESMM's
    # click tower enters every later stage's product; PLE's first task gates
    # reach every task through the next level's shared gate)
    module, losses = {"mmoe": _network_and_losses, "ple": _ple_network_and_losses,
                      "esmm": lambda: _funnel_network_and_losses("esmm"),
                      "aitm": lambda: _funnel_network_and_losses("aitm")}[network]()
    shared, specific = split_parameters(module)
    for name, parameter in module.named_parameters():
        grads = [torch.autograd.grad(loss, parameter, retain_graph=True, allow_unused=True)[0]
                 for loss in losses]
        trained_by = torch.stack([torch.zeros_like(parameter) if g is None else g != 0
                                  for g in grads]).sum(dim=0)
        # task-specific: each element trained by one task at most (MMoE's gates are one
        # tensor, a block of rows per task)
        assert bool((trained_by <= 1).all()) == any(parameter is p for p in specific), name
        assert any(parameter is p for p in shared + specific), name


def test_task_gradients_are_each_tasks_own_gradient():
    module, losses = _network_and_losses()
    shared, _ = split_parameters(module)
    batched = task_gradients(losses, shared)
    for t in range(2):
        one = torch.autograd.grad(losses[t], shared, retain_graph=True)
        torch.testing.assert_close(batched[t], torch.cat([g.reshape(-1) for g in one]))


def test_project_conflicting_removes_only_conflicts():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.0, 2.0]])
    projected = project_conflicting(g)
    # rows 0 and 1 conflict: after projection neither points against the other
    assert projected[0] @ g[1] >= -1e-6 and projected[1] @ g[0] >= -1e-6
    torch.testing.assert_close(projected[2], g[2])  # conflicts with nobody
    torch.testing.assert_close(project_conflicting(g[[0, 2]]), g[[0, 2]])


@pytest.mark.parametrize("kind", [LossWeighting, UncertaintyWeighting, DynamicWeightAverage,
                                  GradNorm, PCGrad])
def test_every_weighting_fills_every_gradient(kind):
    module, losses = _network_and_losses()
    weighting = kind([1.0, 2.0])
    weighting.backward(losses, *split_parameters(module))
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in module.parameters())


def test_fixed_and_pcgrad_task_specific_gradients_are_ordinary():
    module, losses = _network_and_losses()
    expected = torch.autograd.grad((torch.tensor([1.0, 2.0]) * losses).sum(),
                                   list(module.parameters()), retain_graph=True)
    PCGrad([1.0, 2.0]).backward(losses, *split_parameters(module))
    _, specific = split_parameters(module)
    ids = {id(p) for p in specific}
    for p, g in zip(module.parameters(), expected):
        if id(p) in ids:
            torch.testing.assert_close(p.grad, g)


def test_pcgrad_shared_gradient_is_the_sum_of_projected_task_gradients():
    module, losses = _network_and_losses(seed=3)
    shared, specific = split_parameters(module)
    per_task = torch.tensor([1.0, 2.0])[:, None] * task_gradients(losses, shared)
    torch.manual_seed(0)
    expected = project_conflicting(per_task).sum(dim=0)
    torch.manual_seed(0)
    PCGrad([1.0, 2.0]).backward(losses, shared, specific)
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in shared]), expected)


def test_dwa_weights_follow_the_ratio_of_the_last_two_losses():
    dwa = DynamicWeightAverage([1.0, 1.0], temperature=2.0)
    dwa.end_epoch([1.0, 1.0])
    torch.testing.assert_close(dwa.weights(), torch.ones(2))
    dwa.end_epoch([0.5, 0.9])
    ratio = torch.tensor([0.5, 0.9])
    torch.testing.assert_close(dwa.weights(), 2 * torch.softmax(ratio / 2.0, dim=0))
    assert dwa.weights()[1] > dwa.weights()[0]  # the slower task gets more


def test_dwa_skips_a_task_in_an_epoch_without_its_labels():
    # a partial_fit chunk without task 1's labels: its mean loss is no loss at all
    X, Y, _ = make_tasks(900, seed=0)
    Y = Y.astype(float)
    Y.iloc[300:600, 1] = np.nan
    model = MMOEClassifier(loss_weighting="dwa", hash_buckets=16, random_state=0)
    for start in (0, 300, 600, 0, 300):
        model.partial_fit(X.iloc[start:start + 300], Y.iloc[start:start + 300],
                          classes=[[0, 1], [0, 1]])
    weights = model.history_[:, "task_weight_t2"]
    assert min(weights) > 0.8 and max(weights) < 1.2, weights  # was 0.76, then 2.0
    dwa = DynamicWeightAverage([1.0, 1.0])
    for losses in ([1.0, 1.0], [0.5, float("nan")], [0.4, 0.9]):
        dwa.end_epoch(losses)
    ratio = torch.tensor([0.4 / 0.5, 0.9 / 1.0])  # task 1's last two known losses
    torch.testing.assert_close(dwa.weights(), 2 * torch.softmax(ratio / 2.0, dim=0))
    # an epoch without task 1's labels leaves its weight; the others share the rest
    dwa = DynamicWeightAverage([1.0, 1.0, 1.0])
    for losses in ([1.0, 1.0, 1.0], [0.5, 0.9, 0.8]):
        dwa.end_epoch(losses)
    before = dwa.weights().clone()
    dwa.end_epoch([0.4, float("nan"), 0.7])
    after = dwa.weights()
    assert after[1] == before[1] and float(after.sum()) == pytest.approx(3.0)
    ratio = torch.tensor([0.4 / 0.5, 0.7 / 0.8])
    torch.testing.assert_close(after[[0, 2]],
                               (3 - before[1]) * torch.softmax(ratio / 2.0, dim=0))


def test_gradnorm_shifts_weight_to_the_task_with_the_smaller_gradient():
    gradnorm = GradNorm([1.0, 1.0], alpha=1.5, learning_rate=0.05)
    for _ in range(20):
        gradnorm._update_balance(torch.tensor([1.0, 1.0]), torch.tensor([10.0, 1.0]))
    weights = gradnorm.weights()
    assert weights[1] > 1.2 > 0.8 > weights[0]
    assert float(weights.sum()) == pytest.approx(2.0)


def test_gradnorm_keeps_the_ratio_of_task_weights():
    # equal gradients and losses: nothing to balance, so the user's 1 : 4 stays
    gradnorm = GradNorm([1.0, 4.0], alpha=1.5, learning_rate=0.05)
    for _ in range(20):
        gradnorm._update_balance(torch.tensor([1.0, 1.0]), torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(gradnorm.weights(), torch.tensor([1.0, 4.0]))


def test_uncertainty_weighting_leaves_a_task_without_labels_alone():
    weighting = UncertaintyWeighting([1.0, 1.0])
    weighting.objective(torch.tensor([0.7, 0.0])).backward()  # no known label of task 1
    assert weighting.log_variance.grad[0] != 0 and weighting.log_variance.grad[1] == 0


def test_uncertainty_weighting_scales_its_log_variance_term_by_the_label_share():
    # every known label adds exp(-s) * loss + s: with the losses scaled by the share of
    # known labels, s is pulled towards the log of the task's mean loss however few its
    # labels; a task with none (here a label-free loss of 0.3, as AITM's calibrator) is
    # left alone
    weighting = UncertaintyWeighting([1.0, 1.0, 1.0])
    mean_losses = torch.tensor([0.5, 0.5, 0.3])
    shares = torch.tensor([1.0, 0.1, 0.0])
    label_free = torch.tensor([0.0, 0.2, 0.3])  # in the means, and unscaled when trained
    trained = ((mean_losses - label_free) * shares + label_free).requires_grad_()
    objective = weighting.objective(trained, shares, mean_losses)
    objective.backward()
    # d/ds of share * (exp(-s) * mean_loss + s) at s = 0
    torch.testing.assert_close(weighting.log_variance.grad,
                               shares * (1 - mean_losses))
    # the network trains on the losses as given, weighted exp(-s)
    torch.testing.assert_close(trained.grad, torch.ones(3))
    assert float(objective.detach()) == pytest.approx(float(trained.detach().sum()))


def test_uncertainty_weighting_objective():
    weighting = UncertaintyWeighting([1.0, 2.0])
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.5, -1.0]))
    losses = torch.tensor([2.0, 3.0])
    expected = (np.exp(-0.5) * 2 + 0.5) + 2 * (np.exp(1.0) * 3 - 1.0)
    assert float(weighting.objective(losses).detach()) == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(weighting.weights(),
                               torch.tensor([np.exp(-0.5), 2 * np.exp(1.0)]).float())


# -- task weights and loss weighting: the estimators ---------------------------------


def test_task_weights_scale_each_tasks_loss(tasks, holdout):
    X, Y, _ = tasks
    X_test, Y_test, _ = holdout
    as_list = MMOEClassifier(**FAST, task_weights=[1.0, 0.5]).fit(X, Y)
    as_dict = MMOEClassifier(**FAST, task_weights={"t2": 0.5}).fit(X, Y)
    for a, b in zip(as_list.predict_proba(X_test), as_dict.predict_proba(X_test)):
        np.testing.assert_array_equal(a, b)
    history = as_list.history_[-1]
    assert history["train_loss"] == pytest.approx(
        history["train_loss_t1"] + 0.5 * history["train_loss_t2"], rel=1e-6)
    assert history["task_weight_t2"] == 0.5
    plain = MMOEClassifier(**FAST).fit(X, Y)
    ignored = MMOEClassifier(**FAST, task_weights=[1.0, 0.0]).fit(X, Y)
    auc = [roc_auc_score(Y_test["t2"], m.predict_proba(X_test)[1][:, 1]) for m in (plain, ignored)]
    assert auc[0] > auc[1] + 0.1


@pytest.mark.parametrize("weights, message", [
    ([1.0, -1.0], "non-negative"), ([1.0, np.nan], "finite"), ([0.0, 0.0], "positive"),
    ([1.0], "1 weight"), ([1.0, 2.0, 3.0], "3 weight"), ({"t3": 1.0}, "unknown task"),
    ({0: 5.0, "0": 1.0}, "names task '0' twice"),
    (["a", "b"], "numbers"), ([[1.0, 2.0]], r"shape \(1, 2\)"),
])
def test_bad_task_weights(tasks, weights, message):
    X, Y, _ = tasks
    with pytest.raises(ValueError, match=f"task_weights.*{message}"):
        MMOEClassifier(**FAST, task_weights=weights).fit(X, Y)


def test_only_the_ratios_of_task_weights_count(tasks, holdout):
    X, Y, _ = tasks
    # weights of 1e-4 used to leave the loss's gradient below weight decay's, which
    # shrank the network to a constant; 1e39 was beyond float32
    reference = MMOEClassifier(**FAST, task_weights=[1.0, 0.5]).fit(X, Y)
    for weights in ([1e-4, 5e-5], [2e39, 1e39]):
        model = MMOEClassifier(**FAST, task_weights=weights).fit(X, Y)
        for a, b in zip(model.predict_proba(holdout[0]), reference.predict_proba(holdout[0])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert model.history_[-1, "task_weight_t2"] == 0.5
    plain = MMOEClassifier(**FAST).fit(X, Y)
    same = MMOEClassifier(**FAST, task_weights=[1e-6, 1e-6]).fit(X, Y)
    for a, b in zip(plain.predict_proba(holdout[0]), same.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)


def test_bad_loss_weighting_and_scoring(tasks):
    X, Y, _ = tasks
    with pytest.raises(InvalidParameterError, match="loss_weighting"):
        MMOEClassifier(**FAST, loss_weighting="mgda").fit(X, Y)
    with pytest.raises(InvalidParameterError, match="scoring"):
        MMOEClassifier(**FAST, scoring="accuracy").fit(X, Y)
    with pytest.raises(ValueError, match="'scoring' parameter of MMOEClassifier"):
        MMOEClassifier(**FAST, scoring="r2").fit(X, Y)
    with pytest.raises(ValueError, match="'scoring' parameter of MMOERegressor"):
        MMOERegressor(**FAST, scoring="roc_auc").fit(X, Y.astype(float))
    with pytest.raises(InvalidParameterError, match="gradnorm_alpha"):
        MMOEClassifier(**FAST, gradnorm_alpha=-1.0).fit(X, Y)



WEIGHTINGS = ["equal", "uncertainty", "gradnorm", "dwa", "pcgrad"]


@pytest.mark.parametrize("loss_weighting", WEIGHTINGS)
def test_each_loss_weighting_trains_and_records_its_weights(tasks, holdout, loss_weighting):
    X, Y, _ = tasks
    X_test, Y_test, _ = holdout
    model = MMOEClassifier(**{**FAST, "max_epochs": 4}, loss_weighting=loss_weighting,
                           task_weights=[0.5, 1.0]).fit(X, Y)
    weights = np.array([[row["task_weight_t1"], row["task_weight_t2"]]
                        for row in model.history_])
    assert np.isfinite(weights).all() and (weights > 0).all()
    if loss_weighting in ("equal", "pcgrad"):
        np.testing.assert_array_equal(weights, [[0.5, 1.0]] * 4)
    elif loss_weighting == "dwa":
        np.testing.assert_array_equal(weights[:2], [[0.5, 1.0]] * 2)
        assert not np.allclose(weights[2:] / [0.5, 1.0], 1.0)
    else:
        assert not np.allclose(weights[-1], [0.5, 1.0])
    if loss_weighting == "gradnorm":
        np.testing.assert_allclose((weights / [0.5, 1.0]).sum(axis=1), 2.0, rtol=1e-5)
    proba = model.predict_proba(X_test)
    for t, task in enumerate(["t1", "t2"]):
        assert roc_auc_score(Y_test[task], proba[t][:, 1]) > 0.7


@pytest.mark.parametrize("cls", [PLEClassifier, SharedBottomClassifier, ESMMClassifier,
                                 AITMClassifier, PLERegressor])
@pytest.mark.parametrize("loss_weighting", ["uncertainty", "gradnorm", "pcgrad"])
def test_loss_weightings_on_every_model(tasks, cls, loss_weighting):
    X, Y, funnel = tasks
    y = (funnel if cls in (ESMMClassifier, AITMClassifier) else
         Y.astype(float) if cls is PLERegressor else Y)
    model = cls(**FAST, loss_weighting=loss_weighting).fit(X, y)
    assert np.isfinite(model.history_[:, "train_loss"]).all()


@pytest.mark.parametrize("loss_weighting", ["gradnorm", "pcgrad"])
def test_per_task_gradients_through_batch_norm(tasks, holdout, loss_weighting):
    # one batched backward pass per step (is_grads_batched) through the normalisations
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, loss_weighting=loss_weighting, batch_norm=True).fit(X, Y)
    assert np.isfinite(model.history_[:, "train_loss"]).all()
    X_test, Y_test, _ = holdout
    for task, proba in zip(["t1", "t2"], model.predict_proba(X_test)):
        assert roc_auc_score(Y_test[task], proba[:, 1]) > 0.7


@pytest.mark.parametrize("loss_weighting", ["uncertainty", "gradnorm", "dwa"])
def test_learned_weights_survive_save_load_and_warm_start(tasks, holdout, tmp_path,
                                                         loss_weighting):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, loss_weighting=loss_weighting, warm_start=True).fit(X, Y)
    learned = {k: v.clone() for k, v in model.net_.loss_weighting_.state_dict().items()}
    model.save(tmp_path / "model.skmtl")
    loaded = skmtl.load(tmp_path / "model.skmtl")
    for key, value in loaded.net_.loss_weighting_.state_dict().items():
        torch.testing.assert_close(value, learned[key], equal_nan=True)
    for a, b in zip(model.predict_proba(holdout[0]), loaded.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)
    # a warm start continues from the learned weights rather than from 1
    last = [model.history_[-1, f"task_weight_{t}"] for t in ("t1", "t2")]
    model.fit(X, Y)
    first_after = [model.history_[3, f"task_weight_{t}"] for t in ("t1", "t2")]
    if loss_weighting == "dwa":
        assert not np.allclose(first_after, 1.0)
    else:
        assert not np.allclose(first_after, 1.0) and np.allclose(first_after, last, rtol=0.5)
    with pytest.raises(ValueError, match="loss_weighting was"):
        model.set_params(loss_weighting="equal").fit(X, Y)


def test_a_warm_start_takes_new_task_weights(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, warm_start=True).fit(X, Y)
    model.set_params(task_weights=[1.0, 3.0]).fit(X, Y)
    assert model.history_[-1, "task_weight_t1"] == pytest.approx(1 / 3)
    assert model.history_[-1, "task_weight_t2"] == 1.0


# -- scoring -----------------------------------------------------------------------------


def _validation_auc(model, valid, task_weights):
    features, (target, _) = valid.batch(slice(None))
    with torch.no_grad():
        proba = model.net_.module_.eval().predict_proba(model.net_.module_(**features))
    aucs = [roc_auc_score(target[:, t].numpy(), proba[t][:, 1].numpy()) for t in range(2)]
    return np.average(aucs, weights=task_weights)


def test_scoring_roc_auc_restores_the_best_epoch_by_auc(tasks, validation_sets):
    X, Y, _ = tasks
    model = MMOEClassifier(max_epochs=12, batch_size=64, learning_rate=0.03, random_state=0,
                           early_stopping=True, n_iter_no_change=12, scoring="roc_auc",
                           task_weights=[1.0, 3.0]).fit(X, Y)
    history = model.history_
    for row in history:
        assert row["valid_roc_auc"] == pytest.approx(
            np.average([row["valid_auc_t1"], row["valid_auc_t2"]], weights=[1.0, 3.0]))
    best = max(history[:, "valid_roc_auc"])
    assert best > history[-1, "valid_roc_auc"]  # the last epoch was not the best
    assert _validation_auc(model, validation_sets[0], [1.0, 3.0]) == pytest.approx(best,
                                                                                abs=1e-6)
    stopper = dict(model.net_.callbacks_)["early_stopping"]
    assert stopper.monitor == "valid_roc_auc" and not stopper.lower_is_better


def test_early_stopping_needs_a_known_label_among_the_validation_rows(tasks):
    # the validation loss was NaN (0.0 before) every epoch: early stopping stopped blind
    X, Y, _ = tasks
    _, valid = MMOEClassifier()._split_rows(len(X), np.random.RandomState(0), True)
    Y = Y.astype(float)
    Y.iloc[valid] = np.nan
    with pytest.raises(ValueError, match="no validation row .* has a known label of any task"):
        MMOEClassifier(**FAST, early_stopping=True).fit(X, Y)
    MMOEClassifier(**FAST, early_stopping=False).fit(X, Y)


def test_scoring_needs_a_validation_score_that_is_defined():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=3000)})
    y = (X["x"] > 1).astype(int)
    # one validation row: one label, so no ROC AUC (as with too few positives)
    one_row = MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc",
                             validation_fraction=1)
    with pytest.raises(ValueError, match=r"among the 1 of them \(of positive weight\) no "
                                         r"scored task has two different labels.*positives\?"):
        one_row.fit(X, y)
    with pytest.raises(ValueError, match=r"two different targets.*a constant target\?"):
        MMOERegressor(**FAST, early_stopping=True, scoring="r2", validation_fraction=1).fit(
            X, X["x"])
    ok = MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc").fit(X, y)
    assert np.isfinite(ok.history_[:, "valid_roc_auc"]).all()
    # positives of weight 0 give no score either
    weight = np.where(y == 1, 0.0, 1.0)
    weight[:50] = 1.0  # training positives keep their weight: the task still has two classes
    _, valid = ok._split_rows(len(X), np.random.RandomState(FAST["random_state"]), True)
    weight[valid] = np.where(y.to_numpy()[valid] == 1, 0.0, 1.0)
    with pytest.raises(ValueError, match="of positive weight"):
        MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc").fit(
            X, y, sample_weight=weight)


def test_scoring_roc_auc_skips_multiclass_tasks_and_needs_a_binary_one(tasks):
    X, Y, _ = tasks
    Y3 = Y.assign(t3=(X["num_a"] > 0).astype(int) + (X["num_a"] > 1))
    model = MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc").fit(X, Y3)
    row = model.history_[-1]
    assert row["valid_roc_auc"] == pytest.approx(
        np.mean([row["valid_auc_t1"], row["valid_auc_t2"]]))
    with pytest.raises(ValueError, match="scoring='roc_auc'.*no task is binary"):
        MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc").fit(X, Y3[["t3"]])
    # without early stopping (the default) nothing reads the score: no error
    unscored = MMOEClassifier(**FAST, scoring="roc_auc").fit(X, Y3[["t3"]])
    assert "valid_roc_auc" not in unscored.history_[-1]
    with pytest.raises(ValueError, match="scoring='roc_auc'.*validation_fraction=None"):
        MMOEClassifier(**FAST, early_stopping=True, validation_fraction=None,
                       scoring="roc_auc").fit(X, Y)


def test_regressor_scoring_r2(tasks):
    X, Y, _ = tasks
    Yr = pd.DataFrame({"a": X["num_a"] * 2.0, "b": X["num_b"]})
    model = MMOERegressor(**FAST, early_stopping=True, scoring="r2").fit(X, Yr)
    row = model.history_[-1]
    assert row["valid_r2"] == pytest.approx(np.mean([row["valid_r2_a"], row["valid_r2_b"]]))
    # a constant task has no R² (it was -inf, which stopped training at once): left out
    constant = MMOERegressor(**{**FAST, "max_epochs": 8}, early_stopping=True, scoring="r2",
                             n_iter_no_change=2).fit(X, Yr.assign(b=5.0))
    assert np.isnan(constant.history_[:, "valid_r2_b"]).all()
    np.testing.assert_array_equal(constant.history_[:, "valid_r2"],
                                  constant.history_[:, "valid_r2_a"])
    assert constant.n_iter_ > 3


def test_multiclass_auc_of_validation_rows_lacking_a_class_is_nan(monkeypatch):
    # undefined, and known so without roc_auc_score (seconds per epoch with many classes)
    from skmtl import _training
    scores = [[torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])]]
    targets = [torch.tensor([[2.0], [0.0], [float("nan")]])]
    expected = roc_auc_score([2, 0, 1], scores[0][0].numpy(), multi_class="ovr")
    assert _training._per_task_auc(scores, [torch.tensor([[2.0], [0.0], [1.0]])],
                                   [None]) == [pytest.approx(expected)]
    monkeypatch.setattr(_training, "roc_auc_score", None)  # not called
    assert np.isnan(_training._per_task_auc(scores, targets, [None])[0])


@pytest.mark.parametrize("value", [1.2, 1.3])
def test_r2_of_a_task_constant_on_the_validation_rows_only_is_left_out(value):
    # its standardised float32 targets are equal, but r2_score's mean of them is
    # not: a rounding spread gave a finite R² of -1e14 that ruled early stopping
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=40)})
    Y = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    params = dict(early_stopping=True, validation_fraction=10, random_state=0, max_epochs=2,
                  scoring="r2")
    _, valid = MMOERegressor(**params)._split_rows(40, np.random.RandomState(0), True)
    Y.loc[valid, "a"] = value
    model = MMOERegressor(**params).fit(X, Y)
    assert np.isnan(model.history_[:, "valid_r2_a"]).all()
    np.testing.assert_array_equal(model.history_[:, "valid_r2"], model.history_[:, "valid_r2_b"])


def test_interrupt_warning_names_the_monitored_score(tasks, monkeypatch):
    from skmtl._training import MultiTaskNet
    from skmtl.exceptions import TrainingInterruptedWarning

    train_step, calls = MultiTaskNet.train_step, {"n": 0}

    def interrupting_step(self, batch, **fit_params):
        calls["n"] += 1
        if calls["n"] > 30:
            raise KeyboardInterrupt
        return train_step(self, batch, **fit_params)

    monkeypatch.setattr(MultiTaskNet, "train_step", interrupting_step)
    with pytest.warns(TrainingInterruptedWarning, match="best weights by validation roc_auc"):
        MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc").fit(*tasks[:2])


# -- counterfactual (ESCM², DCMT) -----------------------------------------------------


def _funnel_batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    click = (torch.rand(n, generator=g) < 0.5).float()
    conversion = click * (torch.rand(n, generator=g) < 0.5).float()
    target = torch.stack([click, conversion], dim=1)
    logits = torch.randn(n, 2, generator=g, requires_grad=True)
    return target, logits


def test_ips_risk_by_hand():
    target, logits = _funnel_batch()
    risk = CounterfactualRisk("ips", propensity_clip=0.2)
    log_reach = torch.cumsum(F.logsigmoid(logits), dim=1)
    value = risk((F.logsigmoid(logits), F.logsigmoid(-logits)), log_reach, target,
                 torch.ones_like(target))
    ctr = torch.sigmoid(logits[:, 0]).clamp(min=0.2)
    bce = F.binary_cross_entropy_with_logits(logits[:, 1], target[:, 1], reduction="none")
    expected = (target[:, 0] * bce / ctr).mean()
    assert value[0] == 0
    torch.testing.assert_close(value[1], expected)


@pytest.mark.parametrize("method", ["ips", "dr", "dcmt"])
def test_counterfactual_risk_leaves_out_rows_of_unknown_label(method):
    target, logits = _funnel_batch()
    imputation = torch.randn(32, 1)

    def risk(rows, known):
        log_reach = torch.cumsum(F.logsigmoid(logits[rows]), dim=1)
        return CounterfactualRisk(method)(
            (F.logsigmoid(logits[rows]), F.logsigmoid(-logits[rows])), log_reach, target[rows],
            known, extra_logits=imputation[rows])

    clicked = int(torch.nonzero(target[:, 0])[0])
    known = torch.ones_like(target)
    known[clicked, 1] = 0.0  # a click whose conversion is not known yet
    others = [i for i in range(32) if i != clicked]
    torch.testing.assert_close(risk(slice(None), known), risk(others, known[others]))


def test_counterfactual_risk_does_not_train_the_propensity():
    target, logits = _funnel_batch()
    for method, imputation in (("ips", None), ("dr", torch.randn(32, 1, requires_grad=True)),
                               ("dcmt", torch.randn(32, 1, requires_grad=True))):
        log_reach = torch.cumsum(F.logsigmoid(logits), dim=1)
        value = CounterfactualRisk(method)(
            (F.logsigmoid(logits), F.logsigmoid(-logits)), log_reach, target,
            torch.ones_like(target), extra_logits=imputation)
        (grad,) = torch.autograd.grad(value.sum(), logits)
        assert torch.all(grad[:, 0] == 0) and torch.any(grad[:, 1] != 0)


def test_dr_imputation_loss_trains_only_the_imputation():
    target, logits = _funnel_batch()
    imputation = torch.randn(32, 1, requires_grad=True)
    log_reach = torch.cumsum(F.logsigmoid(logits), dim=1)
    conditional = (F.logsigmoid(logits), F.logsigmoid(-logits))
    dr = CounterfactualRisk("dr")(conditional, log_reach, target, torch.ones_like(target),
                                  extra_logits=imputation)
    grad_logits, grad_imputation = torch.autograd.grad(dr[1], [logits, imputation],
                                                       retain_graph=True)
    assert torch.any(grad_imputation != 0)
    # the prediction's gradient is that of the DR estimate with the imputation fixed
    imputed = torch.sigmoid(imputation.detach())
    log_q, log_not_q = conditional[0][:, 1:], conditional[1][:, 1:]
    error = -(target[:, 1:] * log_q + (1 - target[:, 1:]) * log_not_q)
    imputed_error = -(imputed * log_q + (1 - imputed) * log_not_q)
    propensity = torch.exp(log_reach[:, :1].detach()).clamp(min=0.2)
    estimate = (imputed_error + target[:, :1] * (error - imputed_error) / propensity).mean()
    (expected,) = torch.autograd.grad(estimate, logits)
    torch.testing.assert_close(grad_logits, expected)


def test_aitm_conditional_log_proba_is_the_capped_ratio():
    reach = torch.tensor([[0.5, 0.2], [0.1, 0.3]])
    log_q, log_not_q = conditional_log_proba_from_reach(torch.log(reach))
    torch.testing.assert_close(torch.exp(log_q), torch.tensor([[0.5, 0.4], [0.1, 1 - 1e-4]]))
    assert log_not_q.min() == pytest.approx(np.log(1e-4), rel=1e-3)


@pytest.mark.parametrize("method", ["ips", "dr", "dcmt"])
def test_aitm_counterfactual_risk_does_not_train_the_previous_stage(method):
    target, logits = _funnel_batch()
    log_reach = F.logsigmoid(logits)  # AITM: entire-space logits
    imputation = torch.randn(32, 1) if method != "ips" else None
    value = CounterfactualRisk(method)(conditional_log_proba_from_reach(log_reach), log_reach,
                                       target, torch.ones_like(target),
                                       extra_logits=imputation)
    (grad,) = torch.autograd.grad(value.sum(), logits)
    assert torch.all(grad[:, 0] == 0) and torch.any(grad[:, 1] != 0)


def test_dr_risk_by_hand():
    target, logits = _funnel_batch(seed=4)
    imputation = torch.randn(32, 1)
    log_reach = torch.cumsum(F.logsigmoid(logits), dim=1)
    conditional = (F.logsigmoid(logits), F.logsigmoid(-logits))
    value = CounterfactualRisk("dr", propensity_clip=0.3)(
        conditional, log_reach, target, torch.ones_like(target), extra_logits=imputation)
    q, r = torch.sigmoid(logits[:, 1]), torch.sigmoid(imputation[:, 0])
    click, conversion = target[:, 0], target[:, 1]
    error = -(conversion * torch.log(q) + (1 - conversion) * torch.log(1 - q))
    imputed_error = -(r * torch.log(q) + (1 - r) * torch.log(1 - q))
    propensity = torch.sigmoid(logits[:, 0]).clamp(min=0.3)
    estimate = (imputed_error + click * (error - imputed_error) / propensity).mean()
    torch.testing.assert_close(value[1], estimate, rtol=1e-5, atol=1e-6)


def test_dcmt_risk_by_hand():
    target, logits = _funnel_batch(seed=5)
    twin = torch.randn(32, 1)
    log_reach = torch.cumsum(F.logsigmoid(logits), dim=1)
    conditional = (F.logsigmoid(logits), F.logsigmoid(-logits))
    value = CounterfactualRisk("dcmt", propensity_clip=0.3, constraint_weight=0.7)(
        conditional, log_reach, target, torch.ones_like(target), extra_logits=twin)
    q, q_twin = torch.sigmoid(logits[:, 1]), torch.sigmoid(twin[:, 0])
    click, conversion = target[:, 0], target[:, 1]
    error = -(conversion * torch.log(q) + (1 - conversion) * torch.log(1 - q))
    # the twin learns "would not have converted" (1 - label) where the click is missing
    twin_error = -((1 - conversion) * torch.log(q_twin) + conversion * torch.log(1 - q_twin))
    ctr = torch.sigmoid(logits[:, 0])
    estimate = (click * error / ctr.clamp(min=0.3)
                + (1 - click) * twin_error / (1 - ctr).clamp(min=0.3)
                + 0.7 * (1 - q - q_twin).abs()).mean()
    torch.testing.assert_close(value[1], estimate, rtol=1e-5, atol=1e-6)
    # the prior trains both towers, the twin's error only the twin
    twin.requires_grad_(True)
    prior_only = CounterfactualRisk("dcmt", constraint_weight=1.0)(
        conditional, log_reach, torch.ones_like(target), torch.ones_like(target),
        extra_logits=twin)
    grad_logits, grad_twin = torch.autograd.grad(prior_only[1], [logits, twin])
    assert torch.any(grad_logits[:, 1] != 0) and torch.all(grad_logits[:, 0] == 0)
    assert torch.any(grad_twin != 0)


def test_dcmt_constraint_pulls_pcvr_down_where_rows_did_not_click():
    # conversions hidden where users did not click: the twin and its prior lower the
    # pCVR of the unclicked rows, the more so the larger the constraint's weight
    data = make_entire_space(4000, random_state=0)
    unclicked = data.target["click"].to_numpy() == 0
    mean_pcvr = []
    for weight in (0.0, 1.0):
        model = ESMMClassifier(**FAST, counterfactual="dcmt",
                               counterfactual_constraint_weight=weight).fit(data.data,
                                                                            data.target)
        mean_pcvr.append(model.predict_conditional_proba(data.data)[1][unclicked, 1].mean())
    assert mean_pcvr[1] < mean_pcvr[0] - 0.02


def test_entire_space_loss_adds_the_weighted_risk_to_later_stages():
    target, logits = _funnel_batch()
    plain = EntireSpaceLoss()(logits, target)
    with_ips = EntireSpaceLoss("ips", counterfactual_weight=0.5)(logits, target)
    log_reach = torch.cumsum(F.logsigmoid(logits), dim=1)
    risk = CounterfactualRisk("ips")((F.logsigmoid(logits), F.logsigmoid(-logits)), log_reach,
                                     target, torch.ones_like(target))
    torch.testing.assert_close(with_ips, plain + 0.5 * risk)
    for method in ("dr", "dcmt"):
        with pytest.raises(ValueError, match=f"'{method}' needs .*imputation=True"):
            EntireSpaceLoss(method)(logits, target)


@pytest.mark.parametrize("cls", [ESMMClassifier, AITMClassifier])
@pytest.mark.parametrize("counterfactual", ["ips", "dr", "dcmt"])
def test_counterfactual_funnels_fit_save_and_predict(tasks, holdout, tmp_path, cls,
                                                     counterfactual):
    X, _, funnel = tasks
    model = cls(**FAST, counterfactual=counterfactual, counterfactual_weight=0.5,
                counterfactual_constraint_weight=0.2).fit(X, funnel)
    module = model.net_.module_
    assert (module.imputation_towers is not None) == (counterfactual in ("dr", "dcmt"))
    X_test, _, funnel_test = holdout
    proba, conditional = model.predict_proba(X_test), model.predict_conditional_proba(X_test)
    assert [p.shape for p in proba + conditional] == [(len(X_test), 2)] * 4
    assert roc_auc_score(funnel_test["conversion"], proba[1][:, 1]) > 0.75
    model.save(tmp_path / "model.skmtl")
    loaded = skmtl.load(tmp_path / "model.skmtl")
    assert loaded.counterfactual == counterfactual
    assert loaded.counterfactual_constraint_weight == 0.2
    for a, b in zip(conditional, loaded.predict_conditional_proba(X_test)):
        np.testing.assert_array_equal(a, b)


def test_predictions_do_not_run_the_extra_towers(tasks):
    X, _, funnel = tasks
    model = AITMClassifier(**FAST, counterfactual="dcmt").fit(X, funnel)
    module = model.net_.module_.eval()
    calls = []
    module.imputation_towers.register_forward_hook(lambda *args: calls.append(1))
    conditional = model.predict_conditional_proba(X)
    assert calls == []
    codes, numeric = model._encoder.transform(X)
    with torch.no_grad():  # as training calls it: the extra towers' logits follow
        logits = module(torch.as_tensor(codes), torch.as_tensor(numeric))
    assert logits.shape[1] == 3 and calls == [1]
    np.testing.assert_allclose(conditional[1], module.predict_conditional_proba(logits)[1],
                               rtol=1e-5, atol=1e-7)


def test_pickled_before_the_constraint_weight_existed(tasks):
    X, _, funnel = tasks
    model = ESMMClassifier(**FAST, counterfactual="ips", warm_start=True).fit(X, funnel)
    del model.__dict__["counterfactual_constraint_weight"]
    old = pickle.loads(pickle.dumps(model))
    assert old.get_params()["counterfactual_constraint_weight"] == 0.1
    old.partial_fit(X, funnel)  # the loss is built anew; the network is unchanged
    old.fit(X, funnel)
    assert np.isfinite(old.predict_conditional_proba(X)[1]).all()


def test_counterfactual_with_missing_conversions(tasks):
    X, _, funnel = tasks
    hidden = funnel.astype(float)
    hidden.loc[np.flatnonzero(funnel["click"] == 1)[::3], "conversion"] = np.nan
    model = ESMMClassifier(**FAST, counterfactual="dr").fit(X, hidden)
    assert np.isfinite(model.history_[:, "train_loss_conversion"]).all()


def test_counterfactual_bad_input(tasks):
    X, Y, funnel = tasks
    with pytest.raises(InvalidParameterError, match="counterfactual"):
        ESMMClassifier(**FAST, counterfactual="snips").fit(X, funnel)
    with pytest.raises(InvalidParameterError, match="propensity_clip"):
        ESMMClassifier(**FAST, counterfactual="ips", propensity_clip=0.0).fit(X, funnel)
    with pytest.raises(InvalidParameterError, match="counterfactual_weight"):
        AITMClassifier(**FAST, counterfactual="ips", counterfactual_weight=-1).fit(X, funnel)
    with pytest.raises(InvalidParameterError, match="counterfactual_constraint_weight"):
        ESMMClassifier(**FAST, counterfactual="dcmt",
                       counterfactual_constraint_weight=float("nan")).fit(X, funnel)
    # beyond float32, where the weighted losses are summed: infinite, then NaN
    with pytest.raises(InvalidParameterError, match=r"counterfactual_weight.*1e\+30"):
        ESMMClassifier(**FAST, counterfactual="ips", counterfactual_weight=1e39).fit(X, funnel)
    with pytest.raises(ValueError, match=r"counterfactual_weight \* counterfactual_constr"):
        ESMMClassifier(**FAST, counterfactual="dcmt", counterfactual_weight=1e20,
                       counterfactual_constraint_weight=1e20).fit(X, funnel)
    # models without a funnel have no such parameter
    with pytest.raises(TypeError, match="counterfactual"):
        MMOEClassifier(counterfactual="ips")
    with pytest.raises(ValueError, match="Invalid parameter 'counterfactual'"):
        MMOEClassifier().set_params(counterfactual="ips")
    model = ESMMClassifier(**FAST, warm_start=True).fit(X, funnel)
    with pytest.raises(ValueError, match="counterfactual was None and is now 'dr'"):
        model.set_params(counterfactual="dr").fit(X, funnel)


# -- as a user would: pipelines and searches ----------------------------------------------


def test_search_over_objectives_with_missing_labels(tasks):
    from sklearn.compose import make_column_transformer
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t2", 0.5)
    pre = make_column_transformer(
        (OrdinalEncoder(), ["color", "shop"]), (StandardScaler(), ["num_a", "num_b"]),
        verbose_feature_names_out=False).set_output(transform="pandas")
    pipe = make_pipeline(pre, MMOEClassifier(categorical_features=["color", "shop"], **FAST))
    search = GridSearchCV(pipe, {
        "mmoeclassifier__loss_weighting": ["equal", "uncertainty", "pcgrad"],
        "mmoeclassifier__task_weights": [None, {"t2": 2.0}],
    }, cv=KFold(2)).fit(X, hidden)  # a stratified split cannot read NaN labels
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_[-1].history_[-1, "task_weight_t1"] > 0



def test_masking_is_switched_on_only_for_missing_labels(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, warm_start=True).fit(X, Y)
    assert model.net_.criterion_.missing_labels is False
    hidden, _ = _hide(Y, "t2", 0.5)
    model.fit(X, hidden)  # a warm fit on labels with holes masks them
    assert model.net_.criterion_.missing_labels is True
    assert np.isfinite(model.history_[:, "train_loss_t2"]).all()


@pytest.mark.parametrize("loss_weighting", ["gradnorm", "pcgrad", "uncertainty", "dwa"])
def test_loss_weighting_with_a_single_task(tasks, loss_weighting):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, loss_weighting=loss_weighting).fit(X, Y["t1"])
    assert model.predict_proba(X).shape == (len(X), 2)
    assert np.isfinite(model.history_[:, "task_weight_t1"]).all()


def test_gradnorm_compares_mean_losses_not_the_losses_scaled_by_label_shares():
    w = torch.ones(3, requires_grad=True)
    gradnorm = GradNorm([1.0, 1.0])
    shares = torch.tensor([1.0, 0.05])
    losses = torch.stack([0.7 * w.sum() / 3, 0.7 * w.sum() / 3])
    gradnorm.backward(losses * shares, [w], [], label_shares=shares,
                      mean_losses=losses.detach())
    torch.testing.assert_close(gradnorm.initial_losses, torch.tensor([0.7, 0.7]))
    # the balance answers to the gradients trained on: the sparse task's is 20 times
    # smaller, and it gains weight
    for _ in range(10):
        w.grad = None
        gradnorm.backward(losses * shares, [w], [], label_shares=shares,
                          mean_losses=losses.detach())
    assert gradnorm.weights()[1] > 1.1 > 0.9 > gradnorm.weights()[0]
    # a task with a gradient (a loss that needs no label) but no known label sits out
    absent = GradNorm([1.0, 1.0])
    absent.backward(losses, [w], [], label_shares=torch.tensor([1.0, 0.0]))
    assert torch.isnan(absent.initial_losses[1])


def test_gradnorm_waits_for_a_task_absent_from_the_first_batch():
    gradnorm = GradNorm([1.0, 1.0])
    gradnorm._update_balance(torch.tensor([0.0, 0.7]), torch.tensor([0.0, 2.0]))
    assert torch.isnan(gradnorm.initial_losses[0]) and gradnorm.initial_losses[1] == 0.7
    torch.testing.assert_close(gradnorm.weights(), torch.ones(2))  # nothing to balance yet
    for _ in range(50):
        gradnorm._update_balance(torch.tensor([0.6, 0.6]), torch.tensor([1.0, 1.0]))
    assert gradnorm.initial_losses[0] == pytest.approx(0.6)
    assert 0.5 < float(gradnorm.weights()[0]) < 1.5  # no runaway from a zero initial loss


def test_gradnorm_leaves_the_balance_of_a_task_sitting_out_as_it_was():
    gradnorm = GradNorm([1.0, 1.0, 1.0])
    for _ in range(5):
        gradnorm._update_balance(torch.tensor([0.7, 0.7, 0.7]), torch.tensor([3.0, 1.0, 2.0]))
    before = gradnorm.weights().clone()
    moments = gradnorm.moments[:, 2].clone()
    for _ in range(5):  # task 2 without labels: the others still balance each other
        gradnorm._update_balance(torch.tensor([0.6, 0.6, 0.0]), torch.tensor([3.0, 1.0, 0.0]))
    after = gradnorm.weights()
    assert after[2] == before[2] and torch.equal(gradnorm.moments[:, 2], moments)
    assert after[0] < before[0] and float(after.sum()) == pytest.approx(3.0)
    for _ in range(5):  # one task alone has nothing to balance: momentum moved it before
        gradnorm._update_balance(torch.tensor([0.6, 0.0, 0.0]), torch.tensor([3.0, 0.0, 0.0]))
    torch.testing.assert_close(gradnorm.weights(), after)


@pytest.mark.parametrize("loss_weighting", ["uncertainty", "gradnorm"])
def test_learned_weights_of_a_task_without_labels_stay(tasks, loss_weighting):
    # the optimizer's momentum went on moving them, chunk after chunk
    X, Y, _ = tasks
    model = MMOEClassifier(random_state=0, loss_weighting=loss_weighting, batch_size=100,
                           categories={"color": ["black", "blue", "green", "red"]})
    model.partial_fit(X[:400], Y[:400])
    for start in range(400, 1600, 400):
        rows = slice(start, start + 400)
        model.partial_fit(X[rows], Y[rows].assign(t2=np.nan))
    assert len(set(model.history_[:, "task_weight_t2"])) == 1
    if loss_weighting == "uncertainty":  # gradnorm: one task alone has nothing to balance
        assert len(set(model.history_[:, "task_weight_t1"])) > 1


@pytest.mark.parametrize("loss_weighting", ["uncertainty", "gradnorm"])
def test_aitm_stage_without_labels_keeps_its_learned_weight(loss_weighting):
    # the calibrator's part of the conversion loss needs no label: it made the stage look
    # labelled, and its weight moved on a chunk without any label (the calibrator trains)
    data = make_entire_space(2000, random_state=0)
    X, funnel = data.data, data.target
    model = AITMClassifier(random_state=0, loss_weighting=loss_weighting, batch_size=32)
    model.partial_fit(X[:1000], funnel[:1000])
    before = {k: v.clone() for k, v in model.net_.loss_weighting_.state_dict().items()}
    model.partial_fit(X[1000:], funnel[1000:].astype(float) * np.nan)
    after = model.net_.loss_weighting_.state_dict()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def test_gradnorm_initial_losses_are_means_over_known_labels(tasks):
    # they were scaled by the first batch's share of known labels (0.03 for a task known
    # on 5 % of it), and the balance then drifted for every later batch
    X, Y, _ = tasks
    hidden, _ = _hide(Y, "t2", 0.95)
    model = MMOEClassifier(random_state=0, loss_weighting="gradnorm", batch_size=500,
                           categories={"color": ["black", "blue", "green", "red"]})
    model.partial_fit(X[:500], hidden[:500])
    initial = model.net_.loss_weighting_.initial_losses
    assert 0.4 < float(initial[1]) < 1.2 and 0.4 < float(initial[0]) < 1.2, initial


def test_a_task_without_labels_has_no_loss_in_the_history(tasks):
    # its loss was recorded as 0.0, a perfect score, beside an AUC of NaN
    X, Y, _ = tasks
    model = MMOEClassifier(random_state=0, categories={"color": ["black", "blue", "green", "red"]})
    model.partial_fit(X[:500], Y[:500])
    model.partial_fit(X[500:1000], Y[500:1000].assign(t2=np.nan))
    last = model.history_[-1]
    assert np.isnan(last["train_loss_t2"]) and last["train_loss"] == last["train_loss_t1"] > 0
    valid = np.zeros(len(X), bool)
    valid[MMOEClassifier(validation_fraction=0.25)._split_rows(
        len(X), np.random.RandomState(0), True)[1]] = True
    fitted = MMOEClassifier(max_epochs=2, early_stopping=True, validation_fraction=0.25,
                            random_state=0).fit(X, Y.astype(float).mask(
                                pd.DataFrame({"t1": False, "t2": valid}, index=Y.index)))
    assert np.isnan(fitted.history_[:, "valid_loss_t2"]).all()
    np.testing.assert_allclose(fitted.history_[:, "valid_loss"],
                               fitted.history_[:, "valid_loss_t1"], rtol=1e-6)


def test_scoring_needs_a_scored_task_of_positive_weight(tasks):
    X, Y, _ = tasks
    Y3 = Y.assign(t3=(X["num_a"] > 0).astype(int) + (X["num_a"] > 1))
    with pytest.raises(ValueError, match="every task it scores has weight 0"):
        MMOEClassifier(**FAST, early_stopping=True, scoring="roc_auc",
                       task_weights={"t1": 0.0, "t2": 0.0}).fit(X, Y3)


def test_task_weights_as_a_series_is_refused(tasks):
    X, Y, _ = tasks
    with pytest.raises(TypeError, match="series.to_dict"):
        MMOEClassifier(**FAST, task_weights=pd.Series({"t1": 1.0, "t2": 2.0})).fit(X, Y)


def test_a_failed_warm_fit_restores_the_learned_weights(tasks):
    from skmtl.exceptions import DivergenceError

    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, loss_weighting="uncertainty", warm_start=True).fit(X, Y)
    learned = model.net_.loss_weighting_.log_variance.detach().clone()
    model.set_params(task_weights=[1.0, 5.0], learning_rate=1e30)
    with pytest.raises(DivergenceError):
        model.fit(X, Y)
    torch.testing.assert_close(model.net_.loss_weighting_.log_variance.detach(), learned)
    torch.testing.assert_close(model.net_.loss_weighting_.task_weights, torch.ones(2))


def test_single_task_score_compares_labels_as_they_are(tasks):
    X, Y, _ = tasks
    labels = np.where(Y["t1"] == 1, "yes", "no")
    model = MMOEClassifier(**FAST).fit(X, labels)
    pred = model.predict(X)
    wrong = np.where(pred == "yes", "yesss", "no").astype(object)  # "yesss" is not "yes"
    assert model.score(X, wrong) == pytest.approx(np.mean(pred == "no"))


@pytest.mark.parametrize("loss_weighting", ["gradnorm", "dwa"])
def test_a_task_of_weight_zero_takes_no_part_in_the_balance(loss_weighting):
    # its loss never falls: GradNorm grew its balance until the trained task's weight
    # hit the floor of 1e-3, and DWA's softmax gave it a share of the weights
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    Y = pd.DataFrame({"r1": np.sin(2 * X.a) * 3 + rng.normal(size=600) * 0.3,
                      "r2": -2 * X.b + rng.normal(size=600)})
    model = MMOERegressor(max_epochs=4, random_state=0, loss_weighting=loss_weighting,
                          task_weights={"r1": 1.0, "r2": 0.0}, batch_size=64).fit(X, Y)
    np.testing.assert_allclose(model.history_[:, "task_weight_r1"], 1.0)
    assert set(model.history_[:, "task_weight_r2"]) == {0.0}
    gradnorm = GradNorm([1.0, 0.0, 1.0])
    for step in range(10):
        gradnorm._update_balance(torch.tensor([0.5 / (step + 1), 1.0, 0.5]),
                                 torch.tensor([1.0, 2.0, 3.0]))
    assert gradnorm.balance[1] == 1.0 and float(gradnorm.balance.sum()) == pytest.approx(3.0)
    assert gradnorm.balance[2] > 1.0 > gradnorm.balance[0]  # the trained tasks still balance
