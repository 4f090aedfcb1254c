"""skmtl's scale-out paths side by side with the in-memory, exact-vocabulary fit.

    SKMTL_DATA=../shared/data python -m benchmarks.scale_out [--seeds 0 1 2] \\
        [--buckets 16 64 256 1024] [--census-rows N] [--coat-rows N]
    python -m benchmarks.scale_out --streaming 2000000 20000000 [--epochs 1] [--folder DIR]
    SKMTL_DATA=../shared/data python -m benchmarks.scale_out --dask [--census-rows N]
    SKMTL_DATA=../shared/data python -m benchmarks.scale_out --ddp [--census-rows N]
    python -m benchmarks.scale_out --embeddings [--rows N] [--epochs 2] [--seeds 0 1 2]

Run from the repository root. Five sections:

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

streaming (``--streaming N ...``)
    ``skmtl.parquet.fit_parquet`` on a folder of Parquet files of N
    synthetic rows (``benchmarks.speed.make_frame``: 30 categorical columns
    of 10 to 10,000 levels, the 10,000-level "ids" hashed into 16,384
    buckets, the others with their vocabularies given; 10 numeric columns;
    two tasks), written in chunks of 500,000 rows, against ``fit`` on the
    same rows read into memory (the smallest N only; both with
    ``--epochs`` epochs, ``fit`` without early stopping, at its cosine
    schedule and at the constant learning rate ``partial_fit`` uses). Each
    fit runs in its own process: peak resident memory during the fit
    (sampled every 5 ms), rows per second, and test ROC AUC of task ``a``
    (the one that depends on the features) on 200,000 fresh rows.

dask (``--dask``)
    ``GridSearchCV(MMOEClassifier(random_state=0), 4 candidates, cv=3)`` on
    Census-Income (seed 0's training part, ``--census-rows`` of it) under
    ``joblib.parallel_backend("dask")`` with a ``LocalCluster`` of 2 worker
    processes (one thread each), against the default backend with
    ``n_jobs=None`` (one process) and with ``n_jobs=2`` (loky): wall time,
    best parameters and whether every mean test score is the same.

ddp (``--ddp``)
    ``MMOEClassifier(random_state=0, early_stopping=False)`` (4 epochs) on
    Census-Income (seed 0's training part) fitted by 2 processes under
    ``torch.distributed`` (gloo, one torch thread each, each rank the rows
    ``rank::2``), against one process with 1 and with 2 torch threads: test
    ROC AUC of both tasks (rank 0's model; every rank ends with the same)
    and the mean seconds per epoch. Each run in fresh processes.

embeddings (``--embeddings``)
    Dense against sparse updates of the embedding table
    (``sparse_embeddings=False`` / ``True``) as the table grows, and the
    ablation of sparse steps that drop the steps a row misses ("lazy" Adam)
    instead of catching them up: synthetic interactions
    (``make_interactions``: ``--rows`` training rows and a fifth as many test
    rows; a user id of Zipf frequencies, an item id of 20,000 values, three
    numbers; two tasks from latent factors of user and item) with 10,000
    users (exact vocabulary), 10,000,000 users (exact vocabulary: the users
    seen in the training rows) and 10,000,000 users hashed into 4,194,304
    buckets. ``MMOEClassifier(max_epochs=--epochs, early_stopping=False)``,
    each fit in its own process: fit seconds, peak resident memory during
    the fit, test ROC AUC of both tasks, and which of dense and sparse
    ``"auto"`` picks.
"""

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

from skmtl import ESMMClassifier, MMOEClassifier

from .cli import positive_int
from .data import CENSUS_TASKS, load_census, load_coat
from .report import _table, machine_info, mean_std, script_header
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


# -- streaming ---------------------------------------------------------------------------

STREAM_CHUNK_ROWS = 500_000
ID_BUCKETS = 16_384
TEST_ROWS = 200_000


def _streaming_estimator(epochs, schedule="constant", early_stopping=False):
    from skmtl import MMOEClassifier

    from .speed import CARDINALITIES

    ids = [f"cat_{j}" for j in range(30) if CARDINALITIES[j % len(CARDINALITIES)] == 10_000]
    categories = {f"cat_{j}": [f"v{i}" for i in range(CARDINALITIES[j % len(CARDINALITIES)])]
                  for j in range(30) if f"cat_{j}" not in ids}
    return MMOEClassifier(max_epochs=epochs, categories=categories,
                          hash_buckets=dict.fromkeys(ids, ID_BUCKETS),
                          learning_rate_schedule=schedule, early_stopping=early_stopping,
                          random_state=0)


