import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The suite runs on one pytest-xdist worker per core (setup.cfg): torch's
    # threads of two workers on the same cores wait on each other, which made
    # the suite slower than one process. One thread each, in the processes
    # the tests start too (benchmark workers, ranks, Dask workers).
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

# The real data sets lie beside the repository (CI sets SKMTL_DATA to it too).
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def batches_of_at_least_128(request, monkeypatch):
    """``batch_size="auto"`` at least 128 rows, as before session 13, in this process.

    The shipped floor is 32: on the few thousand rows most tests fit, four
    times the steps, which doubled the suite's time for no check of its own.
    Tests of what the shipped floor does are marked ``shipped_batch_floor``.
    """
    if request.node.get_closest_marker("shipped_batch_floor") is None:
        from skmtl import _base

        monkeypatch.setattr(_base, "AUTO_BATCH_SIZE_RANGE", (128, 1024))


@pytest.fixture(scope="session")
def onnx_registry_built_once():
    """Build torch's table of ONNX translations once per run, not once per export.

    ``torch.onnx.export`` rebuilds it for every call (about 40 % of an
    export's time, which is most of ``test_onnx.py``'s); skmtl never adds
    translations to it, so one table per opset serves every export. Without
    that private torch class (another torch), exports build their own. Not
    automatic: importing the exporter takes seconds, which tests without an
    export should not pay.
    """
    try:
        from torch.onnx._internal.exporter._registration import ONNXRegistry
    except ImportError:
        yield
        return
    build = ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(build, classmethod):
        yield
        return
    built = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build.__func__(cls, *args, **kwargs)
        return built[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ONNXRegistry, "from_torchlib", classmethod(from_torchlib))
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_data_home():
    """Point SKMTL_DATA at the shared data folder (absolute) for the whole run.

    Tests on real data fail, never skip, when the data is not there.
    """
    env = os.environ.get("SKMTL_DATA")
    home = Path(os.path.abspath(env)) if env else DEFAULT_SHARED_DATA
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKMTL_DATA", str(home))
        yield home


def make_tasks(n_samples=2000, seed=0):
    """Mixed-type features and two binary tasks that depend on them.

    Task ``t1`` depends on ``num_a`` and ``color``; task ``t2`` on ``num_b`` and
    ``shop``; ``click``/``conversion`` form an ESMM funnel on the same signals.
    """
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "color": rng.choice(["red", "green", "blue", "black"], n_samples),
        "num_a": rng.normal(size=n_samples),
        "shop": pd.Categorical(rng.integers(0, 30, n_samples)),
        "num_b": rng.normal(3.0, 10.0, size=n_samples),
    })
    # The effects are fixed across seeds, so every sample shares one ground truth.
    shop_effect = np.random.default_rng(12345).normal(0, 1.5, 30)[X["shop"].to_numpy(int)]
    logit_1 = 2.0 * X["num_a"] + np.where(X["color"] == "red", 2.0, -0.5)
    logit_2 = -0.25 * (X["num_b"] - 3.0) + shop_effect
    p_1 = 1 / (1 + np.exp(-logit_1))
    p_2 = 1 / (1 + np.exp(-logit_2))
    t1 = (rng.random(n_samples) < p_1).astype(int)
    t2 = (rng.random(n_samples) < p_2).astype(int)
    Y = pd.DataFrame({"t1": t1, "t2": t2})
    funnel = pd.DataFrame({"click": t1, "conversion": t1 * t2})
    return X, Y, funnel


def labels_for_model(estimator_class, tasks):
    """The labels of ``make_tasks``'s rows that ``estimator_class`` fits: the funnel for
    ESMM and AITM, two real-valued targets for a regressor, the two binary tasks otherwise."""
    X, Y, funnel = tasks
    if estimator_class.__name__ in ("ESMMClassifier", "AITMClassifier"):
        return funnel
    if estimator_class.__name__.endswith("Regressor"):
        return pd.DataFrame({"a": X["num_a"] * 3, "b": -X["num_b"]})
    return Y


def reloaded_alike(model, X, path):
    """``model`` saved to ``path`` and loaded, and pickled and unpickled by joblib; each
    asserted to predict on ``X`` exactly as ``model`` does. Returns the two copies."""
    import io

    import joblib
    import skmtl

    def predictions(fitted):
        out = (fitted.predict_proba if hasattr(fitted, "predict_proba") else fitted.predict)(X)
        return out if isinstance(out, list) else [out]

    expected = predictions(model)
    model.save(path)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    copies = skmtl.load(path), joblib.load(io.BytesIO(buffer.getvalue()))
    for copy in copies:
        for a, b in zip(expected, predictions(copy), strict=True):
            np.testing.assert_array_equal(a, b)
    return copies


@pytest.fixture(scope="session")
def tasks():
    return make_tasks(2000, seed=0)


@pytest.fixture(scope="session")
def holdout():
    return make_tasks(1000, seed=1)


@pytest.fixture
def validation_sets(monkeypatch):
    """The validation data set of each fit in the test, in order (a fitted model keeps none)."""
    from skmtl._base import MultiTaskEstimatorBase

    recorded = []
    train_split = MultiTaskEstimatorBase._train_split

    def recording_split(self, valid):
        recorded.append(valid)
        return train_split(self, valid)

    monkeypatch.setattr(MultiTaskEstimatorBase, "_train_split", recording_split)
    return recorded
