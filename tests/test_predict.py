"""Prediction in blocks on several threads (skmtl._predict)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from skmtl import ESMMClassifier, MMOEClassifier, MMOERegressor
from skmtl import _predict
from skmtl._encoding._tabular import _RowReader

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=2, batch_size=128, random_state=0, numeric_encoding="piecewise_linear")


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


def test_overlapping_predictions_leave_each_callers_torch_threads(models, holdout, small_blocks,
                                                                two_torch_threads, monkeypatch):
    # torch's thread count is per thread (OpenMP): the pool's threads set theirs, never the
    # callers', whichever caller enters or leaves first
    X = holdout[0]
    expected = models["mmoe"].predict_proba(X)[0]
    both_open = threading.Barrier(2, timeout=30)
    opened = []
    enter = _predict._OneTorchThreadPool.__enter__

    def entering(self):
        pool = enter(self)
        opened.append(self)
        if len(opened) <= 2:
            both_open.wait()  # the first two predictions overlap
        return pool

    monkeypatch.setattr(_predict._OneTorchThreadPool, "__enter__", entering)

    def predict(rows):
        torch.set_num_threads(2)
        proba = models["mmoe"].predict_proba(X.iloc[:rows])[0]
        return proba, torch.get_num_threads()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(predict, [500, 1000]))  # the shorter one leaves first
    for (proba, threads), rows in zip(results, [500, 1000]):
        assert threads == 2
        np.testing.assert_allclose(proba, expected[:rows], rtol=1e-6, atol=1e-7)
    assert torch.get_num_threads() == 2
    # and a thread using torch for the first time afterwards starts with the count saved
    with ThreadPoolExecutor(1) as fresh:
        assert fresh.submit(torch.get_num_threads).result() == 2


def test_autocast_predicts_on_the_calling_thread(models, holdout, small_blocks, block_readers,
                                                 two_torch_threads):
    # autocast is set per thread: the pool's threads would compute in float32
    X = holdout[0]
    expected = models["mmoe"].predict_proba(X)
    block_readers.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        proba = models["mmoe"].predict_proba(X)
    assert {thread for thread, _ in block_readers} == {threading.get_ident()}
    for got, want in zip(proba, expected):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(got, want, atol=0.05)
        assert np.abs(got - want).max() > 0  # computed in bfloat16 indeed


def test_threads_share_the_memory_bounds_of_a_wide_table(monkeypatch, two_torch_threads):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 400))
    model = MMOEClassifier(max_epochs=1, numeric_encoding="piecewise_linear",
                           random_state=0).fit(X[:600], (X[:600, 0] > 0))
    monkeypatch.setattr(_predict, "PARALLEL_ROWS_PER_THREAD", 100)
    monkeypatch.setattr(_RowReader, "block_values", 2 ** 20)  # blocks of 2,621 rows at most
    sizes = []
    predict_blocks = _predict._predict_blocks

    def recording(reader, blocks, compute, batch_size, *args):
        sizes.append((blocks.largest, batch_size))
        return predict_blocks(reader, blocks, compute, batch_size, *args)

    monkeypatch.setattr(_predict, "_predict_blocks", recording)
    torch.set_num_threads(1)
    expected = model.predict_proba(X)
    torch.set_num_threads(2)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-6, atol=1e-7)
    (one_block, one_batch), *two = sizes
    assert len(two) == 2
    # 400 columns: blocks within 2**20 values and batches within 2**24 floats, which
    # the threads share: 2 blocks of 1,500 rows on one thread, 4 of 750 on two
    assert one_block == 1500 and one_batch < 1000
    for block, batch in two:
        assert block == 750 and batch == one_batch // 2
