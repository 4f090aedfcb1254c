"""Progressive Layered Extraction (Tang et al., RecSys 2020)."""

import torch
from torch import nn

from .layers import (ExpertBank, FeatureEmbedding, TaskGates, TaskTowers,
                     _TaskTowersOutputBias, task_probabilities)


class ExtractionLevel(nn.Module):
    """One level of PLE: shared and task-specific experts, gated per task.

    The level's experts are numbered shared first, then task 0's, task 1's,
    ...; they run as one :class:`ExpertBank`. Task ``t``'s gate mixes the
    shared experts and task ``t``'s own; the shared gate (on every level but
    the last) mixes all of them and feeds the next level's shared experts.

    Parameters
    ----------
    input_dim : int
    n_tasks, n_shared_experts, n_task_experts : int
    expert_units : sequence of int
    dropout : float
    last : bool
        The last level has no shared gate.
    batch_norm : bool, default=False
        Batch-normalise the experts' hidden layers (see :class:`ExpertBank`).

    Examples
    --------
    Two tasks with one shared and one own expert each (experts 0, 1, 2):

    >>> import torch
    >>> from skmtl.nn import ExtractionLevel
    >>> _ = torch.manual_seed(0)
    >>> level = ExtractionLevel(16, n_tasks=2, n_shared_experts=1, n_task_experts=1,
    ...                         expert_units=(8,), dropout=0.0, last=False)
    >>> x = torch.randn(8, 16)
    >>> level(x).shape  # each task's mixture, then the shared one
    torch.Size([8, 3, 8])
    >>> (level.gates(x)[0] > 0).tolist()  # task 0, task 1, shared gate
    [[True, True, False], [True, False, True], [True, True, True]]
    """

    def __init__(self, input_dim, n_tasks, n_shared_experts, n_task_experts, expert_units,
                 dropout, last, batch_norm=False):
        super().__init__()
        if int(n_shared_experts) < 0 or int(n_task_experts) < 0 or (
                int(n_shared_experts) + int(n_task_experts) < 1):
            raise ValueError(f"a level needs n_shared_experts >= 0 and n_task_experts >= 0, at "
                             f"least one of them positive; got {n_shared_experts}, "
                             f"{n_task_experts}")
        self.n_tasks = int(n_tasks)
        self.n_shared = int(n_shared_experts)
        n_experts = self.n_shared + self.n_tasks * int(n_task_experts)
        self.experts = ExpertBank(input_dim, n_experts, expert_units, dropout, batch_norm)
        self.output_dim = self.experts.output_dim
        self.task_gates = TaskGates(input_dim, self.n_tasks, self.n_shared + n_task_experts)
        self.shared_gate = None if last else TaskGates(input_dim, 1, n_experts)
        # (index lists built in Python: torch.arange on the meta device, where load
        # builds a module first, imports torch._dynamo, two seconds)
        shared = list(range(self.n_shared))
        own = [list(range(self.n_shared + t * n_task_experts,
                          self.n_shared + (t + 1) * n_task_experts)) for t in range(self.n_tasks)]
        # The experts each task's gate sees, (n_tasks, n_shared + n_task_experts).
        self.register_buffer("visible", torch.tensor([shared + o for o in own]),
                             persistent=False)
        # The input each expert reads on levels after the first: its task's
        # representation (0 .. n_tasks - 1), or the shared one (n_tasks).
        self.register_buffer("expert_input", torch.tensor(
            [self.n_tasks] * self.n_shared +
            [t for t in range(self.n_tasks) for _ in range(n_task_experts)]), persistent=False)

    def forward(self, x):
        """Map the level's input to ``(batch, n_tasks [+ 1], output_dim)``.

        ``x`` is ``(batch, input_dim)`` on the first level (read by every
        expert and gate), then ``(batch, n_tasks + 1, input_dim)``: each
        task's representation and the shared one. The output holds each
        task's mixture and, except on the last level, the shared mixture.
        """
        return self._mix(x)[0]

    def gates(self, x):
        """Gate weights over all the level's experts, ``(batch, n_tasks [+ 1], n_experts)``.

        Row ``t`` is task ``t``'s gate (0 on the experts it does not see);
        the last row, except on the last level, is the shared gate.
        """
        _, task_gates, shared_gate = self._mix(x, experts=False)
        return self._all_experts(task_gates, shared_gate)

    def forward_with_gates(self, x):
        """``(forward(x), gates(x))`` in one pass."""
        out, task_gates, shared_gate = self._mix(x)
        return out, self._all_experts(task_gates, shared_gate)

    def _all_experts(self, task_gates, shared_gate):
        full = task_gates.new_zeros(task_gates.shape[0], self.n_tasks, self.experts.n_experts)
        full.scatter_(2, self.visible.expand(task_gates.shape[0], -1, -1), task_gates)
        return full if shared_gate is None else torch.cat([full, shared_gate], dim=1)

    def _mix(self, x, experts=True):
        first = x.dim() == 2
        task_gates = self.task_gates(x if first else x[:, :self.n_tasks])   # (B, T, S + K)
        shared_input = x if first else x[:, self.n_tasks]
        shared_gate = None if self.shared_gate is None else self.shared_gate(shared_input)
        if not experts:
            return None, task_gates, shared_gate
        expert_out = self.experts(x if first else x[:, self.expert_input])   # (B, E, d)
        visible = expert_out[:, self.visible]                                  # (B, T, S + K, d)
        out = (task_gates.unsqueeze(-1) * visible).sum(dim=2)                 # (B, T, d)
        if shared_gate is not None:                                            # (B, 1, E)
            shared = (shared_gate.unsqueeze(-1) * expert_out.unsqueeze(1)).sum(dim=2)
            out = torch.cat([out, shared], dim=1)
        return out, task_gates, shared_gate


