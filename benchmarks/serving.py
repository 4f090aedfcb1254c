"""Serving with ONNX: exported models against the estimators, side by side in one run.

    SKMTL_DATA=../shared/data python -m benchmarks.serving [--rows 1000000] [--repeats 300]
        [--sections fidelity speed] [--estimators MMOEClassifier ...]
        [--census-rows N] [--coat-rows N]

Run from the repository root. Two sections:

fidelity
    Every estimator of the package at its defaults (``random_state=0``),
    fitted on seed 0's training part: the classifiers on Census-Income's two
    tasks, the regressors on two of its numeric columns (``age`` and
    ``weeks_worked_in_year``, dropped from their features), ESMM and AITM on
    Coat's clicks and conversions. Each is exported with
    ``skmtl.onnx.to_onnx`` and run in a fresh onnxruntime session on test
    rows it has not seen (Census: seed 0's test part; Coat: the
    random-exposure ratings) in which 5 % of the rows get an unseen value
    and another 5 % a missing value in every categorical column. Reported:
    the largest absolute difference between each onnxruntime output and the
    estimator's own (probabilities, conditional probabilities, gate weights,
    predictions; for the regressors also in standard deviations of the
    target), whether every label agrees, the export time and the file size.

speed
    ``MMOEClassifier()`` fitted on Census-Income and ``ESMMClassifier()`` on
    Coat: latency of one row and of 100 rows (median over ``--repeats``
    calls, rows drawn from the test part) and throughput on ``--rows`` rows
    (the test part repeated; the faster of two passes), for ``predict_proba`` on a DataFrame (as
    loaded, string columns of ``category`` dtype, and with those columns as
    plain strings, as a service receives them), onnxruntime on the exported
    file (its inputs built by ``skmtl.onnx.onnx_inputs`` beforehand, timed
    apart; one session with onnxruntime's default threads and one with a
    single thread; runs of 4,096 rows) and the bare PyTorch module on
    pre-encoded tensors (forward pass and probabilities under
    ``torch.inference_mode``, batches of 4,096 as ``predict_proba`` uses).
"""

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import torch
from sklearn.base import is_regressor

import skmtl
from skmtl.onnx import expected_outputs, onnx_inputs, save_onnx

from .cli import positive_int
from .data import load_census, load_coat
from .report import _table, machine_info, script_header

ESTIMATORS = [skmtl.MMOEClassifier, skmtl.OMOEClassifier, skmtl.PLEClassifier,
              skmtl.SharedBottomClassifier, skmtl.ESMMClassifier, skmtl.AITMClassifier,
              skmtl.MMOERegressor, skmtl.OMOERegressor, skmtl.PLERegressor,
              skmtl.SharedBottomRegressor]
FUNNELS = (skmtl.ESMMClassifier, skmtl.AITMClassifier)
REGRESSION_TARGETS = ["age", "weeks_worked_in_year"]
# onnxruntime runs this many rows at a time (as fast as any other size tried, 2,048 to
# 65,536; predict_proba's batches are as large)
ORT_RUN_ROWS = 4096


