"""What the funnel models (ESMM, AITM) share: nested binary stages."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import MultiTaskClassifierBase


class FunnelClassifierBase(MultiTaskClassifierBase):
    """A classifier of nested binary stages: impression → click → conversion → ...

    ``Y`` has one 0/1 column per stage, in funnel order; a row may reach a
    stage only if it reached the one before. :meth:`predict_proba` gives
    the entire-space probability of reaching each stage,
    :meth:`predict_conditional_proba` each stage's probability given the
    previous one. The network's ``predict_conditional_proba`` maps its
    outputs to the latter.
    """

    def _prepare_labels(self, columns, task_names, single_output):
        name = type(self).__name__
        if single_output or len(columns) < 2:
            raise ValueError(
                f"{name} needs a 2-D Y with one column per funnel stage (at least 2, e.g. "
                "click and conversion).")
        stages = []
        for task, column in zip(task_names, columns):
            try:
                values = np.asarray(column, dtype=np.float64)
            except (TypeError, ValueError):
                values = None
            if values is None or not np.isin(values, (0.0, 1.0)).all():
                found = np.unique(np.asarray(column, dtype=object).astype(str))[:5].tolist()
                raise ValueError(
                    f"{name} needs binary 0/1 labels; stage {task!r} has other values "
                    f"(e.g. {found}).")
            stages.append(values.astype(np.int64))
        for (before, earlier), (task, later) in zip(zip(task_names, stages),
                                                    zip(task_names[1:], stages[1:])):
            n_bad = int(np.sum((later == 1) & (earlier == 0)))
            if n_bad:
                raise ValueError(
                    f"{n_bad} row(s) have {task}=1 but {before}=0; in a funnel a stage can "
                    "only be reached after the previous one (e.g. a conversion needs a "
                    "click).")
        return stages

    def predict_proba(self, X):
        """Entire-space probability of reaching each stage.

        Returns
        -------
        proba : list of ndarrays of shape (n_samples, 2)
            For click and conversion: ``[p(click), p(click and conversion)]``;
            column 1 of each array is the positive class.
        """
        return super().predict_proba(X)

    def predict_conditional_proba(self, X):
        """Probability of each stage given the previous one.

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
