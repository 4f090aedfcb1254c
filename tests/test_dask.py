"""skmtl on Dask: searches on a cluster of worker processes, Incremental on Parquet partitions."""


import dask.dataframe as dd
import joblib
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skmtl import MMOEClassifier, MMOERegressor
from skmtl.dask import predict_frame, torch_threads

from conftest import make_tasks

# fits in other processes (workers, ranks) are compared with fits here: every
# process with the shipped batch_size="auto" (see conftest.py)
pytestmark = pytest.mark.shipped_batch_floor

COLORS = ["red", "green", "blue", "black"]


def _data(n_samples=1500, seed=0):
    X, Y, _ = make_tasks(n_samples, seed=seed)
    return X.assign(color=X["color"].astype(pd.CategoricalDtype(COLORS))), Y


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    with Client(cluster) as client:
        yield client
    cluster.close()


def test_search_on_dask_workers_matches_the_default_backend(client):
    X, Y = _data()
    grid = {"n_experts": [2, 4], "loss_weighting": ["equal", "uncertainty"]}

    def search():
        return GridSearchCV(MMOEClassifier(max_epochs=2, random_state=0), grid,
                            cv=KFold(2)).fit(X, Y)

    with joblib.parallel_backend("dask"):
        on_dask = search()
    local = search()
    assert on_dask.best_params_ == local.best_params_
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"])
    # one torch thread per worker process: two workers on two cores
    threads = torch_threads(client)
    assert len(threads) == 2 and set(threads.values()) == {1}


def test_incremental_on_parquet_partitions(tmp_path):
    from dask_ml.wrappers import Incremental

    X, Y = _data(3000)
    frame = pd.concat([X, Y], axis=1)
    for k in range(10):
        frame.iloc[k * 300:(k + 1) * 300].to_parquet(tmp_path / f"part-{k}.parquet")
    data = dd.read_parquet(str(tmp_path))
    assert data.npartitions >= 10
    features = ["color", "num_a", "shop", "num_b"]
    data = data.assign(color=data["color"].astype(pd.CategoricalDtype(COLORS)))
    incremental = Incremental(MMOEClassifier(random_state=0, hash_buckets={"shop": 64},
                                             categorical_features=["color", "shop"]))
    incremental.fit(data[features], data[["t1", "t2"]], classes=[[0, 1], [0, 1]])
    model = incremental.estimator_
    assert model.n_iter_ == data.npartitions
    local = data[features].compute()
    np.testing.assert_array_equal(incremental.predict(data[features]).compute(),
                                  model.predict(local))
    predictions = predict_frame(model, data[features]).compute()
    assert list(predictions.columns) == ["proba_t1", "proba_t2"]
    proba = model.predict_proba(local)
    np.testing.assert_allclose(predictions["proba_t1"], proba[0][:, 1], rtol=1e-6)
    np.testing.assert_allclose(predictions["proba_t2"], proba[1][:, 1], rtol=1e-6)


def test_predict_frame_of_a_regressor_and_a_multiclass_task():
    X, Y = _data(600)
    Y3 = Y.assign(t3=(X["num_a"] > 0).astype(int) + (X["num_a"] > 1))
    model = MMOEClassifier(max_epochs=2, random_state=0).fit(X, Y3)
    frame = predict_frame(model, dd.from_pandas(X, npartitions=3)).compute()
    assert list(frame.columns) == ["proba_t1", "proba_t2", "proba_t3_0", "proba_t3_1",
                                   "proba_t3_2"]
    np.testing.assert_allclose(frame[["proba_t3_0", "proba_t3_1", "proba_t3_2"]].sum(axis=1), 1)
    regressor = MMOERegressor(max_epochs=2, random_state=0).fit(X, X[["num_b"]] * 2.0)
    out = predict_frame(regressor, dd.from_pandas(X, npartitions=3)).compute()
    np.testing.assert_allclose(out["prediction_num_b"], regressor.predict(X)[:, 0], rtol=1e-6)
    with pytest.raises(NotFittedError):
        predict_frame(MMOEClassifier(), dd.from_pandas(X, npartitions=3))
    with pytest.raises(TypeError, match="needs a Dask DataFrame; got DataFrame"):
        predict_frame(model, X)
    # the wrappers of a model: a hint, not an AttributeError on a private attribute
    pipeline = make_pipeline(FunctionTransformer(), MMOEClassifier(max_epochs=1)).fit(X, Y)
    with pytest.raises(TypeError, match=r"got Pipeline \(for a Pipeline, pass .*pipeline\[-1\]"):
        predict_frame(pipeline, dd.from_pandas(X, npartitions=3))
    search = GridSearchCV(MMOEClassifier(max_epochs=1), {"dropout": [0.0]}, cv=2).fit(X, Y)
    with pytest.raises(TypeError, match="got GridSearchCV .*best_estimator_"):
        predict_frame(search, dd.from_pandas(X, npartitions=3))
    from dask_ml.wrappers import Incremental

    incremental = Incremental(MMOEClassifier(max_epochs=1))
    with pytest.raises(TypeError, match="got Incremental .*estimator_"):
        predict_frame(incremental, dd.from_pandas(X, npartitions=3))
