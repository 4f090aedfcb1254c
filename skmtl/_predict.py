"""Prediction over the rows of a table: encoded a block at a time, run through the network
in batches, on several threads when torch has several."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

# Rows encoded at a time by each thread: this bounds the memory of prediction
# beyond its outputs.
PREDICT_BLOCK_SIZE = 16384
# Prediction runs on several threads when each gets at least this many rows:
# starting them costs a few milliseconds, which fewer rows do not win back
# (benchmarks/README.md, "Prediction on several threads").
PARALLEL_ROWS_PER_THREAD = 8192


def predict_in_blocks(reader, compute, batch_size, device="cpu", rows_sum_to_one=False):
    """Run ``compute(categorical, numeric)`` over the rows of ``reader``; one array per
    tensor it returns.

    ``compute`` returns a list of tensors with one row per input row.
    Rows are encoded a block at a time into buffers reused from block to
    block, and each block goes through ``compute`` in batches of
    ``batch_size(n_threads)`` rows at most, so the memory used beyond the
    returned arrays is bounded by the block and batch sizes, not by the
    number of rows. With ``rows_sum_to_one``, each (2-D) output's rows are
    divided by their sum at float64 precision, as scikit-learn expects of
    probabilities.

    On the CPU, with torch set to ``n > 1`` threads and at least
    ``PARALLEL_ROWS_PER_THREAD`` rows for each, ``n`` threads each encode and
    compute whole blocks with torch on one thread (:class:`_OneTorchThreadPool`),
    in blocks and batches ``n`` times smaller where the table is wide.
    Encoding a block is NumPy and pandas work that torch's own threads cannot
    share; beside another thread's network it costs far less
    (``benchmarks/README.md``, "Prediction on several threads").
    """
    n_workers = _n_workers(reader.n_samples, device)
    # blocks of equal size, as many for each thread, within the reader's bound
    # on the values of a block (shared among the threads)
    largest = min(PREDICT_BLOCK_SIZE, max(1024, reader.block_size // n_workers))
    n_blocks = -(-reader.n_samples // largest)
    n_blocks = -(-n_blocks // n_workers) * n_workers
    blocks = _Blocks(reader.blocks(-(-reader.n_samples // max(n_blocks, 1))))
    outputs = _Outputs(reader.n_samples, rows_sum_to_one)
    if n_workers == 1:
        _predict_blocks(reader, blocks, compute, batch_size(1), device, outputs)
        return outputs.checked()
    readers = [reader] + [reader.with_own_scratch() for _ in range(n_workers - 1)]
    with _OneTorchThreadPool(n_workers) as pool:
        futures = pool.submit_each(_predict_blocks, [
            (worker_reader, blocks, compute, batch_size(n_workers), device, outputs)
            for worker_reader in readers])
        try:
            for future in futures:
                future.result()
        finally:  # an error or an interrupt: the other threads stop after their block
            blocks.close()
    return outputs.checked()


def _n_workers(n_samples, device):
    # autocast is a setting of the calling thread, which the pool's threads would not share
    if torch.device(device).type != "cpu" or torch.is_autocast_enabled("cpu"):
        return 1
    return max(1, min(torch.get_num_threads(), n_samples // PARALLEL_ROWS_PER_THREAD))


def _predict_blocks(reader, blocks, compute, batch_size, device, outputs):
    """Encode and compute the blocks taken from ``blocks`` until there are none left."""
    size = blocks.largest
    codes = np.empty((size, reader.n_codes), np.int32)
    numeric = np.empty((size, reader.n_numeric), np.float32)
    codes_tensor, numeric_tensor = torch.from_numpy(codes), torch.from_numpy(numeric)
    try:
        with torch.inference_mode():  # (thread-local: entered in each thread)
            for block_start, block_stop in blocks:
                n_rows = block_stop - block_start
                reader.read(block_start, block_stop, out=(codes[:n_rows], numeric[:n_rows]))
                for first in range(0, n_rows, batch_size):
                    batch = slice(first, min(first + batch_size, n_rows))
                    # (float(): under autocast, the outputs may be bfloat16, which NumPy lacks)
                    outputs.write(block_start + batch.start, [
                        o.float().cpu().numpy() for o in compute(
                            codes_tensor[batch].to(device), numeric_tensor[batch].to(device))])
    except BaseException:
        blocks.close()
        raise


class _Blocks:
    """``(start, stop)`` of blocks of rows, handed out one at a time to any thread."""

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self.largest = max((stop - start for start, stop in blocks), default=0)
        self._lock = threading.Lock()

    def __iter__(self):
        while True:
            with self._lock:
                block = next(self._blocks, None)
            if block is None:
                return
            yield block

    def close(self):
        with self._lock:
            self._blocks = iter(())


class _Outputs:
    """The arrays of the outputs, allocated at the first batch and filled by row ranges."""

    def __init__(self, n_samples, rows_sum_to_one):
        self.n_samples = n_samples
        self.rows_sum_to_one = rows_sum_to_one
        self.arrays = None
        self._ones = None
        self._lock = threading.Lock()

    def write(self, start, batch_outputs):
        if self.arrays is None:
            with self._lock:
                if self.arrays is None:
                    self._ones = [np.ones(o.shape[1]) for o in batch_outputs]
                    self.arrays = [np.empty((self.n_samples,) + o.shape[1:])
                                   for o in batch_outputs]
        for out, o, ones in zip(self.arrays, batch_outputs, self._ones):
            rows = out[start:start + len(o)]
            rows[...] = o
            if self.rows_sum_to_one:
                # a product with ones: np.sum over 2 columns is slow
                rows /= np.matmul(rows, ones)[:, None]

    def checked(self):
        """The arrays, once sure that every value is finite (else a ValueError)."""
        if self.arrays is None or all(np.isfinite(array).all() for array in self.arrays):
            return self.arrays
        bad = np.zeros(self.n_samples, bool)
        for array in self.arrays:
            bad |= ~np.isfinite(array.reshape(self.n_samples, -1)).all(axis=1)
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"The network's output is NaN or infinite for {len(rows)} row(s) of X "
            f"(the first: row {rows[0]}). Their numeric values are most likely too "
            "large for it, far beyond those seen in fit; clip or rescale them.")


class _OneTorchThreadPool(ThreadPoolExecutor):
    """Threads that each run torch on one thread of their own.

    With OpenMP, torch's thread count is a setting of each thread, but
    ``torch.set_num_threads`` also sets the count that threads take when they
    first use torch. Each thread of the pool sets 1 as it starts; once all
    have, the caller sets its own count again, which gives that default back
    without changing the caller's own: only a thread first using torch in
    those moments would start with one.
    """

    def __init__(self, n_threads):
        self._all_started = threading.Barrier(n_threads + 1)
        super().__init__(n_threads, initializer=self._start_thread)

    def _start_thread(self):
        # torch sets a thread's count from the default at its first use of
        # torch, even after torch.set_num_threads: that first use comes first
        torch.get_num_threads()
        torch.set_num_threads(1)
        self._all_started.wait()

    def submit_each(self, function, arguments):
        """``function(*args)`` on a thread of its own for each ``args`` of ``arguments`` (as
        many as the pool's threads); the futures, once every thread has started."""
        threads = torch.get_num_threads()
        try:
            futures = [self.submit(function, *args) for args in arguments]
            self._all_started.wait()
        except BaseException:
            self._all_started.abort()
            raise
        finally:
            torch.set_num_threads(threads)
        return futures
