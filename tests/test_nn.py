"""The PyTorch core on its own."""

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import skmtl.nn
from skmtl.nn import (AITM, ESMM, MLP, PLE, EntireSpaceLoss, ExpertBank, FeatureEmbedding, MMoE,
                      MultiTaskLoss, PeriodicEmbedding, PiecewiseLinearEmbedding, SharedBottom,
                      TaskGates, entire_space_log_proba)
from skmtl.nn.weighting import GradNorm, split_parameters


def test_nn_does_not_import_sklearn_or_skorch():
    package = Path(skmtl.nn.__file__).parent
    imported = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "torch" in imported
    assert not imported & {"sklearn", "skorch", "pandas"}


def test_feature_embedding_uses_one_table_with_offsets():
    emb = FeatureEmbedding([3, 5], n_numeric=2, embedding_dim=4)
    assert emb.embedding.num_embeddings == 8
    assert emb.offsets.tolist() == [0, 3]
    categorical = torch.tensor([[1, 1], [2, 4]])
    numeric = torch.tensor([[0.5, -1.0], [2.0, 3.0]])
    out = emb(categorical, numeric)
    assert out.shape == (2, 2 * 4 + 2)
    table = emb.embedding.weight
    torch.testing.assert_close(out[0, :4], table[1])
    torch.testing.assert_close(out[0, 4:8], table[3 + 1])   # column 1 is offset by 3
    torch.testing.assert_close(out[1, 4:8], table[3 + 4])
    torch.testing.assert_close(out[:, 8:], numeric)


def test_feature_embedding_zero_initialises_reserved_codes():
    emb = FeatureEmbedding([3, 5], 0, 4, padding_codes=[0, 0])
    assert torch.all(emb.embedding.weight[[0, 3]] == 0)
    assert torch.any(emb.embedding.weight[[1, 2, 4]] != 0)


@pytest.mark.parametrize("embedding_dim", [4, 48])   # summed in serial chunks / in one call
def test_feature_embedding_gradient_matches_plain_lookup(embedding_dim):
    torch.manual_seed(0)
    cardinalities = [7, 50, 3]
    emb = FeatureEmbedding(cardinalities, 0, embedding_dim)
    # enough rows that the backward is split into several chunks
    categorical = torch.stack([torch.randint(0, c, (20_000,)) for c in cardinalities], dim=1)
    upstream = torch.randn(20_000, emb.output_dim)
    (emb(categorical, torch.empty(20_000, 0)) * upstream).sum().backward()

    table = emb.embedding.weight.detach().clone().requires_grad_()
    plain = nn.functional.embedding(categorical + emb.offsets, table).view(20_000, -1)
    (plain * upstream).sum().backward()
    torch.testing.assert_close(emb.embedding.weight.grad, table.grad, rtol=1e-4, atol=1e-4)
    assert emb.embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("embedding_dim", [4, 48])   # summed in serial chunks / in one call
