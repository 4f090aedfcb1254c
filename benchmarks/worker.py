"""Run one contender on one seed, in a process of its own; JSON in, JSON out.

    python -m benchmarks.worker SPEC.json RESULT.json

The steps, in order: import the contender's packages; load and split the
data; ``prepare`` (timed: ``prep_seconds``); take the memory baseline;
``fit`` (timed: ``fit_seconds``); ``predict`` the test rows at least
``predict_repeats`` times and for at least ``predict_min_seconds`` in all
(``predict_seconds`` is the median of those times); score (funnel4: against
the generator's true probabilities, see :func:`score_funnel`).

Memory. ``peak_rss_mb`` is ``getrusage(RUSAGE_SELF).ru_maxrss``, the peak
resident set of the whole process (imports and data included).
``rss_increment_mb`` is the peak during fit and predict over the resident set
at the baseline: the kernel's high-water mark (``VmHWM``) is reset to the
current resident set after the baseline (``/proc/self/clear_refs``) and read
at the end. Where that reset is not possible it falls back to the growth of
``ru_maxrss`` past the baseline, which can only under-state the increment.
"""

import contextlib
import ctypes
import gc
import importlib
import json
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

MAX_PREDICT_REPEATS = 100


def _status_kb(field):
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmRSS``), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def _release_free_memory():
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_high_water_mark():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def expected_auc(true_proba, score):
    """ROC AUC of ``score`` expected under labels drawn from ``true_proba``.

    Each row counts as a positive with weight ``p`` and as a negative with
    weight ``1 - p``: the AUC over all (positive, negative) pairs weighted by
    their probability, free of the noise of one draw of the labels. (The
    pairs of a row with itself add a tie of weight ``p (1 - p)``, negligible
    beside the ``n**2`` others.)
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    n = len(true_proba)
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    return float(roc_auc_score(labels, np.concatenate([score, score]),
                               sample_weight=np.concatenate([true_proba, 1.0 - true_proba])))


# predictions are clipped to [EPSILON, 1 - EPSILON] in the divergence
EPSILON = 1e-7


def mean_kl_divergence(true_proba, predicted):
    """Mean over rows of KL(Bernoulli(true) || Bernoulli(predicted)), in nats.

    The expected log loss of ``predicted`` under labels drawn from
    ``true_proba``, minus that of the true probabilities: 0 for the truth.
    """
    import numpy as np
    from scipy.special import xlogy

    p = np.asarray(true_proba, dtype=np.float64)
    q = np.clip(np.asarray(predicted, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return float(np.mean(xlogy(p, p) - xlogy(p, q) + xlogy(1.0 - p, 1.0 - p)
                         - xlogy(1.0 - p, 1.0 - q)))


def score_funnel(test_proba, predictions):
    """Each stage's conditional and entire-space probabilities against the true ones.

    Stage ``k`` (1-based): ``auc_cond_k`` / ``kl_cond_k`` score the predicted
    p(stage k | stage k - 1) against the true one, on every test row (reached
    the stage before or not); ``auc_reach_k`` / ``kl_reach_k`` the predicted
    probability of reaching stage k from the impression against the true
    product; ``mean_cond_k`` and ``true_mean_cond_k`` are the means of the
    predicted and true conditional probabilities (calibration).
    """
    import numpy as np

    true_conditional = np.asarray(test_proba, dtype=np.float64)
    true_reach = np.cumprod(true_conditional, axis=1)
    conditional = np.asarray(predictions["conditional"], dtype=np.float64)
    reach = np.asarray(predictions["entire_space"], dtype=np.float64)
    metrics = {}
    for k in range(true_conditional.shape[1]):
        stage = k + 1
        metrics[f"auc_cond_{stage}"] = expected_auc(true_conditional[:, k], conditional[:, k])
        metrics[f"kl_cond_{stage}"] = mean_kl_divergence(true_conditional[:, k],
                                                         conditional[:, k])
        metrics[f"auc_reach_{stage}"] = expected_auc(true_reach[:, k], reach[:, k])
        metrics[f"kl_reach_{stage}"] = mean_kl_divergence(true_reach[:, k], reach[:, k])
        metrics[f"mean_cond_{stage}"] = float(conditional[:, k].mean())
        metrics[f"true_mean_cond_{stage}"] = float(true_conditional[:, k].mean())
    return metrics


def score(dataset, Y_test, predictions, test_proba=None):
    """Per-task AUC and log loss (Census); pCVR AUC, mean and log loss (Coat);
    each stage against the true probabilities ``test_proba`` (funnel4)."""
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    metrics = {}
    if dataset == "funnel4":
        metrics = score_funnel(test_proba, predictions)
    elif dataset == "census":
        for task in Y_test.columns:
            y, p = Y_test[task].to_numpy(), np.asarray(predictions[task], dtype=np.float64)
            metrics[f"auc_{task}"] = float(roc_auc_score(y, p))
            metrics[f"logloss_{task}"] = float(log_loss(y, p, labels=[0, 1]))
    else:
        y = Y_test["conversion"].to_numpy()
        p = np.asarray(predictions["pcvr"], dtype=np.float64)
        metrics["auc_pcvr"] = float(roc_auc_score(y, p))
        metrics["logloss_pcvr"] = float(log_loss(y, p, labels=[0, 1]))
        metrics["mean_pcvr"] = float(p.mean())
        metrics["observed_rate"] = float(y.mean())
    finite = all(np.isfinite(list(metrics.values())))
    return metrics, bool(finite)


def run(spec):
    """Run the job described by ``spec``; return the result record (a dict)."""
    from .contenders import CONTENDERS
    from .data import LOADERS

    contender = CONTENDERS[spec["contender"]]
    record = {"contender": contender.key, "dataset": contender.dataset, "seed": spec["seed"]}
    start = time.perf_counter()
    try:
        for module in contender.requires:
            importlib.import_module(module)
    except ImportError as exc:
        return {**record, "status": "not installed", "error": f"{type(exc).__name__}: {exc}"}
    runner_class = contender.runner_class()
    record["import_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    problem = LOADERS[contender.dataset](spec["seed"], spec.get("n_rows"),
                                         spec.get("download_if_missing", True))
    record["load_seconds"] = time.perf_counter() - start
    record["n_train"], record["n_test"] = len(problem.X_train), len(problem.X_test)

    runner = runner_class({"epochs": spec["epochs"],
                           "predict_batch_size": spec["predict_batch_size"]})
    start = time.perf_counter()
    data = runner.prepare(problem)
    record["prep_seconds"] = time.perf_counter() - start

    _release_free_memory()
    baseline_kb = _status_kb("VmRSS")
    baseline_maxrss_kb = _maxrss_kb()  # the peak so far: the reset below clears it too
    hwm_reset = baseline_kb is not None and _reset_high_water_mark()

    start = time.perf_counter()
    runner.fit(data, spec["seed"])
    record["fit_seconds"] = time.perf_counter() - start

    # at least predict_repeats times and predict_min_seconds in all (a few ms
    # for Coat's 4,640 test rows), at most MAX_PREDICT_REPEATS times
    times = []
    min_repeats = max(1, int(spec["predict_repeats"]))
    min_seconds = float(spec.get("predict_min_seconds", 0.0))
    while len(times) < min_repeats or (sum(times) < min_seconds
                                       and len(times) < MAX_PREDICT_REPEATS):
        start = time.perf_counter()
        predictions = runner.predict(data)
        times.append(time.perf_counter() - start)
    record["predict_seconds"] = statistics.median(times)
    record["predict_repeats"] = len(times)
    record["predict_rows_per_second"] = len(problem.X_test) / record["predict_seconds"]

    peak_kb = max(_maxrss_kb(), baseline_maxrss_kb)
    hwm_kb = _status_kb("VmHWM") if hwm_reset else None
    record["peak_rss_mb"] = peak_kb / 1024
    record["baseline_rss_mb"] = (baseline_kb if baseline_kb is not None
                                 else baseline_maxrss_kb) / 1024
    if hwm_kb is not None:
        record["rss_increment_mb"] = max(0, hwm_kb - baseline_kb) / 1024
        record["memory_method"] = "VmHWM reset"
    else:
        record["rss_increment_mb"] = max(0, peak_kb - baseline_maxrss_kb) / 1024
        record["memory_method"] = "ru_maxrss growth"

    metrics, finite = score(contender.dataset, problem.Y_test, predictions, problem.test_proba)
    record.update(metrics)
    record["epochs_run"] = runner.epochs_run
    record["notes"] = list(runner.notes)
    if "torch" in sys.modules:
        record["torch_threads"] = sys.modules["torch"].get_num_threads()
    record["status"] = "ok" if finite else "failed"
    if not finite:
        record["error"] = "non-finite metric"
    return record


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    try:
        record = run(spec)
    except Exception as exc:  # reported in the table, not fatal for the suite
        traceback.print_exc()
        record = {"contender": spec["contender"], "seed": spec["seed"], "status": "failed",
                  "error": f"{type(exc).__name__}: {exc}"}
    Path(result_path).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
