"""Adaptive Information Transfer Multi-task network (Xi et al., KDD 2021)."""

import math

import torch
from torch import nn

from .esmm import imputation_towers, two_columns
from .layers import MLP, FeatureEmbedding, per_task_units, prior_logits

# The largest projection of AdaptiveInformationTransfer: a sum of transfer_units products
# of two stays within float32 (3.4e38) for up to 1e8 units
PROJECTION_BOUND = 1e15


class AdaptiveInformationTransfer(nn.Module):
    """Attention over a stage's own representation and what the previous stage passes on.

    For the two inputs ``u`` (the transferred ``p`` and the stage's own
    ``q``) the weight is the softmax over ``u`` of ``<h1(u), h2(u)> / sqrt(d)``
    and the output ``sum_u w_u h3(u)``, with ``h1, h2, h3`` linear maps to
    ``d = transfer_units`` dimensions, clipped to ``±PROJECTION_BOUND`` (far
    beyond any trained value) so that the scores stay finite.

    Parameters
    ----------
    input_dim : int
    transfer_units : int

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import AdaptiveInformationTransfer
    >>> _ = torch.manual_seed(0)
    >>> transfer = AdaptiveInformationTransfer(16, transfer_units=4)
    >>> transfer(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([8, 4])
    """

    def __init__(self, input_dim, transfer_units):
        super().__init__()
        if int(transfer_units) < 1:
            raise ValueError(f"transfer_units must be >= 1; got {transfer_units}")
        self.transfer_units = int(transfer_units)
        # h1, h2, h3 as one linear map
        self.projections = nn.Linear(input_dim, 3 * self.transfer_units)

    def forward(self, transferred, own):
        """Combine two ``(batch, input_dim)`` tensors into ``(batch, transfer_units)``."""
        d = self.transfer_units
        # Bounded, so that the scores (products of two projections) stay finite: from
        # inputs of about 1e20 on, they overflowed and inf - inf made the output NaN.
        # split, not slices: a slice's backward fills a zero tensor of the whole width
        h1_transferred, h2_transferred, h3_transferred = self.projections(transferred).clamp(
            -PROJECTION_BOUND, PROJECTION_BOUND).split(d, 1)
        h1_own, h2_own, h3_own = self.projections(own).clamp(
            -PROJECTION_BOUND, PROJECTION_BOUND).split(d, 1)
        scores = ((h1_transferred * h2_transferred).sum(dim=1, keepdim=True)
                  - (h1_own * h2_own).sum(dim=1, keepdim=True))
        # the softmax over two inputs is the sigmoid of their scores' difference
        return torch.lerp(h3_own, h3_transferred, torch.sigmoid(scores / math.sqrt(d)))


