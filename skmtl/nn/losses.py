"""Per-task training losses. Each returns one (weighted mean) loss per task."""

import torch
from torch import nn
from torch.nn import functional as F

from .counterfactual import (EXTRA_TOWER_METHODS, CounterfactualRisk,
                             conditional_log_proba_from_reach, extra_logits_of)
from .esmm import entire_space_log_proba


def known_targets(target):
    """``(filled, known)``: ``target`` with missing (NaN) labels set to 0, and where it is known.

    ``known`` is a float mask of the same shape, 1 where the label is known.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import known_targets
    >>> filled, known = known_targets(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    >>> filled
    tensor([[1., 0.],
            [0., 1.]])
    >>> known
    tensor([[1., 0.],
            [1., 1.]])
    """
    known = target == target  # False exactly where NaN
    return torch.where(known, target, torch.zeros((), dtype=target.dtype)), known.to(target.dtype)


def _weighted_mean(losses, known, sample_weight):
    """Per-column mean over the batch (dim 0) of ``losses`` on the rows where it is ``known``.

    Rows are weighted by ``sample_weight``; a column with no known row is 0.
    ``known=None`` means every label is known.
    """
    tiny = torch.finfo(losses.dtype).tiny
    if known is None:
        if sample_weight is None:
            return losses.mean(dim=0)
        weight = sample_weight.unsqueeze(1)
        return (losses * weight).sum(dim=0) / weight.sum().clamp(min=tiny)
    weight = known if sample_weight is None else known * sample_weight.unsqueeze(1)
    return (losses * weight).sum(dim=0) / weight.sum(dim=0).clamp(min=tiny)


class _PerTaskLoss(nn.Module):
    """A loss returning one value per task, which leaves missing (NaN) labels out.

    ``missing_labels = False`` (set by whoever knows the targets are
    complete) skips the masking, which costs as much again as a small
    loss's own arithmetic. ``label_free_``, set by a call whose losses have
    a part that needs no label (AITM's calibrator), is that part: a trainer
    that weighs each task by its share of known labels takes it (deleting
    the attribute) and leaves that part unscaled.
    """

    missing_labels = True
    label_free_ = None

    def _known(self, target):
        """``(target, known)`` as :func:`known_targets`, or ``(target, None)``."""
        return known_targets(target) if self.missing_labels else (target, None)


class MultiTaskLoss(_PerTaskLoss):
    """Binary or multiclass cross-entropy per task.

    Parameters
    ----------
    task_output_dims : sequence of int
        1 for a binary task (a single logit, binary cross-entropy), the number
        of classes for a multiclass task (softmax cross-entropy).

    Examples
    --------
    All-zero logits cost ``log 2`` on a binary task and ``log 3`` on a
    3-class one; missing (NaN) labels are left out:

    >>> import torch
    >>> from skmtl.nn import MultiTaskLoss
    >>> nan = float("nan")
    >>> target = torch.tensor([[0.0, 2.0], [1.0, 0.0], [nan, 1.0], [1.0, nan]])
    >>> MultiTaskLoss([1, 3])((torch.zeros(4, 1), torch.zeros(4, 3)), target)
    tensor([0.6931, 1.0986])
    """

    def __init__(self, task_output_dims):
        super().__init__()
        self.task_output_dims = [int(d) for d in task_output_dims]

    def forward(self, logits, target, sample_weight=None):
        """Return the per-task losses, shape ``(n_tasks,)``.

        Parameters
        ----------
        logits : tuple of Tensors
            Task ``t``'s logits, shape ``(batch, task_output_dims[t])``.
        target : Tensor of shape (batch, n_tasks)
            Class codes per task (``0 .. n_classes - 1``), as floats; NaN
            where the label is missing.
        sample_weight : Tensor of shape (batch,), optional
        """
        target, known = self._known(target)
        per_sample = []
        for t, task_logits in enumerate(logits):
            if self.task_output_dims[t] == 1:
                loss = F.binary_cross_entropy_with_logits(
                    task_logits[:, 0], target[:, t], reduction="none")
            else:
                loss = F.cross_entropy(task_logits, target[:, t].long(), reduction="none")
            per_sample.append(loss)
        return _weighted_mean(torch.stack(per_sample, dim=1), known, sample_weight)


