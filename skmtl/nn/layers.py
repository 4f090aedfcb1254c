"""Building blocks shared by the multi-task networks."""

import math
from numbers import Integral

import torch
from torch import nn


class FeatureEmbedding(nn.Module):
    """Embed categorical codes and pass dense numeric inputs through.

    All categorical columns share one fused embedding table; column ``j``
    owns the rows ``offsets[j] : offsets[j] + cardinalities[j]``, so a single
    lookup embeds every column of a batch at once.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of distinct codes per categorical column, reserved codes
        included. Codes of column ``j`` must lie in ``[0, cardinalities[j])``:
        the fused lookup does not check them per batch (the estimators'
        encoder guarantees it), and a code out of its range reads another
        column's row.
    n_numeric : int
        Number of dense numeric inputs.
    embedding_dim : int
        Size of each column's embedding vector.
    padding_codes : sequence of int, optional
        Per column, a code whose embedding starts at zero (the reserved
        "unknown or missing" code). ``None`` leaves all rows random.
    numeric_embedding : nn.Module, optional
        Maps the ``(batch, n_numeric)`` inputs to ``(batch, output_dim)``
        (e.g. :class:`PiecewiseLinearEmbedding`); its ``output_dim`` attribute
        gives the width. ``None`` passes the numeric inputs through.
    sparse : bool, default=False
        Give the table a sparse gradient that holds only the rows a batch
        looks up, as ``nn.Embedding(sparse=True)`` does; the optimizer must
        take sparse gradients (``skmtl``'s own Adam updates those rows
        only). May be switched between fits. Not with ``torch.func``'s
        transforms or batched gradients (``is_grads_batched``).
    leaf_trees : TreeLeaves, optional
        Fitted trees over the inputs (the codes, then the numeric inputs);
        the leaf a row falls in, in each tree, is embedded as one more
        categorical column, after those of ``cardinalities``.
    cross_layers : int, default=0
        Low-rank cross layers (:class:`CrossNetwork`) applied to the
        concatenated representation; 0 leaves it as it is.

    Attributes
    ----------
    output_dim : int
        ``len(cardinalities) * embedding_dim`` (with ``leaf_trees``, one
        more ``embedding_dim`` per tree) plus ``n_numeric``, or plus the
        numeric embedding's ``output_dim``.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import FeatureEmbedding
    >>> _ = torch.manual_seed(0)
    >>> embedding = FeatureEmbedding([4, 3], n_numeric=2, embedding_dim=5, padding_codes=[0, 0])
    >>> embedding.output_dim  # 2 columns of 5, then the 2 numbers
    12
    >>> codes = torch.tensor([[0, 0], [3, 2]])
    >>> out = embedding(codes, torch.tensor([[0.5, -1.0], [0.0, 0.0]]))
    >>> out[0].tolist()  # the padding codes embed to zeros
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, -1.0]
    """

    # also the value of modules pickled before the attribute existed
    sparse = False

    def __init__(self, cardinalities, n_numeric, embedding_dim, padding_codes=None,
                 numeric_embedding=None, sparse=False, leaf_trees=None, cross_layers=0):
        super().__init__()
        self.sparse = bool(sparse)
        cardinalities = [int(c) for c in cardinalities]
        if any(c < 1 for c in cardinalities):
            raise ValueError(f"every cardinality must be >= 1, got {cardinalities}")
        if padding_codes is not None and (
                len(padding_codes) != len(cardinalities)
                or not all(0 <= int(p) < c for p, c in zip(padding_codes, cardinalities))):
            raise ValueError(f"padding_codes must give one code per column, each in [0, "
                             f"cardinality); got {list(padding_codes)} for the cardinalities "
                             f"{cardinalities}")
        self.n_categorical = len(cardinalities)
        self.n_numeric = int(n_numeric)
        self.embedding_dim = int(embedding_dim)
        if self.n_numeric < 0 or self.embedding_dim < 1 or not (self.n_categorical
                                                                 or self.n_numeric):
            raise ValueError(f"FeatureEmbedding needs n_numeric >= 0, embedding_dim >= 1 and at "
                             f"least one column; got {self.n_categorical} categorical, "
                             f"n_numeric={n_numeric}, embedding_dim={embedding_dim}")
        embedded = getattr(numeric_embedding, "n_features", self.n_numeric)
        if numeric_embedding is not None and self.n_numeric and embedded != self.n_numeric:
            raise ValueError(f"the numeric embedding embeds {embedded} features, but "
                             f"n_numeric={self.n_numeric}")
        self.leaf_trees = leaf_trees
        if leaf_trees is not None and leaf_trees.n_inputs > self.n_categorical + self.n_numeric:
            raise ValueError(f"the leaf trees split on {leaf_trees.n_inputs} inputs, but there "
                             f"are {self.n_categorical} categorical and {self.n_numeric} "
                             "numeric ones")
        if leaf_trees is not None:  # each leaf code >= 1: code 0 is a padding row
            cardinalities = cardinalities + leaf_trees.cardinalities
            if padding_codes is not None:
                padding_codes = list(padding_codes) + [0] * leaf_trees.n_trees
        offsets = [0]
        for cardinality in cardinalities[:-1]:
            offsets.append(offsets[-1] + cardinality)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=True)
        self.embedding = None
        if cardinalities:
            shape = (sum(cardinalities), self.embedding_dim)
            torch.randn(shape)  # nn.Embedding's own initial draw, as before: the same weights
            weight = torch.empty(shape)
            # not on the meta device (where load builds a network first): normal_
            # there imports torch._dynamo, two seconds
            if not weight.is_meta:
                weight.normal_(0.0, 0.05)
            self.embedding = nn.Embedding(*shape, _weight=weight)
            if padding_codes is not None:
                with torch.no_grad():
                    rows = torch.tensor([int(code) + offset
                                         for code, offset in zip(padding_codes, offsets)])
                    self.embedding.weight[rows] = 0.0
        self.numeric_embedding = numeric_embedding if self.n_numeric else None
        numeric_dim = (self.n_numeric if self.numeric_embedding is None
                       else self.numeric_embedding.output_dim)
        self.output_dim = len(cardinalities) * self.embedding_dim + numeric_dim
        self.cross = CrossNetwork(self.output_dim, cross_layers) if cross_layers else None

    def forward(self, categorical, numeric):
        """Return the concatenated ``(batch, output_dim)`` representation.

        Parameters
        ----------
        categorical : LongTensor of shape (batch, n_categorical)
        numeric : FloatTensor of shape (batch, n_numeric)
        """
        widths = [None if part is None else part.shape[-1] for part in (categorical, numeric)]
        if widths[0] not in (None, self.n_categorical) or widths[1] not in (None, self.n_numeric):
            # a single column would broadcast against the offsets: refuse it
            raise ValueError(f"expected {self.n_categorical} categorical and {self.n_numeric} "
                             f"numeric columns; got {widths[0]} and {widths[1]}")
        parts = []
        leaf_trees = self._modules.get("leaf_trees")  # (none in modules pickled before)
        if leaf_trees is not None:
            leaves = leaf_trees(categorical if self.n_categorical else None,
                                numeric if self.n_numeric else None)
            categorical = leaves if not self.n_categorical else torch.cat(
                [categorical, leaves], dim=1)
        if self.embedding is not None:
            rows = (categorical + self.offsets).reshape(-1)
            embedded = _gather_rows(self.embedding.weight, rows, self.sparse)
            parts.append(embedded.view(categorical.shape[0],
                                       len(self.offsets) * self.embedding_dim))
        if self.numeric_embedding is not None:
            parts.append(self.numeric_embedding(numeric))
        elif self.n_numeric:
            parts.append(numeric)
        embedded = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        cross = self._modules.get("cross")  # (none in modules pickled before)
        return embedded if cross is None else cross(embedded)


