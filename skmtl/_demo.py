"""The demo: MMoE on Census-Income and ESMM on Coat, against single-task baselines.

MMoE is also compared with gradient boosting (``HistGradientBoostingClassifier``,
one per task), the comparison a new user makes first, and with the rest of the
model family at their defaults (Shared-Bottom, OMoE, PLE on Census; AITM
and ESMM with DCMT's correction of self-selection beside ESMM on Coat). Then
the MMoE model is exported to ONNX (with the ``onnx`` extra) and checked and
timed in onnxruntime.

Run it with ``python -m skmtl demo``. Where the real data cannot be had
(neither in the data home nor downloadable) it says so and uses the synthetic
generators of :mod:`skmtl.datasets` instead.
"""

import os
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from . import (AITMClassifier, ESMMClassifier, MMOEClassifier, OMOEClassifier, PLEClassifier,
               SharedBottomClassifier)
from .datasets import (fetch_census_income, fetch_coat, get_data_home, make_entire_space,
                       make_multitask)


def run_demo(output_dir="skmtl-demo-output", data_home=None, download=True, random_state=0,
             print_fn=print):
    """Fit both models, print the result tables and save the plots.

    Parameters
    ----------
    output_dir : str or path-like
        Folder for the plots (created if needed).
    data_home : str, optional
        Where the real data sets are; see :func:`skmtl.datasets.get_data_home`.
    download : bool
        Download missing data sets; if False, use synthetic data instead.
    random_state : int
    print_fn : callable
        Receives every line of the report.

    Returns
    -------
    results : dict
        ``{"mmoe": [...rows...], "family": [...rows...], "esmm": [...rows...],
        "serving": {...} or None, "plots": [paths]}``.
    """
    output_dir = Path(output_dir).resolve()
    home = get_data_home(data_home)
    print_fn(f"skmtl demo — data home: {home}")
    if not os.path.isdir(home):
        given = "--data-home" if data_home is not None else (
            "SKMTL_DATA" if os.environ.get("SKMTL_DATA") else None)
        state = "is not a folder" if os.path.exists(home) else "does not exist"
        print_fn(f"({home} {state}{f', though {given} names it' if given else ''}: "
                 "check the path, or let the demo download the data sets there.)")
    load = dict(data_home=data_home, download_if_missing=download)
    mmoe_rows, family_rows, mmoe_curves, (mmoe, X_test) = _mmoe_on_census(load, random_state,
                                                                         print_fn)
    esmm_rows, esmm_curves = _esmm_on_coat(load, random_state, print_fn)
    serving = _serve_with_onnx(mmoe, X_test, output_dir, print_fn)
    plots = _save_plots(output_dir, mmoe_curves + esmm_curves, print_fn)
    return {"mmoe": mmoe_rows, "family": family_rows, "esmm": esmm_rows, "serving": serving,
            "plots": plots}


def _load(fetch, fallback, what, print_fn, load):
    try:
        return fetch(**load), True
    except OSError as exc:
        print_fn(f"\n{what} is not available ({exc})\n-> using synthetic data instead.")
        return fallback(), False


def _mmoe_on_census(load, random_state, print_fn):
    bunch, real = _load(
        lambda **load: fetch_census_income(subset="test", **load),
        lambda: make_multitask(50_000, n_features=12, n_tasks=2, task_correlation=0.5,
                               n_categorical=4, random_state=random_state),
        "Census-Income", print_fn, load)
    title = ("Census-Income (KDD) test file, 80/20 split" if real
             else "Synthetic multi-task data (task correlation 0.5)")
    print_fn(f"\n== MMoE: {title} — {bunch.data.shape[0]:,} rows, "
             f"{bunch.data.shape[1]} features ==")
    X_train, X_test, Y_train, Y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.2, random_state=random_state)

    mmoe, mmoe_seconds = _timed_fit(MMOEClassifier(random_state=random_state), X_train, Y_train)
    proba = mmoe.predict_proba(X_test)
    rows, curves = [], []
    boosting_seconds = 0.0
    for t, task in enumerate(mmoe.task_names_):
        single, single_seconds = _timed_fit(MMOEClassifier(random_state=random_state),
                                            X_train, Y_train[task])
        single_proba = single.predict_proba(X_test)
        boosting, seconds = _timed_fit(HistGradientBoostingClassifier(random_state=random_state),
                                       X_train, Y_train[task])
        boosting_seconds += seconds
        boosting_proba = boosting.predict_proba(X_test)
        y = Y_test[task].to_numpy()
        rows.append({
            "task": task, "positive rate": y.mean(),
            "MMoE AUC": roc_auc_score(y, proba[t][:, 1]),
            "single-task AUC": roc_auc_score(y, single_proba[:, 1]),
            "boosting AUC": roc_auc_score(y, boosting_proba[:, 1]),
            "MMoE log loss": log_loss(y, proba[t]),
            "single-task log loss": log_loss(y, single_proba),
            "boosting log loss": log_loss(y, boosting_proba),
        })
        curves.append(_curves(f"mmoe_{task}", f"MMoE — {task}", mmoe, task, y,
                              {"MMoE": proba[t][:, 1], "single-task": single_proba[:, 1],
                               "gradient boosting": boosting_proba[:, 1]}))
    print_fn(f"MMOEClassifier(): {mmoe_seconds:.1f} s for both tasks, {mmoe.n_iter_} epochs; "
             f"gradient boosting: {boosting_seconds:.1f} s for both\n(single-task: the same "
             "network, one task at a time; boosting: HistGradientBoostingClassifier() per task)")
    _print_table(rows, print_fn)
    family = _family_on_census(mmoe, mmoe_seconds, X_train, Y_train, X_test, Y_test,
                               random_state, print_fn)
    return rows, family, curves, (mmoe, X_test)


