"""Mixtures of experts: the multi-gate (MMoE) and one-gate (OMoE) estimators."""

from numbers import Integral

from sklearn.utils._param_validation import Interval

from . import _docs
from ._base import (CLASSIFIER_DEFAULTS, MAX_EXPERTS, GateWeightsMixin,
                    MultiTaskClassifierBase, MultiTaskEstimatorBase, MultiTaskRegressorBase,
                    _check_units, with_defaults)
from .nn import MMoE, OMoE


class _MixtureOfExperts(GateWeightsMixin, MultiTaskEstimatorBase):
    """Parameters and checks shared by the MMoE and OMoE estimators."""

    _MODEL_NETWORK_PARAMS = ("n_experts", "expert_units")
    _parameter_constraints = {
        **MultiTaskEstimatorBase._parameter_constraints,
        "n_experts": [Interval(Integral, 1, MAX_EXPERTS, closed="both")],
        "expert_units": ["array-like"],
    }

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        _check_units("expert_units", self.expert_units, allow_empty=False)

    _NETWORK = None  # the skmtl.nn module

    def _build_module(self, embedding, task_output_dims, tower_units):
        return self._NETWORK(**embedding, task_output_dims=task_output_dims,
                             n_experts=self.n_experts, expert_units=self.expert_units,
                             tower_units=tower_units, dropout=self.dropout,
                             batch_norm=self.batch_norm)


class _MMoE(_MixtureOfExperts):
    _NETWORK = MMoE

    def __init__(self, *, n_experts=4, expert_units=(32,), tower_units=(32,),
                 categorical_features="from_dtype", categories=None, hash_buckets=None,
                 embedding_dim=8, sparse_embeddings="auto",
                 numeric_encoding="auto", n_bins=32, bin_strategy="target",
                 frequent_values="auto", leaf_trees=0, cross_layers=0,
                 dropout=0.0, batch_norm=False, learning_rate=6e-3, learning_rate_schedule="cosine",
                 weight_decay=1e-5, batch_size="auto", max_epochs=5,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 scoring="loss", task_weights=None, loss_weighting="equal", gradnorm_alpha=1.5,
                 random_state=None, device="cpu", verbose=0, warm_start=False):
        self._set_init_params(locals())


class _OMoE(_MixtureOfExperts):
    _NETWORK = OMoE

    def __init__(self, *, n_experts=4, expert_units=(64,), tower_units=(32,),
                 categorical_features="from_dtype", categories=None, hash_buckets=None,
                 embedding_dim=8, sparse_embeddings="auto",
                 numeric_encoding="auto", n_bins=32, bin_strategy="target",
                 frequent_values="auto", leaf_trees=0, cross_layers=0,
                 dropout=0.0, batch_norm=False, learning_rate=6e-3, learning_rate_schedule="cosine",
                 weight_decay=1e-5, batch_size="auto", max_epochs=5,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 scoring="loss", task_weights=None, loss_weighting="equal", gradnorm_alpha=1.5,
                 random_state=None, device="cpu", verbose=0, warm_start=False):
        self._set_init_params(locals())


_MMOE_PARAMETERS = """\
    n_experts : int, default=4
        Number of shared experts.
    expert_units : tuple of int, default=(32,)
        Hidden layer widths of every expert.{expert_note}
{tower_units}
{common_parameters}"""

_OMOE_PARAMETERS = """\
    n_experts : int, default=4
        Number of shared experts.
    expert_units : tuple of int, default=(64,)
        Hidden layer widths of every expert.
{tower_units}
{common_parameters}"""

_GATE_WEIGHTS_NOTE = """\
    :meth:`gate_weights` returns the gates' weights over the experts for
    given rows: an array ``(n_samples, {n_gates}, n_experts)``."""


_SMALL_TABLES_NOTE = """ On small tables of smooth targets more epochs pay:
        on 500 to 5,000 rows of a synthetic regression, MMoE with 6 epochs
        reached an R² up to 0.024 higher (``benchmarks/README.md``, "Every
        row trains by default")."""