def write_folder(folder, n_rows):
    """``n_rows`` rows of ``make_frame`` as Parquet files of 500,000 rows each.

    Written into a temporary folder renamed to ``folder`` once complete, so
    that an interrupted write leaves no folder a later run would take as
    whole.
    """
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .speed import make_frame

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for k, start in enumerate(range(0, n_rows, STREAM_CHUNK_ROWS)):
        X, Y = make_frame(min(STREAM_CHUNK_ROWS, n_rows - start), seed=k + 1)
        table = pa.Table.from_pandas(X.assign(a=Y["a"], b=Y["b"]), preserve_index=False)
        pq.write_table(table, partial / f"part-{k:04d}.parquet")
    partial.rename(folder)


def _folder_rows(folder):
    """The number of rows of the Parquet files in ``folder``."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in folder.glob("*.parquet"))


def _test_auc(model):
    from sklearn.metrics import roc_auc_score

    from .speed import make_frame

    X, Y = make_frame(TEST_ROWS, strings=True, seed=0)
    return float(roc_auc_score(Y["a"], model.predict_proba(X)[0][:, 1]))


def measure_streamed(folder, epochs):
    from skmtl.parquet import fit_parquet

    from .speed import PeakMemory

    model = _streaming_estimator(epochs)
    start = time.perf_counter()
    with PeakMemory() as memory:
        fit_parquet(model, folder, ["a", "b"], epochs=epochs, random_state=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_increase": memory.increase, "auc_a": _test_auc(model)}


def measure_in_memory(folder, epochs, schedule):
    import pandas as pd

    from skmtl.parquet import iter_frames

    from .speed import PeakMemory

    frame = pd.concat(iter_frames(folder, batch_rows=STREAM_CHUNK_ROWS), ignore_index=True)
    X, Y = frame.drop(columns=["a", "b"]), frame[["a", "b"]]
    del frame
    model = _streaming_estimator(epochs, schedule)
    start = time.perf_counter()
    with PeakMemory() as memory:
        model.fit(X, Y)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_increase": memory.increase, "auc_a": _test_auc(model)}


def _in_child(function, **kwargs):
    code = ("import json, sys; from benchmarks import scale_out; "
            f"print(json.dumps(scale_out.{function}(**json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def streaming(sizes, epochs, folder):
    """Records of the streamed fits at every size and the in-memory fits at the smallest."""
    records = []
    for n_rows in sorted(sizes):
        path = Path(folder) / f"rows-{n_rows}"
        if path.exists() and _folder_rows(path) != n_rows:
            raise SystemExit(f"{path} holds {_folder_rows(path):,} rows, not {n_rows:,}; "
                             "delete it (or give another --folder) to have it written anew.")
        if not path.exists():
            write_folder(path, n_rows)
        runs = [("streamed (fit_parquet)", "measure_streamed", {})]
        if n_rows == min(sizes):
            runs += [(f"in memory (fit, {schedule} schedule)", "measure_in_memory",
                      {"schedule": schedule}) for schedule in ("cosine", "constant")]
        for label, function, kwargs in runs:
            result = _in_child(function, folder=str(path), epochs=epochs, **kwargs)
            records.append({"rows": n_rows, "contender": label, **result,
                            "rows_per_second": n_rows * epochs / result["seconds"]})
            print(f"  {n_rows:,} rows {label}: {records[-1]}", file=sys.stderr, flush=True)
    return records


def streaming_report(records, epochs):
    mib = 1 / 2 ** 20
    reference = next((r for r in records if r["contender"].startswith("in memory")
                      and "cosine" in r["contender"]), None)
    rows = [[f"{r['rows']:,}", r["contender"], f"{r['peak_increase'] * mib:,.0f}",
             f"{r['rows_per_second']:,.0f}",
             "–" if reference is None else
             f"{r['rows_per_second'] / reference['rows_per_second']:.2f}",
             f"{r['auc_a']:.4f}",
             "–" if reference is None else f"{r['auc_a'] - reference['auc_a']:+.4f}"]
            for r in records]
    header = ["rows", "contender", "peak RSS increase (MiB)", "rows/s", "× in memory",
              "test AUC a", "Δ AUC"]
    return [f"### Streaming from Parquet ({epochs} epoch(s))", "", *_table(header, rows), ""]


# -- dask ---------------------------------------------------------------------------------

DASK_GRID = {"n_experts": [2, 4], "learning_rate": [3e-3, 6e-3]}
DASK_FOLDS = 3


def dask_search(census_rows):
    """Records of the same search on the default backend, on loky and on Dask workers."""
    import joblib
    from distributed import Client, LocalCluster
    from sklearn.model_selection import GridSearchCV

    from skmtl import MMOEClassifier

    problem = load_census(0, census_rows)

    def search(n_jobs=None):
        start = time.perf_counter()
        result = GridSearchCV(MMOEClassifier(random_state=0), DASK_GRID, cv=DASK_FOLDS,
                              n_jobs=n_jobs).fit(problem.X_train, problem.Y_train)
        return result, time.perf_counter() - start

    runs = {"default backend (n_jobs=None)": search(),
            "loky, n_jobs=2": search(n_jobs=2)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            runs["dask, LocalCluster of 2 processes"] = search()
    reference = runs["default backend (n_jobs=None)"][0]
    return [{"contender": label, "seconds": seconds, "best_params": result.best_params_,
             "best_score": float(result.best_score_),
             "same_scores": bool(np.allclose(result.cv_results_["mean_test_score"],
                                             reference.cv_results_["mean_test_score"]))}
            for label, (result, seconds) in runs.items()]


def dask_report(records, n_rows):
    rows = [[r["contender"], f"{r['seconds']:.1f}",
             f"{r['seconds'] / records[0]['seconds']:.2f}", str(r["best_params"]),
             f"{r['best_score']:.4f}", "yes" if r["same_scores"] else "no"] for r in records]
    header = ["backend", "wall s", "× default", "best parameters", "best score",
              "same scores as default"]
    n_candidates = int(np.prod([len(values) for values in DASK_GRID.values()]))
    return [f"### GridSearchCV on Dask ({n_rows:,} Census training rows, {n_candidates} "
            f"candidates × {DASK_FOLDS} folds)",
            "", *_table(header, rows), ""]


# -- ddp ------------------------------------------------------------------------------------


def _ddp_fit(rank, world_size, census_rows, threads, port, out):
    """Fit the shard of ``rank`` (every row for one process); rank 0 writes its numbers."""
    import datetime
    import os

    import torch
    from torch import distributed as dist

    from skmtl import MMOEClassifier

    torch.set_num_threads(threads)
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=10))
    problem = load_census(0, census_rows)
    X, Y = problem.X_train.iloc[rank::world_size], problem.Y_train.iloc[rank::world_size]
    model = MMOEClassifier(random_state=0, early_stopping=False)
    start = time.perf_counter()
    model.fit(X, Y)
    seconds = time.perf_counter() - start
    if rank == 0:
        result = {"seconds": seconds, "n_iter": model.n_iter_, **_aucs(problem, model),
                  "seconds_per_epoch": float(np.mean(model.history_[:, "dur"]))}
        Path(out).write_text(json.dumps(result))
    if world_size > 1:
        dist.destroy_process_group()


def ddp(census_rows):
    """Records of the 2-process fit and the 1-process fits with 1 and 2 threads."""
    import socket
    import tempfile

    import torch.multiprocessing as mp

    records = []
    for label, world_size, threads in (("1 process, 2 threads", 1, 2),
                                       ("1 process, 1 thread", 1, 1),
                                       ("2 processes (gloo), 1 thread each", 2, 1)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as folder:
            out = str(Path(folder) / "result.json")
            mp.start_processes(_ddp_fit, args=(world_size, census_rows, threads, port, out),
                               nprocs=world_size, start_method="spawn")
            records.append({"contender": label, **json.loads(Path(out).read_text())})
        print(f"  {label}: {records[-1]}", file=sys.stderr, flush=True)
    return records


def ddp_report(records):
    reference = records[0]
    rows = [[r["contender"], f"{r['auc_income_50k']:.4f}", f"{r['auc_never_married']:.4f}",
             f"{r['auc_income_50k'] - reference['auc_income_50k']:+.4f}",
             f"{r['seconds_per_epoch']:.2f}", f"{r['seconds']:.1f}", str(r["n_iter"])]
            for r in records]
    header = ["run", "AUC income_50k", "AUC never_married", "Δ income", "s/epoch", "fit s",
              "epochs"]
    return ["### Data-parallel fit under torch.distributed (Census-Income)", "",
            *_table(header, rows), ""]


# -- dense and sparse embedding updates -------------------------------------------------

ITEMS = 20_000
FACTORS = 8
# distinct latent factors of the users (a user's are those of its id modulo this)
USER_FACTOR_ROWS = 2 ** 16
EMBEDDING_TABLES = (("10,000 users", 10_000, None),
                    ("10,000,000 users, exact vocabulary", 10_000_000, None),
                    ("10,000,000 users hashed into 4,194,304 buckets", 10_000_000, 2 ** 22))


def make_interactions(n_rows, n_users, seed):
    """``(X, Y)``: user and item ids, three numbers, tasks ``click`` and ``like``.

    Users come with Zipf frequencies (exponent 1.1: a few frequent, most seen
    once or never; 1,000,000 rows hold about 340,000 users of 10,000,000),
    items uniformly. The tasks' logits are the dot product of the
    user's and the item's latent factors, fixed across seeds (the test rows
    share them), plus the numbers.
    """
    import pandas as pd

    truth = np.random.default_rng(12345)
    user_factors = truth.normal(0, 1, (USER_FACTOR_ROWS, FACTORS)).astype(np.float32)
    item_factors = truth.normal(0, 1, (ITEMS, FACTORS)).astype(np.float32)
    rng = np.random.default_rng(seed)
    users = (rng.zipf(1.1, n_rows) - 1) % n_users
    items = rng.integers(0, ITEMS, n_rows)
    numbers = rng.normal(0, 1, (n_rows, 3)).astype(np.float32)
    u, v = user_factors[users % USER_FACTOR_ROWS], item_factors[items]
    affinity = (u * v).sum(axis=1) / np.sqrt(FACTORS)
    logits = {"click": 1.5 * affinity + 0.5 * numbers[:, 0] - 1.0,
              "like": u[:, 0] + v[:, 1] + 0.5 * affinity - numbers[:, 1] - 1.5}
    X = pd.DataFrame({"user": users, "item": items, "x0": numbers[:, 0], "x1": numbers[:, 1],
                      "x2": numbers[:, 2]})
    Y = pd.DataFrame({task: (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
                      for task, logit in logits.items()})
    return X, Y


def measure_embedding_updates(n_rows, n_users, buckets, updates, epochs, seed):
    from sklearn.metrics import roc_auc_score

    from .speed import PeakMemory

    from skmtl import _optim

    sparse = updates != "dense"
    # the ablation: sparse steps that drop the steps a row misses, as "lazy" Adam
    # (TensorFlow's LazyAdam, torch.optim.SparseAdam) does
    steps = (mock.patch.object(_optim, "_catch_up", lambda *args, **kwargs: None)
             if updates == "lazy" else contextlib.nullcontext())
    X, Y = make_interactions(n_rows, n_users, seed)
    X_test, Y_test = make_interactions(max(n_rows // 5, 1_000), n_users, seed + 1000)
    model = MMOEClassifier(max_epochs=epochs, early_stopping=False, random_state=seed,
                           categorical_features=["user", "item"], sparse_embeddings=sparse,
                           hash_buckets=None if buckets is None else {"user": buckets})
    start = time.perf_counter()
    with PeakMemory() as memory, steps:
        model.fit(X, Y)
    seconds = time.perf_counter() - start
    proba = model.predict_proba(X_test)
    return {"seconds": seconds, "peak_increase": memory.increase,
            "table_rows": int(model.net_.module_.embedding.embedding.weight.shape[0]),
            "auto_sparse": bool(model.set_params(sparse_embeddings="auto")._sparse_embeddings(
                model.net_.module_)),
            **{f"auc_{task}": roc_auc_score(Y_test[task], p[:, 1])
               for task, p in zip(Y.columns, proba)}}


EMBEDDING_UPDATES = {"dense": "dense", "sparse": "sparse",
                     "lazy": "sparse, lazy (without catching up)"}


def embedding_updates(seeds, n_rows, epochs):
    records = []
    for seed in seeds:
        for label, n_users, buckets in EMBEDDING_TABLES:
            for updates in EMBEDDING_UPDATES:
                result = _in_child("measure_embedding_updates", n_rows=n_rows, n_users=n_users,
                                   buckets=buckets, updates=updates, epochs=epochs, seed=seed)
                records.append({"table": label, "seed": seed, "updates": updates, **result})
                print(f"  {label} seed {seed} {updates}: {records[-1]}",
                      file=sys.stderr, flush=True)
    return records


def embedding_updates_report(records, n_rows, epochs):
    mib = 1 / 2 ** 20
    header = ["embedding table", "rows of the table", "updates", "fit s", "fit ×",
              "peak RSS increase (MiB)", "AUC click", "AUC like", "Δ AUC click",
              "Δ AUC like", "auto picks"]
    rows = []
    for label, _, _ in EMBEDDING_TABLES:
        chosen = [r for r in records if r["table"] == label]
        if not chosen:
            continue
        dense = {r["seed"]: r for r in chosen if r["updates"] == "dense"}
        for updates, name in EMBEDDING_UPDATES.items():
            runs = [r for r in chosen if r["updates"] == updates]
            rows.append([
                label, f"{int(np.mean([r['table_rows'] for r in runs])):,}", name,
                mean_std(runs, "seconds", 1),
                f"{np.mean([r['seconds'] / dense[r['seed']]['seconds'] for r in runs]):.2f}",
                f"{np.mean([r['peak_increase'] for r in runs]) * mib:,.0f}",
                mean_std(runs, "auc_click", 4), mean_std(runs, "auc_like", 4),
                *(f"{np.mean([r[m] - dense[r['seed']][m] for r in runs]):+.4f}"
                  for m in ("auc_click", "auc_like")),
                "sparse" if runs[0]["auto_sparse"] else "dense"])
    return [f"### Dense and sparse embedding updates ({n_rows:,} training rows, {epochs} "
            "epoch(s), MMOEClassifier)", "", *_table(header, rows), ""]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--buckets", type=positive_int, nargs="+", default=list(DEFAULT_BUCKETS))
    parser.add_argument("--census-rows", type=positive_int, default=None)
    parser.add_argument("--coat-rows", type=positive_int, default=None)
    parser.add_argument("--streaming", type=positive_int, nargs="+", default=None,
                        help="run the streaming section at these numbers of rows instead")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs of the streaming fits (default 1) and of the embeddings "
                             "section's (default 2)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/skmtl-streaming"),
                        help="where the streaming section writes its Parquet folders")
    parser.add_argument("--dask", action="store_true",
                        help="run the Dask search section instead")
    parser.add_argument("--ddp", action="store_true",
                        help="run the torch.distributed section instead")
    parser.add_argument("--embeddings", action="store_true",
                        help="run the dense-against-sparse embedding updates section instead")
    parser.add_argument("--rows", type=positive_int, default=1_000_000,
                        help="training rows of the embeddings section")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    started = time.perf_counter()
    machine = machine_info()
    if args.embeddings:
        title = "dense and sparse embedding updates"
        epochs = args.epochs or 2
        tables = embedding_updates_report(embedding_updates(args.seeds, args.rows, epochs),
                                          args.rows, epochs)
        note = (f"; mean ± std over seeds {' '.join(map(str, args.seeds))}; fit × and Δ: "
                "against dense updates of the same seed")
    elif args.ddp:
        title = "data-parallel fit"
        tables = ddp_report(ddp(args.census_rows))
        note = ""
    elif args.dask:
        title = "searches on Dask"
        records = dask_search(args.census_rows)
        tables = dask_report(records, len(load_census(0, args.census_rows).X_train))
        note = ""
    elif args.streaming:
        title = "streaming from Parquet"
        epochs = args.epochs or 1
        tables = streaming_report(streaming(args.streaming, epochs, args.folder), epochs)
        note = ""
    else:
        title = "hashed against exact vocabularies"
        tables = report(hashing(args.seeds, args.buckets, args.census_rows, args.coat_rows),
                        args.buckets)
        note = (f"; mean ± std over seeds {' '.join(map(str, args.seeds))}; Δ: against the "
                "exact vocabularies of the same seed")
    print("\n".join(script_header(f"skmtl scale-out: {title}",
                                   f"python -m benchmarks.scale_out {shlex.join(argv)}",
                                   machine, started, note) + tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