def _family_on_census(mmoe, mmoe_seconds, X_train, Y_train, X_test, Y_test, random_state,
                      print_fn):
    """Every multi-task model of the package at its defaults, on the same split."""
    rows = []
    for model, seconds in [(mmoe, mmoe_seconds)] + [
            _timed_fit(cls(random_state=random_state), X_train, Y_train)
            for cls in (PLEClassifier, OMOEClassifier, SharedBottomClassifier)]:
        row = {"model": f"{type(model).__name__}()"}
        for task, proba in zip(model.task_names_, model.predict_proba(X_test)):
            row[f"{task} AUC"] = roc_auc_score(Y_test[task], proba[:, 1])
        row["fit s"] = seconds
        row["epochs"] = model.n_iter_
        rows.append(row)
    print_fn("\nThe model family at its defaults, same split (swap one for another in a "
             "GridSearchCV to choose):")
    _print_table(rows, print_fn)
    return rows


def _esmm_on_coat(load, random_state, print_fn):
    bunch, real = _load(
        fetch_coat,
        lambda: make_entire_space(60_000, random_state=random_state),
        "Coat", print_fn, load)
    stages = ["click", "conversion"]
    if real:
        X_train, Y_train = bunch.data, bunch.target[stages]
        # Random-exposure ratings: conversion judged over the whole space.
        X_test, y_test = bunch.test_data, bunch.test_target["conversion"].to_numpy()
        title = ("Coat — self-selected ratings as clicks, rating >= 4 as conversions; "
                 "judged on random-exposure ratings")
    else:
        X_train, X_test, Y_train, _, _, cvr_test = train_test_split(
            bunch.data, bunch.target[stages], bunch.conversion_proba, test_size=0.3,
            random_state=random_state)
        # The true conversion propensity of every held-out impression, clicked or not.
        y_test = (np.random.default_rng(random_state).random(len(cvr_test)) < cvr_test)
        y_test = y_test.astype(int)
        title = "Synthetic impressions -> clicks -> conversions (selection bias 1.0)"
    print_fn(f"\n== ESMM: {title} — {len(X_train):,} impressions, "
             f"{int(Y_train['click'].sum()):,} clicks ==")

    esmm, esmm_seconds = _timed_fit(ESMMClassifier(random_state=random_state), X_train, Y_train)
    esmm_cvr = esmm.predict_conditional_proba(X_test)[1][:, 1]
    aitm, aitm_seconds = _timed_fit(AITMClassifier(random_state=random_state), X_train, Y_train)
    aitm_cvr = aitm.predict_conditional_proba(X_test)[1][:, 1]
    # users rate what they like: DCMT corrects pCVR for that self-selection
    dcmt, dcmt_seconds = _timed_fit(
        ESMMClassifier(counterfactual="dcmt", counterfactual_weight=1.0,
                       random_state=random_state), X_train, Y_train)
    dcmt_cvr = dcmt.predict_conditional_proba(X_test)[1][:, 1]
    clicked = Y_train["click"].to_numpy() == 1
    naive, naive_seconds = _timed_fit(MMOEClassifier(random_state=random_state),
                                      X_train[clicked], Y_train["conversion"][clicked])
    naive_cvr = naive.predict_proba(X_test)[:, 1]
    contenders = [  # name in the table, short name, pCVR, fit seconds
        ("ESMMClassifier, all impressions", "ESMM", esmm_cvr, esmm_seconds),
        ("ESMMClassifier(counterfactual='dcmt', counterfactual_weight=1)", "ESMM with DCMT",
         dcmt_cvr, dcmt_seconds),
        ("AITMClassifier, all impressions", "AITM", aitm_cvr, aitm_seconds),
        ("single-task, clicked rows only", "single-task", naive_cvr, naive_seconds)]
    rows = [
        {"model": name, "pCVR AUC": roc_auc_score(y_test, cvr), "mean pCVR": cvr.mean(),
         "observed rate": y_test.mean(), "log loss": log_loss(y_test, cvr), "fit s": seconds}
        for name, _, cvr, seconds in contenders]
    print_fn(f"ESMMClassifier(): {esmm.n_iter_} epochs; with DCMT: {dcmt.n_iter_}; "
             f"AITMClassifier(): {aitm.n_iter_}")
    _print_table(rows, print_fn)
    gaps = ", ".join(f"{short} {row['mean pCVR'] - row['observed rate']:+.3f}"
                     for (_, short, _, _), row in zip(contenders, rows))
    print_fn(f"Mean pCVR minus the observed rate: {gaps}. AUC ranks the test items; the mean "
             "and the log loss show how well each model's probabilities match the conversions "
             "of items shown at random.")
    curves = [_curves("esmm_conversion", "ESMM — p(conversion | click)", esmm, "conversion",
                      y_test, {"ESMM": esmm_cvr, "ESMM, DCMT": dcmt_cvr, "AITM": aitm_cvr,
                               "clicked rows only": naive_cvr})]
    # calibration of pCVR where every item was exposed at random
    curves[0]["calibration"] = (X_test, y_test, [
        (esmm, dict(task="conversion", conditional=True)),
        (dcmt, dict(task="conversion", conditional=True, name="ESMMClassifier, DCMT")),
        (aitm, dict(task="conversion", conditional=True)),
        (naive, {})])
    return rows, curves


