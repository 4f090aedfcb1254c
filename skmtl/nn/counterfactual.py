"""Counterfactual regularisers of a funnel's conditional probabilities (ESCM², DCMT).

ESMM fits the entire-space probabilities of a funnel; its conditional
probability (pCVR, conversion given click) is still biased towards the rows
that were clicked. Wang et al., "ESCM²: Entire Space Counterfactual
Multi-Task Model for Post-Click Conversion Rate Estimation" (SIGIR 2022),
add a counterfactual risk of the conditional probability over the whole
space, with the model's own entire-space probability of the previous stage
as the propensity:

- IPS: ``mean_i o_i e_i / ô_i``, where ``o_i`` says whether row ``i``
  reached the previous stage, ``e_i`` is the cross-entropy of the stage's
  label and its conditional probability, and ``ô_i`` the propensity.
- DR (doubly robust): ``mean_i [ê_i + o_i (e_i - ê_i) / ô_i]``, where
  ``ê_i`` is the cross-entropy against the label imputed by a separate
  imputation tower, trained to predict ``e_i`` on the reached rows
  (``mean_i o_i (e_i - ê_i)^2 / ô_i``).

Both assume that whether a row reached the previous stage depends on its
features only. Where it also depends on the label (users rate the items
they like), Zhu et al., "DCMT: A Direct Entire-Space Causal Multi-Task
Framework for Post-Click Conversion Estimation" (ICDE 2023), add a twin,
counterfactual tower ``q*`` that predicts *not* converting on the rows that
did not reach the previous stage, tied to the factual one by the prior
``q + q* = 1``:

- DCMT: ``mean_i [o_i e_i / ô_i + (1 - o_i) e*_i / (1 - ô_i) + λ |1 - q_i - q*_i|]``,
  where ``e*_i`` is the cross-entropy of ``q*_i`` against ``1 - y_i`` (1
  on the rows that did not reach the previous stage) and ``λ`` the
  constraint's weight. The prior pulls ``q`` down where rows resemble those
  that stopped before the stage.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

# the helpers below serve the losses of skmtl.nn; the risk is the public part
__all__ = ["CounterfactualRisk"]


# The conditional probability p_k / p_{k-1} of an entire-space model is kept
# at most this: a row where p_k >= p_{k-1} (which AITM's calibrator
# penalises) would otherwise add log(1e-30) ~ -69 to a risk it cannot train.
_CONDITIONAL_CEILING = math.log1p(-1e-4)


def conditional_log_proba_from_reach(log_reach):
    """``(log q, log (1 - q))`` of ``q_k = p_k / p_{k-1}`` from entire-space ``log p``.

    ``q_k`` is capped at ``1 - 1e-4``. The previous stage's ``p_{k-1}``, the
    propensity, enters as a constant: gradients reach stage ``k`` only.
    Stage 0's conditional probability is its entire-space one.
    """
    log_q = torch.cat([log_reach[:, :1], log_reach[:, 1:] - log_reach[:, :-1].detach()], dim=1)
    log_q = log_q.clamp(max=_CONDITIONAL_CEILING)
    return log_q, torch.log(-torch.expm1(log_q))


COUNTERFACTUAL_METHODS = ("ips", "dr", "dcmt")
# the methods whose risk reads the network's extra towers (imputation=True)
EXTRA_TOWER_METHODS = ("dr", "dcmt")


class CounterfactualRisk(nn.Module):
    """The IPS, DR or DCMT risk of each later stage's conditional probability.

    Parameters
    ----------
    method : {"ips", "dr", "dcmt"}
    propensity_clip : float, default=0.2
        Propensities below it are raised to it, which bounds the inverse
        weights by ``1 / propensity_clip``; for DCMT, ``1 - ô`` likewise.
    constraint_weight : float, default=0.1
        DCMT's ``λ``, the weight of the prior ``q + q* = 1``; not used by
        IPS and DR.

    Examples
    --------
    Zero logits: every stage 1 in 2 given the previous one, so the click
    propensity is 0.5 and each of the 2 clicked rows of 4 counts twice.

    >>> import torch
    >>> from torch.nn import functional as F
    >>> from skmtl.nn import entire_space_log_proba
    >>> from skmtl.nn.counterfactual import CounterfactualRisk
    >>> logits, known = torch.zeros(4, 2), torch.ones(4, 2)
    >>> target = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    >>> log_conditional = F.logsigmoid(logits), F.logsigmoid(-logits)
    >>> log_reach, _ = entire_space_log_proba(logits)
    >>> CounterfactualRisk("ips")(log_conditional, log_reach, target, known)  # 2 * 2 log 2 / 4
    tensor([0.0000, 0.6931])

    DCMT, with the twin tower's logits at 0 too (``q = q* = 0.5``, so the
    prior holds): the 2 clicked rows count ``2 log 2`` each as above, and
    the 2 others ``log 2 / 0.5`` each for the twin tower.

    >>> twin = torch.zeros(4, 1)
    >>> CounterfactualRisk("dcmt")(log_conditional, log_reach, target, known,
    ...                            extra_logits=twin)  # 4 * 2 log 2 / 4
    tensor([0.0000, 1.3863])
    """

    def __init__(self, method, propensity_clip=0.2, constraint_weight=0.1):
        super().__init__()
        if method not in COUNTERFACTUAL_METHODS:
            raise ValueError(f"method must be one of {COUNTERFACTUAL_METHODS}, got {method!r}")
        self.method = method
        self.propensity_clip = float(propensity_clip)
        self.constraint_weight = float(constraint_weight)

    def forward(self, log_conditional, log_reach, target, known, sample_weight=None,
                extra_logits=None):
        """Return the risk per stage, shape ``(n_stages,)`` (0 for the first stage).

        For DR, the imputation loss is added by its gradient only: it trains
        the imputation towers without counting in the returned value.

        Parameters
        ----------
        log_conditional : pair of Tensors of shape (batch, n_stages)
            ``log q`` and ``log (1 - q)`` of each stage given the previous one.
        log_reach : Tensor of shape (batch, n_stages)
            ``log p`` of reaching each stage; the propensities (no gradient
            flows through them).
        target, known : Tensors of shape (batch, n_stages)
            Labels (0 where missing) and 1 where they are known.
        sample_weight : Tensor of shape (batch,), optional
        extra_logits : Tensor of shape (batch, n_stages - 1)
            The extra towers' logits of each later stage: DR's imputation of
            its label, DCMT's counterfactual ``q*``; not used by IPS.
        """
        log_q, log_not_q = log_conditional[0][:, 1:], log_conditional[1][:, 1:]
        reach = torch.exp(log_reach[:, :-1].detach())
        propensity = reach.clamp(min=self.propensity_clip)
        reached, label = target[:, :-1], target[:, 1:]
        # A stage's risk is a mean over the rows where its label and the previous
        # stage's are known (a missing label leaves the row out, as in every loss);
        # a row is observed when it also reached the previous stage.
        counted = known[:, :-1] * known[:, 1:]
        observed = reached * counted
        error = -(label * log_q + (1.0 - label) * log_not_q)
        weight = (torch.ones_like(log_q[:, :1]) if sample_weight is None
                  else sample_weight.unsqueeze(1))
        total = (weight * counted).sum(dim=0).clamp(min=torch.finfo(log_q.dtype).tiny)
        if self.method == "ips":
            risk = (weight * observed * error / propensity).sum(dim=0) / total
        elif self.method == "dcmt":
            missed = (1.0 - reached) * counted
            twin_error = F.binary_cross_entropy_with_logits(extra_logits, 1.0 - label,
                                                            reduction="none")
            # q + q* = 1: q = exp(log q), as the stage's probability (AITM's capped ratio)
            prior = (1.0 - torch.exp(log_q) - torch.sigmoid(extra_logits)).abs()
            not_reached = (1.0 - reach).clamp(min=self.propensity_clip)
            risk = (weight * (observed * error / propensity + missed * twin_error / not_reached
                              + self.constraint_weight * counted * prior)).sum(dim=0) / total
        else:
            imputed = torch.sigmoid(extra_logits)
            # the imputed error, as the prediction's loss (the imputation held fixed) ...
            imputed_error = -(imputed.detach() * log_q + (1.0 - imputed.detach()) * log_not_q)
            # ... and as the imputation's (the prediction held fixed)
            imputation_error = -(imputed * log_q.detach() + (1.0 - imputed) * log_not_q.detach())
            risk = (weight * counted * (imputed_error + observed * (error - imputed_error)
                                        / propensity)).sum(dim=0) / total
            imputation_loss = (weight * observed * (error.detach() - imputation_error) ** 2
                               / propensity).sum(dim=0) / total
            # Its gradient trains the imputation towers; its value stays out of
            # the stage's loss, which the history records and early stopping watches.
            risk = risk + (imputation_loss - imputation_loss.detach())
        return torch.cat([risk.new_zeros(1), risk])


def extra_logits_of(outputs, n_stages):
    """Split a funnel network's outputs into ``(stage_logits, extra_logits or None)``.

    The extra logits are those of the network's extra towers (DR's
    imputation, DCMT's counterfactual towers), one per later stage.
    """
    if outputs.shape[1] == n_stages:
        return outputs, None
    return outputs[:, :n_stages], outputs[:, n_stages:]