class CrossNetwork(nn.Module):
    """Low-rank cross layers: explicit products of a representation's features.

    Layer ``l`` maps ``x_l`` to ``x_0 * (x_l @ U_l @ V_l + b_l) + x_l``, where
    ``x_0`` is the network's input and ``U_l @ V_l`` a matrix of rank
    ``rank``: after ``l`` layers the output holds products of up to ``l + 1``
    input features, weighted by learned factors (the cross network of DCN-v2,
    Wang et al., WWW 2021, in its low-rank form). ``V`` starts small, so the
    layers start close to the identity.

    Parameters
    ----------
    dim : int
        Width of the representation, kept by every layer.
    n_layers : int
    rank : int, default=16
        Rank of each layer's matrix (at most ``dim``).

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import CrossNetwork
    >>> _ = torch.manual_seed(0)
    >>> cross = CrossNetwork(6, n_layers=2, rank=3)
    >>> x = torch.randn(4, 6)
    >>> cross(x).shape
    torch.Size([4, 6])
    >>> with torch.no_grad():  # a layer of zero factors is the identity
    ...     _ = cross.down[0].zero_(), cross.down[1].zero_()
    >>> torch.equal(cross(x), x)
    True
    """

    def __init__(self, dim, n_layers, rank=16):
        super().__init__()
        dim, n_layers, rank = int(dim), int(n_layers), int(rank)
        if dim < 1 or n_layers < 1 or rank < 1:
            raise ValueError(f"a CrossNetwork needs dim, n_layers and rank >= 1; got {dim}, "
                             f"{n_layers}, {rank}")
        rank = min(rank, dim)
        # (in place: randn * scale imports torch._dynamo on the meta device, two seconds)
        self.up = nn.ParameterList(nn.Parameter(torch.randn(dim, rank).mul_(dim ** -0.5))
                                   for _ in range(n_layers))
        self.down = nn.ParameterList(nn.Parameter(torch.randn(rank, dim).mul_(0.1 * rank ** -0.5))
                                     for _ in range(n_layers))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(dim)) for _ in range(n_layers))

    def forward(self, x0):
        """Map ``(batch, dim)`` to ``(batch, dim)``."""
        x = x0
        for up, down, bias in zip(self.up, self.down, self.bias):
            x = torch.addcmul(x, x0, torch.addmm(bias, x @ up, down))
        return x