def _serve_with_onnx(model, X_test, output_dir, print_fn):
    """Export ``model`` to ONNX, check onnxruntime against it and time one row in both."""
    try:
        import onnxruntime

        from .onnx import onnx_inputs, save_onnx
    except ImportError:
        print_fn("\nonnx is not installed: no ONNX export (pip install '.[onnx]' in the "
                 "repository).")
        return None
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "mmoe.onnx"
    started = time.perf_counter()
    save_onnx(model, path, X_test.head())
    export_seconds = time.perf_counter() - started
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run([f"proba_{task}" for task in model.task_names_],
                          onnx_inputs(session, X_test))
    difference = max(float(np.abs(served - proba).max())
                     for served, proba in zip(outputs, model.predict_proba(X_test)))
    row = X_test.iloc[[0]]
    inputs = onnx_inputs(session, row)
    row_seconds = {"predict_proba": lambda: model.predict_proba(row),
                   "onnxruntime": lambda: session.run(None, inputs)}
    for name, predict in row_seconds.items():
        predict()
        times = []
        for _ in range(50):
            started = time.perf_counter()
            predict()
            times.append(time.perf_counter() - started)
        row_seconds[name] = float(np.median(times))
    print_fn(f"\n== Serving: MMOEClassifier() exported to ONNX in {export_seconds:.1f} s "
             f"({path.stat().st_size / 2**20:.1f} MiB, {path}) ==\n"
             f"onnxruntime on the {len(X_test):,} test rows, raw columns in: largest difference "
             f"from predict_proba {difference:.1e}; one row in "
             f"{row_seconds['onnxruntime'] * 1e3:.2f} ms against "
             f"{row_seconds['predict_proba'] * 1e3:.2f} ms for predict_proba")
    return {"export s": export_seconds, "max difference": difference,
            "row ms onnxruntime": row_seconds["onnxruntime"] * 1e3,
            "row ms predict_proba": row_seconds["predict_proba"] * 1e3}


def _timed_fit(model, X, Y):
    start = time.perf_counter()
    model.fit(X, Y)
    return model, time.perf_counter() - start


def _curves(filename, title, model, task, y_true, scores):
    return {"filename": filename, "title": title, "model": model, "task": task,
            "roc": {name: roc_curve(y_true, s)[:2] + (roc_auc_score(y_true, s),)
                    for name, s in scores.items()}}


def _print_table(rows, print_fn):
    header = list(rows[0])
    cells = [[_format(key, row[key]) for key in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    print_fn("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print_fn("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in cells:
        print_fn("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")


def _format(key, value):
    if not isinstance(value, (float, np.floating)):
        return str(value)
    return f"{value:.2f}" if key.endswith(" s") else f"{value:.4f}"


def _save_plots(output_dir, curves, print_fn):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .plotting import HistoryDisplay, TaskCalibrationDisplay
    except ImportError:
        print_fn("\nmatplotlib is not installed: no plots (pip install '.[plot]' in the "
                 "repository).")
        return []
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for curve in curves:
        calibration = curve.get("calibration")
        fig, axes = plt.subplots(1, 3 if calibration else 2,
                                 figsize=(16 if calibration else 11, 4.2))
        HistoryDisplay.from_estimator(curve["model"], tasks=[curve["task"]], ax=axes[0])
        axes[0].set_title("Learning curve")
        for name, (fpr, tpr, auc) in curve["roc"].items():
            axes[1].plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
        axes[1].plot([0, 1], [0, 1], color="lightgray", linestyle=":")
        axes[1].set(xlabel="false positive rate", ylabel="true positive rate",
                    title="ROC (test)")
        axes[1].legend(loc="lower right")
        if calibration:
            X_test, y_test, models = calibration
            for model, options in models:
                TaskCalibrationDisplay.from_estimator(model, X_test, y_test, strategy="quantile",
                                                      n_bins=5, ax=axes[2], **options)
            axes[2].set_title("Calibration (test)")
        fig.suptitle(curve["title"])
        fig.tight_layout()
        path = output_dir / f"{curve['filename']}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    print_fn(f"\nPlots (learning curve and ROC curve per task, calibration of pCVR) saved in "
             f"{output_dir}:")
    for path in paths:
        print_fn(f"  {path.name}")
    return paths
