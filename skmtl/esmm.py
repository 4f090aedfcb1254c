"""Entire Space Multi-task Model classifier."""

from . import _docs
from ._funnel import FunnelClassifierBase
from .nn import ESMM, EntireSpaceLoss


@_docs.estimator("ESMM", tower_default="(64, 32)", max_epochs_note="""
        More than MMoE's 6: on Coat and on ``make_entire_space`` the
        funnel's towers kept improving up to 10 (see
        ``benchmarks/README.md``, the search).""")
class ESMMClassifier(FunnelClassifierBase):
    """Entire Space Multi-task Model for a funnel of binary stages.

    The classic case has two stages, click and conversion. A CTR tower
    estimates ``p(click | x)`` and a CVR tower ``p(conversion | click, x)``
    over a shared embedding; training supervises ``pCTR`` with the click
    label and ``pCTCVR = pCTR * pCVR`` with the click-and-conversion label on
    every impression, so the CVR estimate is free of the selection bias of
    training on clicked rows only (Ma et al., "Entire Space Multi-Task Model",
    SIGIR 2018). More stages chain the same way: stage ``k``'s entire-space
    probability is the product of the conditional probabilities of stages
    ``1..k``.

    ``Y`` has one 0/1 column per stage, in funnel order; a row may reach a
    stage only if it reached the one before (a conversion needs a click).

    Parameters
    ----------
{tower_units}
{counterfactual}
{common_parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import ESMMClassifier
    >>> from skmtl.datasets import make_entire_space
    >>> data = make_entire_space(5000, random_state=0)
    >>> model = ESMMClassifier(max_epochs=5, random_state=0).fit(data.data, data.target)
    >>> ctr, ctcvr = model.predict_proba(data.data)
    >>> ctr_, cvr = model.predict_conditional_proba(data.data)
    """

    def __init__(self, *, tower_units=(64, 32), counterfactual=None, counterfactual_weight=0.3,
                 propensity_clip=0.2, counterfactual_constraint_weight=0.07,
                 categorical_features="from_dtype", categories=None,
                 hash_buckets=None, embedding_dim=8, sparse_embeddings="auto",
                 numeric_encoding="auto", n_bins=32, bin_strategy="target",
                 frequent_values="auto", leaf_trees=0, cross_layers=0,
                 dropout=0.0, batch_norm=False, learning_rate=6e-3, learning_rate_schedule="cosine",
                 weight_decay=1e-5, batch_size="auto", max_epochs=10,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 scoring="loss", task_weights=None, loss_weighting="equal", gradnorm_alpha=1.5,
                 random_state=None, device="cpu", verbose=0, warm_start=False):
        self._set_init_params(locals())

    def _build_module(self, embedding, task_output_dims, tower_units):
        return ESMM(**embedding, n_stages=len(task_output_dims), tower_units=tower_units,
                    dropout=self.dropout, batch_norm=self.batch_norm,
                    imputation=self._extra_towers)

    def _build_criterion(self, task_output_dims):
        return EntireSpaceLoss(**self._counterfactual_params())
