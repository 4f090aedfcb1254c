"""Numeric encodings, the learning-rate schedule, the optimizer and the encoder's edges."""

import decimal
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import QuantileTransformer

from skmtl import ESMMClassifier, MMOEClassifier, MMOERegressor, _optim
from skmtl._encoding import NUMERIC_ENCODINGS, TabularEncoder, _numeric
from skmtl._encoding._categorical import code_reader
from skmtl._encoding._numeric import weighted_quantiles
from skmtl._optim import Adam
from skmtl._training import LearningRateSchedule
from skmtl.nn import PeriodicEmbedding, PiecewiseLinearEmbedding

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=3, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")


def _encoded_numeric(encoder, X):
    return encoder.transform(X)[1]


# -- the encodings -----------------------------------------------------------------


@pytest.mark.parametrize("encoding", NUMERIC_ENCODINGS)
@pytest.mark.parametrize("cls", [MMOEClassifier, ESMMClassifier])
def test_every_encoding_fits_and_predicts(encoding, cls, tasks, holdout):
    X, Y, funnel = tasks
    model = cls(**{**FAST, "numeric_encoding": encoding}).fit(
        X, Y if cls is MMOEClassifier else funnel)
    for p in model.predict_proba(holdout[0]):
        assert np.all(np.isfinite(p))
    embedding = model.net_.module_.embedding.numeric_embedding
    expected = {"piecewise_linear": PiecewiseLinearEmbedding,
                "periodic": PeriodicEmbedding}.get(encoding, type(None))
    assert type(embedding) is expected


def test_quantile_encoding_matches_quantile_transformer():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.lognormal(size=5000), "b": rng.normal(size=5000)})
    ours = _encoded_numeric(TabularEncoder(numeric_encoding="quantile").fit(X), X)
    theirs = QuantileTransformer(output_distribution="normal").fit_transform(X)
    inside = np.abs(theirs).max(axis=1) < 2.5    # the sparse tails interpolate differently
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=0.02)


def test_tied_values_share_their_middle_rank():
    X = pd.DataFrame({"gain": np.r_[np.zeros(900), np.arange(1.0, 101.0)]})
    encoded = _encoded_numeric(TabularEncoder(numeric_encoding="quantile").fit(X), X)[:, 0]
    assert np.ptp(encoded[:900]) == 0
    assert abs(encoded[0] - (-0.1257)) < 0.01       # ndtri(0.45): rank 0.45, the zeros' middle
    assert np.all(np.diff(encoded[900:]) > 0)


def test_piecewise_linear_positions_and_range():
    X = pd.DataFrame({"x": np.arange(101.0)})
    encoder = TabularEncoder(numeric_encoding="piecewise_linear", n_bins=4,
                             bin_strategy="quantile").fit(X)
    np.testing.assert_allclose(encoder.numeric_.knots_[0], [0, 25, 50, 75, 100])
    assert encoder.numeric_.n_bins_ == [4]
    outside = pd.DataFrame({"x": [-50.0, 0.0, 12.5, 60.0, 100.0, 1e300]})
    np.testing.assert_allclose(_encoded_numeric(encoder, outside)[:, 0], [0, 0, 0.5, 2.4, 4, 4])


@pytest.mark.parametrize("value", [3.0, 0.3])
@pytest.mark.parametrize("encoding", NUMERIC_ENCODINGS)
def test_constant_columns(encoding, value):
    # 0.3 summed 50 times is not 50 * 0.3: the standard encoding saw a spread of 1e-17 and
    # put a value 0.01 away at 1e14
    X = pd.DataFrame({"c": np.full(50, value), "x": np.arange(50.0)})
    encoder = TabularEncoder(numeric_encoding=encoding).fit(X)
    encoded = _encoded_numeric(encoder, X.assign(c=[value] * 49 + [value + 4.0]))
    assert np.all(np.isfinite(encoded))
    if encoding != "passthrough":
        assert np.ptp(encoded[:49, 0]) == 0
    if encoding == "standard":
        np.testing.assert_array_equal(encoded[[0, -1], 0], [0.0, 4.0])
    if encoding == "piecewise_linear":
        assert encoder.numeric_.n_bins_[0] == 0 and encoded[-1, 0] == 0


@pytest.mark.parametrize("encoding, strategy", [("quantile", "quantile"),
                                                ("piecewise_linear", "quantile"),
                                                ("piecewise_linear", "target")])
def test_subnormal_spreads_encode_to_finite_values(encoding, strategy):
    # knots 1e-310 apart: np.interp's slope between them overflowed to inf
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"tiny": rng.normal(size=2000) * 1e-310, "x": rng.normal(size=2000)})
    targets = (rng.random((2000, 1)) < 0.5).astype(np.float32)
    encoder = TabularEncoder(numeric_encoding=encoding, bin_strategy=strategy,
                             random_state=0).fit(X, None, targets)
    encoded = _encoded_numeric(encoder, pd.concat([X, X * 0.5]))
    assert np.all(np.isfinite(encoded))
    assert np.all(np.diff(encoder.numeric_.levels_[0]) > 0)


@pytest.mark.parametrize("encoding, strategy", [("quantile", "quantile"),
                                                ("piecewise_linear", "quantile"),
                                                ("piecewise_linear", "target")])
def test_weight_two_acts_as_a_repeated_row(encoding, strategy):
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.exponential(size=400)})
    targets = (X[["x"]].to_numpy() + rng.normal(0, 0.5, (400, 1)) > 1).astype(np.float32)
    weight = rng.integers(0, 3, 400).astype(float)
    repeat = np.repeat(np.arange(400), weight.astype(int))
    settings = dict(numeric_encoding=encoding, bin_strategy=strategy, n_bins=6, random_state=0)
    weighted = TabularEncoder(**settings).fit(X, weight, targets)
    repeated = TabularEncoder(**settings).fit(X.iloc[repeat], None, targets[repeat])
    np.testing.assert_allclose(weighted.numeric_.knots_[0], repeated.numeric_.knots_[0])
    np.testing.assert_allclose(_encoded_numeric(weighted, X), _encoded_numeric(repeated, X),
                               atol=1e-6)