def test_feature_embedding_sparse_gradient_holds_the_rows_looked_up(embedding_dim):
    torch.manual_seed(0)
    cardinalities = [7, 5000, 3]
    dense = FeatureEmbedding(cardinalities, 0, embedding_dim)
    sparse = FeatureEmbedding(cardinalities, 0, embedding_dim, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    categorical = torch.stack([torch.randint(0, c, (20_000,)) for c in cardinalities], dim=1)
    upstream = torch.randn(20_000, dense.output_dim)
    for emb in (dense, sparse):
        (emb(categorical, torch.empty(20_000, 0)) * upstream).sum().backward()
    grad = sparse.embedding.weight.grad
    assert grad.is_sparse   # one entry per row looked up:
    looked_up = torch.unique((categorical + dense.offsets).reshape(-1))
    assert torch.equal(grad._indices()[0], looked_up) and len(looked_up) < sum(cardinalities)
    torch.testing.assert_close(grad.to_dense(), dense.embedding.weight.grad, rtol=1e-4,
                               atol=1e-4)
    with torch.no_grad():   # and the same values looked up
        torch.testing.assert_close(sparse(categorical, None), dense(categorical, None))


@pytest.mark.parametrize("embedding_dim", [4, 16])   # the serial and the parallel backward
def test_per_sample_gradients_with_torch_func(embedding_dim):
    # torch.func's vmap(grad(...)) runs the embeddings' custom lookup batched: the
    # per-row gradients must be those of one backward per row.
    from torch.func import functional_call, grad, vmap
    torch.manual_seed(0)
    net = MMoE([5, 3], 2, [1, 1], embedding_dim=embedding_dim, n_experts=2, expert_units=(8,),
               tower_units=(4,), numeric_embedding=PiecewiseLinearEmbedding([3, 2], embedding_dim))
    params = {name: p.detach() for name, p in net.named_parameters()}
    categorical = torch.tensor([[0, 1], [4, 2], [4, 0], [1, 1]])
    numeric = torch.tensor([[0.5, 1.5], [2.5, 0.0], [1.0, 2.0], [0.2, 0.7]])

    def loss(params, codes, numbers):
        return sum(out.square().sum()
                   for out in functional_call(net, params, (codes[None], numbers[None])))

    per_row = vmap(grad(loss), in_dims=(None, 0, 0))(params, categorical, numeric)
    for i in range(len(categorical)):
        net.zero_grad()
        sum(out.square().sum() for out in net(categorical[i:i + 1], numeric[i:i + 1])).backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(per_row[name][i], p.grad, msg=name)
    assert per_row["embedding.embedding.weight"].abs().sum() > 0


@pytest.mark.parametrize("cardinalities, n_numeric", [([], 3), ([4], 0)])
def test_feature_embedding_only_numeric_or_only_categorical(cardinalities, n_numeric):
    emb = FeatureEmbedding(cardinalities, n_numeric, 2)
    categorical = torch.zeros(5, len(cardinalities), dtype=torch.long)
    numeric = torch.randn(5, n_numeric)
    assert emb(categorical, numeric).shape == (5, emb.output_dim)


def test_expert_bank_matches_independent_experts():
    torch.manual_seed(0)
    bank = ExpertBank(6, n_experts=3, hidden_units=[5, 4])
    x = torch.randn(7, 6)
    out = bank(x)
    assert out.shape == (7, 3, 4)
    for e in range(3):
        first = nn.Linear(6, 5)
        first.weight.data = bank.first.weight[e * 5:(e + 1) * 5]
        first.bias.data = bank.first.bias[e * 5:(e + 1) * 5]
        h = torch.relu(first(x))
        h = torch.relu(h @ bank.weights[0][e] + bank.biases[0][e])
        torch.testing.assert_close(out[:, e], h)


def test_expert_bank_batch_norm_normalises_each_experts_units():
    torch.manual_seed(0)
    plain = ExpertBank(6, n_experts=3, hidden_units=[5, 4])
    normalised = ExpertBank(6, n_experts=3, hidden_units=[5, 4], batch_norm=True)
    normalised.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(64, 6)
    # in training, each expert's units are standardised over the batch before the ReLU:
    # the same from one input for all experts and from each expert's own copy of it
    out = normalised(x)
    torch.testing.assert_close(normalised(x.unsqueeze(1).expand(64, 3, 6)), out)
    first = normalised.first(x)
    standardised = (first - first.mean(0)) / torch.sqrt(first.var(0, unbiased=False) + 1e-5)
    h = torch.relu(standardised).view(64, 3, 5).transpose(0, 1)
    h = torch.baddbmm(normalised.biases[0], h, normalised.weights[0])  # (E, B, 4)
    h = torch.relu((h - h.mean(1, keepdim=True))
                   / torch.sqrt(h.var(1, unbiased=False, keepdim=True) + 1e-5))
    torch.testing.assert_close(out, h.transpose(0, 1), rtol=1e-4, atol=1e-5)
    # in evaluation, with the running statistics of a new layer, it is the plain bank
    normalised.norms.apply(lambda layer: layer.reset_running_stats()
                           if isinstance(layer, nn.BatchNorm1d) else None)
    torch.testing.assert_close(normalised.eval()(x), plain(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 0])
def test_batch_norm_trains_on_a_batch_of_one_row_or_none(rows):
    # torch's BatchNorm1d refuses them in training; they take the running statistics,
    # which they leave alone
    torch.manual_seed(0)
    mlp = MLP(6, [8], output_dim=2, batch_norm=True)
    assert [type(layer).__name__ for layer in mlp] == ["Linear", "BatchNorm", "ReLU", "Linear"]
    mlp(torch.randn(32, 6))
    statistics = {k: v.clone() for k, v in mlp.state_dict().items() if "running" in k}
    x = torch.randn(rows, 6)
    trained = mlp(x)
    trained.sum().backward()
    assert all(torch.equal(mlp.state_dict()[k], v) for k, v in statistics.items())
    torch.testing.assert_close(trained, mlp.eval()(x))


def test_gates_are_distributions():
    gates = TaskGates(6, n_tasks=2, n_experts=3)(torch.randn(4, 6))
    assert gates.shape == (4, 2, 3)
    torch.testing.assert_close(gates.sum(-1), torch.ones(4, 2))


def test_mlp_shapes():
    mlp = MLP(6, [8, 4], dropout=0.1, output_dim=2)
    assert mlp(torch.randn(3, 6)).shape == (3, 2)
    assert MLP(6, []).output_dim == 6


def test_mmoe_outputs_and_loss():
    model = MMoE([4, 3], 2, task_output_dims=[1, 3], n_experts=2, expert_units=(8,))
    categorical = torch.tensor([[0, 1], [3, 2]])
    numeric = torch.randn(2, 2)
    logits = model(categorical, numeric)
    assert [tuple(t.shape) for t in logits] == [(2, 1), (2, 3)]
    probas = model.predict_proba(logits)
    for p in probas:
        torch.testing.assert_close(p.sum(1), torch.ones(2))
    losses = MultiTaskLoss([1, 3])(logits, torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert losses.shape == (2,)
    losses.sum().backward()
    assert model.experts.first.weight.grad is not None
    assert model.gate_weights(categorical, numeric).shape == (2, 2, 2)


def test_esmm_probability_is_product_of_conditionals():
    model = ESMM([5], 1, n_stages=3)
    logits = model(torch.tensor([[1], [4]]), torch.randn(2, 1))
    reach = model.predict_proba(logits)
    conditional = model.predict_conditional_proba(logits)
    torch.testing.assert_close(reach[0], conditional[0])
    torch.testing.assert_close(reach[1][:, 1], conditional[0][:, 1] * conditional[1][:, 1])
    torch.testing.assert_close(
        reach[2][:, 1], conditional[0][:, 1] * conditional[1][:, 1] * conditional[2][:, 1])


def test_entire_space_loss_is_finite_and_has_gradients_at_extremes():
    logits = torch.tensor([[40.0, 40.0], [-60.0, -60.0], [200.0, 200.0], [0.0, 0.0]],
                          requires_grad=True)
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    log_reach, log_miss = entire_space_log_proba(logits)
    assert torch.isfinite(log_reach).all() and torch.isfinite(log_miss).all()
    assert (log_reach < 0).all() and (log_miss <= 0).all()
    loss = EntireSpaceLoss()(logits, target)
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # A confident wrong click prediction still gets pushed down.
    assert logits.grad[0, 0] > 0


def test_entire_space_loss_matches_bce_of_product():
    torch.manual_seed(0)
    logits = torch.randn(50, 2)
    target = torch.stack([torch.ones(50), (torch.rand(50) < 0.5).float()], 1)
    p = torch.cumprod(torch.sigmoid(logits), dim=1)
    expected = torch.stack([
        nn.functional.binary_cross_entropy(p[:, k], target[:, k]) for k in range(2)])
    torch.testing.assert_close(EntireSpaceLoss()(logits, target), expected)


def test_weighted_loss_ignores_zero_weight_rows():
    logits = (torch.tensor([[2.0], [-1.0], [0.5]]),)
    target = torch.tensor([[1.0], [1.0], [0.0]])
    loss = MultiTaskLoss([1])
    weighted = loss(logits, target, torch.tensor([1.0, 0.0, 1.0]))
    kept = loss((logits[0][[0, 2]],), target[[0, 2]])
    torch.testing.assert_close(weighted, kept)


def test_esmm_needs_two_stages():
    with pytest.raises(ValueError, match="at least 2 stages"):
        ESMM([3], 0, n_stages=1)


def test_ple_matches_a_loop_over_experts_and_gates():
    """Every gate and expert of every level, one at a time, as the paper describes them."""
    torch.manual_seed(0)
    n_tasks, n_shared, n_own = 3, 2, 2
    ple = skmtl.nn.PLE([5, 7], 3, [1, 1, 2], embedding_dim=4, n_levels=3,
                       n_shared_experts=n_shared, n_task_experts=n_own, expert_units=(6, 5),
                       tower_units=(4,)).eval()
    categorical = torch.stack([torch.randint(0, 5, (9,)), torch.randint(0, 7, (9,))], dim=1)
    numeric = torch.randn(9, 3)
    with torch.no_grad():
        x = ple.embedding(categorical, numeric)
        task_inputs, shared_input = [x] * n_tasks, x
        gate_weights = ple.gate_weights(categorical, numeric)
        for level, level_gates in zip(ple.levels, gate_weights):
            bank = level.experts

            def expert(e, inputs):
                weight = bank.first.weight.view(bank.n_experts, -1, inputs.shape[1])[e]
                first = torch.relu(inputs @ weight.T + bank.first.bias.view(bank.n_experts, -1)[e])
                return torch.relu(first @ bank.weights[0][e] + bank.biases[0][e])

            shared = [expert(e, shared_input) for e in range(n_shared)]
            own = [[expert(n_shared + t * n_own + k, task_inputs[t]) for k in range(n_own)]
                   for t in range(n_tasks)]
            gate_w = level.task_gates.linear.weight.view(n_tasks, n_shared + n_own, -1)
            gate_b = level.task_gates.linear.bias.view(n_tasks, n_shared + n_own)
            outputs = []
            for t in range(n_tasks):
                weights = torch.softmax(task_inputs[t] @ gate_w[t].T + gate_b[t], dim=1)
                seen = list(range(n_shared)) + [n_shared + t * n_own + k for k in range(n_own)]
                torch.testing.assert_close(level_gates[:, t, seen], weights)
                candidates = torch.stack(shared + own[t], dim=1)
                outputs.append((weights.unsqueeze(2) * candidates).sum(dim=1))
            if level.shared_gate is not None:
                weights = torch.softmax(level.shared_gate.linear(shared_input), dim=1)
                torch.testing.assert_close(level_gates[:, n_tasks], weights)
                candidates = torch.stack(shared + [o for task in own for o in task], dim=1)
                shared_input = (weights.unsqueeze(2) * candidates).sum(dim=1)
            task_inputs = outputs
        expected = [tower(task_inputs[t]) for t, tower in enumerate(ple.towers)]
        for got, want in zip(ple(categorical, numeric), expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_adaptive_information_transfer_follows_the_paper():
    torch.manual_seed(0)
    ait = skmtl.nn.AdaptiveInformationTransfer(6, 4)
    p, q = torch.randn(5, 6), torch.randn(5, 6)
    weights, biases = ait.projections.weight.split(4), ait.projections.bias.split(4)
    h = [lambda u, w=w, b=b: u @ w.T + b for w, b in zip(weights, biases)]
    scores = torch.stack([(h[0](u) * h[1](u)).sum(1) / 2.0 for u in (p, q)], dim=1)
    w = torch.softmax(scores, dim=1)
    expected = w[:, :1] * h[2](p) + w[:, 1:] * h[2](q)
    torch.testing.assert_close(ait(p, q), expected)


def test_feature_embedding_checks_its_padding_codes():
    from skmtl.nn import FeatureEmbedding
    with pytest.raises(ValueError, match=r"padding_codes must give one code per column"):
        FeatureEmbedding([4, 3], n_numeric=0, embedding_dim=2, padding_codes=[4, 0])
    with pytest.raises(ValueError, match=r"padding_codes must give one code per column"):
        FeatureEmbedding([4, 3], n_numeric=0, embedding_dim=2, padding_codes=[0])


def test_piecewise_linear_embedding_learns_an_offset_for_missing_values():
    torch.manual_seed(0)
    embedding = PiecewiseLinearEmbedding([4, 2], 3, missing_positions=[1.5, 0.5])
    positions = torch.tensor([[float("nan"), 2.0], [3.0, float("nan")], [1.0, 1.0]])
    with torch.no_grad():
        embedding.linear.bias.fill_(10.0)  # every unit active: the gradient counts the rows
    embedding(positions).sum().backward()
    torch.testing.assert_close(embedding.missing_offsets.grad, torch.ones(2, 3))
    # only missing values move the offsets: none among these rows
    embedding.missing_offsets.grad = None
    embedding(positions[2:]).sum().backward()
    assert not embedding.missing_offsets.grad.any()
    # with zero offsets a missing value is embedded at its position; the offset moves it
    at_position = embedding(torch.tensor([[1.5, 2.0]])).view(2, 3)
    with torch.no_grad():
        embedding.missing_offsets.zero_()
        torch.testing.assert_close(embedding(positions[:1]).view(2, 3), at_position)
        embedding.missing_offsets[0] = -1e6
        moved = embedding(positions[:1]).view(2, 3)
    assert not moved[0].any() and torch.equal(moved[1], at_position[1])
    assert "missing_positions" not in embedding.state_dict()  # from the configuration
    for bad in ([1.0], [1.0, float("inf")]):
        with pytest.raises(ValueError, match="one finite position per feature"):
            PiecewiseLinearEmbedding([4, 2], 3, missing_positions=bad)
    # without missing positions NaN is an error that says so, not torch's IndexError
    with pytest.raises(ValueError, match="positions hold NaN: build the embedding with "
                                         "missing_positions"):
        PiecewiseLinearEmbedding([4, 2], 3)(positions)


def test_inputs_of_the_wrong_width_are_refused_not_broadcast():
    # one code column against two would broadcast: column 0's code read as column 1's too
    net = MMoE([5, 3], 2, [1, 1])
    with pytest.raises(ValueError, match="expected 2 categorical and 2 numeric columns; got 1"):
        net(torch.randint(0, 3, (4, 1)), torch.randn(4, 2))
    with pytest.raises(ValueError, match="expected 2 features; got 1"):
        PiecewiseLinearEmbedding([3, 3], 4)(torch.rand(5, 1))
    with pytest.raises(ValueError, match="expected 2 features; got 1"):
        PeriodicEmbedding(2, 4)(torch.rand(5, 1))
    with pytest.raises(ValueError, match="embeds 2 features, but n_numeric=1"):
        FeatureEmbedding([5], 1, 4, numeric_embedding=PiecewiseLinearEmbedding([3, 3], 4))


@pytest.mark.parametrize("make", [
    lambda: MMoE([5, 3], 2, [1, 2]), lambda: PLE([5, 3], 2, [1, 1], n_levels=2),
    lambda: SharedBottom([5, 3], 2, [1, 1]), lambda: ESMM([5, 3], 2, 3),
    lambda: AITM([5, 3], 2, 3),
    lambda: MMoE([5, 3], 2, [1, 1], numeric_embedding=PeriodicEmbedding(2, 4)),
    lambda: MMoE([5, 3], 2, [1, 2], batch_norm=True),
    lambda: PLE([5, 3], 2, [1, 1], n_levels=2, batch_norm=True),
    lambda: SharedBottom([5, 3], 2, [1, 1], batch_norm=True),
    lambda: ESMM([5, 3], 2, 3, imputation=True, batch_norm=True),
    lambda: AITM([5, 3], 2, 3, batch_norm=True),
])
def test_a_batch_of_no_rows(make):
    outputs = make()(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, 2))
    for output in outputs if isinstance(outputs, tuple) else (outputs,):
        assert output.shape[0] == 0


@pytest.mark.parametrize("make, message", [
    (lambda: MMoE([5], 1, [1], n_experts=0), "n_experts >= 1"),
    (lambda: MMoE([5], 1, [1], expert_units=(-2,)), "hidden layer of >= 1 units"),
    (lambda: MMoE([5], 1, [1], tower_units=(0,)), "layer widths must be >= 1"),
    (lambda: MMoE([5], 1, []), "n_tasks >= 1"),
    (lambda: PLE([5], 1, [1, 1], n_shared_experts=0, n_task_experts=0), "at least one of them"),
    (lambda: AITM([5], 1, 2, transfer_units=0), "transfer_units must be >= 1"),
    (lambda: PeriodicEmbedding(2, 4, n_frequencies=0), "n_frequencies must be >= 1"),
    (lambda: FeatureEmbedding([], 0, 4), "at least one column"),
    (lambda: FeatureEmbedding([5], -1, 4), "n_numeric >= 0"),
])
def test_bad_network_arguments_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_gradnorm_follows_a_float64_network():
    net = MMoE([5, 3], 2, [1, 1]).double()
    losses = MultiTaskLoss([1, 1])(net(torch.randint(0, 3, (8, 2)), torch.randn(8, 2).double()),
                                   torch.randint(0, 2, (8, 2)).double())
    GradNorm([1.0, 1.0]).backward(losses, *split_parameters(net))
    assert all(p.grad is not None and p.grad.dtype == torch.float64 for p in net.parameters()
               if p.requires_grad and p.grad is not None)
