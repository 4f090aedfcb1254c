"""Speed and memory of skmtl against its own floor: encoding, prediction, fit memory.

Each measurement runs in a fresh process, one after another::

    python -m benchmarks.speed [--rows 1000000] [--memory-rows 2000000] [--threads N]
                               [--measurements encoding prediction memory wide]

* encoding: a DataFrame of ``--rows`` rows x 40 columns (30 categorical, 10
  numeric) turned into tensors by the fitted encoder (``transform``), with the
  categorical columns as pandas ``category``, as pandas strings (``str``:
  pyarrow's with pandas 3) and as Python strings (``object``);
* prediction: ``MMOEClassifier(numeric_encoding=...).predict_proba`` from
  that DataFrame (encoding included) against the bare ``skmtl.nn.MMoE``
  module on pre-built tensors, same batch size, ``torch.inference_mode``:
  both warmed up, then timed in pairs, side by side; the ratio is the median
  of the pairs'; once per numeric encoding (``--encodings``);
* memory: peak resident memory during ``fit`` (one epoch) on ``--memory-rows``
  rows, against the encoded data plus the model, and the extra memory of
  ``predict_proba`` against the size of its output. Resident memory is sampled
  every 5 ms from ``/proc/self/status`` (Linux);
* wide table: the defaults' target-aware bins (one tree per numeric column)
  of ``--wide-rows`` rows x ``--wide-columns`` numeric columns, grown on one
  thread and on torch's threads, and ``MMOEClassifier(max_epochs=1).fit``.
"""

import argparse
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd

from .cli import positive_int

CARDINALITIES = (10, 100, 1_000, 10_000)
PREDICTION_PAIRS = 10


def make_frame(n_rows, strings=False, seed=0):
    """30 categorical columns (cardinalities 10 to 10,000) and 10 numeric ones."""
    rng = np.random.default_rng(seed)
    columns = {}
    for j in range(30):
        k = CARDINALITIES[j % len(CARDINALITIES)]
        levels = np.array([f"v{i}" for i in range(k)], dtype=object)
        codes = rng.integers(0, k, n_rows)
        columns[f"cat_{j}"] = (levels[codes] if strings
                               else pd.Categorical.from_codes(codes, levels))
    for j in range(10):
        columns[f"num_{j}"] = rng.normal(size=n_rows)
    X = pd.DataFrame(columns)
    logit = X["num_0"] + (X["cat_0"] == "v1") - 0.5
    Y = pd.DataFrame({"a": (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int),
                      "b": (rng.random(n_rows) < 0.3).astype(int)})
    return X, Y


def current_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmRSS not found in /proc/self/status")


class PeakMemory:
    """Sample the resident memory in a thread; ``peak`` is the maximum seen."""

    def __enter__(self):
        self.start = current_rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())

    @property
    def increase(self):
        return self.peak - self.start


# -- the measurements, each run in a child process -------------------------------------------


def measure_encoding(rows, kind):
    from skmtl._encoding import TabularEncoder
    import torch

    X, _ = make_frame(rows, strings=kind != "category")
    if kind == "object":
        X = X.astype({name: object for name in X.columns if name.startswith("cat_")})
    encoder = TabularEncoder()
    start = time.perf_counter()
    encoder.fit(X)
    fit_seconds = time.perf_counter() - start
    encoder.transform(X.iloc[:1000])  # warm up
    start = time.perf_counter()
    codes, numeric = encoder.transform(X)
    tensors = torch.from_numpy(codes), torch.from_numpy(numeric)
    transform_seconds = time.perf_counter() - start
    del tensors
    return {"rows": rows, "fit_s": fit_seconds, "transform_s": transform_seconds}


