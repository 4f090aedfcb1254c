"""Shared-Bottom estimators: hard parameter sharing."""

from . import _docs
from ._base import (CLASSIFIER_DEFAULTS, MultiTaskClassifierBase, MultiTaskEstimatorBase,
                    MultiTaskRegressorBase, _check_units, with_defaults)
from .nn import SharedBottom


class _SharedBottom(MultiTaskEstimatorBase):
    _MODEL_NETWORK_PARAMS = ("bottom_units",)
    _parameter_constraints = {
        **MultiTaskEstimatorBase._parameter_constraints,
        "bottom_units": ["array-like"],
    }

    def __init__(self, *, bottom_units=(128, 64), tower_units=(32,),
                 categorical_features="from_dtype", categories=None, hash_buckets=None,
                 embedding_dim=8, sparse_embeddings="auto",
                 numeric_encoding="auto", n_bins=32, bin_strategy="target",
                 frequent_values="auto", leaf_trees=0, cross_layers=0,
                 dropout=0.0, batch_norm=False, learning_rate=6e-3, learning_rate_schedule="cosine",
                 weight_decay=1e-5, batch_size="auto", max_epochs=6,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 scoring="loss", task_weights=None, loss_weighting="equal", gradnorm_alpha=1.5,
                 random_state=None, device="cpu", verbose=0, warm_start=False):
        self._set_init_params(locals())

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        _check_units("bottom_units", self.bottom_units)

    def _build_module(self, embedding, task_output_dims, tower_units):
        return SharedBottom(**embedding, task_output_dims=task_output_dims,
                            bottom_units=self.bottom_units, tower_units=tower_units,
                            dropout=self.dropout, batch_norm=self.batch_norm)


_PARAMETERS = """\
    bottom_units : tuple of int, default=(128, 64)
        Hidden layer widths of the bottom network shared by every task.
{tower_units}
{common_parameters}"""


@_docs.estimator("SharedBottom", parameters=_PARAMETERS)
@with_defaults(**CLASSIFIER_DEFAULTS)
class SharedBottomClassifier(MultiTaskClassifierBase, _SharedBottom):
    """Shared-Bottom network for several classification tasks at once.

    Hard parameter sharing (Caruana, "Multitask Learning", 1997): one
    bottom network over the embedded features, shared by every task, and a
    tower per task on top. The simplest multi-task model, and the baseline
    the gated models (:class:`MMOEClassifier`, :class:`PLEClassifier`) are
    measured against.

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import SharedBottomClassifier
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(2000, random_state=0)
    >>> model = SharedBottomClassifier(max_epochs=5, random_state=0)
    >>> [p.shape for p in model.fit(data.data, data.target).predict_proba(data.data)]
    [(2000, 2), (2000, 2)]
    """


@_docs.estimator("SharedBottom", regressor=True, parameters=_PARAMETERS)
class SharedBottomRegressor(MultiTaskRegressorBase, _SharedBottom):
    """Shared-Bottom network for several regression targets at once.

    The network of :class:`SharedBottomClassifier` with one real-valued
    output per task; targets are standardised inside the estimator and
    predictions mapped back.

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import SharedBottomRegressor
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(1000, random_state=0)
    >>> model = SharedBottomRegressor(max_epochs=3, random_state=0)
    >>> model.fit(data.data, data.target_scores["task_0"]).predict(data.data).shape  # 1-D
    (1000,)
    """
