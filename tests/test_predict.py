"""Prediction in blocks on several threads (skmtl._predict)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from skmtl import ESMMClassifier, MMOEClassifier, MMOERegressor
from skmtl import _predict
from skmtl._encoding._tabular import _RowReader

FAST = dict(max_epochs=2, batch_size=128, random_state=0)


@pytest.fixture
def two_torch_threads():
    """torch on two threads for the test (the suite runs on one), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 rows, several threads from 200 rows: the holdout's 1,000 rows take
    the threaded path in 16 blocks."""
    monkeypatch.setattr(_predict, "PREDICT_BLOCK_SIZE", 64)
    monkeypatch.setattr(_predict, "PARALLEL_ROWS_PER_THREAD", 100)


@pytest.fixture
def block_readers(monkeypatch):
    """``(thread, torch's threads in it)`` of every block read."""
    reads = []
    read = _RowReader.read

    def recording(self, start, stop, out=None):
        reads.append((threading.get_ident(), torch.get_num_threads()))
        return read(self, start, stop, out)

    monkeypatch.setattr(_RowReader, "read", recording)
    return reads


@pytest.fixture(scope="module")
def models(tasks):
    X, Y, funnel = tasks
    return {"mmoe": MMOEClassifier(**FAST).fit(X, Y),
            "esmm": ESMMClassifier(**FAST).fit(X, funnel),
            "regressor": MMOERegressor(**FAST).fit(X, Y.astype(float) + X[["num_a"]].values)}


OUTPUTS = [("mmoe", "predict_proba"), ("mmoe", "gate_weights"),
           ("esmm", "predict_conditional_proba"), ("regressor", "predict")]


@pytest.mark.parametrize("model, method", OUTPUTS)
def test_threads_predict_what_one_thread_predicts(models, model, method, holdout,
                                                  small_blocks, block_readers,
                                                  two_torch_threads):
    X = holdout[0]
    predict = getattr(models[model], method)
    torch.set_num_threads(1)
    expected = predict(X)
    assert {thread for thread, _ in block_readers} == {threading.get_ident()}
    block_readers.clear()
    torch.set_num_threads(2)
    outputs = predict(X)
    # every block read on the pool's threads, torch on one thread in each
    assert len(block_readers) == 16
    assert threading.get_ident() not in {thread for thread, _ in block_readers}
    assert {threads for _, threads in block_readers} == {1}
    assert torch.get_num_threads() == 2
    for got, want in zip(*(o if isinstance(o, list) else [o] for o in (outputs, expected))):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        if method.endswith("proba"):
            np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_few_rows_stay_on_the_calling_thread(models, holdout, block_readers,
                                             two_torch_threads):
    # 1,000 rows: below PARALLEL_ROWS_PER_THREAD for two threads
    models["mmoe"].predict_proba(holdout[0])
    assert {thread for thread, _ in block_readers} == {threading.get_ident()}
    assert {threads for _, threads in block_readers} == {2}


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_an_error_in_a_thread_reaches_the_caller(models, holdout, small_blocks,
                                                 two_torch_threads, monkeypatch, error):
    X = holdout[0].copy()
    if error is ValueError:
        X.loc[X.index[-1], "num_a"] = np.inf  # in the last block
        with pytest.raises(ValueError, match=r"\['num_a'\] contain infinite values"):
            models["mmoe"].predict_proba(X)
    else:
        reads = []
        read = _RowReader.read

        def interrupted(self, start, stop, out=None):
            reads.append(start)
            if len(reads) == 3:
                raise KeyboardInterrupt
            return read(self, start, stop, out)

        monkeypatch.setattr(_RowReader, "read", interrupted)
        with pytest.raises(KeyboardInterrupt):
            models["mmoe"].predict_proba(X)
        # the other thread stopped after its block instead of reading all 16
        assert len(reads) < 16
    assert torch.get_num_threads() == 2
    monkeypatch.undo()
    assert np.isfinite(models["mmoe"].predict_proba(holdout[0])[0]).all()


def test_overlapping_predictions_restore_torch_threads(models, holdout, small_blocks,
                                                       two_torch_threads):
    X = holdout[0]
    expected = models["mmoe"].predict_proba(X)[0]
    with ThreadPoolExecutor(3) as pool:
        probas = list(pool.map(lambda _: models["mmoe"].predict_proba(X)[0], range(12)))
    for proba in probas:
        np.testing.assert_allclose(proba, expected, rtol=1e-6, atol=1e-7)
    assert torch.get_num_threads() == 2


def test_one_torch_thread_each_nests(two_torch_threads):
    with _predict.one_torch_thread_each():
        assert torch.get_num_threads() == 1
        with _predict.one_torch_thread_each():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
