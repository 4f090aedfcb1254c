"""skmtl estimators on Dask (the ``dask`` extra: dask, distributed, dask-ml).

Two paths need no code of ours:

- searches on a cluster: ``GridSearchCV``/``RandomizedSearchCV`` over skmtl
  estimators under ``joblib.parallel_backend("dask")`` with a
  ``distributed.Client``. Dask's nannies start every worker with
  ``OMP_NUM_THREADS=1``, so torch uses one thread per worker process and
  workers do not oversubscribe the cores; :func:`torch_threads` checks it;
- training on a Dask DataFrame: ``dask_ml.wrappers.Incremental(estimator)``
  calls ``partial_fit`` partition by partition (pass ``classes`` to
  ``fit``), and its ``predict`` works.

dask-ml's ``predict_proba`` does not: it maps each partition to one 2-D
array, while a multi-task classifier returns a list of arrays, one per task
(scikit-learn's multi-output convention), and dask-ml fails inferring its
output (``IndexError: tuple index out of range``). :func:`predict_frame`
is the equivalent over the partitions.
"""

import pandas as pd

from ._outputs import prediction_column_names, prediction_columns


def predict_frame(estimator, X):
    """Predict a Dask DataFrame partition by partition into a Dask DataFrame.

    Parameters
    ----------
    estimator : a fitted skmtl estimator
        For example ``Incremental(...).estimator_``.
    X : dask.dataframe.DataFrame
        The features, as in ``fit``.

    Returns
    -------
    predictions : dask.dataframe.DataFrame
        With ``X``'s partitions and index; columns ``proba_<task>`` (binary
        tasks), ``proba_<task>_<class>`` (multiclass) or ``prediction_<task>``
        (regressors).
    """
    names = prediction_column_names(estimator)
    meta = pd.DataFrame({name: pd.Series(dtype="float64") for name in names})

    def predict_partition(part):
        if not len(part):
            return meta
        return pd.DataFrame(dict(prediction_columns(estimator, part)), index=part.index)

    return X.map_partitions(predict_partition, meta=meta)


def torch_threads(client):
    """``{worker address: torch.get_num_threads()}`` of every worker of ``client``."""
    def threads():
        import torch
        return torch.get_num_threads()

    return client.run(threads)


__all__ = ["predict_frame", "torch_threads"]
