"""Run every contender on the same splits, each in a fresh process, one at a time.

    python -m benchmarks.run [--seeds 0 1 2] [--epochs N] [--quick] [--output benchmarks/results.md]

Run from the repository root, with ``SKMTL_DATA`` pointing at the data home
(e.g. ``SKMTL_DATA=../shared/data``). See ``benchmarks/README.md``.
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import config
from .cli import positive_float, positive_int
from .contenders import CONTENDERS, DATASETS
from .report import machine_info, render

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path("benchmarks") / "results.md"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Side-by-side benchmark of skmtl against torch-rechub, DeepCTR-Torch, "
                    "gradient boosting, a hand-written PyTorch loop and, on a synthetic "
                    "funnel, the true probabilities.")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default: 0 1 2; with --quick: 0)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"epochs of every neural contender (default: "
                             f"{config.DEFAULT_EPOCHS}; with --quick: {config.QUICK_EPOCHS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast check: {config.QUICK_CENSUS_ROWS} Census rows, "
                             f"{config.QUICK_COAT_ROWS} Coat impressions, "
                             f"{config.QUICK_FUNNEL4_ROWS} funnel4 impressions, "
                             f"{config.QUICK_EPOCHS} epochs, seed 0")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="markdown file to write (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every run's raw record to this JSON file")
    parser.add_argument("--figure", type=Path, default=None,
                        help="also draw AUC and fit time per contender to this image "
                             "(needs matplotlib)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--contenders", nargs="+", choices=sorted(CONTENDERS), default=None,
                        metavar="CONTENDER",
                        help="run only these (default: all of the chosen data sets'): "
                             + ", ".join(sorted(CONTENDERS)))
    parser.add_argument("--census-rows", type=positive_int, default=None,
                        help="a fixed random subsample of the Census rows")
    parser.add_argument("--coat-rows", type=positive_int, default=None,
                        help="a fixed random subsample of the Coat training impressions")
    parser.add_argument("--funnel4-rows", type=positive_int, default=None,
                        help=f"a fixed random subsample of the {config.FUNNEL4_ROWS:,} funnel4 "
                             "impressions (before the train/test split)")
    parser.add_argument("--predict-repeats", type=positive_int, default=3,
                        help="predict the test set at least this many times (default: "
                             "%(default)s); the median time counts")
    parser.add_argument("--predict-min-seconds", type=positive_float, default=1.0,
                        help="and repeat until the predictions took this long in all "
                             "(default: %(default)s; at most 100 repeats)")
    parser.add_argument("--fit-passes", type=positive_int, default=1,
                        help="run the whole list of jobs this many times and count each job's "
                             "fastest fit (default: %(default)s); a slow spell of a shared "
                             "machine then falls on one pass's fits, not on every pass's; the "
                             "other numbers are the first pass's")
    parser.add_argument("--timeout", type=positive_float, default=3 * 3600,
                        help="seconds before a worker is killed and reported as failed")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep the workers' output here (default: a temporary folder)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail rather than download a data set missing from the data home")
    args = parser.parse_args(argv)
    elsewhere = [key for key in args.contenders or []
                 if CONTENDERS[key].dataset not in args.datasets]
    if elsewhere:
        parser.error(f"contender(s) {', '.join(elsewhere)} run on "
                     f"{', '.join(sorted({CONTENDERS[k].dataset for k in elsewhere}))}, which "
                     f"--datasets ({' '.join(args.datasets)}) leaves out")
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.epochs is None:
        args.epochs = config.QUICK_EPOCHS if args.quick else config.DEFAULT_EPOCHS
    if args.quick:
        args.census_rows = args.census_rows or config.QUICK_CENSUS_ROWS
        args.coat_rows = args.coat_rows or config.QUICK_COAT_ROWS
        args.funnel4_rows = args.funnel4_rows or config.QUICK_FUNNEL4_ROWS
    return args


def selected_contenders(args):
    keys = args.contenders or [k for k, c in CONTENDERS.items() if c.dataset in args.datasets]
    return [CONTENDERS[k] for k in CONTENDERS if k in keys]


def worker_env(contender):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if env.get("SKMTL_DATA"):  # the worker runs in the repository root
        env["SKMTL_DATA"] = os.path.abspath(env["SKMTL_DATA"])
    env.update(dict(contender.env))
    return env


def run_worker(contender, seed, args, log_dir, fit_pass=1):
    """One contender, one seed, in a fresh Python process; returns its record."""
    n_rows = {"census": args.census_rows, "coat": args.coat_rows,
              "funnel4": args.funnel4_rows}[contender.dataset]
    spec = {"contender": contender.key, "seed": seed, "epochs": args.epochs, "n_rows": n_rows,
            "predict_batch_size": config.PREDICT_BATCH_SIZE,
            "predict_repeats": args.predict_repeats,
            "predict_min_seconds": args.predict_min_seconds,
            "download_if_missing": not args.no_download}
    stem = log_dir / (f"{contender.dataset}-{contender.key}-seed{seed}"
                      + (f"-pass{fit_pass}" if args.fit_passes > 1 else ""))
    spec_path, result_path, log_path = (stem.with_suffix(s) for s in (".spec.json", ".json",
                                                                       ".log"))
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(result_path)],
                cwd=REPO_ROOT, env=worker_env(contender), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=args.timeout)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = "timeout"
    record = None
    if result_path.exists():
        try:
            record = json.loads(result_path.read_text())
        except json.JSONDecodeError:
            record = None
    if record is None:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        record = {"status": "failed",
                  "error": f"worker exited with {returncode} after "
                           f"{time.perf_counter() - start:.0f} s: {' / '.join(tail)}"}
    record.update({"contender": contender.key, "dataset": contender.dataset, "seed": seed})
    if args.log_dir:  # a temporary folder's logs are gone after the run
        record["log"] = str(log_path)
    return record


def fastest_fit(runs):
    """One record of a job run in several passes: the first pass's, fit time the fastest.

    A pass that failed makes the job's record that failure (a contender that
    fails now and then must not look fine).
    """
    failed = [r for r in runs if r.get("status") != "ok"]
    if failed:
        return failed[0]
    record = dict(runs[0])
    if len(runs) > 1:
        record["fit_seconds_passes"] = [r["fit_seconds"] for r in runs]
        record["fit_seconds"] = min(record["fit_seconds_passes"])
    return record


def _progress(record):
    key, seed = record["contender"], record["seed"]
    if record.get("status") != "ok":
        return f"  {key:<22} seed {seed}: {record.get('status')}: {record.get('error', '')}"
    scores = ", ".join(f"{k[4:]} {v:.4f}" for k, v in record.items() if k.startswith("auc_"))
    return (f"  {key:<22} seed {seed}: fit {record['fit_seconds']:.1f} s, "
            f"predict {record['predict_rows_per_second']:,.0f} rows/s, "
            f"peak {record['peak_rss_mb']:.0f} MB (+{record['rss_increment_mb']:.0f}); AUC "
            f"{scores}")


def run_suite(args, print_fn=print, on_record=None):
    """Run the jobs of ``args`` one after another; return (records, markdown).

    ``on_record(records, markdown)`` is called after every job with the report
    so far (marked as partial), so that an interrupted run leaves its numbers.
    """
    started = time.perf_counter()
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = machine_info()
    contenders = selected_contenders(args)
    skipped = []
    runnable = []
    for contender in contenders:
        missing = contender.missing_modules()
        if missing:
            # skipped once, not once per seed
            skipped.append({"contender": contender.key, "dataset": contender.dataset,
                            "seed": None, "status": "not installed",
                            "error": ", ".join(missing) + " cannot be imported "
                                     "(pip install -e \".[bench]\")"})
            print_fn(f"  {contender.key:<22} not installed: {', '.join(missing)}")
        else:
            runnable.append(contender)
    # seed-major order: both data sets are covered by the first seeds, and a
    # change of machine load hits every contender alike
    jobs = [(seed, dataset, contender) for seed in args.seeds for dataset in args.datasets
            for contender in runnable if contender.dataset == dataset]
    runs = {}   # (contender, seed) -> one record per pass, in the jobs' order

    def merged():
        return skipped + [fastest_fit(passes) for passes in runs.values()]

    def report(partial):
        meta = {"command": "python -m benchmarks.run " + shlex.join(args.argv),
                "date": date, "machine": machine, "seeds": args.seeds, "epochs": args.epochs,
                "census_rows": args.census_rows, "coat_rows": args.coat_rows,
                "funnel4_rows": args.funnel4_rows, "fit_passes": args.fit_passes,
                "elapsed_minutes": (time.perf_counter() - started) / 60,
                "partial": partial}
        return render(merged(), meta)

    with tempfile.TemporaryDirectory(prefix="skmtl-bench-") as tmp:
        # absolute: the workers run in the repository root
        log_dir = Path(args.log_dir).resolve() if args.log_dir else Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        n_runs = len(jobs) * args.fit_passes
        done = 0
        for fit_pass in range(1, args.fit_passes + 1):
            for index, (seed, dataset, contender) in enumerate(jobs):
                if index == 0 or (seed, dataset) != jobs[index - 1][:2]:
                    passes = f", pass {fit_pass} of {args.fit_passes}" if args.fit_passes > 1 \
                        else ""
                    print_fn(f"[{dataset}, seed {seed}{passes}]")
                record = run_worker(contender, seed, args, log_dir, fit_pass)
                runs.setdefault((contender.key, seed), []).append(record)
                print_fn(_progress(record))
                done += 1
                if on_record is not None and done < n_runs:
                    on_record(merged(), report(f"{done} of {n_runs} runs"))
    return merged(), report(None)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.argv = argv
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def save(records, markdown):
        args.output.write_text(markdown)
        if args.json:
            args.json.write_text(json.dumps(records, indent=1))

    records, markdown = run_suite(args, on_record=save)
    print()
    print(markdown)
    save(records, markdown)
    print(f"Written to {args.output}")
    if args.figure:
        from .figure import plot

        try:
            plot(records, args.figure)
            print(f"Written to {args.figure}")
        except (ImportError, ValueError) as exc:
            print(f"No figure: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
