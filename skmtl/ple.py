"""Progressive Layered Extraction estimators (PLE; CGC with one level)."""

from numbers import Integral

from sklearn.utils._param_validation import Interval

from . import _docs
from ._base import (CLASSIFIER_DEFAULTS, MAX_EXPERTS, MAX_LEVELS, GateWeightsMixin,
                    MultiTaskClassifierBase, MultiTaskEstimatorBase, MultiTaskRegressorBase,
                    _check_units, with_defaults)
from .nn import PLE


class _PLE(GateWeightsMixin, MultiTaskEstimatorBase):
    _MODEL_NETWORK_PARAMS = ("n_levels", "n_shared_experts", "n_task_experts", "expert_units")
    _parameter_constraints = {
        **MultiTaskEstimatorBase._parameter_constraints,
        "n_levels": [Interval(Integral, 1, MAX_LEVELS, closed="both")],
        "n_shared_experts": [Interval(Integral, 1, MAX_EXPERTS, closed="both")],
        "n_task_experts": [Interval(Integral, 1, MAX_EXPERTS, closed="both")],
        "expert_units": ["array-like"],
    }
    _GATE_WEIGHTS_PER_LEVEL = True

    def __init__(self, *, n_levels=2, n_shared_experts=2, n_task_experts=2, expert_units=(64,),
                 tower_units=(32,), categorical_features="from_dtype", categories=None,
                 hash_buckets=None, embedding_dim=8, sparse_embeddings="auto",
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
        _check_units("expert_units", self.expert_units, allow_empty=False)

    def _build_module(self, embedding, task_output_dims, tower_units):
        return PLE(**embedding, task_output_dims=task_output_dims, n_levels=self.n_levels,
                   n_shared_experts=self.n_shared_experts, n_task_experts=self.n_task_experts,
                   expert_units=self.expert_units, tower_units=tower_units,
                   dropout=self.dropout, batch_norm=self.batch_norm)


_PARAMETERS = """\
    n_levels : int, default=2
        Number of extraction levels; 1 is CGC (Customized Gate Control).
    n_shared_experts : int, default=2
        Experts shared by all tasks, on every level.
    n_task_experts : int, default=2
        Experts of each task, on every level.
    expert_units : tuple of int, default=(64,)
        Hidden layer widths of every expert.
{tower_units}
{common_parameters}"""

_DESCRIPTION = """\
    Progressive Layered Extraction (Tang et al., "Progressive Layered
    Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for
    Personalized Recommendations", RecSys 2020). Each level has experts
    shared by all tasks and experts of each task. A task's gate mixes the
    shared experts and its own; a shared gate mixes all experts and feeds
    the next level's shared experts, while each task's mixture feeds its
    own experts on the next level. The last level's task mixtures go to the
    towers. Separating shared from task-specific experts eases the "seesaw"
    of one task improving at another's expense. The experts of a level run
    as one batched operation.

    :meth:`gate_weights` returns a list with one array per level. On every
    level the experts are numbered shared first, then task 0's, task 1's,
    ...; each array is ``(n_samples, n_gates, n_experts)`` over all of the
    level's experts (0 for the experts a gate does not see): the task gates
    in task order and, on every level but the last, the shared gate as the
    last row."""


@_docs.estimator("PLE", description=_DESCRIPTION, parameters=_PARAMETERS)
@with_defaults(**CLASSIFIER_DEFAULTS)
class PLEClassifier(MultiTaskClassifierBase, _PLE):
    """Progressive Layered Extraction for several classification tasks at once.

{description}

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import PLEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(2000, random_state=0)
    >>> model = PLEClassifier(max_epochs=5, random_state=0).fit(data.data, data.target)
    >>> [w.shape for w in model.gate_weights(data.data)]
    [(2000, 3, 6), (2000, 2, 6)]
    """


@_docs.estimator("PLE", regressor=True, description=_DESCRIPTION, parameters=_PARAMETERS)
class PLERegressor(MultiTaskRegressorBase, _PLE):
    """Progressive Layered Extraction for several regression targets at once.

    The network of :class:`PLEClassifier` with one real-valued output per
    task; targets are standardised inside the estimator and predictions
    mapped back.

{description}

    Parameters
    ----------
{parameters}

    Attributes
    ----------
{attributes}

    Examples
    --------
    >>> from skmtl import PLERegressor
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(1000, random_state=0)
    >>> model = PLERegressor(n_levels=1, max_epochs=30, random_state=0)
    >>> model.fit(data.data, data.target_scores).predict(data.data).shape
    (1000, 2)
    >>> bool(model.score(data.data, data.target_scores) > 0.5)  # R² averaged over the tasks
    True
    """