@_docs.estimator("MMoE", parameters=_MMOE_PARAMETERS, gate_note=_GATE_WEIGHTS_NOTE,
                 n_gates="n_tasks", expert_note=""" (Experts of 64 reached the same
        AUC on Census within 0.001, in 1.3 to 1.5 times the fit time.)""")
@with_defaults(**CLASSIFIER_DEFAULTS)
class MMOEClassifier(MultiTaskClassifierBase, _MMoE):
    """Multi-gate Mixture-of-Experts for several classification tasks at once.

    A bank of expert networks is shared by all tasks; each task mixes the
    experts with its own softmax gate and reads the mixture with its own
    tower (Ma et al., "Modeling Task Relationships in Multi-task Learning with
    Multi-gate Mixture-of-Experts", KDD 2018). Each task may be binary or
    multiclass, with any label values.

{gate_note}

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(2000, random_state=0)
    >>> model = MMOEClassifier(max_epochs=5, random_state=0).fit(data.data, data.target)
    >>> [p.shape for p in model.predict_proba(data.data)]
    [(2000, 2), (2000, 2)]
    >>> model.gate_weights(data.data).shape
    (2000, 2, 4)
    """


@_docs.estimator("MMoE", regressor=True, parameters=_MMOE_PARAMETERS,
                 gate_note=_GATE_WEIGHTS_NOTE, n_gates="n_tasks",
                 max_epochs_note=_SMALL_TABLES_NOTE, expert_note="")
class MMOERegressor(MultiTaskRegressorBase, _MMoE):
    """Multi-gate Mixture-of-Experts for several regression targets at once.

    The network of :class:`MMOEClassifier` with one real-valued output per
    task. Each target is standardised inside the estimator (its training
    mean and standard deviation) and fitted with a squared error;
    :meth:`predict` maps the outputs back to the targets' scale.

{gate_note}

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl import MMOERegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 4))
    >>> Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] * X[:, 2]])
    >>> model = MMOERegressor(max_epochs=5, random_state=0).fit(X, Y)
    >>> model.predict(X).shape
    (1000, 2)
    """


@_docs.estimator("OMoE", parameters=_OMOE_PARAMETERS, gate_note=_GATE_WEIGHTS_NOTE, n_gates="1")
@with_defaults(**CLASSIFIER_DEFAULTS)
class OMOEClassifier(MultiTaskClassifierBase, _OMoE):
    """One-gate Mixture-of-Experts for several classification tasks at once.

    The baseline of the MMoE paper (Ma et al., KDD 2018): a bank of experts
    mixed by a single softmax gate, the same mixture read by every task's
    tower. Against :class:`MMOEClassifier` it shows what separate gates per
    task bring.

{gate_note}

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import OMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(2000, random_state=0)
    >>> model = OMOEClassifier(max_epochs=5, random_state=0).fit(data.data, data.target)
    >>> model.gate_weights(data.data).shape
    (2000, 1, 4)
    """


@_docs.estimator("OMoE", regressor=True, parameters=_OMOE_PARAMETERS,
                 gate_note=_GATE_WEIGHTS_NOTE, n_gates="1",
                 max_epochs_note=_SMALL_TABLES_NOTE)
class OMOERegressor(MultiTaskRegressorBase, _OMoE):
    """One-gate Mixture-of-Experts for several regression targets at once.

    The network of :class:`OMOEClassifier` with one real-valued output per
    task; targets are standardised inside the estimator and predictions
    mapped back.

{gate_note}

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import OMOERegressor
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(1000, random_state=0)
    >>> model = OMOERegressor(max_epochs=3, random_state=0).fit(data.data, data.target_scores)
    >>> model.predict(data.data).shape, model.gate_weights(data.data).shape
    ((1000, 2), (1000, 1, 4))
    """
