"""skmtl's scale-out paths side by side with the in-memory, exact-vocabulary fit.

    SKMTL_DATA=../shared/data python -m benchmarks.scale_out [--seeds 0 1 2] \\
        [--buckets 16 64 256 1024] [--census-rows N] [--coat-rows N]

Run from the repository root. One section so far:

hashing
    ``hash_buckets=n`` (every categorical column hashed into ``n`` buckets)
    against the exact vocabularies learned in ``fit``:
    ``MMOEClassifier`` on Census-Income (test ROC AUC of both tasks) and
    ``ESMMClassifier`` on Coat (ROC AUC of p(conversion | click) on the
    random-exposure ratings), each at its defaults with
    ``random_state=seed``. Census's categorical columns have 2-51 levels,
    Coat's ids 290 users and 300 items, so a few buckets force collisions
    and 1,024 almost none.

Mean ± standard deviation over the seeds, and the change of each AUC
against the exact vocabularies of the same seed.
"""

import argparse
import shlex
import sys
import time

import numpy as np

from skmtl import ESMMClassifier, MMOEClassifier

from .data import CENSUS_TASKS, load_census, load_coat
from .report import _table, machine_info, mean_std
from .worker import score

DEFAULT_BUCKETS = (16, 64, 256, 1024)


def _aucs(problem, model):
    """Test AUCs of ``model``: both Census tasks, or Coat's pCVR."""
    if problem.name == "census":
        proba = model.predict_proba(problem.X_test)
        metrics, _ = score("census", problem.Y_test,
                           {task: p[:, 1] for task, p in zip(CENSUS_TASKS, proba)})
        return {f"auc_{task}": metrics[f"auc_{task}"] for task in CENSUS_TASKS}
    pcvr = model.predict_conditional_proba(problem.X_test)[1][:, 1]
    metrics, _ = score("coat", problem.Y_test, {"pcvr": pcvr})
    return {"auc_pcvr": metrics["auc_pcvr"]}


def hashing(seeds, buckets, census_rows=None, coat_rows=None):
    """Records of every (data set, seed, bucket count or None for exact) fit."""
    records = []
    for seed in seeds:
        for problem, estimator in ((load_census(seed, census_rows), MMOEClassifier),
                                   (load_coat(seed, coat_rows), ESMMClassifier)):
            for n_buckets in (None, *buckets):
                model = estimator(random_state=seed, hash_buckets=n_buckets)
                start = time.perf_counter()
                model.fit(problem.X_train, problem.Y_train)
                records.append({"dataset": problem.name, "seed": seed, "buckets": n_buckets,
                                "fit_seconds": time.perf_counter() - start,
                                "n_iter": model.n_iter_, **_aucs(problem, model)})
                print(f"  {problem.name:7} seed {seed} buckets {n_buckets}: "
                      f"{records[-1]}", file=sys.stderr, flush=True)
    return records


def report(records, buckets):
    """Markdown tables, one per data set."""
    lines = []
    for dataset, metrics in (("census", [f"auc_{t}" for t in CENSUS_TASKS]),
                             ("coat", ["auc_pcvr"])):
        rows = [r for r in records if r["dataset"] == dataset]
        if not rows:
            continue
        exact = {r["seed"]: r for r in rows if r["buckets"] is None}
        header = (["hash_buckets"] + [m.replace("auc_", "AUC ") for m in metrics]
                  + [f"Δ {m.replace('auc_', '')}" for m in metrics] + ["fit s"])
        table = []
        for n_buckets in (None, *buckets):
            chosen = [r for r in rows if r["buckets"] == n_buckets]
            deltas = [{m: r[m] - exact[r["seed"]][m] for m in metrics} for r in chosen]
            table.append(["exact vocabularies" if n_buckets is None else f"{n_buckets:,}"]
                         + [mean_std(chosen, m, 4) for m in metrics]
                         + [f"{np.mean([d[m] for d in deltas]):+.4f}" for m in metrics]
                         + [mean_std(chosen, "fit_seconds", 2)])
        title = ("Census-Income: MMOEClassifier" if dataset == "census"
                 else "Coat: ESMMClassifier (pCVR on the random-exposure ratings)")
        lines += [f"### {title}", "", *_table(header, table), ""]
    return lines


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--buckets", type=int, nargs="+", default=list(DEFAULT_BUCKETS))
    parser.add_argument("--census-rows", type=int, default=None)
    parser.add_argument("--coat-rows", type=int, default=None)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    started = time.perf_counter()
    machine = machine_info()
    versions = machine["versions"]
    records = hashing(args.seeds, args.buckets, args.census_rows, args.coat_rows)
    print("\n".join([
        "# skmtl scale-out: hashed against exact vocabularies", "",
        f"- command: `python -m benchmarks.scale_out {shlex.join(argv)}`",
        f"- machine: {machine['cpu']}, {machine['cores']} cores; torch {versions['torch']}, "
        f"skmtl {versions['skmtl']} (commit {versions.get('skmtl commit', '?')})",
        f"- took {(time.perf_counter() - started) / 60:.1f} min; mean ± std over seeds "
        f"{' '.join(map(str, args.seeds))}; Δ: against the exact vocabularies of the same seed",
        "", *report(records, args.buckets)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