def measure_prediction(rows, numeric_encoding="piecewise_linear"):
    import torch
    from skmtl import MMOEClassifier
    from skmtl._base import PREDICT_BATCH_SIZE

    X, Y = make_frame(rows)
    model = MMOEClassifier(max_epochs=1, numeric_encoding=numeric_encoding,
                           random_state=0).fit(X.iloc[:20_000], Y.iloc[:20_000])
    codes, numeric = model._encoder.transform(X)
    codes, numeric = torch.from_numpy(codes), torch.from_numpy(numeric)
    module = model.net_.module_.eval()

    def bare():
        with torch.inference_mode():
            for first in range(0, rows, PREDICT_BATCH_SIZE):
                batch = slice(first, first + PREDICT_BATCH_SIZE)
                module.predict_proba(module(codes[batch], numeric[batch]))

    # Warm both up, then time them in pairs, alternating which goes first:
    # the first pass over a million rows is slower for both (page faults,
    # allocator growth), and the machine's speed drifts, so only times taken
    # side by side are compared. The ratio is the median of the pairs' ratios.
    runs = {"skmtl": lambda: model.predict_proba(X), "bare": bare}
    for run in runs.values():
        run()
    times = {"skmtl": [], "bare": []}
    for repeat in range(PREDICTION_PAIRS):
        for name in (("skmtl", "bare") if repeat % 2 == 0 else ("bare", "skmtl")):
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    skmtl_seconds = np.array(times["skmtl"])
    bare_seconds = np.array(times["bare"])
    return {"rows": rows, "pairs": PREDICTION_PAIRS, "numeric_encoding": numeric_encoding,
            "skmtl_rows_per_s": rows / float(np.median(skmtl_seconds)),
            "bare_rows_per_s": rows / float(np.median(bare_seconds)),
            "ratio": float(np.median(bare_seconds / skmtl_seconds)),
            "ratio_of_best": float(bare_seconds.min() / skmtl_seconds.min()),
            "ratio_range": [float(np.min(bare_seconds / skmtl_seconds)),
                            float(np.max(bare_seconds / skmtl_seconds))]}


def measure_memory(rows):
    from skmtl import MMOEClassifier

    X, Y = make_frame(rows)
    model = MMOEClassifier(max_epochs=1, random_state=0)
    with PeakMemory() as fit_memory:
        model.fit(X, Y)
    encoded = rows * (30 * 4 + 10 * 4 + 2 * 4)  # int32 codes, float32 numeric and targets
    parameters = sum(p.numel() * p.element_size() for p in model.net_.module_.parameters())
    # Adam keeps two moments per parameter; gradients one more copy.
    model_bytes = parameters * 4
    with PeakMemory() as predict_memory:
        proba = model.predict_proba(X)
    output = sum(p.nbytes for p in proba)
    return {"rows": rows, "fit_peak_increase": fit_memory.increase, "encoded": encoded,
            "model": model_bytes, "fit_ratio": fit_memory.increase / (encoded + model_bytes),
            "predict_peak_increase": predict_memory.increase, "predict_output": output,
            "predict_extra_over_output": predict_memory.increase - output}