class PLE(_TaskTowersOutputBias, nn.Module):
    """Progressive Layered Extraction: levels of shared and task-specific experts.

    ``n_levels=1`` is the Customized Gate Control (CGC) model of the same
    paper.

    Parameters
    ----------
    cardinalities : sequence of int
        Codes per categorical column (see :class:`FeatureEmbedding`).
    n_numeric : int
    task_output_dims : sequence of int
        Outputs per task: 1 for a binary task (or a regression target), the
        number of classes otherwise.
    embedding_dim : int, default=8
    n_levels : int, default=2
    n_shared_experts : int, default=2
    n_task_experts : int, default=2
        Experts per task on every level.
    expert_units : sequence of int, default=(64,)
    tower_units : sequence of int, or one sequence per task, default=(32,)
    dropout : float, default=0.0
    padding_codes : sequence of int, optional
    numeric_embedding : nn.Module, optional
    batch_norm : bool, default=False
        Batch-normalise the hidden layers before their activation (see :class:`MLP`).
    leaf_trees : TreeLeaves, optional
        Fitted trees whose leaves are embedded as categorical columns (see
        :class:`FeatureEmbedding`).
    cross_layers : int, default=0
        Low-rank cross layers on the embedded input (see :class:`CrossNetwork`).

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import PLE
    >>> _ = torch.manual_seed(0)
    >>> net = PLE([5, 3], n_numeric=2, task_output_dims=[1, 1])  # 2 levels of 2 + 2 * 2 experts
    >>> categorical, numeric = torch.randint(0, 3, (8, 2)), torch.zeros(8, 2)
    >>> [logits.shape for logits in net(categorical, numeric)]
    [torch.Size([8, 1]), torch.Size([8, 1])]
    >>> gates = net.gate_weights(categorical, numeric)
    >>> [level.shape for level in gates]  # task gates (+ the shared gate), experts
    [torch.Size([8, 3, 6]), torch.Size([8, 2, 6])]
    >>> bool((gates[-1][:, 0, 4:] == 0).all())  # task 0 never sees task 1's experts
    True
    """

    def __init__(self, cardinalities, n_numeric, task_output_dims, *, embedding_dim=8,
                 n_levels=2, n_shared_experts=2, n_task_experts=2, expert_units=(64,),
                 tower_units=(32,), dropout=0.0, padding_codes=None, numeric_embedding=None,
                 batch_norm=False, leaf_trees=None, cross_layers=0):
        super().__init__()
        if n_levels < 1:
            raise ValueError(f"PLE needs at least 1 level, got {n_levels}")
        self.task_output_dims = [int(d) for d in task_output_dims]
        n_tasks = len(self.task_output_dims)
        self.embedding = FeatureEmbedding(cardinalities, n_numeric, embedding_dim, padding_codes,
                                          numeric_embedding, leaf_trees=leaf_trees,
                                          cross_layers=cross_layers)
        levels, width = [], self.embedding.output_dim
        for level in range(int(n_levels)):
            levels.append(ExtractionLevel(width, n_tasks, n_shared_experts, n_task_experts,
                                          expert_units, dropout, last=level == n_levels - 1,
                                          batch_norm=batch_norm))
            width = levels[-1].output_dim
        self.levels = nn.ModuleList(levels)
        self.towers = TaskTowers(width, tower_units, self.task_output_dims, dropout, batch_norm)
        # What one task's loss alone trains (see skmtl.nn.weighting.split_parameters): its
        # tower and its gates of the last two levels. An earlier level's task gate feeds the
        # task's experts of the next level, which that level's shared gate passes on to every
        # task; a level's task experts share one ExpertBank with its shared experts.
        self.task_specific = ("towers",) + tuple(
            f"levels.{level}.task_gates" for level in range(max(0, n_levels - 2), n_levels))

    def forward(self, categorical, numeric):
        """Return a tuple of per-task logits, task ``t`` of shape ``(batch, dims[t])``."""
        x = self.embedding(categorical, numeric)
        for level in self.levels:
            x = level(x)
        return self.towers(x)

    def gate_weights(self, categorical, numeric):
        """Each level's gate weights over that level's experts (see :meth:`ExtractionLevel.gates`).

        Returns a list with one tensor per level: ``(batch, n_tasks + 1,
        n_experts)`` (the task gates, then the shared gate), and for the last
        level ``(batch, n_tasks, n_experts)``.
        """
        x = self.embedding(categorical, numeric)
        weights = []
        for level in self.levels[:-1]:
            x, gates = level.forward_with_gates(x)
            weights.append(gates)
        return weights + [self.levels[-1].gates(x)]  # the last level's output is not needed

    def predict_proba(self, logits):
        """Per-task class probabilities from :meth:`forward`'s logits."""
        return task_probabilities(logits)
