"""What the funnel models (ESMM, AITM) share: nested binary stages."""

from numbers import Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import MAX_SAMPLE_WEIGHT_SUM, MultiTaskClassifierBase
from ._encoding import known_labels
from .nn.counterfactual import COUNTERFACTUAL_METHODS, EXTRA_TOWER_METHODS


class FunnelClassifierBase(MultiTaskClassifierBase):
    """A classifier of nested binary stages: impression → click → conversion → ...

    ``Y`` has one 0/1 column per stage, in funnel order; a row may reach a
    stage only if it reached the one before. :meth:`predict_proba` gives
    the entire-space probability of reaching each stage,
    :meth:`predict_conditional_proba` each stage's probability given the
    previous one. The network's ``predict_conditional_proba`` maps its
    outputs to the latter. ``counterfactual`` adds a counterfactual risk of
    the conditional probabilities to the loss; ``"dr"`` and ``"dcmt"`` add
    extra towers to the network (the model's ``_build_module`` passes
    :attr:`_extra_towers` as ``imputation``).
    """

    _MODEL_NETWORK_PARAMS = ("counterfactual",)
    # predictions need the stages' logits only, not the counterfactual risk's extra towers
    _PREDICT_FORWARD = {"extra_towers": False}
    _parameter_constraints = {
        **MultiTaskClassifierBase._parameter_constraints,
        "counterfactual": [StrOptions(set(COUNTERFACTUAL_METHODS)), None],
        # (bounded: the losses are scaled in float32, where 1e39 is infinite)
        "counterfactual_weight": [Interval(Real, 0, MAX_SAMPLE_WEIGHT_SUM, closed="both")],
        "propensity_clip": [Interval(Real, 0, 1, closed="right")],
        "counterfactual_constraint_weight": [
            Interval(Real, 0, MAX_SAMPLE_WEIGHT_SUM, closed="both")],
    }

    @property
    def _extra_towers(self):
        """Whether the network needs the counterfactual risk's extra towers (DR, DCMT)."""
        return self.counterfactual in EXTRA_TOWER_METHODS

    def _counterfactual_params(self):
        """The loss's keyword arguments for ``counterfactual``."""
        if (self.counterfactual == "dcmt" and self.counterfactual_weight
                * self.counterfactual_constraint_weight > MAX_SAMPLE_WEIGHT_SUM):
            # each is bounded, their product is not: inf in float32, then NaN
            raise ValueError(
                "counterfactual_weight * counterfactual_constraint_weight must be at most "
                f"{MAX_SAMPLE_WEIGHT_SUM:g}, got {self.counterfactual_weight:g} * "
                f"{self.counterfactual_constraint_weight:g}.")
        return dict(counterfactual=self.counterfactual,
                    counterfactual_weight=self.counterfactual_weight,
                    propensity_clip=self.propensity_clip,
                    counterfactual_constraint_weight=self.counterfactual_constraint_weight)

    def _prepare_labels(self, columns, task_names, single_output):
        """Each stage as 0.0 / 1.0, NaN where unknown, with what the funnel implies filled in.

        A missing stage after a stage the row did not reach is 0; a missing
        stage before one it reached is 1.
        """
        name = type(self).__name__
        if single_output or len(columns) < 2:
            raise ValueError(
                f"{name} needs a 2-D Y with one column per funnel stage (at least 2, e.g. "
                "click and conversion).")
        stages = []
        for task, column in zip(task_names, columns):
            known = known_labels(column)
            if column.dtype.kind in "USO" and pd.api.types.infer_dtype(
                    column[known], skipna=True) in ("string", "bytes", "mixed", "mixed-integer"):
                # "0"/"1" would train, but predict gives the numbers 0/1, which
                # score would then count as wrong against the strings
                raise ValueError(
                    f"{name} needs binary 0/1 labels (or missing ones); stage {task!r} holds "
                    f"strings (e.g. {pd.unique(column[known])[:5].tolist()}): give numbers or "
                    "booleans, e.g. Y.astype(int).")
            values = np.full(len(column), np.nan)
            try:
                values[known] = np.asarray(column[known], dtype=np.float64)
            except (TypeError, ValueError):
                values[known] = -1.0  # reported below
            other = known & ~np.isin(values, (0.0, 1.0))
            if other.any():
                found = pd.unique(np.asarray(column[other], dtype=object))[:5]
                raise ValueError(
                    f"{name} needs binary 0/1 labels (or missing ones); stage {task!r} has "
                    f"other values (e.g. {found.tolist()}).")
            stages.append(values)
        given = [~np.isnan(stage) for stage in stages]
        for earlier, later in zip(stages[-2::-1], stages[:0:-1]):
            earlier[np.isnan(earlier) & (later == 1)] = 1.0
        for earlier, later in zip(stages[:-1], stages[1:]):
            later[np.isnan(later) & (earlier == 0)] = 0.0
        broken, problems = np.zeros(len(stages[0]), dtype=bool), []
        for k, (before, task) in enumerate(zip(task_names, task_names[1:])):
            bad = (stages[k + 1] == 1) & (stages[k] == 0)
            if bad.any():
                # a missing stage counts as reached when a later one was
                reached = (f"{task}=1" if given[k + 1][bad].all() else
                           f"{task}=1 (or, where {task} is missing, a later stage = 1)")
                problems.append(f"{int(bad.sum())} row(s) have {reached} but {before}=0")
                broken |= bad
        if problems:
            rows = "" if len(problems) == 1 else f"{int(broken.sum())} row(s) break the funnel: "
            raise ValueError(
                f"{rows}{'; '.join(problems)}; in a funnel a stage can only be reached after "
                "the previous one (e.g. a conversion needs a click).")
        return stages

    def _local_target_state(self, columns, task_names, fit_weight):
        """Whether each stage has rows that did not reach it and rows that did."""
        return [((stage == 0).any(), (stage == 1).any()) for stage in columns]

    def _agreed_target_state(self, states, task_names):
        """The classes 0 and 1 of every stage, once some rank has each of them."""
        for t, task in enumerate(task_names):
            if not all(any(state[t][c] for state in states) for c in (0, 1)):
                raise ValueError(
                    f"Stage {task!r} has only one class among its known labels; every stage "
                    "needs rows that reached it and rows that did not.")
        return [np.array([0, 1])] * len(task_names)

    def _encoded_targets(self, columns, task_names, classes):
        return np.column_stack(columns).astype(np.float32)

    @staticmethod
    def _target_state_from_json(config, n_tasks):
        classes = MultiTaskClassifierBase._target_state_from_json(config, n_tasks)
        if not all(np.array_equal(c, [0, 1]) for c in classes):
            raise ValueError("the saved classes of a funnel's stages are not [0, 1].")
        return classes

    def _first_chunk_targets(self, columns, task_names, classes, single_output, sample_weight):
        if classes is None:
            state = self._local_target_state(columns, task_names, sample_weight)
            for task, (not_reached, reached) in zip(task_names, state):
                if not (not_reached and reached):
                    raise ValueError(
                        f"Stage {task!r} has only one class among the known labels of the "
                        "first partial_fit chunk (fit_parquet: the first frame); pass "
                        f"classes=[[0, 1]] * {len(task_names)} on the first call.")
            return self._encode_targets(columns, task_names, False, sample_weight)
        # the classes are 0 and 1; given, a chunk may lack one of them
        if (len(classes) != len(task_names)
                or not all(np.ndim(c) == 1 and set(np.asarray(c).tolist()) == {0, 1}
                           for c in classes)):
            raise ValueError(f"{type(self).__name__}'s stages have the classes 0 and 1: give "
                             f"classes as one [0, 1] per stage ({len(task_names)} stages); "
                             f"got classes={classes!r}.")
        classes = [np.array([0, 1])] * len(task_names)
        return self._encoded_targets(columns, task_names, classes), classes

    def predict_proba(self, X):
        """Entire-space probability of reaching each stage.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : list of ndarrays of shape (n_samples, 2)
            For click and conversion: ``[p(click), p(click and conversion)]``;
            column 1 of each array is the positive class.
        """
        return super().predict_proba(X)

    def predict_conditional_proba(self, X):
        """Probability of each stage given the previous one.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : list of ndarrays of shape (n_samples, 2)
            For click and conversion: ``[p(click), p(conversion | click)]``.
        """
        check_is_fitted(self)
        return self._forward(
            X, self._module_outputs(self.net_.module_.predict_conditional_proba),
            rows_sum_to_one=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_class = False
        return tags