class MultiTaskSquaredLoss(_PerTaskLoss):
    """Mean squared error per task, for regression targets (one output per task).

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import MultiTaskSquaredLoss
    >>> outputs = (torch.zeros(3, 1), torch.ones(3, 1))
    >>> target = torch.tensor([[1.0, 1.0], [2.0, float("nan")], [3.0, 3.0]])
    >>> MultiTaskSquaredLoss()(outputs, target)  # (1 + 4 + 9) / 3 and (0 + 4) / 2
    tensor([4.6667, 2.0000])
    """

    def forward(self, outputs, target, sample_weight=None):
        """Return the per-task losses, shape ``(n_tasks,)``.

        Parameters
        ----------
        outputs : tuple of Tensors of shape (batch, 1)
        target : Tensor of shape (batch, n_tasks)
            NaN where the target is missing.
        sample_weight : Tensor of shape (batch,), optional
        """
        target, known = self._known(target)
        return _weighted_mean((torch.cat(outputs, dim=1) - target) ** 2, known, sample_weight)


class _FunnelLoss(_PerTaskLoss):
    """A funnel's per-stage losses, optionally with a counterfactual risk (parameters
    in :class:`EntireSpaceLoss`)."""

    def __init__(self, counterfactual=None, counterfactual_weight=0.3, propensity_clip=0.2,
                 counterfactual_constraint_weight=0.1):
        super().__init__()
        self.counterfactual_weight = float(counterfactual_weight)
        self.counterfactual = (None if counterfactual is None else CounterfactualRisk(
            counterfactual, propensity_clip, counterfactual_constraint_weight))

    def _add_counterfactual(self, losses, log_conditional, log_reach, target, known,
                            sample_weight, extra_logits):
        if self.counterfactual is None:
            return losses
        if self.counterfactual.method in EXTRA_TOWER_METHODS and extra_logits is None:
            raise ValueError(f"counterfactual={self.counterfactual.method!r} needs a network "
                             "built with imputation=True (its extra towers)")
        if known is None:
            known = torch.ones_like(target)
        return losses + self.counterfactual_weight * self.counterfactual(
            log_conditional, log_reach, target, known, sample_weight, extra_logits)


class EntireSpaceLoss(_FunnelLoss):
    """ESMM's loss: binary cross-entropy of each stage's entire-space probability.

    For two stages this is ``BCE(click, pCTR) + BCE(click & conversion, pCTCVR)``
    over every impression; the conditional (CVR) probability is not
    supervised directly, unless a ``counterfactual`` risk is added.

    Parameters
    ----------
    counterfactual : {None, "ips", "dr", "dcmt"}, default=None
        Add ``counterfactual_weight`` times the IPS, DR or DCMT risk of each
        later stage's conditional probability to that stage's loss (see
        :mod:`skmtl.nn.counterfactual`). ``"dr"`` and ``"dcmt"`` need the
        network's extra towers (``imputation=True``).
    counterfactual_weight : float, default=0.3
    propensity_clip : float, default=0.2
        Propensities (the model's probability of reaching the previous
        stage) below it are raised to it.
    counterfactual_constraint_weight : float, default=0.1
        DCMT's weight of the prior ``q + q* = 1``.

    Examples
    --------
    With zero logits, p(click) = 0.5 and p(click & conversion) = 0.25:

    >>> import torch
    >>> from skmtl.nn import EntireSpaceLoss
    >>> target = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    >>> EntireSpaceLoss()(torch.zeros(4, 2), target)  # log 2, (log 4 + 3 log 4/3) / 4
    tensor([0.6931, 0.5623])
    >>> EntireSpaceLoss(counterfactual="ips")(torch.zeros(4, 2), target).shape
    torch.Size([2])
    """

    def forward(self, logits, target, sample_weight=None):
        """Return the per-stage losses, shape ``(n_stages,)``.

        Parameters
        ----------
        logits : Tensor of shape (batch, n_stages)
            Conditional logits from :class:`skmtl.nn.ESMM` (followed by the
            extra towers' logits, with ``imputation``).
        target : Tensor of shape (batch, n_stages)
            1 where the row reached that stage, 0 where it did not, NaN
            where it is not known.
        sample_weight : Tensor of shape (batch,), optional
        """
        logits, extra_logits = extra_logits_of(logits, target.shape[1])
        target, known = self._known(target)
        log_reach, log_miss = entire_space_log_proba(logits)
        losses = -(target * log_reach + (1.0 - target) * log_miss)
        return self._add_counterfactual(
            _weighted_mean(losses, known, sample_weight),
            (F.logsigmoid(logits), F.logsigmoid(-logits)), log_reach, target, known,
            sample_weight, extra_logits)


