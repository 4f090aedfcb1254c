"""Adaptive Information Transfer Multi-task classifier."""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from . import _docs
from ._base import MAX_SAMPLE_WEIGHT_SUM, MAX_UNITS
from ._funnel import FunnelClassifierBase
from .nn import AITM, AITMLoss


@_docs.estimator("AITM", tower_default="(64, 32)", max_epochs_note=" As for ESMM.",
                 early_stopping_note="""\
        Kept on above 10,000 samples for AITM, unlike the other models:
        without it AITM's pCVR AUC on Coat fell by 0.016, and on a
        four-stage funnel its last stage's by 0.024
        (``benchmarks/README.md``).""")
class AITMClassifier(FunnelClassifierBase):
    """Adaptive Information Transfer Multi-task model for a funnel of binary stages.

    Xi et al., "Modeling the Sequential Dependence among Audience Multi-step
    Conversions with Multi-task Learning in Targeted Display Advertising",
    KDD 2021. Each stage (click, conversion, ...) has a tower over a shared
    embedding; from the second stage on, what the previous stage learned is
    passed through a transfer layer and weighed against the stage's own
    representation by attention, so a stage with few positives borrows from
    the one before. Each stage's output is its *entire-space* probability,
    trained on that stage's label over all rows; a calibrator adds
    ``calibration_weight * max(p_k - p_{k-1}, 0)``, summed over the rows of
    each batch, to the loss (the mean cross-entropy), since reaching a later
    stage cannot be more likely than reaching the one before.

    ``Y`` has one 0/1 column per stage, in funnel order, as for
    :class:`ESMMClassifier`. :meth:`predict_proba` gives each stage's
    entire-space probability; :meth:`predict_conditional_proba` the ratio
    ``p_k / p_{k-1}`` (at most 1).

    Parameters
    ----------
{tower_units}
    transfer_units : int, default=32
        Width of the attention space and of what one stage passes to the next.
    calibration_weight : float, default=0.6
        Weight of the calibrator (the paper's alpha; 0 turns it off). The
        penalty is summed over a batch's rows, as in the authors' code (the
        cross-entropy is a mean), so its strength grows with ``batch_size``
        and with the scale of ``sample_weight`` (a weight counts as that
        many repeated rows). On Coat the default left almost no row with
        ``p_2 > p_1`` and gave pCVR a log loss of about 0.43, against
        0.56-0.64 with a batch mean (a weight ``batch_size`` times smaller).
{counterfactual}
{common_parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import AITMClassifier
    >>> from skmtl.datasets import make_entire_space
    >>> data = make_entire_space(5000, random_state=0)
    >>> model = AITMClassifier(max_epochs=5, random_state=0).fit(data.data, data.target)
    >>> ctr, ctcvr = model.predict_proba(data.data)
    >>> ctr_, cvr = model.predict_conditional_proba(data.data)
    """

    _MODEL_NETWORK_PARAMS = ("transfer_units", "counterfactual")
    _parameter_constraints = {
        **FunnelClassifierBase._parameter_constraints,
        "transfer_units": [Interval(Integral, 1, MAX_UNITS, closed="both")],
        "calibration_weight": [Interval(Real, 0, MAX_SAMPLE_WEIGHT_SUM, closed="both")],
    }

    def __init__(self, *, tower_units=(64, 32), transfer_units=32, calibration_weight=0.6,
                 counterfactual=None, counterfactual_weight=0.3, propensity_clip=0.2,
                 counterfactual_constraint_weight=0.07, categorical_features="from_dtype",
                 categories=None, hash_buckets=None, embedding_dim=8, sparse_embeddings="auto",
                 numeric_encoding="auto", n_bins=32, bin_strategy="target",
                 frequent_values="auto", leaf_trees=0, cross_layers=0,
                 dropout=0.0, batch_norm=False, learning_rate=6e-3, learning_rate_schedule="cosine",
                 weight_decay=1e-5, batch_size="auto", max_epochs=10,
                 early_stopping="auto", validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 scoring="loss", task_weights=None, loss_weighting="equal", gradnorm_alpha=1.5,
                 random_state=None, device="cpu", verbose=0, warm_start=False):
        self._set_init_params(locals())

    def _build_module(self, embedding, task_output_dims, tower_units):
        return AITM(**embedding, n_stages=len(task_output_dims), tower_units=tower_units,
                    transfer_units=self.transfer_units, dropout=self.dropout,
                    batch_norm=self.batch_norm, imputation=self._extra_towers)

    def _build_criterion(self, task_output_dims):
        return AITMLoss(self.calibration_weight, **self._counterfactual_params())
