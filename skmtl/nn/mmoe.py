"""Mixtures of experts: multi-gate (MMoE, Ma et al., KDD 2018) and one-gate (OMoE)."""

from torch import nn

from .layers import (ExpertBank, FeatureEmbedding, TaskGates, TaskTowers,
                     _TaskTowersOutputBias, task_probabilities)


class _MixtureOfExperts(_TaskTowersOutputBias, nn.Module):
    """Shared experts mixed by ``n_gates`` softmax gates, then one tower per task."""

    def __init__(self, cardinalities, n_numeric, task_output_dims, n_gates, *, embedding_dim,
                 n_experts, expert_units, tower_units, dropout, padding_codes,
                 numeric_embedding, batch_norm, leaf_trees=None, cross_layers=0):
        super().__init__()
        self.task_output_dims = [int(d) for d in task_output_dims]
        self.embedding = FeatureEmbedding(cardinalities, n_numeric, embedding_dim, padding_codes,
                                          numeric_embedding, leaf_trees=leaf_trees,
                                          cross_layers=cross_layers)
        self.experts = ExpertBank(self.embedding.output_dim, n_experts, expert_units, dropout,
                                  batch_norm)
        self.gates = TaskGates(self.embedding.output_dim, n_gates, n_experts)
        self.towers = TaskTowers(self.experts.output_dim, tower_units, self.task_output_dims,
                                 dropout, batch_norm)

    def forward(self, categorical, numeric):
        """Return a tuple of per-task logits, task ``t`` of shape ``(batch, dims[t])``."""
        x = self.embedding(categorical, numeric)
        experts = self.experts(x)                      # (B, E, d)
        gates = self.gates(x)                          # (B, G, E)
        # (B, G, E, 1) * (B, 1, E, d) summed over E. Against bmm it depends on the
        # shapes (on a CPU with MKL: faster at 8 experts of 16, 3x slower at 4 of 64).
        mixtures = (gates.unsqueeze(-1) * experts.unsqueeze(1)).sum(dim=2)   # (B, G, d)
        return self.towers(mixtures[:, 0] if mixtures.shape[1] == 1 else mixtures)

    def gate_weights(self, categorical, numeric):
        """Return the gates' mixture weights, shape ``(batch, n_gates, n_experts)``."""
        return self.gates(self.embedding(categorical, numeric))

    def predict_proba(self, logits):
        """Per-task class probabilities from :meth:`forward`'s logits.

        A binary task's single logit becomes ``[1 - p, p]``; a multiclass
        task's logits go through a softmax.
        """
        return task_probabilities(logits)


class MMoE(_MixtureOfExperts):
    """Shared experts, one softmax gate and one tower per task.

    Parameters
    ----------
    cardinalities : sequence of int
        Codes per categorical column (see :class:`FeatureEmbedding`).
    n_numeric : int
        Number of dense numeric inputs.
    task_output_dims : sequence of int
        Outputs per task: 1 for a binary task (or a regression target), the
        number of classes otherwise.
    embedding_dim : int, default=8
    n_experts : int, default=4
    expert_units : sequence of int, default=(32,)
    tower_units : sequence of int, or one sequence per task, default=(32,)
    dropout : float, default=0.0
    padding_codes : sequence of int, optional
        Per categorical column, the reserved code whose embedding starts at zero.
    numeric_embedding : nn.Module, optional
        Embeds the numeric inputs (see :class:`FeatureEmbedding`).
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
    >>> from skmtl.nn import MMoE
    >>> _ = torch.manual_seed(0)
    >>> net = MMoE([5, 3], n_numeric=2, task_output_dims=[1, 3])  # binary, 3 classes
    >>> categorical, numeric = torch.randint(0, 3, (8, 2)), torch.zeros(8, 2)
    >>> [logits.shape for logits in net(categorical, numeric)]
    [torch.Size([8, 1]), torch.Size([8, 3])]
    >>> gates = net.gate_weights(categorical, numeric)  # one gate per task over 4 experts
    >>> gates.shape, bool(torch.allclose(gates.sum(dim=2), torch.ones(8, 2)))
    (torch.Size([8, 2, 4]), True)
    """

    # parameters that one task trains alone (see skmtl.nn.weighting.split_parameters)
    task_specific = ("gates", "towers")

    def __init__(self, cardinalities, n_numeric, task_output_dims, *, embedding_dim=8,
                 n_experts=4, expert_units=(32,), tower_units=(32,), dropout=0.0,
                 padding_codes=None, numeric_embedding=None, batch_norm=False,
                 leaf_trees=None, cross_layers=0):
        super().__init__(cardinalities, n_numeric, task_output_dims,
                         n_gates=len(task_output_dims), embedding_dim=embedding_dim,
                         n_experts=n_experts, expert_units=expert_units,
                         tower_units=tower_units, dropout=dropout,
                         padding_codes=padding_codes, numeric_embedding=numeric_embedding,
                         batch_norm=batch_norm, leaf_trees=leaf_trees,
                         cross_layers=cross_layers)


class OMoE(_MixtureOfExperts):
    """One-gate Mixture-of-Experts: a single softmax gate shared by every task.

    The baseline of the MMoE paper: every task's tower reads the same
    mixture of the experts. Parameters as :class:`MMoE`, but ``expert_units``
    defaults to ``(64,)``; :meth:`gate_weights` has one gate, shape
    ``(batch, 1, n_experts)``.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import OMoE
    >>> _ = torch.manual_seed(0)
    >>> net = OMoE([5, 3], n_numeric=2, task_output_dims=[1, 1])
    >>> categorical, numeric = torch.randint(0, 3, (8, 2)), torch.zeros(8, 2)
    >>> net.gate_weights(categorical, numeric).shape  # one gate for both tasks
    torch.Size([8, 1, 4])
    >>> [proba.shape for proba in net.predict_proba(net(categorical, numeric))]
    [torch.Size([8, 2]), torch.Size([8, 2])]
    """

    task_specific = ("towers",)  # the single gate is shared

    def __init__(self, cardinalities, n_numeric, task_output_dims, *, embedding_dim=8,
                 n_experts=4, expert_units=(64,), tower_units=(32,), dropout=0.0,
                 padding_codes=None, numeric_embedding=None, batch_norm=False,
                 leaf_trees=None, cross_layers=0):
        super().__init__(cardinalities, n_numeric, task_output_dims, n_gates=1,
                         embedding_dim=embedding_dim, n_experts=n_experts,
                         expert_units=expert_units, tower_units=tower_units, dropout=dropout,
                         padding_codes=padding_codes, numeric_embedding=numeric_embedding,
                         batch_norm=batch_norm, leaf_trees=leaf_trees,
                         cross_layers=cross_layers)