def with_unseen_and_missing(X, seed=0):
    """``X`` with an unseen value in 5 % of the rows and a missing one in another 5 %, per
    categorical column."""
    X = X.copy()
    rng = np.random.default_rng(seed)
    for name in X.columns:
        if not isinstance(X[name].dtype, pd.CategoricalDtype):
            continue
        rows = rng.permutation(len(X))
        unseen, missing = rows[:len(X) // 20], rows[len(X) // 20:len(X) // 10]
        categories = X[name].cat.categories
        new = "not seen in fit" if categories.dtype.kind in "OU" or \
            pd.api.types.is_string_dtype(categories.dtype) else int(categories.max()) + 1000
        X[name] = X[name].cat.add_categories([new])
        X.iloc[unseen, X.columns.get_loc(name)] = new
        X.iloc[missing, X.columns.get_loc(name)] = np.nan
    return X


def session(path, threads=None):
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fidelity(folder, estimators, census, coat):
    records = []
    for estimator_class in estimators:
        if estimator_class in FUNNELS:
            data, X, y, X_test = "Coat", coat.X_train, coat.Y_train, coat.X_test
        elif is_regressor(estimator_class()):
            data = "Census (age, weeks worked)"
            X = census.X_train.drop(columns=REGRESSION_TARGETS)
            y = census.X_train[REGRESSION_TARGETS].astype(float)
            X_test = census.X_test.drop(columns=REGRESSION_TARGETS)
        else:
            data, X, y, X_test = "Census", census.X_train, census.Y_train, census.X_test
        X_test = with_unseen_and_missing(X_test)
        estimator = estimator_class(random_state=0).fit(X, y)
        path = folder / f"{estimator_class.__name__}.onnx"
        started = time.perf_counter()
        save_onnx(estimator, path, X.head())
        export_seconds = time.perf_counter() - started
        served = session(path)
        names = [o.name for o in served.get_outputs()]
        outputs = dict(zip(names, served.run(None, onnx_inputs(served, X_test))))
        expected = expected_outputs(estimator, X_test)
        assert sorted(expected) == sorted(outputs), (sorted(expected), sorted(outputs))
        differences = {kind: 0.0 for kind in ("proba", "conditional", "gates", "prediction")}
        labels_agree = True
        for name, values in expected.items():
            if name.startswith("label_"):
                labels_agree &= bool(np.array_equal(outputs[name],
                                                    values.astype(outputs[name].dtype)))
                continue
            kind = ("conditional" if name.startswith("conditional") else
                    "gates" if name.startswith("gate") else name.split("_")[0])
            difference = float(np.abs(outputs[name] - values).max())
            differences[kind] = max(differences[kind], difference)
            if kind == "prediction":  # in the target's standard deviations
                spread = float(np.std(y[name[len("prediction_"):]]))
                differences["relative"] = max(differences.get("relative", 0.0),
                                              difference / spread)
        records.append({"estimator": estimator_class.__name__, "data": data,
                        "rows": len(X_test), **differences, "labels": labels_agree,
                        "export_seconds": export_seconds,
                        "mib": path.stat().st_size / 2 ** 20})
        print(f"  {records[-1]}", file=sys.stderr, flush=True)
    return records


def fidelity_report(records):
    def cell(record, kind):
        applies = {"proba": "prediction", "prediction": "proba"}
        if kind in applies and record[applies[kind]] and not record[kind]:
            return "–"
        if kind == "conditional" and record["estimator"] not in ("ESMMClassifier",
                                                                 "AITMClassifier"):
            return "–"
        if kind == "gates" and record["estimator"].startswith(("Shared", "ESMM", "AITM")):
            return "–"
        return f"{record[kind]:.1e}"

    rows = [[r["estimator"], r["data"], str(r["rows"]), cell(r, "proba"),
             cell(r, "conditional"), cell(r, "gates"), cell(r, "prediction") + (
                 f" ({r['relative']:.1e} std)" if "relative" in r else ""),
             "–" if r["estimator"].endswith("Regressor") else ("yes" if r["labels"] else "NO"),
             f"{r['export_seconds']:.1f}", f"{r['mib']:.2f}"] for r in records]
    header = ["estimator", "fitted on", "test rows", "max Δ proba", "max Δ conditional",
              "max Δ gates", "max Δ prediction (in target std)", "labels equal", "export s",
              "file MiB"]
    return ["### onnxruntime against the estimators' own predictions", "",
            *_table(header, rows), ""]


def _median_seconds(function, repeats):
    function()  # warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def as_strings(X):
    """``X`` with its ``category`` columns of strings as object columns, as a service
    receives them (say, from JSON)."""
    return X.astype({name: object for name in X.columns
                     if isinstance(X[name].dtype, pd.CategoricalDtype)
                     and X[name].cat.categories.dtype.kind not in "biuf"})


def speed(folder, problem, estimator_class, n_rows, repeats):
    estimator = estimator_class(random_state=0).fit(problem.X_train, problem.Y_train)
    path = folder / f"speed_{estimator_class.__name__}.onnx"
    save_onnx(estimator, path, problem.X_train.head())
    X_test = problem.X_test
    sessions = {"onnxruntime": session(path), "onnxruntime, 1 thread": session(path, threads=1)}
    module = estimator.net_.module_.eval()
    rng = np.random.default_rng(0)
    records = []

    def torch_proba(codes, numeric, batch=4096):
        with torch.inference_mode():
            for start in range(0, len(codes), batch):
                module.predict_proba(module(codes[start:start + batch],
                                            numeric[start:start + batch]))

    def timed(function, repeats=2):  # the fastest of two: this machine is shared
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return min(times)

    for n in (1, 100):
        rows = [rng.choice(len(X_test), n, replace=False) for _ in range(8)]
        frames = [X_test.iloc[r] for r in rows]
        string_frames = [as_strings(frame) for frame in frames]
        feeds = [onnx_inputs(sessions["onnxruntime"], frame) for frame in frames]
        encoded = [tuple(torch.from_numpy(a) for a in estimator._encoder.transform(frame))
                   for frame in frames]
        counter = iter(range(10 ** 9))

        def next_index():
            return next(counter) % len(rows)

        record = {"rows": n,
                  "predict_proba": _median_seconds(
                      lambda: estimator.predict_proba(frames[next_index()]), repeats),
                  "predict_proba, strings": _median_seconds(
                      lambda: estimator.predict_proba(string_frames[next_index()]), repeats),
                  "torch module": _median_seconds(
                      lambda: torch_proba(*encoded[next_index()]), repeats),
                  "onnx_inputs": _median_seconds(
                      lambda: onnx_inputs(sessions["onnxruntime"], frames[next_index()]),
                      repeats)}
        for label, served in sessions.items():
            record[label] = _median_seconds(lambda: served.run(None, feeds[next_index()]),
                                            repeats)
        records.append(record)
        print(f"  {record}", file=sys.stderr, flush=True)

    many = X_test.iloc[np.resize(np.arange(len(X_test)), n_rows)].reset_index(drop=True)
    many_strings = as_strings(many)
    record = {"rows": n_rows,
              "predict_proba": timed(lambda: estimator.predict_proba(many)),
              "predict_proba, strings": timed(lambda: estimator.predict_proba(many_strings))}
    codes, numeric = (torch.from_numpy(a) for a in estimator._encoder.transform(many))
    record["torch module"] = timed(lambda: torch_proba(codes, numeric))
    feed = {}
    record["onnx_inputs"] = timed(lambda: feed.update(onnx_inputs(sessions["onnxruntime"],
                                                                  many)))
    for label, served in sessions.items():
        served.run(None, {name: values[:ORT_RUN_ROWS] for name, values in feed.items()})
        record[label] = timed(lambda: [
            served.run(None, {name: values[start:start + ORT_RUN_ROWS]
                              for name, values in feed.items()})
            for start in range(0, n_rows, ORT_RUN_ROWS)])
    records.append(record)
    print(f"  {record}", file=sys.stderr, flush=True)
    return records


def speed_report(records, title):
    contenders = ["predict_proba", "predict_proba, strings", "onnxruntime",
                  "onnxruntime, 1 thread", "torch module"]
    rows = []
    for record in records[:-1]:
        rows.append([f"latency, {record['rows']} row(s)"] + [
            f"{record[c] * 1e3:.3f} ms ({record[c] / record['predict_proba']:.2f}×)"
            for c in contenders] + [f"{record['onnx_inputs'] * 1e3:.3f} ms"])
    last = records[-1]
    rows.append([f"throughput, {last['rows']:,} rows"] + [
        f"{last['rows'] / last[c] / 1e3:,.0f} k rows/s ({last['predict_proba'] / last[c]:.2f}×)"
        for c in contenders] + [f"{last['onnx_inputs'] * 1e3:,.0f} ms"])
    header = ["", "predict_proba (category columns)", "predict_proba (string columns)",
              "onnxruntime", "onnxruntime, 1 thread", "torch module (pre-encoded)",
              "onnx_inputs (DataFrame → inputs)"]
    return [f"### Latency and throughput: {title}", "", *_table(header, rows), ""]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", choices=["fidelity", "speed"],
                        default=["fidelity", "speed"])
    parser.add_argument("--rows", type=positive_int, default=1_000_000,
                        help="rows of the throughput measurement")
    parser.add_argument("--repeats", type=positive_int, default=300,
                        help="calls per latency median")
    parser.add_argument("--estimators", nargs="+", default=[e.__name__ for e in ESTIMATORS],
                        choices=[e.__name__ for e in ESTIMATORS],
                        help="the estimators of the fidelity section")
    parser.add_argument("--census-rows", type=positive_int, default=None,
                        help="a random subsample of Census-Income (before the split)")
    parser.add_argument("--coat-rows", type=positive_int, default=None,
                        help="a random subsample of Coat's impressions")
    parser.add_argument("--folder", type=Path, default=None,
                        help="where to write the exported files (default: a temporary folder)")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    started = time.perf_counter()
    machine = machine_info()
    tables = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.folder or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        census, coat = load_census(0, args.census_rows), load_coat(0, args.coat_rows)
        if "fidelity" in args.sections:
            estimators = [e for e in ESTIMATORS if e.__name__ in args.estimators]
            tables += fidelity_report(fidelity(folder, estimators, census, coat))
        if "speed" in args.sections:
            tables += ["Latency: median time per call (ratio to predict_proba on category "
                       "columns, lower is faster); throughput: rows per second (ratio to it, "
                       "higher is faster). onnxruntime's times leave out building its inputs "
                       "(last column).", ""]
            tables += speed_report(speed(folder, census, skmtl.MMOEClassifier,
                                         args.rows, args.repeats),
                                   "MMOEClassifier() on Census-Income")
            tables += speed_report(speed(folder, coat, skmtl.ESMMClassifier,
                                         args.rows, args.repeats),
                                   "ESMMClassifier() on Coat")
    header = script_header("skmtl serving: ONNX export",
                           f"python -m benchmarks.serving {shlex.join(argv)}", machine, started,
                           extra_versions=f"onnxruntime {onnxruntime.__version__}, ")
    print("\n".join(header + tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