def test_weighted_quantiles():
    values = np.array([3.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(weighted_quantiles(values, None, [0, 0.25, 0.5, 0.51, 1]),
                               [1, 1, 2, 3, 4])
    # a zero weight removes the row; the others count as repeated rows
    np.testing.assert_allclose(weighted_quantiles(values, np.array([1, 0, 3, 0.0]), [0.5]), [2])


def test_target_bins_find_the_label_threshold():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.uniform(0, 10, 5000)})
    targets = (X[["x"]].to_numpy() > 7.3).astype(np.float32)
    target = TabularEncoder(numeric_encoding="piecewise_linear", n_bins=3,
                            bin_strategy="target", random_state=0).fit(X, None, targets)
    quantile = TabularEncoder(numeric_encoding="piecewise_linear", n_bins=3,
                              bin_strategy="quantile").fit(X)
    assert np.min(np.abs(target.numeric_.knots_[0] - 7.3)) < 0.05
    assert np.min(np.abs(quantile.numeric_.knots_[0] - 7.3)) > 0.3
    with pytest.raises(ValueError, match="needs the targets"):
        TabularEncoder(numeric_encoding="piecewise_linear", bin_strategy="target").fit(X)


@pytest.mark.parametrize("labels", ["classes", "missing labels", "regression"])
def test_target_bins_are_the_same_on_several_threads(labels, monkeypatch):
    # the trees' random draws are made in the columns' order, whatever thread grows them
    monkeypatch.setattr(_numeric, "TREE_SUBSAMPLE_SIZE", 300)  # each column draws its rows
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(500, 11)), columns=[f"x{j}" for j in range(11)])
    X["constant"] = 1.0
    X.loc[rng.random(500) < 0.3, "x3"] = np.nan
    logits = X[["x0", "x1", "x2", "x4"]].fillna(0).to_numpy() @ rng.normal(size=(4, 2))
    targets = logits if labels == "regression" else (logits > 0).astype(np.float64)
    if labels == "missing labels":
        targets[rng.random(500) < 0.4, 1] = np.nan
    weight = rng.integers(0, 3, 500).astype(float)
    fits = [TabularEncoder(numeric_encoding="piecewise_linear", bin_strategy="target",
                           random_state=0).fit(X, weight, targets, labels == "regression",
                                               n_threads=n_threads).numeric_
            for n_threads in (1, 3)]
    assert len(fits[0].knots_) == 12 and len(fits[0].knots_[-1]) == 1  # the constant
    assert sum(len(knots) > 3 for knots in fits[0].knots_) >= 10
    for one, several in zip(fits[0].knots_, fits[1].knots_):
        np.testing.assert_array_equal(one, several)
    np.testing.assert_array_equal(fits[0].missing_levels_, fits[1].missing_levels_)


def test_target_bins_trees_see_the_callers_scikit_learn_settings(monkeypatch):
    # scikit-learn's settings are per thread: the trees' threads take the caller's
    import sklearn

    seen = []
    original = _numeric.DecisionTreeClassifier.fit

    def fit(self, *args, **kwargs):
        seen.append(sklearn.get_config()["assume_finite"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_numeric.DecisionTreeClassifier, "fit", fit)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 6)))
    targets = (X.to_numpy()[:, :1] > 0).astype(np.float64)
    with sklearn.config_context(assume_finite=True):
        TabularEncoder(numeric_encoding="piecewise_linear", bin_strategy="target").fit(
            X, None, targets, n_threads=3)
    assert seen == [True] * 6


def test_target_bins_grow_in_the_callers_thread_when_no_thread_can_start(monkeypatch):
    # while the interpreter shuts down (a fit in a thread the main one did not wait for,
    # or in an atexit handler) a pool takes no work: the fit failed with several threads
    class ShuttingDown(_numeric.ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 5)))
    targets = (X.to_numpy()[:, :1] > 0).astype(np.float64)
    settings = dict(numeric_encoding="piecewise_linear", bin_strategy="target", random_state=0)
    expected = TabularEncoder(**settings).fit(X, None, targets).numeric_.knots_
    monkeypatch.setattr(_numeric, "ThreadPoolExecutor", ShuttingDown)
    knots = TabularEncoder(**settings).fit(X, None, targets, n_threads=2).numeric_.knots_
    for ours, theirs in zip(knots, expected):
        np.testing.assert_array_equal(ours, theirs)


def test_estimators_grow_target_bins_on_torchs_threads(monkeypatch):
    threads = []
    original = _numeric.NumericEncoding.fit

    def fit(self, *args, n_threads=1, **kwargs):
        threads.append(n_threads)
        return original(self, *args, n_threads=n_threads, **kwargs)

    monkeypatch.setattr(_numeric.NumericEncoding, "fit", fit)
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 7})
    Y = pd.DataFrame({"t1": np.arange(40) % 2, "t2": np.arange(40) % 3 == 0})
    threads_before = torch.get_num_threads()
    torch.set_num_threads(3)  # not the default of n_threads
    try:
        MMOEClassifier(max_epochs=1).fit(X, Y)
        MMOEClassifier(max_epochs=1).partial_fit(X, Y, classes=[[0, 1], [False, True]])
    finally:
        torch.set_num_threads(threads_before)
    assert threads == [3, 3]


def test_bins_and_quantiles_are_learned_on_a_bounded_sample(monkeypatch):
    monkeypatch.setattr(_numeric, "FIT_SUBSAMPLE_SIZE", 100)
    X = pd.DataFrame({"x": np.arange(1000.0)})
    seen = []
    original = _numeric._rank_map
    monkeypatch.setattr(_numeric, "_rank_map",
                        lambda values, weight: seen.append(len(values)) or original(values, weight))
    first = TabularEncoder(numeric_encoding="quantile", random_state=0).fit(X)
    again = TabularEncoder(numeric_encoding="quantile", random_state=0).fit(X)
    assert seen == [100, 100]
    np.testing.assert_array_equal(first.numeric_.knots_[0], again.numeric_.knots_[0])