# index_add_ calls of at most this many elements run on one thread (torch's
# grain size for CPU parallelism).
_SERIAL_CHUNK_ELEMENTS = 32_768
# Rows narrower than this are summed serially: see _RowGather.
_PARALLEL_MIN_WIDTH = 16


class _RowGather(torch.autograd.Function):
    """``table.index_select(0, rows)`` whose backward adds into the table in serial chunks.

    The backward of ``index_select`` is one ``index_add_``, which torch
    parallelises over the width of the rows. With embeddings narrower than
    a few cache lines the threads then write the same lines, and the call
    is several times slower than on one thread (1.6 ms against 0.27 ms for
    32,768 rows of width 4 on 2 threads). Chunks of rows below torch's grain
    size keep each call serial. From a width of 16 the parallel call is the
    faster again (85 us against 420 us for 10,240 rows of width 16). It also
    beats ``F.embedding``, whose dense backward sorts the indices.

    With ``sparse`` the gradient is a coalesced sparse tensor of the rows
    looked up, summed the same way: its cost follows the batch, not the
    size of the table.
    """

    # torch.func's vmap runs forward and backward batched, op by op
    generate_vmap_rule = True

    @staticmethod
    def forward(table, rows, sparse):
        return table.index_select(0, rows)

    @staticmethod
    def setup_context(ctx, inputs, output):
        table, rows, sparse = inputs
        ctx.save_for_backward(rows)
        ctx.table_shape = table.shape
        ctx.sparse = sparse

    @staticmethod
    def backward(ctx, grad):
        (rows,) = ctx.saved_tensors
        grad = grad.contiguous()
        if not ctx.sparse:
            return _add_rows(grad.new_zeros(ctx.table_shape), rows, grad), None, None
        unique_rows, positions = torch.unique(rows, return_inverse=True)
        sums = _add_rows(grad.new_zeros((unique_rows.shape[0], ctx.table_shape[1])),
                         positions, grad)
        return torch.sparse_coo_tensor(unique_rows.unsqueeze(0), sums, ctx.table_shape,
                                       is_coalesced=True, check_invariants=False), None, None


