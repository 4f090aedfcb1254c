"""Shared-Bottom network: hard parameter sharing (Caruana, 1997)."""

from torch import nn

from .layers import (MLP, FeatureEmbedding, TaskTowers, _TaskTowersOutputBias,
                     task_probabilities)


class SharedBottom(_TaskTowersOutputBias, nn.Module):
    """One bottom MLP shared by every task, then one tower per task.

    Parameters
    ----------
    cardinalities : sequence of int
        Codes per categorical column (see :class:`FeatureEmbedding`).
    n_numeric : int
    task_output_dims : sequence of int
        Outputs per task: 1 for a binary task (or a regression target), the
        number of classes otherwise.
    embedding_dim : int, default=8
    bottom_units : sequence of int, default=(128, 64)
        Hidden layer widths of the shared bottom.
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
    >>> from skmtl.nn import SharedBottom
    >>> _ = torch.manual_seed(0)
    >>> net = SharedBottom([5, 3], n_numeric=2, task_output_dims=[1, 4], bottom_units=(16,))
    >>> categorical, numeric = torch.randint(0, 3, (8, 2)), torch.zeros(8, 2)
    >>> logits = net(categorical, numeric)
    >>> [task_logits.shape for task_logits in logits]
    [torch.Size([8, 1]), torch.Size([8, 4])]
    >>> [proba.shape for proba in net.predict_proba(logits)]  # binary: [1 - p, p]
    [torch.Size([8, 2]), torch.Size([8, 4])]
    """

    def __init__(self, cardinalities, n_numeric, task_output_dims, *, embedding_dim=8,
                 bottom_units=(128, 64), tower_units=(32,), dropout=0.0, padding_codes=None,
                 numeric_embedding=None, batch_norm=False, leaf_trees=None, cross_layers=0):
        super().__init__()
        self.task_output_dims = [int(d) for d in task_output_dims]
        self.embedding = FeatureEmbedding(cardinalities, n_numeric, embedding_dim, padding_codes,
                                          numeric_embedding, leaf_trees=leaf_trees,
                                          cross_layers=cross_layers)
        self.bottom = MLP(self.embedding.output_dim, bottom_units, dropout,
                          batch_norm=batch_norm)
        self.towers = TaskTowers(self.bottom.output_dim, tower_units, self.task_output_dims,
                                 dropout, batch_norm)

    def forward(self, categorical, numeric):
        """Return a tuple of per-task logits, task ``t`` of shape ``(batch, dims[t])``."""
        return self.towers(self.bottom(self.embedding(categorical, numeric)))

    def predict_proba(self, logits):
        """Per-task class probabilities from :meth:`forward`'s logits."""
        return task_probabilities(logits)
