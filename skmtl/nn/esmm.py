"""Entire Space Multi-task Model (Ma et al., SIGIR 2018), over a chain of stages."""

import torch
from torch import nn
from torch.nn import functional as F

from .layers import FeatureEmbedding, TaskTowers, per_task_units

# log p is kept at most this, so 1 - p >= 1e-30 and log(1 - p) stays finite.
# Only logits above ~69, where the sigmoid is saturated anyway, reach it.
_LOG_PROBA_CEILING = -1e-30


def entire_space_log_proba(logits):
    """Log-probabilities of reaching each stage, from conditional logits.

    Stage ``k`` is reached with probability ``prod_{j <= k} sigmoid(logits[:, j])``
    (for two stages: ``pCTCVR = pCTR * pCVR``). Working in log space keeps the
    product exact for tiny probabilities.

    Parameters
    ----------
    logits : Tensor of shape (batch, n_stages)
        Conditional logits: stage ``k`` given stage ``k - 1``.

    Returns
    -------
    log_reach, log_miss : Tensors of shape (batch, n_stages)
        ``log p`` and ``log (1 - p)`` of the entire-space probabilities,
        both finite: ``p`` never reaches exactly 0 or 1.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import entire_space_log_proba
    >>> log_reach, log_miss = entire_space_log_proba(torch.zeros(1, 3))  # each stage 1 in 2
    >>> log_reach.exp()
    tensor([[0.5000, 0.2500, 0.1250]])
    >>> log_miss.exp()
    tensor([[0.5000, 0.7500, 0.8750]])
    >>> extreme = entire_space_log_proba(torch.tensor([[200.0, 200.0], [-200.0, 0.0]]))
    >>> all(bool(torch.isfinite(part).all()) for part in extreme)  # p is never 0 or 1
    True
    """
    log_reach = torch.cumsum(F.logsigmoid(logits), dim=1).clamp(max=_LOG_PROBA_CEILING)
    # log(1 - exp(a)) for a < 0, computed stably.
    log_miss = torch.log(-torch.expm1(log_reach))
    return log_reach, log_miss


class ESMM(nn.Module):
    """Shared embedding with one tower per stage of a conversion funnel.

    Tower ``k`` models the conditional probability of stage ``k`` given stage
    ``k - 1`` (the CTR tower, then the CVR tower, ...). Training supervises
    only the entire-space products, see :class:`skmtl.nn.EntireSpaceLoss`.

    Parameters
    ----------
    cardinalities : sequence of int
    n_numeric : int
    n_stages : int, default=2
        Length of the funnel (2: click, conversion).
    embedding_dim : int, default=8
    tower_units : sequence of int, or one sequence per stage, default=(64, 32)
    dropout : float, default=0.0
    padding_codes : sequence of int, optional
    numeric_embedding : nn.Module, optional
        Embeds the numeric inputs (see :class:`FeatureEmbedding`).
    imputation : bool, default=False
        Add an extra tower per later stage (the towers of stages 2, 3, ...'s
        sizes), the imputation tower of the doubly robust counterfactual
        risk or DCMT's counterfactual tower (see
        :mod:`skmtl.nn.counterfactual`); its logits follow the stages'.
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
    >>> from skmtl.nn import ESMM
    >>> _ = torch.manual_seed(0)
    >>> net = ESMM([5, 3], n_numeric=2)  # click, then conversion
    >>> logits = net(torch.randint(0, 3, (8, 2)), torch.zeros(8, 2))
    >>> logits.shape
    torch.Size([8, 2])
    >>> ctr, ctcvr = net.predict_proba(logits)  # entire space: p(click), p(click & conversion)
    >>> bool((ctcvr[:, 1] <= ctr[:, 1]).all())
    True
    """

    def __init__(self, cardinalities, n_numeric, n_stages=2, *, embedding_dim=8,
                 tower_units=(64, 32), dropout=0.0, padding_codes=None, numeric_embedding=None,
                 imputation=False, batch_norm=False, leaf_trees=None, cross_layers=0):
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"ESMM needs at least 2 stages, got {n_stages}")
        self.n_stages = int(n_stages)
        self.embedding = FeatureEmbedding(cardinalities, n_numeric, embedding_dim, padding_codes,
                                          numeric_embedding, leaf_trees=leaf_trees,
                                          cross_layers=cross_layers)
        self.towers = TaskTowers(self.embedding.output_dim, tower_units, [1] * self.n_stages,
                                 dropout, batch_norm)
        self.imputation_towers = imputation_towers(
            self.embedding.output_dim, tower_units, self.n_stages, dropout,
            batch_norm) if imputation else None
        # What one stage's loss alone trains (see skmtl.nn.weighting.split_parameters): the
        # last stage's tower (tower k enters the products of stage k and every later one)
        # and the extra towers (each in one stage's counterfactual risk).
        self.task_specific = (f"towers.{self.n_stages - 1}", "imputation_towers")

    def forward(self, categorical, numeric, extra_towers=True):
        """Return conditional logits of shape ``(batch, n_stages)``.

        With ``imputation`` (and ``extra_towers``, which predictions turn
        off), ``(batch, 2 * n_stages - 1)``: the extra towers' logits follow.
        """
        x = self.embedding(categorical, numeric)
        logits = self.towers(x)
        if self.imputation_towers is not None and extra_towers:
            logits = logits + self.imputation_towers(x)
        return torch.cat(logits, dim=1)

    @torch.no_grad()
    def init_output_bias(self, stage_frequencies):
        """Start each stage's probabilities at its frequencies.

        Parameters
        ----------
        stage_frequencies : sequence of (array-like of shape (2,) or None)
            Per stage, the frequencies of not reaching it and of reaching it,
            over all impressions. Tower ``k`` starts at the rate of stage ``k``
            among the impressions that reached stage ``k - 1``; it is left as
            it is where stage ``k`` or ``k - 1`` is None.
        """
        reach = [None if f is None else float(f[1]) / float(sum(f)) for f in stage_frequencies]
        before = [1.0] + reach[:-1]
        conditional = [None if r is None or b is None else min(r / max(b, 1e-30), 1.0)
                       for r, b in zip(reach, before)]
        self.towers.init_output_bias([None if c is None else [1.0 - c, c] for c in conditional])

    def predict_proba(self, logits):
        """Entire-space probabilities per stage, each ``(batch, 2)``: ``[1 - p, p]``."""
        conditional = torch.sigmoid(logits[:, :self.n_stages]).unbind(dim=1)
        # A running product, as torch.cumprod computes it; torch's ONNX exporter has no cumprod.
        reach = [conditional[0]]
        for stage in conditional[1:]:
            reach.append(reach[-1] * stage)
        return two_columns(torch.stack(reach, dim=1))

    def predict_conditional_proba(self, logits):
        """Conditional probabilities per stage, each ``(batch, 2)``: ``[1 - p, p]``."""
        return two_columns(torch.sigmoid(logits[:, :self.n_stages]))


def imputation_towers(input_dim, tower_units, n_stages, dropout, batch_norm):
    """The extra towers of the DR and DCMT risks: one per later stage, sized as its tower."""
    return TaskTowers(input_dim, per_task_units(tower_units, n_stages)[1:], [1] * (n_stages - 1),
                      dropout, batch_norm)


def two_columns(positive):
    """``[1 - p, p]`` per column of ``positive``, as a list of ``(batch, 2)`` tensors."""
    return [torch.stack([1.0 - p, p], dim=1) for p in positive.unbind(dim=1)]