def make_wide_frame(n_rows, n_columns, seed=0):
    """``n_columns`` numeric columns and two binary tasks, each of a few of them."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n_rows, n_columns)),
                     columns=[f"num_{j}" for j in range(n_columns)])
    logits = X.iloc[:, :6].to_numpy() @ rng.normal(size=(6, 2))
    Y = pd.DataFrame((rng.random((n_rows, 2)) < 1 / (1 + np.exp(-logits))).astype(int),
                     columns=["a", "b"])
    return X, Y


def measure_wide(rows, columns):
    import torch
    from skmtl import MMOEClassifier

    X, Y = make_wide_frame(rows, columns)
    # the target bins' trees, which "auto" would skip on these smooth columns
    model = MMOEClassifier(max_epochs=1, numeric_encoding="piecewise_linear", random_state=0)
    targets = Y.to_numpy().astype(np.float64)
    bins = {}
    for n_threads in dict.fromkeys([1, torch.get_num_threads()]):
        start = time.perf_counter()
        model._new_encoder(np.random.RandomState(0)).fit(X, None, targets, n_threads=n_threads)
        bins[n_threads] = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(X, Y)
    return {"rows": rows, "columns": columns, "bins_s": {str(k): v for k, v in bins.items()},
            "fit_s": time.perf_counter() - start}


MEASUREMENTS = {"encoding": measure_encoding, "prediction": measure_prediction,
                "memory": measure_memory, "wide": measure_wide}


def _child(name, kwargs, threads):
    import torch
    if threads:
        torch.set_num_threads(threads)
    print(json.dumps(MEASUREMENTS[name](**kwargs)))


def run(name, threads=None, **kwargs):
    code = ("import json, sys; from benchmarks.speed import _child; "
            f"_child({name!r}, json.loads(sys.argv[1]), {threads!r})")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=1_000_000)
    parser.add_argument("--memory-rows", type=positive_int, default=2_000_000)
    parser.add_argument("--encodings", nargs="+",
                        default=["piecewise_linear", "periodic", "quantile", "standard"],
                        help="numeric encodings of the prediction measurement")
    parser.add_argument("--wide-rows", type=positive_int, default=20_000)
    parser.add_argument("--wide-columns", type=positive_int, default=1_000)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads in every child (default: torch's own)")
    parser.add_argument("--measurements", nargs="+", choices=list(MEASUREMENTS),
                        default=list(MEASUREMENTS), help="the ones to run (default: all)")
    args = parser.parse_args(argv)
    mb = 1 / 2**20

    if "encoding" in args.measurements:
        print(f"## Encoding: {args.rows:,} rows x 40 columns (30 categorical, 10 numeric)\n")
        print("| categorical columns as | fit s | transform s (DataFrame -> tensors) |")
        print("|---|---|---|")
        for kind in ("category", "str", "object"):
            r = run("encoding", args.threads, rows=args.rows, kind=kind)
            print(f"| {kind} | {r['fit_s']:.2f} | "
                  f"{r['transform_s']:.2f} |")

    if "prediction" in args.measurements:
        print(f"\n## predict_proba on {args.rows:,} rows, MMOEClassifier(numeric_encoding=...)\n")
        print("| numeric_encoding | skmtl from DataFrame (rows/s) "
              "| bare module on tensors (rows/s) "
              f"| ratio (median of {PREDICTION_PAIRS} pairs) | lowest, highest pair "
              "| ratio of the best times |")
        print("|---|---|---|---|---|---|")
        for encoding in args.encodings:
            r = run("prediction", args.threads, rows=args.rows, numeric_encoding=encoding)
            print(f"| {encoding} | {r['skmtl_rows_per_s']:,.0f} | {r['bare_rows_per_s']:,.0f} | "
                  f"{r['ratio']:.2f} | {r['ratio_range'][0]:.2f}, {r['ratio_range'][1]:.2f} | "
                  f"{r['ratio_of_best']:.2f} |", flush=True)

    if "memory" in args.measurements:
        r = run("memory", args.threads, rows=args.memory_rows)
        print(f"\n## Memory, {args.memory_rows:,} rows x 40 columns, "
              "MMOEClassifier(max_epochs=1)\n")
        print("| fit: peak RSS increase MB | encoded data MB | model (+grads, Adam) MB | ratio |")
        print("|---|---|---|---|")
        print(f"| {r['fit_peak_increase'] * mb:,.0f} | {r['encoded'] * mb:,.0f} | "
              f"{r['model'] * mb:,.1f} | {r['fit_ratio']:.2f} |")
        print("\n| predict_proba: peak RSS increase MB | output MB | extra beyond output MB |")
        print("|---|---|---|")
        print(f"| {r['predict_peak_increase'] * mb:,.0f} | {r['predict_output'] * mb:,.0f} | "
              f"{r['predict_extra_over_output'] * mb:,.0f} |")

    if "wide" in args.measurements:
        r = run("wide", args.threads, rows=args.wide_rows, columns=args.wide_columns)
        print(f"\n## Target bins of a wide table: {args.wide_rows:,} rows x {args.wide_columns:,} "
              "numeric columns, 2 tasks\n")
        print("| trees grown on | bins s (encoder fit) | × one thread |")
        print("|---|---|---|")
        one = r["bins_s"]["1"]
        for threads, seconds in r["bins_s"].items():
            print(f"| {threads} thread(s) | {seconds:.2f} | {seconds / one:.2f} |")
        print(f"\n`MMOEClassifier(max_epochs=1).fit`, torch's threads: {r['fit_s']:.2f} s")


if __name__ == "__main__":
    main()