def test_piecewise_linear_embedding_module():
    torch.manual_seed(0)
    module = PiecewiseLinearEmbedding([3, 1, 0], embedding_dim=2)
    positions = torch.tensor([[1.5, 1.0, 0.0], [3.0, 0.25, 0.0]])
    encoded = (positions.unsqueeze(-1) - module.bin_starts).clamp(0, 1)
    np.testing.assert_allclose(encoded[0].numpy(), [[1, 0.5, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(encoded[1].numpy(), [[1, 1, 1], [0.25, 0, 0], [0, 0, 0]])
    out = module(positions)
    assert out.shape == (2, 6) and module.output_dim == 6
    weight, bias = module.linear.weight, module.linear.bias
    for f in range(3):
        manual = torch.relu(encoded[:, f] @ weight[f] + bias[f])
        torch.testing.assert_close(out[:, 2 * f:2 * f + 2], manual)
    out.sum().backward()
    assert weight.grad[:, :3].abs().sum() > 0 and torch.all(weight.grad[2] == 0)


def test_piecewise_linear_embedding_is_a_linear_layer_of_the_encoding():
    # the module interpolates running sums of the weight rows; it must equal (value and
    # gradient) a linear layer of the explicit encoding, positions out of range included
    torch.manual_seed(0)
    n_bins = [32, 5, 0, 17, 1]
    module = PiecewiseLinearEmbedding(n_bins, embedding_dim=4)
    top = torch.tensor(n_bins, dtype=torch.float32)
    positions = torch.rand(300, len(n_bins)) * (top + 3.0) - 1.5
    positions[:5] = torch.stack([torch.zeros(5), top, top + 1.0, torch.full((5,), -1.0),
                                 torch.floor(top / 2)])
    upstream = torch.randn(300, module.output_dim)
    (module(positions) * upstream).sum().backward()
    grads = [p.grad.clone() for p in (module.linear.weight, module.linear.bias)]
    module.zero_grad()
    # a feature's position past its own last bin is that bin's end: zeros on the
    # components beyond its bins
    encoded = (torch.minimum(positions, top).unsqueeze(-1) - module.bin_starts).clamp(0, 1)
    explicit = module.linear(encoded)
    (explicit * upstream).sum().backward()
    torch.testing.assert_close(module(positions), explicit)
    torch.testing.assert_close(grads[0], module.linear.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[1], module.linear.bias.grad, rtol=1e-4, atol=1e-4)


def test_periodic_embedding_module():
    torch.manual_seed(0)
    module = PeriodicEmbedding(2, embedding_dim=3, n_frequencies=4)
    x = torch.randn(5, 2)
    out = module(x)
    assert out.shape == (5, 6)
    angles = 2 * np.pi * x[:, 1:2] * module.frequencies[1]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    manual = torch.relu(features @ module.linear.weight[1] + module.linear.bias[1])
    torch.testing.assert_close(out[:, 3:], manual)
    out.sum().backward()
    assert module.frequencies.grad.abs().sum() > 0


# -- training schedule and optimizer ---------------------------------------------------


def test_cosine_schedule_warms_up_then_decays():
    schedule = LearningRateSchedule("cosine", 0.01, total_steps=100, warmup_fraction=0.1)
    rates = [schedule.rate(step) for step in range(100)]
    np.testing.assert_allclose(rates[:10], np.arange(1, 11) / 10 * 0.01)
    assert np.all(np.diff(rates[10:]) < 0) and rates[-1] < 1e-5
    constant = LearningRateSchedule("constant", 0.01, total_steps=100)
    assert {constant.rate(step) for step in range(100)} == {0.01}


def test_fit_follows_the_schedule(tasks, monkeypatch):
    X, Y, _ = tasks
    seen = []
    step = Adam.step
    monkeypatch.setattr(Adam, "step", lambda self, closure=None: (
        seen.append(self.param_groups[0]["lr"]), step(self, closure))[1])
    model = MMOEClassifier(learning_rate=0.01, max_epochs=2, batch_size=100,
                           random_state=0).fit(X, Y)   # 2000 rows: 20 steps an epoch
    assert len(seen) == 40
    assert seen[0] < seen[1] and seen[1] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(seen[1:], seen[2:]))
    # a warm start or a saved model resumes from the peak rate
    assert model.net_.optimizer_.param_groups[0]["lr"] == 0.01


@pytest.mark.shipped_batch_floor
def test_auto_batch_size(tasks):
    model = MMOEClassifier()
    assert [model._batch_size(n) for n in (100, 5_000, 20_000, 40_000, 10**6)] == [
        32, 78, 312, 625, 1024]
    X, Y, _ = tasks
    assert MMOEClassifier(max_epochs=1).fit(X, Y).net_.batch_size == 32
    assert MMOEClassifier(max_epochs=1, batch_size=50).fit(X, Y).net_.batch_size == 50


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_adam_matches_torch(fused, weight_decay):
    torch.manual_seed(0)
    ours_model = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.Flatten(),
                                     torch.nn.Linear(12, 2))
    torch_model = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.Flatten(),
                                      torch.nn.Linear(12, 2))
    torch_model.load_state_dict(ours_model.state_dict())
    ours = Adam(ours_model.parameters(), lr=0.01, weight_decay=weight_decay, fused=fused)
    theirs = torch.optim.Adam(torch_model.parameters(), lr=0.01, weight_decay=weight_decay,
                              fused=fused or None, foreach=not fused)
    for i in range(20):
        x = torch.randint(0, 20, (8, 3))
        for model, optimizer in ((ours_model, ours), (torch_model, theirs)):
            optimizer.param_groups[0]["lr"] = 0.01 / (i + 1)
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(ours_model.parameters(), torch_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    theirs.load_state_dict(ours.state_dict())   # state dicts go both ways
    ours.load_state_dict(theirs.state_dict())


def _train_embeddings(model, optimizer, batches, learning_rates=None, noise=0.0):
    # a gradient that does not vanish: each row's own fixed direction, and noise if given
    # (a constant gradient and weight decay would reach a balance of vanishing moments)
    directions = torch.randn(model.weight.shape, generator=torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(3)
    for i, rows in enumerate(batches):
        if learning_rates is not None:
            optimizer.param_groups[0]["lr"] = learning_rates[i]
        optimizer.zero_grad()
        gradients = directions + noise * torch.randn(model.weight.shape, generator=generator)
        (model(rows) * gradients[rows]).sum().backward()
        optimizer.step()


@pytest.mark.parametrize("fused, weight_decay, noise", [
    (True, 0.0, 0.0), (False, 0.0, 0.0), (False, 0.0, 3.0), (False, 0.03, 3.0)])
def test_adam_sparse_steps_catch_up_with_adams_dense_ones(fused, weight_decay, noise):
    # Rows no batch looks up for a while take, when one does (or at catch_up), the steps
    # their momentum and weight decay would have taken: the table ends where dense Adam
    # leaves it, with a learning rate that changes along the way too. "Lazy" Adam
    # (SparseAdam) drops them.
    torch.manual_seed(0)
    sparse = torch.nn.Embedding(200, 4, sparse=True)
    dense, lazy = torch.nn.Embedding(200, 4), torch.nn.Embedding(200, 4, sparse=True)
    dense.load_state_dict(sparse.state_dict())
    lazy.load_state_dict(sparse.state_dict())
    settings = dict(lr=0.01, eps=1e-12)
    ours = Adam(sparse.parameters(), fused=fused, weight_decay=weight_decay, **settings)
    theirs = torch.optim.Adam(dense.parameters(), weight_decay=weight_decay, **settings)
    sparse_adam = torch.optim.SparseAdam(lazy.parameters(), **settings)  # (no weight decay)
    everything = [torch.arange(200)] * 1000   # bias corrections near 1 from here on
    generator = torch.Generator().manual_seed(1)
    some = [torch.randint(0, 200, (20,), generator=generator) for _ in range(60)]
    decaying = [0.01 * (1 - i / 120) for i in range(60)]   # as a schedule lowers it
    for model, optimizer in ((sparse, ours), (dense, theirs), (lazy, sparse_adam)):
        _train_embeddings(model, optimizer, everything, noise=noise)
        before = model.weight.detach().clone()
        _train_embeddings(model, optimizer, some, decaying, noise=noise)
    ours.catch_up()
    state = ours.state[sparse.weight]
    assert "last_update" not in state and float(state["step"]) == 1060
    Adam.check_state(ours)
    moved = (dense.weight - before).abs().max()
    # 2e-5 to 4e-4 here; 2e-3 to 5e-3 with the bias corrections of one step and the
    # learning rate along a straight line; 0.024 without the weight decay's part of the moments
    assert (sparse.weight - dense.weight).abs().max() < 1e-3 * moved
    if not weight_decay:
        assert (lazy.weight - dense.weight).abs().max() > 0.1 * moved   # 0.46 to 0.53 here
    # with nothing left behind, catch_up changes nothing
    after = sparse.weight.detach().clone()
    ours.catch_up()
    assert torch.equal(sparse.weight, after)


@pytest.mark.parametrize("first_steps", [1, 20])
def test_adam_catch_up_is_dense_adams_under_warm_up(first_steps):
    # rows looked up in the first steps only, then idle while the learning rate warms up
    # and Adam's bias corrections still move: the sums over the missed steps are exact
    # (one step's corrections and a straight-line rate were 20-80 % off here)
    torch.manual_seed(0)
    sparse = torch.nn.Embedding(50, 4, sparse=True)
    dense = torch.nn.Embedding(50, 4)
    dense.load_state_dict(sparse.state_dict())
    optimizers = [Adam(sparse.parameters(), lr=0.01, fused=False),
                  torch.optim.Adam(dense.parameters(), lr=0.01)]
    batches = [torch.arange(50)] * first_steps + [torch.arange(5)] * 100
    warm_up = [0.01 * min(1.0, (i + 1) / 60) for i in range(len(batches))]
    for model, optimizer in zip((sparse, dense), optimizers):
        _train_embeddings(model, optimizer, batches[:first_steps], warm_up, noise=1.0)
        before = model.weight.detach().clone()
        _train_embeddings(model, optimizer, batches[first_steps:], warm_up[first_steps:],
                          noise=1.0)
    optimizers[0].catch_up()
    moved = (dense.weight - before)[5:]
    error = (sparse.weight - dense.weight)[5:].norm() / moved.norm()
    assert error < 1e-3, error


@pytest.mark.parametrize("betas", [(0.9, 0.81), (0.9, 0.5), (0.9, 0.0), (0.9, 0.8100001)])
def test_adam_sparse_steps_refuse_betas_whose_momentum_outlasts_the_second_moment(betas):
    # b1 >= sqrt(b2): the sums would grow without the eps that bounds Adam's moves (one
    # such row ended at -2.63 against dense Adam's -0.71); just below, they would span
    # hundreds of millions of steps
    table = torch.nn.Embedding(10, 2, sparse=True)
    optimizer = Adam(table.parameters(), lr=0.01, betas=betas)
    table(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match="beta1 / sqrt"):
        optimizer.step()


@pytest.mark.parametrize("computed", [False, True])
def test_adam_catch_up_interrupted_is_finished_by_the_next_call(computed, monkeypatch):
    # the training loop calls catch_up again on an interrupt: the rows of the blocks not
    # yet caught up must still be behind then, and those caught up not moved twice (an
    # interrupt before or after a block's catching up is computed, before it is written)
    tables = []
    for interrupt in (False, True):
        torch.manual_seed(0)
        table = torch.nn.Embedding(300, 4, sparse=True)
        optimizer = Adam(table.parameters(), lr=0.01, weight_decay=1e-3)
        _train_embeddings(table, optimizer, [torch.arange(300)] + [torch.arange(10)] * 5)
        if interrupt:
            monkeypatch.setattr(_optim, "CATCH_UP_ROWS", 50)
            calls, original = [], _optim._catch_up

            def catch_up_block(*args):
                calls.append(1)
                rows = original(*args) if computed or len(calls) != 3 else None
                if len(calls) == 3:
                    raise KeyboardInterrupt
                return rows

            monkeypatch.setattr(_optim, "_catch_up", catch_up_block)
            with pytest.raises(KeyboardInterrupt):
                optimizer.catch_up()
            assert "last_update" in optimizer.state[table.weight]
            monkeypatch.setattr(_optim, "_catch_up", original)
        optimizer.catch_up()
        assert "last_update" not in optimizer.state[table.weight]
        tables.append(table.weight.detach())
    torch.testing.assert_close(tables[1], tables[0], rtol=0, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_sparse_steps_of_rows_without_gradients(weight_decay):
    # rows no batch looks up: untouched without weight decay; with it, Adam normalises
    # its gradient to steps of lr towards zero, and the sparse steps catch up with those
    torch.manual_seed(0)
    sparse = torch.nn.Embedding(30, 4, sparse=True)
    dense = torch.nn.Embedding(30, 4)
    dense.load_state_dict(sparse.state_dict())
    initial = sparse.weight.detach().clone()
    optimizers = [Adam(m.parameters(), lr=0.1, weight_decay=weight_decay)
                  for m in (sparse, dense)]
    for model, optimizer in zip((sparse, dense), optimizers):
        _train_embeddings(model, optimizer, [torch.tensor([0, 1, 2, 1])])
    # a first step is Adam's on the rows looked up
    torch.testing.assert_close(sparse.weight[:3], dense.weight[:3], rtol=0, atol=1e-7)
    for model, optimizer in zip((sparse, dense), optimizers):
        _train_embeddings(model, optimizer, [torch.tensor([2, 3])])
    optimizers[0].catch_up()
    unused = sparse.weight[4:].detach()
    if not weight_decay:
        assert torch.equal(unused, initial[4:]) and torch.equal(dense.weight[4:], initial[4:])
        return
    far = initial[4:].abs() > 0.3   # two steps of 0.1 do not reach zero
    assert far.sum() > 50
    # within the change of Adam's own normalised step as the row moves
    torch.testing.assert_close(unused[far], dense.weight[4:][far], rtol=0, atol=5e-3)
    torch.testing.assert_close(unused[far].abs(), initial[4:][far].abs() - 0.2, rtol=0,
                               atol=1e-6)
    assert (unused[~far].abs() <= initial[4:][~far].abs()).all()


def test_adam_takes_parameter_groups_of_generators():
    model = torch.nn.Linear(3, 2)
    optimizer = Adam([{"params": model.parameters()}], lr=0.1)
    assert len(optimizer.param_groups[0]["params"]) == 2
    assert optimizer.param_groups[0]["fused"] is not None
    model(torch.ones(4, 3)).sum().backward()
    before = model.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(model.weight, before)


def test_fit_does_not_import_torch_dynamo():
    code = ("import sys; from skmtl import MMOEClassifier; from skmtl.datasets import "
            "make_multitask; d = make_multitask(500, random_state=0); "
            "MMOEClassifier(max_epochs=1).fit(d.data, d.target); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# -- the encoder's edges ---------------------------------------------------------------


def test_duplicate_column_names_are_refused(tasks):
    X, Y, _ = tasks
    X = X.rename(columns={"num_b": "num_a"})
    with pytest.raises(ValueError, match=r"duplicate column names \['num_a'\]"):
        MMOEClassifier(**FAST).fit(X, Y)


@pytest.mark.parametrize("column", [
    pd.Series(pd.date_range("2020-01-01", periods=2000, freq="h")),
    pd.Series(pd.date_range("2020-01-01", periods=2000, freq="h", tz="UTC")),
    pd.Series(pd.to_timedelta(np.arange(2000), unit="s")),
    pd.Series(pd.period_range("2020-01", periods=2000, freq="D")),
    # a pyarrow duration (the difference of two timestamps read with engine="pyarrow")
    # was read as a count of its unit: predictions changed with the unit
    pd.Series(pd.to_timedelta(np.arange(2000), unit="s")).astype("duration[s][pyarrow]"),
    pd.Series(pd.date_range("2020-01-01", periods=2000)).astype("timestamp[s][pyarrow]"),
])
def test_dates_and_durations_are_refused_as_numbers(tasks, column):
    X, Y, _ = tasks
    with pytest.raises(TypeError, match="Numeric column 'when' has dtype .*not converted"):
        MMOEClassifier(**FAST).fit(X.assign(when=column.array), Y)


@pytest.mark.parametrize("dtype", ["datetime64[s]", "timedelta64[s]"])
def test_date_arrays_are_refused(tasks, dtype):
    with pytest.raises(TypeError, match="dates and durations"):
        MMOEClassifier(**FAST).fit(np.arange(2000).astype(dtype).reshape(-1, 1), tasks[1])


@pytest.mark.parametrize("value", [np.datetime64("2020-01-01"), np.timedelta64(5, "D"),
                                   b"2.5"])
def test_dates_and_bytes_in_an_object_column_are_not_numbers(tasks, value):
    # numpy would read them as 18262 days, 5 days and 2.5; a DataFrame column as an array does
    X, Y, _ = tasks
    when = np.array([value, 1.0] * (len(X) // 2), dtype=object)
    numeric_when = dict(categorical_features=["color", "shop"], **FAST)
    with pytest.raises(ValueError, match=r"Numeric columns \['when'\] hold values that are not"):
        MMOEClassifier(**numeric_when).fit(X.assign(when=when), Y)
    model = MMOEClassifier(**numeric_when).fit(X.assign(when=1.0), Y)
    with pytest.raises(ValueError, match=r"Numeric columns \['when'\] hold values that are not"):
        model.predict_proba(X.assign(when=when))


@pytest.mark.parametrize("hashed", [False, True])
def test_unhashable_values_of_a_categorical_column_are_named(tasks, hashed):
    X, Y, _ = tasks
    model = MMOEClassifier(hash_buckets={"color": 8} if hashed else None, **FAST).fit(X, Y)
    color = X["color"].to_numpy(dtype=object)
    color[1] = ["red"]
    for rows in (3, 1000):  # (Python strings looked up by a dict, then by pandas)
        with pytest.raises(TypeError, match=r"Categorical column 'color' holds values that "
                                            r"cannot be looked up \(unhashable type: 'list'\)"):
            model.predict_proba(X.assign(color=color)[:rows])


def test_dates_may_be_declared_categorical(tasks):
    X, Y, _ = tasks
    X = X.assign(day=pd.date_range("2020-01-01", periods=len(X), freq="h").normalize())
    model = MMOEClassifier(categorical_features=["color", "shop", "day"], **FAST).fit(X, Y)
    assert model.is_categorical_[-1]


@pytest.mark.parametrize("huge", ["10**400", "-10**5000", "decimal.Decimal('1e400')",
                                  "'-1e400'"])
def test_numbers_beyond_float64_in_an_object_column_are_named_as_such(tasks, huge):
    # a Python int raised pandas' bare OverflowError; a Decimal or a string became
    # infinity, reported as "infinite values" (an int of 5,000 digits has no repr)
    huge = eval(huge)
    X, Y, _ = tasks
    params = {**FAST, "categorical_features": ["color", "shop"]}
    model = MMOEClassifier(**params).fit(X, Y)
    bad = X.assign(num_b=X["num_b"].astype(object))
    bad.loc[5, "num_b"] = huge
    match = r"\['num_b'\] hold numbers beyond float64's range \(\|x\| > 1.8e\+308\), such as "
    with pytest.raises(ValueError, match=match):
        MMOEClassifier(**params).fit(bad, Y)
    with pytest.raises(ValueError, match=match):
        model.predict_proba(bad)
    for infinite in (np.inf, "inf", decimal.Decimal("-Infinity")):  # infinite indeed
        bad.loc[5, "num_b"] = infinite
        with pytest.raises(ValueError, match=r"\['num_b'\] contain infinite values"):
            MMOEClassifier(**params).fit(bad, Y)
    if np.finfo(np.longdouble).max > 1e400:  # (80-bit long doubles of x86)
        longdouble = X.assign(num_b=X["num_b"].to_numpy(np.longdouble))
        longdouble.loc[5, "num_b"] = np.longdouble("1e400")
        with pytest.raises(ValueError, match=match):
            model.predict_proba(longdouble)


def test_values_beyond_float32_are_named_as_such(tasks):
    X, Y, _ = tasks
    huge = X.copy()
    huge.loc[3, "num_b"] = 1e39
    with pytest.raises(ValueError, match=r"\['num_b'\] hold finite values beyond float32"):
        MMOEClassifier(**{**FAST, "numeric_encoding": "standard"}).fit(huge, Y)
    # the interpolated encodings clip such values to the fitted range, in fit and predict
    model = MMOEClassifier(**{**FAST, "numeric_encoding": "quantile"}).fit(X, Y)
    assert np.all(np.isfinite(model.predict_proba(huge)[0]))
    model = MMOEClassifier(**{**FAST, "numeric_encoding": "piecewise_linear"}).fit(huge, Y)
    assert model._encoder.numeric_.knots_[1][-1] == 1e39
    both = huge.copy()
    both.loc[4, "num_a"] = np.inf
    with pytest.raises(ValueError, match=r"\['num_a'\] contain infinite values"):
        MMOEClassifier(**{**FAST, "numeric_encoding": "piecewise_linear"}).fit(both, Y)


def test_standardised_values_far_from_zero_keep_their_spread(tasks):
    X, Y, _ = tasks
    # Timestamps of one day in 2023: float32 holds them only to 128 s.
    seconds = 1.7e9 + np.random.default_rng(0).uniform(0, 86_400, len(X))
    timed = X[["num_a"]].assign(time=seconds)
    model = MMOEClassifier(**{**FAST, "numeric_encoding": "standard"}).fit(timed, Y)
    _, numeric = model._encoder.transform(timed)
    expected = (seconds - seconds.mean()) / seconds.std()
    np.testing.assert_allclose(numeric[:, 1], expected, rtol=0, atol=1e-5)
    # standardised beyond float32's range, though finite in float32 before: named
    far = timed.assign(time=3e38)
    scaled = MMOEClassifier(**{**FAST, "numeric_encoding": "standard"}).fit(timed.assign(
        time=seconds * 1e-6), Y)
    with pytest.raises(ValueError, match=r"\['time'\] hold values that exceed float32's range "
                                         "once standardised"):
        scaled.predict_proba(far)


@pytest.mark.parametrize("encoding", ["piecewise_linear", "quantile", "periodic"])
def test_a_long_double_column_encodes_as_its_float64_values(encoding):
    # np.interp refuses float128: the encoder handed the column to it uncast
    values = np.random.default_rng(0).normal(size=300)
    X = pd.DataFrame({"x": values})
    target = (values > 0).astype(float)[:, None]
    expected = TabularEncoder(numeric_encoding=encoding).fit(X, targets=target).transform(X)
    long = X.astype(np.longdouble)
    encoder = TabularEncoder(numeric_encoding=encoding).fit(long, targets=target)
    np.testing.assert_array_equal(encoder.transform(long)[1], expected[1])


def test_standard_encoding_of_a_spread_whose_square_underflows():
    # squared deviations of 1e-200 are 0: the column was encoded as zeros (values
    # beyond float32's range, whose squares could overflow, are refused before).
    # The weight-zero rows (validation) lie far outside.
    spread = 1e-200
    values = np.random.default_rng(0).normal(size=500)
    X = pd.DataFrame({"x": values * spread})
    weight = np.ones(500)
    weight[:50] = 0.0
    X.loc[:49, "x"] = 1.0
    encoder = TabularEncoder(numeric_encoding="standard").fit(X, sample_weight=weight)
    kept = values[50:]
    np.testing.assert_allclose(encoder.numeric_.scale_[0], kept.std() * spread, rtol=1e-12)
    _, numeric = encoder.transform(X.iloc[50:])
    np.testing.assert_allclose(numeric[:, 0], (kept - kept.mean()) / kept.std(), atol=1e-5)


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "large_string[pyarrow]"])
def test_strings_held_by_pyarrow_get_the_codes_of_python_strings(dtype):
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    levels = np.array(["a", "b", "c", "dd"], dtype=object)
    X = pd.DataFrame({"s": levels[rng.integers(0, 4, 500)], "n": rng.normal(size=500)})
    encoder = TabularEncoder().fit(X.astype({"s": object}))
    new = X.astype({"s": object})
    new.loc[0, "s"], new.loc[1, "s"] = None, "unseen"
    expected, _ = encoder.transform(new)
    assert expected[0, 0] == expected[1, 0] == 0 and (expected[2:, 0] > 0).all()
    codes, _ = encoder.transform(new.astype({"s": dtype}))
    np.testing.assert_array_equal(codes, expected)
    # read by pyarrow's lookup, not through Python strings
    reader = code_reader(new["s"].astype(dtype), pd.Index(["a", "b", "c", "dd"]))
    assert reader.__name__ == "codes_of_arrow_strings"


_ODD_VALUES = ["c", np.str_("b"), None, np.nan, np.float64("nan"), pd.NA, "unseen", "", 3,
               b"a", 2.5, pd.NaT]


@pytest.mark.parametrize("values", [["c", "a", "unseen", "dd"], ["c", None, np.nan, "a"],
                                    _ODD_VALUES])
@pytest.mark.parametrize("n_rows", [1, 4, 1000])
@pytest.mark.parametrize("index_dtype", [None, object])  # (None: str in pandas 3, as in fit)
def test_python_strings_get_the_codes_of_get_indexer(values, n_rows, index_dtype):
    # the dict lookup of Python strings gives what pandas' get_indexer gives, whatever the values
    index = pd.Index(["a", "b", "c", "dd"], dtype=index_dtype)
    column = np.array((values * n_rows)[:max(n_rows, len(values))], dtype=object)
    reader = code_reader(column, index)
    assert reader.__name__ == "codes_of_python_strings"
    for start, stop in [(0, len(column)), (1, min(2, len(column))), (len(column) - 1, len(column))]:
        out = np.full(stop - start, -7, dtype=np.int32)
        reader(start, stop, out, np.empty(stop - start, np.intp))
        np.testing.assert_array_equal(out, index.get_indexer(column[start:stop]) + 1)


@pytest.mark.parametrize("dtype", ["string[python]", "str", "string[pyarrow]",
                                   "large_string[pyarrow]"])
@pytest.mark.parametrize("n_rows", [1, 5, 600])  # pyarrow: a dict up to 256 rows, index_in above
@pytest.mark.parametrize("index_dtype", [None, object])
def test_pandas_strings_get_the_codes_of_get_indexer(dtype, n_rows, index_dtype):
    if dtype != "string[python]":
        pytest.importorskip("pyarrow")
    index = pd.Index(["a", "b", "c", "dd"], dtype=index_dtype)
    values = np.array((["c", None, "unseen", "a", "dd"] * n_rows)[:n_rows], dtype=object)
    column = pd.Series(values, dtype=dtype)
    for n in sorted({1, n_rows // 2 or 1, n_rows}):
        out = np.empty(n, dtype=np.int32)
        code_reader(column, index)(n_rows - n, n_rows, out, np.empty(n, np.intp))
        np.testing.assert_array_equal(out, index.get_indexer(values[n_rows - n:]) + 1)


def test_columns_are_read_alike_without_pandas_array_iterator(monkeypatch):
    # the column arrays come from a private pandas iterator when it exists; the public path
    # gives the same encoding of every kind of column
    rng = np.random.default_rng(0)
    n = 200
    levels = np.array(["a", "b", "c"], dtype=object)
    X = pd.DataFrame({
        "category": pd.Categorical(levels[rng.integers(0, 3, n)]),
        "object": levels[rng.integers(0, 3, n)],
        "string": pd.array(levels[rng.integers(0, 3, n)], dtype="string[python]"),
        "int8": rng.integers(-5, 5, n).astype(np.int8),
        "Int64": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)),
                          dtype="Int64"),
        "Float64": pd.array(rng.normal(size=n), dtype="Float64"),
        "bool": rng.random(n) < 0.5,
        "float32": rng.normal(size=n).astype(np.float32),
        "object numbers": np.where(rng.random(n) < 0.1, None, rng.normal(size=n)).astype(object),
    })
    encoder = TabularEncoder(categorical_features=["category", "object", "string"]).fit(X)
    expected = encoder.transform(X)
    assert expected[0].shape == (n, 3) and expected[1].shape == (n, 6)
    monkeypatch.delattr(pd.DataFrame, "_iter_column_arrays")
    for got, want in zip(TabularEncoder(categorical_features=["category", "object", "string"])
                         .fit(X).transform(X), expected):
        np.testing.assert_array_equal(got, want)


def test_pyarrow_value_sets_follow_the_type_and_the_fit():
    # the fitted categories as a pyarrow array are kept from call to call
    pytest.importorskip("pyarrow")
    encoder = TabularEncoder().fit(pd.DataFrame({"s": ["a", "b", "c"]}, dtype=object))
    # (more rows than ARROW_SMALL_BLOCK: looked up by pyarrow's index_in)
    X = pd.DataFrame({"s": ["c", "a", "x", None] * 100}, dtype=object)
    for dtype in ["string[pyarrow]", "large_string[pyarrow]", "str", "string[pyarrow]"]:
        np.testing.assert_array_equal(encoder.transform(X.astype({"s": dtype}))[0][:, 0],
                                      [3, 1, 0, 0] * 100)
    # after a new fit (on Python strings): looked up among the new categories
    encoder.fit(pd.DataFrame({"s": ["x", "c"]}, dtype=object))
    np.testing.assert_array_equal(encoder.transform(X.astype({"s": "str"}))[0][:, 0],
                                  [1, 0, 2, 0] * 100)  # (categories sorted: c, x)
    assert "_lookups" in encoder.__dict__
    assert "_lookups" not in pickle.loads(pickle.dumps(encoder)).__dict__


def test_pyarrow_dictionary_columns_are_categorical(tasks, tmp_path):
    pytest.importorskip("pyarrow")
    X, Y, _ = tasks
    X = X.assign(color=X["color"].astype("category")).drop(columns="shop")
    X.to_parquet(tmp_path / "x.parquet")
    arrow = pd.read_parquet(tmp_path / "x.parquet", dtype_backend="pyarrow")
    assert str(arrow["color"].dtype).startswith("dictionary<")
    model = MMOEClassifier(**FAST).fit(arrow, Y)
    assert list(model.is_categorical_) == list(MMOEClassifier(**FAST).fit(X, Y).is_categorical_)
    np.testing.assert_allclose(model.predict_proba(arrow)[0], model.predict_proba(X)[0])


def test_column_names_of_mixed_types_are_refused(tasks):
    X, Y, _ = tasks
    mixed = X.rename(columns={"num_a": 1})
    with pytest.raises(TypeError, match=r"column names mix strings with other types \(int, str\)"):
        MMOEClassifier(**FAST).fit(mixed, Y)


def test_complex_numeric_columns_are_refused(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    complex_column = X.assign(num_a=X["num_a"] + 1j)
    for call in (lambda: MMOEClassifier(**FAST).fit(complex_column, Y),
                 lambda: model.predict(complex_column)):
        with pytest.raises(ValueError, match="Complex data not supported: numeric column "
                                             "'num_a'"):
            call()


# -- fitted state kept consistent --------------------------------------------------------


def test_warm_start_refuses_a_changed_network(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(warm_start=True, **FAST).fit(X, Y)
    model.set_params(embedding_dim=4, n_bins=8)
    with pytest.raises(ValueError, match="embedding_dim was 8 and is now 4; n_bins was 32"):
        model.fit(X, Y)
    model.set_params(embedding_dim=8, n_bins=32, weight_decay=0.5).fit(X, Y)
    assert model.net_.optimizer_.param_groups[0]["weight_decay"] == 0.5


def test_saved_model_keeps_the_network_it_was_fitted_with(tasks, holdout, tmp_path):
    from skmtl import load

    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    model.set_params(embedding_dim=4, n_experts=2, dropout=0.5)
    model.save(tmp_path / "m.skmtl")
    loaded = load(tmp_path / "m.skmtl")
    assert (loaded.embedding_dim, loaded.n_experts, loaded.dropout) == (8, 4, 0.0)
    for a, b in zip(model.predict_proba(holdout[0]), loaded.predict_proba(holdout[0])):
        np.testing.assert_array_equal(a, b)


def test_all_zero_sample_weight_is_refused(tasks):
    X, Y, _ = tasks
    # scikit-learn >= 1.8 says so itself; skmtl does for the versions before
    with pytest.raises(ValueError, match="zero for every row|at least one non-zero"):
        MMOEClassifier(**FAST).fit(X, Y, sample_weight=np.zeros(len(X)))


@pytest.mark.parametrize("scale", [1e36, 1e-44])
def test_sample_weight_beyond_float32_sums_is_refused(tasks, scale):
    # 1e36 per row summed to infinity (a DivergenceError naming no task); 1e-44 trained
    # on losses that vanished to 0
    X, Y, _ = tasks
    with pytest.raises(ValueError, match="Divide the weights by a constant"):
        MMOEClassifier(**FAST).fit(X, Y, sample_weight=np.full(len(X), scale))
    # a constant factor within range trains as the unweighted fit does
    weighted = MMOEClassifier(**FAST).fit(X, Y, sample_weight=np.full(len(X), 1e20))
    assert np.isfinite(weighted.history_[:, "train_loss"]).all()


def test_score_needs_a_positive_weight_on_a_known_label(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**{**FAST, "max_epochs": 1}).fit(X, Y)
    half = Y.astype(float)
    half.iloc[: len(Y) // 2] = np.nan
    weight = np.r_[np.ones(len(Y) // 2), np.zeros(len(Y) - len(Y) // 2)]
    with pytest.raises(ValueError, match="zero on every row with a known label"):
        model.score(X, half, sample_weight=weight)
    # negative weights were averaged ("zero on every row" when all were negative)
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        model.score(X, Y, sample_weight=-np.ones(len(Y)))
    regressor = MMOERegressor(**{**FAST, "max_epochs": 1}).fit(X, Y.astype(float))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        regressor.score(X, Y.astype(float), sample_weight=np.r_[-1.0, np.ones(len(Y) - 1)])


def test_validation_rows_weigh_nothing_in_the_encoder(tasks, monkeypatch):
    X, Y, _ = tasks
    seen = {}
    fit = TabularEncoder._fit

    def spy(self, X, sample_weight, *args):
        seen["weight"] = sample_weight
        return fit(self, X, sample_weight, *args)

    monkeypatch.setattr(TabularEncoder, "_fit", spy)
    model = MMOEClassifier(early_stopping=True, validation_fraction=0.25, **FAST).fit(X, Y)
    weight = seen["weight"]
    assert (weight == 0).sum() == len(X) // 4 and np.all(weight[weight != 0] == 1)
    assert "valid_loss" in model.history_[-1]
    # and with sample weights, the training rows keep theirs
    sample_weight = np.arange(1, len(X) + 1, dtype=float)
    MMOEClassifier(early_stopping=True, validation_fraction=0.25, **FAST).fit(
        X, Y, sample_weight=sample_weight)
    kept = seen["weight"] != 0
    np.testing.assert_array_equal(seen["weight"][kept], sample_weight[kept])


def test_values_only_in_validation_rows_are_unknown_categories(tasks):
    X, Y, _ = tasks
    X = X.assign(user=[f"u{i}" for i in range(len(X))])  # an id: every value once
    model = MMOEClassifier(early_stopping=True, validation_fraction=0.25, **FAST).fit(X, Y)
    # the validation rows' ids are not in the vocabulary: they get the unknown code
    assert len(model._encoder.categories_[-1]) == len(X) - len(X) // 4
    codes, _ = model._encoder.transform(X)
    assert (codes[:, -1] == 0).sum() == len(X) // 4
    encoder = TabularEncoder().fit(X, sample_weight=np.r_[np.zeros(10), np.ones(len(X) - 10)])
    assert "u3" not in set(encoder.categories_[-1]) and "u10" in set(encoder.categories_[-1])


def test_target_bins_keep_the_split_that_matters_among_noisy_tasks():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.uniform(0, 1, 20_000)})
    targets = np.c_[X["x"] > 0.5, rng.integers(0, 2, (20_000, 2))].astype(np.float32)
    encoder = TabularEncoder(numeric_encoding="piecewise_linear", bin_strategy="target",
                             random_state=0).fit(X, None, targets)
    assert np.min(np.abs(encoder.numeric_.knots_[0] - 0.5)) < 1e-3


def test_target_bins_of_values_near_the_float64_maximum():
    X = pd.DataFrame({"x": np.r_[np.full(50, 1e308), np.full(50, 1.7e308)]})
    targets = np.r_[np.zeros(50), np.ones(50)].astype(np.float32).reshape(-1, 1)
    encoder = TabularEncoder(numeric_encoding="piecewise_linear", bin_strategy="target",
                             random_state=0).fit(X, None, targets)
    knots = encoder.numeric_.knots_[0]
    assert np.all(np.isfinite(knots)) and len(knots) == 3


def test_nullable_numeric_columns_are_read_by_position(tasks):
    X, Y, _ = tasks
    X = X.assign(count=pd.array(np.arange(len(X)) % 7, dtype="Int64"))
    model = MMOEClassifier(**FAST).fit(X, Y)
    shifted = X.set_axis(np.arange(len(X)) * 0.5 + 1000.25)   # a float index
    for a, b in zip(model.predict_proba(X), model.predict_proba(shifted)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_columns, block_size", [(10, 65536), (1000, 4194), (10_000, 1024)])
def test_blocks_of_wide_tables_hold_fewer_rows(n_columns, block_size):
    # a block of a wide table would make several float64 copies of GBs in fit
    X = np.zeros((3, n_columns))
    reader = TabularEncoder(numeric_encoding="standard").fit(X).reader(X)
    assert reader.block_size == block_size
