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
from sklearn.utils.validation import check_is_fitted

from ._outputs import check_skmtl_estimator, prediction_column_names, prediction_columns


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

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import numpy as np
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.dask import predict_frame
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(500, random_state=0)
    >>> model = MMOEClassifier(max_epochs=1, random_state=0).fit(data.data, data.target)
    >>> predictions = predict_frame(model, dd.from_pandas(data.data, npartitions=2))
    >>> predictions.npartitions, list(predictions.columns)
    (2, ['proba_task_0', 'proba_task_1'])
    >>> computed = predictions.compute(scheduler="synchronous")
    >>> bool(np.allclose(computed["proba_task_0"], model.predict_proba(data.data)[0][:, 1]))
    True
    """
    check_skmtl_estimator(estimator, "predict_frame")
    check_is_fitted(estimator)
    if not hasattr(X, "map_partitions"):
        raise TypeError(f"predict_frame needs a Dask DataFrame; got {type(X).__name__} (for "
                        "data in memory, call the estimator's predict or predict_proba).")
    names = prediction_column_names(estimator)
    meta = pd.DataFrame({name: pd.Series(dtype="float64") for name in names})

    def predict_partition(part):
        if not len(part):
            return meta
        return pd.DataFrame(dict(prediction_columns(estimator, part)), index=part.index)

    return X.map_partitions(predict_partition, meta=meta)


def torch_threads(client):
    """``{worker address: torch.get_num_threads()}`` of every worker of ``client``.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster whose workers to ask.

    Returns
    -------
    dict
        The number of threads torch uses on each worker, by worker address.

    Examples
    --------
    A worker in a thread of this process (``processes=False``) shares its
    torch thread pool; a worker process started by a nanny reports 1.

    >>> import torch
    >>> from distributed import Client
    >>> from skmtl.dask import torch_threads
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1,
    ...             dashboard_address=None) as client:
    ...     threads = torch_threads(client)
    ...     workers = list(client.scheduler_info()["workers"])
    >>> list(threads) == workers, threads[workers[0]] == torch.get_num_threads()
    (True, True)
    """
    def threads():
        import torch
        return torch.get_num_threads()

    return client.run(threads)


__all__ = ["predict_frame", "torch_threads"]