class AITMLoss(_FunnelLoss):
    """AITM's loss: each stage's cross-entropy plus the behavioural expectation calibrator.

    The calibrator adds ``calibration_weight * sum_i max(p_k - p_{k-1}, 0)``
    to stage ``k``'s loss: reaching a later stage cannot be more likely than
    reaching the one before. As in the authors' implementation, the penalty
    is summed over the rows of the batch (weighted by ``sample_weight``)
    while the cross-entropy is a mean, so even a small weight makes a
    violation cost more than a misclassified row; on Coat the default 0.6
    left almost no row with ``p_2 > p_1`` and a better-calibrated pCVR than
    a batch mean of the penalty did.

    The ``counterfactual`` risk, when asked for, applies to the conditional
    probabilities ``p_k / p_{k-1}`` (capped at 1).

    Parameters
    ----------
    calibration_weight : float, default=0.6
    counterfactual, counterfactual_weight, propensity_clip, counterfactual_constraint_weight
        As for :class:`EntireSpaceLoss`.

    Examples
    --------
    The second row's conversion (p = 0.88) is more likely than its click
    (p = 0.5): the calibrator adds 0.6 * 0.38 to the conversion stage.

    >>> import torch
    >>> from skmtl.nn import AITMLoss
    >>> logits = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    >>> target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    >>> AITMLoss()(logits, target) - AITMLoss(calibration_weight=0.0)(logits, target)
    tensor([0.0000, 0.2285])
    """

    def __init__(self, calibration_weight=0.6, counterfactual=None, counterfactual_weight=0.3,
                 propensity_clip=0.2, counterfactual_constraint_weight=0.1):
        super().__init__(counterfactual, counterfactual_weight, propensity_clip,
                         counterfactual_constraint_weight)
        self.calibration_weight = float(calibration_weight)

    def forward(self, logits, target, sample_weight=None):
        """Return the per-stage losses, shape ``(n_stages,)``.

        Parameters
        ----------
        logits : Tensor of shape (batch, n_stages)
            Entire-space logits from :class:`AITM` (followed by the
            extra towers' logits, with ``imputation``).
        target : Tensor of shape (batch, n_stages)
            NaN where the label is not known (the calibrator still applies).
        sample_weight : Tensor of shape (batch,), optional
        """
        logits, extra_logits = extra_logits_of(logits, target.shape[1])
        target, known = self._known(target)
        losses = _weighted_mean(
            F.binary_cross_entropy_with_logits(logits, target, reduction="none"), known,
            sample_weight)
        reach = torch.sigmoid(logits)
        excess = (reach[:, 1:] - reach[:, :-1]).clamp(min=0.0)
        if sample_weight is not None:
            excess = excess * sample_weight.unsqueeze(1)
        # a weight of 2 counts as a repeated row, in the sum as in the mean
        penalty = torch.cat([excess.new_zeros(1), excess.sum(dim=0)])
        # the part of each stage's loss that needs no label (see label_free_)
        self.label_free_ = self.calibration_weight * penalty
        losses = losses + self.label_free_
        if self.counterfactual is None:
            return losses
        log_reach = F.logsigmoid(logits)
        return self._add_counterfactual(
            losses, conditional_log_proba_from_reach(log_reach), log_reach, target, known,
            sample_weight, extra_logits)