def _add_rows(target, rows, values):
    """``target.index_add_(0, rows, values)``, in serial chunks for narrow rows."""
    width = target.shape[1]
    if width >= _PARALLEL_MIN_WIDTH:
        return target.index_add_(0, rows, values)
    chunk = max(1, _SERIAL_CHUNK_ELEMENTS // width)
    for rows_chunk, values_chunk in zip(rows.split(chunk), values.split(chunk)):
        target.index_add_(0, rows_chunk, values_chunk)
    return target


def _gather_rows(table, rows, sparse=False):
    """Rows ``rows`` of ``table``; through :class:`_RowGather` when a gradient is needed
    (a sparse one with ``sparse``)."""
    if torch.is_grad_enabled() and table.requires_grad:
        return _RowGather.apply(table, rows, sparse)
    return table.index_select(0, rows)


class BatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` that also trains on a batch of one row (or of none), and whose
    running statistics average its first batches alike.

    Such a batch of ``(batch, features)`` has no variance to normalise by
    (``BatchNorm1d`` raises): it is normalised with the running statistics,
    which it leaves as they are, as in evaluation. The running statistics
    move by ``max(momentum, 1 / batches so far)`` a batch: the plain mean of
    the first ``1 / momentum`` batches, then an exponential average as
    ``BatchNorm1d``'s. (With the exponential average alone, a fit of a few
    steps predicts with statistics still mostly their initial 0 and 1.)

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import BatchNorm
    >>> norm = BatchNorm(3)
    >>> norm(torch.tensor([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]])).round(decimals=3).tolist()
    [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    >>> norm(torch.ones(1, 3)).shape  # one row: the running statistics
    torch.Size([1, 3])
    """

    def forward(self, x):
        if not (self.training and self.track_running_stats and self.momentum is not None):
            return super().forward(x)
        if x.shape[0] <= 1 and x.dim() == 2:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                            self.bias, False, 0.0, self.eps)
        self._check_input_dim(x)
        self.num_batches_tracked.add_(1)
        factor = max(self.momentum, 1.0 / float(self.num_batches_tracked))
        return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                        self.bias, True, factor, self.eps)


def batch_statistics(module):
    """The buffers of ``module``'s batch normalisations, ``{name: tensor}``: learned in
    training, unlike its other buffers (embedding offsets, ...), which its configuration
    sets."""
    return {f"{prefix}.{name}" if prefix else name: buffer
            for prefix, layer in module.named_modules()
            if isinstance(layer, nn.modules.batchnorm._BatchNorm)
            for name, buffer in layer.named_buffers(recurse=False)}


class MLP(nn.Sequential):
    """Stack of ``Linear -> ReLU -> Dropout`` blocks (``Linear -> BatchNorm -> ReLU ->
    Dropout`` with ``batch_norm``).

    Parameters
    ----------
    input_dim : int
    hidden_units : sequence of int
        Width of each hidden layer; empty means identity.
    dropout : float, default=0.0
    output_dim : int, optional
        If given, a final linear layer without activation.
    batch_norm : bool, default=False
        Normalise each hidden layer's outputs over the batch (:class:`BatchNorm`)
        before the activation.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import MLP
    >>> mlp = MLP(10, [32, 16], output_dim=1)
    >>> [type(layer).__name__ for layer in mlp]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear']
    >>> mlp(torch.zeros(8, 10)).shape, MLP(10, []).output_dim  # no layers: the identity
    (torch.Size([8, 1]), 10)
    """

    def __init__(self, input_dim, hidden_units, dropout=0.0, output_dim=None, batch_norm=False):
        if any(int(units) < 1 for units in hidden_units) or (
                output_dim is not None and int(output_dim) < 1):
            raise ValueError(f"layer widths must be >= 1; got hidden_units={list(hidden_units)}"
                             f", output_dim={output_dim}")
        layers = []
        width = input_dim
        for units in hidden_units:
            layers += [nn.Linear(width, units), *([BatchNorm(units)] if batch_norm else []),
                       nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = units
        if output_dim is not None:
            layers.append(nn.Linear(width, output_dim))
            width = output_dim
        super().__init__(*layers)
        self.output_dim = width


class ExpertBank(nn.Module):
    """``n_experts`` MLPs of the same shape evaluated in one batched operation.

    The first layers of all experts form one ``Linear`` (a single matrix
    product); deeper layers are batched matrix products over the expert
    dimension. There is no Python loop over experts.

    Parameters
    ----------
    input_dim : int
    n_experts : int
    hidden_units : sequence of int
        Layer widths of every expert (at least one layer).
    dropout : float, default=0.0
    batch_norm : bool, default=False
        Normalise every expert's hidden units over the batch before the
        activation (one :class:`BatchNorm` per layer over all experts' units).

    Attributes
    ----------
    output_dim : int
        Width of each expert's output.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import ExpertBank
    >>> _ = torch.manual_seed(0)
    >>> experts = ExpertBank(10, n_experts=4, hidden_units=(16, 8))
    >>> experts(torch.randn(5, 10)).shape  # every expert reads the same input
    torch.Size([5, 4, 8])
    >>> experts(torch.randn(5, 4, 10)).shape  # or one input per expert
    torch.Size([5, 4, 8])
    """

    def __init__(self, input_dim, n_experts, hidden_units, dropout=0.0, batch_norm=False):
        super().__init__()
        hidden_units = [int(u) for u in hidden_units]
        if not hidden_units or min(hidden_units) < 1 or int(n_experts) < 1:
            raise ValueError(f"an ExpertBank needs n_experts >= 1 and at least one hidden layer "
                             f"of >= 1 units; got n_experts={n_experts}, "
                             f"hidden_units={hidden_units}")
        self.n_experts = int(n_experts)
        # All experts' first layers as one Linear: a single GEMM per batch.
        self.first = nn.Linear(int(input_dim), self.n_experts * hidden_units[0])
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(self.n_experts, fan_in, fan_out))
            for fan_in, fan_out in zip(hidden_units[:-1], hidden_units[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(self.n_experts, 1, fan_out)) for fan_out in hidden_units[1:]
        )
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.norms = (nn.ModuleList(BatchNorm(self.n_experts * units) for units in hidden_units)
                      if batch_norm else None)
        self.output_dim = hidden_units[-1]
        self._reset_deep_layers()

    def __setstate__(self, state):
        super().__setstate__(state)
        if "norms" not in self._modules:  # pickled before batch normalisation
            self.__dict__.setdefault("norms", None)

    def _reset_deep_layers(self):
        # Same initialisation as nn.Linear, expert by expert.
        for weight, bias in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, x):
        """Map ``(batch, input_dim)`` to ``(batch, n_experts, output_dim)``.

        ``x`` may also be ``(batch, n_experts, input_dim)``: a separate input
        for each expert (PLE's task-specific experts read their own task's
        representation), still one batched product.
        """
        if x.dim() == 2:
            h = self.first(x)
            if self.norms is not None:  # (B, E * h) as it comes: no copy
                h = self.norms[0](h)
            h = h.view(x.shape[0], self.n_experts,
                       self.first.out_features // self.n_experts).transpose(0, 1)
        else:
            # The first layer's (E * h, in) weight seen as E matrices of (in, h).
            weight = self.first.weight.view(self.n_experts, -1, x.shape[2]).transpose(1, 2)
            bias = self.first.bias.view(self.n_experts, 1, -1)
            h = self._normalise(torch.baddbmm(bias, x.transpose(0, 1), weight), 0)
        h = self.dropout(torch.relu(h))
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases), start=1):
            # (E, B, in) @ (E, in, out) + (E, 1, out)
            h = self.dropout(torch.relu(self._normalise(torch.baddbmm(bias, h, weight), layer)))
        return h.transpose(0, 1)

    def _normalise(self, h, layer):
        """Hidden units ``(E, B, units)`` of layer ``layer``, batch-normalised if asked."""
        if self.norms is None:
            return h
        n_experts, batch, units = h.shape
        flat = self.norms[layer](h.transpose(0, 1).reshape(batch, n_experts * units))
        return flat.view(batch, n_experts, units).transpose(0, 1)


class TaskGates(nn.Module):
    """One softmax gate per task over a bank of experts, computed together.

    Parameters
    ----------
    input_dim : int
    n_tasks : int
        Number of gates.
    n_experts : int
        Number of experts each gate mixes.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import TaskGates
    >>> _ = torch.manual_seed(0)
    >>> gates = TaskGates(10, n_tasks=2, n_experts=3)
    >>> weights = gates(torch.randn(5, 10))
    >>> weights.shape, bool(torch.allclose(weights.sum(dim=2), torch.ones(5, 2)))
    (torch.Size([5, 2, 3]), True)
    """

    def __init__(self, input_dim, n_tasks, n_experts):
        super().__init__()
        if int(n_tasks) < 1 or int(n_experts) < 1:
            raise ValueError(f"gates need n_tasks >= 1 and n_experts >= 1; got {n_tasks}, "
                             f"{n_experts}")
        self.n_tasks = int(n_tasks)
        self.n_experts = int(n_experts)
        self.linear = nn.Linear(input_dim, self.n_tasks * self.n_experts)

    def forward(self, x):
        """Return gate weights of shape ``(batch, n_tasks, n_experts)``.

        ``x`` is ``(batch, input_dim)``, read by every gate, or
        ``(batch, n_tasks, input_dim)``, one input per gate.
        """
        if x.dim() == 2:
            logits = self.linear(x).view(x.shape[0], self.n_tasks, self.n_experts)
        else:
            weight = self.linear.weight.view(self.n_tasks, self.n_experts, x.shape[2])
            logits = torch.baddbmm(self.linear.bias.view(self.n_tasks, 1, self.n_experts),
                                   x.transpose(0, 1), weight.transpose(1, 2)).transpose(0, 1)
        return softmax(logits)


def softmax(logits):
    """Softmax over the last dimension.

    Hand-written: ``torch.softmax`` is slow on the CPU for a short last
    dimension. Shifting by the (detached) maximum changes nothing
    mathematically and keeps ``exp`` from overflowing.
    """
    weights = torch.exp(logits - logits.detach().amax(dim=-1, keepdim=True))
    return weights / weights.sum(dim=-1, keepdim=True)


def per_task_units(tower_units, n_tasks):
    """``tower_units`` as one tuple of widths per task.

    Parameters
    ----------
    tower_units : sequence of int, or sequence of sequences of int
        The same hidden layer widths for every task, or one sequence per task.
    n_tasks : int
    """
    tower_units = list(tower_units)
    if all(isinstance(units, Integral) for units in tower_units):
        return [tuple(int(u) for u in tower_units)] * n_tasks
    if len(tower_units) != n_tasks:
        raise ValueError(f"tower_units gives {len(tower_units)} towers for {n_tasks} tasks")
    return [tuple(int(u) for u in units) for units in tower_units]


class TaskTowers(nn.ModuleList):
    """One MLP per task, each ending in that task's logits.

    Parameters
    ----------
    input_dim : int
        Width of each tower's input.
    tower_units : sequence of int, or sequence of sequences of int
        Hidden layer widths, the same for every task or one sequence per
        task (see :func:`per_task_units`).
    task_output_dims : sequence of int
        Outputs of each task's last layer.
    dropout : float, default=0.0
    batch_norm : bool, default=False
        Batch-normalise the towers' hidden layers (see :class:`MLP`).

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import TaskTowers
    >>> _ = torch.manual_seed(0)
    >>> towers = TaskTowers(8, [(16,), (32, 16)], task_output_dims=[1, 3])
    >>> [logits.shape for logits in towers(torch.randn(5, 8))]  # one input for both
    [torch.Size([5, 1]), torch.Size([5, 3])]
    >>> [logits.shape for logits in towers(torch.randn(5, 2, 8))]  # one input per task
    [torch.Size([5, 1]), torch.Size([5, 3])]
    """

    def __init__(self, input_dim, tower_units, task_output_dims, dropout=0.0, batch_norm=False):
        task_output_dims = [int(d) for d in task_output_dims]
        if not task_output_dims or min(task_output_dims) < 1:
            raise ValueError(f"towers need at least one task, each with >= 1 outputs; got "
                             f"task_output_dims={task_output_dims}")
        super().__init__(
            MLP(input_dim, units, dropout, output_dim=dim, batch_norm=batch_norm)
            for units, dim in zip(per_task_units(tower_units, len(task_output_dims)),
                                  task_output_dims))

    @torch.no_grad()
    def init_output_bias(self, class_frequencies):
        """Start each task's probabilities at its class frequencies.

        Sets the bias of each tower's last layer to :func:`prior_logits`.
        The first steps of training then learn from the features rather
        than spend themselves on the base rate; on a rare positive class
        they otherwise push the rows of largest activation down first, and
        a short fit ranked the rows backwards.

        Parameters
        ----------
        class_frequencies : sequence of (array-like or None)
            Per task, the frequency of each class (None: leave the tower as it is).
        """
        for tower, frequencies in zip(self, class_frequencies, strict=True):
            if frequencies is not None:
                last = tower[-1]
                last.bias.copy_(prior_logits(frequencies, last.out_features))

    def forward(self, x):
        """Task outputs from ``(batch, input_dim)`` (shared) or ``(batch, n_tasks, input_dim)``.

        Returns a tuple with one ``(batch, task_output_dims[t])`` tensor per task.
        """
        if x.dim() == 2:
            return tuple(tower(x) for tower in self)
        return tuple(tower(x[:, t]) for t, tower in enumerate(self))


# class frequencies are kept within [bound, 1 - bound]: their logits stay finite
_FREQUENCY_BOUND = 1e-6


def prior_logits(frequencies, n_outputs=None):
    """Logits whose probabilities are ``frequencies``, as a task's output layer gives them.

    Parameters
    ----------
    frequencies : array-like of shape (n_classes,)
        Frequency of each class; they need not sum to 1 exactly.
    n_outputs : int, optional
        Outputs of the layer: 1 for a binary task (the log-odds of class 1),
        else ``n_classes`` (the log-frequencies: a softmax gives them back).
        Default: 1 for two classes.

    Returns
    -------
    Tensor of shape (n_outputs,)

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn.layers import prior_logits
    >>> logit = prior_logits([0.9, 0.1])
    >>> round(float(torch.sigmoid(logit)), 4)
    0.1
    >>> torch.softmax(prior_logits([0.5, 0.3, 0.2]), dim=0)
    tensor([0.5000, 0.3000, 0.2000])
    """
    frequencies = torch.as_tensor(frequencies, dtype=torch.float32)
    n_classes = frequencies.numel()
    if n_outputs is None:
        n_outputs = 1 if n_classes == 2 else n_classes
    if frequencies.dim() != 1 or n_classes < 2 or n_outputs not in (1, n_classes) or (
            n_outputs == 1 and n_classes != 2):
        raise ValueError(f"{n_outputs} output(s) cannot give the frequencies of "
                         f"{n_classes} classes")
    if not (torch.isfinite(frequencies).all() and (frequencies >= 0).all()
            and frequencies.sum() > 0):
        raise ValueError(f"class frequencies must be finite, >= 0 and not all 0; got "
                         f"{frequencies.tolist()}")
    frequencies = (frequencies / frequencies.sum()).clamp(_FREQUENCY_BOUND, 1 - _FREQUENCY_BOUND)
    if n_outputs == 1:
        return torch.logit(frequencies[1:])
    return frequencies.log()


class _TaskTowersOutputBias:
    """``init_output_bias`` of a network whose ``towers`` (:class:`TaskTowers`) end in the
    task outputs."""

    def init_output_bias(self, class_frequencies):
        """Start each task's probabilities at its class frequencies.

        See :meth:`TaskTowers.init_output_bias`.
        """
        self.towers.init_output_bias(class_frequencies)


def task_probabilities(logits):
    """Per-task class probabilities from per-task logits.

    A single logit (binary task) becomes ``[1 - p, p]``; several go through
    a softmax.
    """
    probas = []
    for task_logits in logits:
        if task_logits.shape[1] == 1:
            positive = torch.sigmoid(task_logits)
            probas.append(torch.cat([1.0 - positive, positive], dim=1))
        else:
            probas.append(torch.softmax(task_logits, dim=1))
    return probas
