"""Predictions as named columns, for outputs written as tables (Parquet, Dask)."""

import numpy as np
from sklearn.model_selection._search import BaseSearchCV

from ._base import MultiTaskEstimatorBase


def check_skmtl_estimator(estimator, user, verb="takes"):
    """Raise a TypeError unless ``estimator`` is a skmtl estimator, with a hint for the
    wrappers that hold one (a Pipeline, a search, dask-ml's ``Incremental``)."""
    if isinstance(estimator, MultiTaskEstimatorBase):
        return
    if hasattr(estimator, "steps"):
        hint = " (for a Pipeline, pass its last step, pipeline[-1], and X as that step sees it)"
    elif isinstance(estimator, BaseSearchCV):
        hint = " (for a search, pass its best_estimator_)"
    elif type(estimator).__name__ == "Incremental":  # dask-ml's, which skmtl does not import
        hint = " (for dask-ml's Incremental, pass its fitted estimator_)"
    else:
        hint = ""
    raise TypeError(f"{user} {verb} a skmtl estimator; got {type(estimator).__name__}{hint}.")


def prediction_column_names(estimator):
    """The column names of :func:`prediction_columns` for a fitted estimator.

    Classifiers: ``proba_<task>`` (the positive class of a binary task) or
    ``proba_<task>_<class>`` per class of a multiclass one; regressors:
    ``prediction_<task>``.
    """
    if not hasattr(estimator, "predict_proba"):
        return [f"prediction_{task}" for task in estimator.task_names_]
    classes = [estimator.classes_] if estimator._single_output else estimator.classes_
    names = []
    for task, task_classes in zip(estimator.task_names_, classes):
        if len(task_classes) == 2:
            names.append(f"proba_{task}")
        else:
            names += [f"proba_{task}_{c}" for c in task_classes]
    clash = sorted({name for name in names if names.count(name) > 1})
    if clash:
        # e.g. task "ctr" with a class 1 and a binary task "ctr_1"
        raise ValueError(f"The tasks {estimator.task_names_} give several prediction columns "
                         f"named {clash}; rename the tasks (the columns of Y) and fit again.")
    return names


def check_kept_columns(estimator, kept):
    """Raise if columns ``kept`` beside the predictions have a prediction column's name."""
    clash = sorted(set(kept) & set(prediction_column_names(estimator)))
    if clash:
        raise ValueError(f"Columns {clash} have the names of prediction columns; rename "
                         "them or leave them out.")


def prediction_columns(estimator, X):
    """``[(name, values), ...]``: the estimator's predictions for ``X`` as named columns."""
    if not hasattr(estimator, "predict_proba"):
        values = np.asarray(estimator.predict(X)).reshape(len(X), -1).T
    else:
        probas = estimator.predict_proba(X)
        probas = [probas] if estimator._single_output else probas
        values = [column for proba in probas
                  for column in ([proba[:, 1]] if proba.shape[1] == 2 else proba.T)]
    return list(zip(prediction_column_names(estimator), values))