class AITM(nn.Module):
    """AITM for a funnel of binary stages (impression → click → conversion → ...).

    Each stage has a tower over a shared embedding. From the second stage
    on, the previous stage's representation is passed through a transfer
    layer and combined with the stage's own tower output by
    :class:`AdaptiveInformationTransfer`; a linear head gives the stage's
    logit. Unlike :class:`ESMM`, each logit is the *entire-space*
    probability of reaching that stage, trained directly on that stage's
    label (see :class:`AITMLoss`, which also penalises a stage more likely
    than the one before).

    Parameters
    ----------
    cardinalities : sequence of int
    n_numeric : int
    n_stages : int, default=2
    embedding_dim : int, default=8
    tower_units : sequence of int, or one sequence per stage, default=(64, 32)
    transfer_units : int, default=32
        Width of the attention space and of the representations passed on.
    dropout : float, default=0.0
    padding_codes : sequence of int, optional
    numeric_embedding : nn.Module, optional
    imputation : bool, default=False
        Add the extra towers of the DR and DCMT counterfactual risks, as in
        :class:`ESMM`.
    batch_norm : bool, default=False
        Batch-normalise the towers' hidden layers before their activation (see
        :class:`MLP`); the transfer layers are not.
    leaf_trees : TreeLeaves, optional
        Fitted trees whose leaves are embedded as categorical columns (see
        :class:`FeatureEmbedding`).
    cross_layers : int, default=0
        Low-rank cross layers on the embedded input (see :class:`CrossNetwork`).

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import AITM
    >>> _ = torch.manual_seed(0)
    >>> net = AITM([5, 3], n_numeric=2, n_stages=3, tower_units=(16,), transfer_units=8)
    >>> logits = net(torch.randint(0, 3, (8, 2)), torch.zeros(8, 2))
    >>> logits.shape  # one entire-space logit per stage
    torch.Size([8, 3])
    >>> conditional = net.predict_conditional_proba(logits)  # p(stage k | stage k - 1)
    >>> len(conditional), conditional[1].shape, bool((conditional[2] <= 1).all())
    (3, torch.Size([8, 2]), True)
    """

    def __init__(self, cardinalities, n_numeric, n_stages=2, *, embedding_dim=8,
                 tower_units=(64, 32), transfer_units=32, dropout=0.0, padding_codes=None,
                 numeric_embedding=None, imputation=False, batch_norm=False,
                 leaf_trees=None, cross_layers=0):
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"AITM needs at least 2 stages, got {n_stages}")
        self.n_stages = int(n_stages)
        self.embedding = FeatureEmbedding(cardinalities, n_numeric, embedding_dim, padding_codes,
                                          numeric_embedding, leaf_trees=leaf_trees,
                                          cross_layers=cross_layers)
        self.towers = nn.ModuleList(
            MLP(self.embedding.output_dim, units, dropout, batch_norm=batch_norm)
            for units in per_task_units(tower_units, self.n_stages))
        widths = [tower.output_dim for tower in self.towers]
        # stage k's representation: its tower's output for k = 0, the AIT output after
        representation = [widths[0]] + [int(transfer_units)] * (self.n_stages - 1)
        self.transfers = nn.ModuleList(
            nn.Sequential(nn.Linear(representation[k - 1], widths[k]), nn.ReLU())
            for k in range(1, self.n_stages))
        self.attentions = nn.ModuleList(
            AdaptiveInformationTransfer(widths[k], transfer_units)
            for k in range(1, self.n_stages))
        self.heads = nn.ModuleList(nn.Linear(width, 1) for width in representation)
        self.imputation_towers = imputation_towers(
            self.embedding.output_dim, tower_units, self.n_stages, dropout,
            batch_norm) if imputation else None
        # What one stage's loss alone trains (see skmtl.nn.weighting.split_parameters): the
        # last stage's tower, transfer, attention and head (a stage passes its representation
        # on, and the calibrator of stage k reads stage k - 1's head), and the imputation
        # towers (each in one stage's counterfactual risk).
        last = self.n_stages - 1
        self.task_specific = (f"towers.{last}", f"transfers.{last - 1}",
                              f"attentions.{last - 1}", f"heads.{last}", "imputation_towers")

    def forward(self, categorical, numeric, extra_towers=True):
        """Return the stages' entire-space logits, shape ``(batch, n_stages)``.

        With ``imputation`` (and ``extra_towers``, which predictions turn
        off), ``(batch, 2 * n_stages - 1)``: the extra towers' logits follow.
        """
        x = self.embedding(categorical, numeric)
        z = self.towers[0](x)
        logits = [self.heads[0](z)]
        for k in range(1, self.n_stages):
            transferred = self.transfers[k - 1](z)
            z = self.attentions[k - 1](transferred, self.towers[k](x))
            logits.append(self.heads[k](z))
        if self.imputation_towers is not None and extra_towers:
            logits.extend(self.imputation_towers(x))
        return torch.cat(logits, dim=1)

    @torch.no_grad()
    def init_output_bias(self, stage_frequencies):
        """Start each stage's probabilities at its frequencies.

        Parameters
        ----------
        stage_frequencies : sequence of (array-like of shape (2,) or None)
            Per stage, the frequencies of not reaching it and of reaching it,
            over all impressions (what each head's logit gives); None leaves
            the stage's head as it is.
        """
        for head, frequencies in zip(self.heads, stage_frequencies, strict=True):
            if frequencies is not None:
                head.bias.copy_(prior_logits(frequencies, 1))

    def predict_proba(self, logits):
        """Entire-space probabilities per stage, each ``(batch, 2)``: ``[1 - p, p]``."""
        return two_columns(torch.sigmoid(logits[:, :self.n_stages]))

    def predict_conditional_proba(self, logits):
        """Each stage's probability given the previous one, each ``(batch, 2)``.

        ``p(stage k) / p(stage k - 1)``, at most 1 (the calibrator of
        :class:`AITMLoss` keeps the ratio below 1 in training, but does not
        guarantee it).
        """
        reach = torch.sigmoid(logits[:, :self.n_stages])
        conditional = torch.cat(
            [reach[:, :1],
             # min=0.0 changes nothing here; it keeps ONNX's Clip free of an empty input
             (reach[:, 1:] / reach[:, :-1].clamp(min=torch.finfo(reach.dtype).tiny)).clamp(
                 min=0.0, max=1.0)], dim=1)
        return two_columns(conditional)
