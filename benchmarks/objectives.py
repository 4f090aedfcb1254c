"""skmtl's training objectives side by side: missing labels, loss weighting, counterfactual
pCVR, in one process, one fit at a time.

    SKMTL_DATA=../shared/data python -m benchmarks.objectives [--seeds 0 1 2] \\
        [--sections missing weighting counterfactual synthetic] [--census-rows N] \\
        [--coat-rows N] [--synthetic-rows N] [--counterfactual-weights 0.3 ...] \\
        [--propensity-clips 0.2 ...] [--constraint-weights 0.07 ...] \\
        [--masked-weightings gradnorm ...] [--held-out-splits N] [--max-epochs N] \\
        [--out benchmarks/results/objectives.json]

Run from the repository root. Every contender is fitted once per seed with
its estimator's defaults and ``random_state=seed`` (``--max-epochs`` caps
the epochs of every neural estimator, for a quick check). The report prints
mean ± standard deviation over the seeds; the raw records (one per
contender, seed and section: fit seconds, ``n_iter_`` of every model fitted,
the metrics) are written as JSON to ``--out``, rewritten after every fit so
that an interrupted run leaves its numbers. ``n_iter_`` is the number of
epochs of a neural estimator and of boosting iterations of
``HistGradientBoostingClassifier``.

Sections
--------
missing
    Census-Income (``benchmarks.data.load_census``), tasks ``income_50k``
    and ``never_married``. In the training part a fraction f (0.5, 0.9) of
    the ``never_married`` labels is hidden at random (the rows drawn from
    the seed and f). Contenders: ``MMOEClassifier`` on Y with the hidden
    labels as NaN, so that those rows leave only that task's loss
    ("masked (NaN)"); ``MMOEClassifier`` on the rows with both labels known
    ("drop rows"); two single-task ``MMOEClassifier`` on 1-D ``y``, one for
    ``income_50k`` on every training row and one for ``never_married`` on the
    rows where it is known ("single-task", the fit seconds are the sum of
    both). The reference, f = 0: ``MMOEClassifier`` on every label. With
    ``--masked-weightings``, "masked (NaN)" again with each of those
    ``loss_weighting`` options. Metric: test ROC AUC of both tasks.
weighting
    ``MMOEClassifier`` on Census-Income (both tasks) and ``ESMMClassifier``
    on Coat (``benchmarks.data.load_coat``: click and conversion on all
    impressions), once per ``loss_weighting`` option. Metrics: Census, test
    ROC AUC per task; Coat, ROC AUC of p(conversion | click) on the
    random-exposure ratings (the test set has no click labels). Seconds per
    epoch: the mean of ``history_[:, "dur"]``, and its ratio to ``"equal"``
    of the same seed and data set. The task weights are the last epoch's
    ``task_weight_<task>`` (the weights in force in that epoch).
counterfactual
    Coat: ``ESMMClassifier`` and ``AITMClassifier``, each with
    ``counterfactual=None``, ``"ips"``, ``"dr"`` and ``"dcmt"`` (the latter
    three once per ``--counterfactual-weights`` and ``--propensity-clips``
    pair, ``"dcmt"`` also once per ``--constraint-weights``), against CVR
    models fitted on the clicked rows only: ``MMOEClassifier`` on 1-D ``y`` (as
    ``contenders.ours.SkmtlClickedCVR``) and
    ``HistGradientBoostingClassifier`` with the id columns as ordinal codes
    (as ``contenders.classic.HGBClickedCVR``). Metrics on the
    random-exposure test ratings, as ``benchmarks.worker.score``: pCVR ROC
    AUC, mean pCVR, observed conversion rate, the absolute gap between the
    two, pCVR log loss. With ``--held-out-splits N``, also how a setting
    chosen on the test ratings does on ratings it was not chosen on: the
    test users are split into two random halves N times; on one half the
    setting (of ESMM, and of AITM) with the smallest gap among those whose
    AUC is at least the plain model's is chosen, and scored on the other
    half, and the other way round (:func:`held_out_choice`).
synthetic
    ``skmtl.datasets.make_entire_space`` (50,000 impressions generated once
    with a fixed seed; ``--synthetic-rows`` generates another number with
    the same seed), a random 80/20 train/test split per seed, the
    contenders of ``counterfactual``. Metric: the mean absolute error of the
    predicted pCVR against the generator's true p(conversion | click, x),
    over all test impressions and over the clicked and the not-clicked ones
    apart (a CVR model of the clicked rows is biased on the others), and
    the mean predicted against the mean true pCVR.
"""

import argparse
import datetime
import functools
import json
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skmtl import AITMClassifier, ESMMClassifier, MMOEClassifier
from skmtl.datasets import make_entire_space

from .cli import positive_int
from .contenders.classic import ids_as_ordinal
from .data import (CENSUS_TASKS, TEST_FRACTION, VALIDATION_FRACTION, Problem, holdout_mask,
                   load_census, load_coat)
from .report import _table, machine_info, mean_std
from .worker import score

SECTIONS = ("missing", "weighting", "counterfactual", "synthetic")
FUNNEL_NAMES = ("ESMM", "AITM")  # the first word of the funnel contenders' labels
SECTION_DATASETS = {"missing": ("census",), "weighting": ("census", "coat"),
                    "counterfactual": ("coat",), "synthetic": ("synthetic",)}
DEFAULT_OUT = Path("benchmarks") / "results" / "objectives.json"
MISSING_FRACTIONS = (0.5, 0.9)
LOSS_WEIGHTINGS = ("equal", "uncertainty", "gradnorm", "dwa", "pcgrad")
COUNTERFACTUALS = ("ips", "dr", "dcmt")
SYNTHETIC_ROWS = 50_000
SYNTHETIC_DATA_SEED = 2026
# the funnel estimators' counterfactual settings, the defaults of the section's options
FUNNEL_DEFAULTS = ESMMClassifier().get_params()
# report.machine_info lists the suite's peers too; they play no part here
PEERS = ("torch-rechub", "deepctr-torch")


# -- fitting ---------------------------------------------------------------------------------


def _training(seed, max_epochs):
    """The estimators' keyword arguments: their defaults but the seed (and ``max_epochs``)."""
    params = {"random_state": seed}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    return params


def _fit(model, X, y):
    """Fit ``model``; return it and the seconds ``fit`` took."""
    start = time.perf_counter()
    model.fit(X, y)
    return model, time.perf_counter() - start


def _warm_up():
    """One short, untimed fit per ``loss_weighting`` option.

    Keeps torch's and each option's one-time set-up (a third of a second for
    ``"gradnorm"``) out of the measured fits.
    """
    data = make_entire_space(1000, random_state=0)
    for option in LOSS_WEIGHTINGS:
        MMOEClassifier(max_epochs=1, loss_weighting=option, random_state=0).fit(data.data,
                                                                                data.target)


def _census_scores(problem, columns):
    """Test AUC and log loss of each Census task from its predicted p(task = 1)."""
    metrics, _ = score("census", problem.Y_test, dict(zip(CENSUS_TASKS, columns)))
    return metrics


def _coat_scores(problem, pcvr):
    """``benchmarks.worker.score``'s pCVR metrics and the gap of the mean to the observed rate."""
    metrics, _ = score("coat", problem.Y_test, {"pcvr": pcvr})
    metrics["gap_pcvr"] = abs(metrics["mean_pcvr"] - metrics["observed_rate"])
    return metrics


def _synthetic_scores(problem, pcvr):
    """Absolute error of ``pcvr`` against the true p(conversion | click), by click."""
    truth = problem.test_proba[:, 1]
    error = np.abs(np.asarray(pcvr, dtype=np.float64) - truth)
    clicked = problem.Y_test["click"].to_numpy() == 1
    return {"mae_all": float(error.mean()), "mae_clicked": float(error[clicked].mean()),
            "mae_not_clicked": float(error[~clicked].mean()), "mean_pcvr": float(np.mean(pcvr)),
            "true_mean_pcvr": float(truth.mean())}


def _census_multitask(problem, X, Y, training, **params):
    model, seconds = _fit(MMOEClassifier(**training, **params), X, Y)
    proba = model.predict_proba(problem.X_test)
    return _census_scores(problem, [p[:, 1] for p in proba]), seconds, [model.n_iter_]


def _census_single_tasks(problem, income_alone, X, y, training):
    """``income_alone()``'s fitted model beside one fitted on ``never_married`` alone."""
    income, income_seconds = income_alone()
    married, married_seconds = _fit(MMOEClassifier(**training), X, y)
    columns = [income.predict_proba(problem.X_test)[:, 1],
               married.predict_proba(problem.X_test)[:, 1]]
    return (_census_scores(problem, columns), income_seconds + married_seconds,
            [income.n_iter_, married.n_iter_])


def _weighted(estimator, option, problem, training):
    """``estimator(loss_weighting=option)``: test scores, seconds per epoch, last weights."""
    model, seconds = _fit(estimator(loss_weighting=option, **training), problem.X_train,
                          problem.Y_train)
    if problem.name == "census":
        metrics = _census_scores(problem, [p[:, 1] for p in model.predict_proba(problem.X_test)])
    else:
        metrics = _coat_scores(problem, model.predict_conditional_proba(problem.X_test)[1][:, 1])
    metrics["seconds_per_epoch"] = float(np.mean(model.history_[:, "dur"]))
    metrics.update({f"task_weight_{task}": float(model.history_[-1, f"task_weight_{task}"])
                    for task in model.task_names_})
    return metrics, seconds, [model.n_iter_]


def _clicked(problem):
    """The clicked training rows and their conversion labels."""
    clicked = problem.Y_train["click"].to_numpy() == 1
    return problem.X_train[clicked], problem.Y_train["conversion"][clicked]


def _funnel_pcvr(estimator, params, problem, seed, max_epochs):
    model, seconds = _fit(estimator(**params, **_training(seed, max_epochs)), problem.X_train,
                          problem.Y_train[["click", "conversion"]])
    return model.predict_conditional_proba(problem.X_test)[1][:, 1], seconds, [model.n_iter_]


def _clicked_mmoe_pcvr(problem, seed, max_epochs):
    X, y = _clicked(problem)
    model, seconds = _fit(MMOEClassifier(**_training(seed, max_epochs)), X, y)
    return model.predict_proba(problem.X_test)[:, 1], seconds, [model.n_iter_]


def _clicked_hgb_pcvr(problem, seed, max_epochs):
    """Gradient boosting on the clicked rows; Coat's id columns enter as ordinal codes.

    As ``contenders.classic.HGBClickedCVR``: they have 290 and 300 levels,
    over the limit of 255 bins of a categorical feature.
    """
    X, y = _clicked(problem)
    X_test = problem.X_test
    if problem.name == "coat":
        X, X_test = ids_as_ordinal(X), ids_as_ordinal(X_test)
    model, seconds = _fit(HistGradientBoostingClassifier(categorical_features="from_dtype",
                                                         random_state=seed), X, y)
    return model.predict_proba(X_test)[:, 1], seconds, [model.n_iter_]


def pcvr_contenders(weights, clips,
                    constraint_weights=(FUNNEL_DEFAULTS["counterfactual_constraint_weight"],)):
    """The contenders of the counterfactual and synthetic sections, in table order.

    Parameters
    ----------
    weights, clips : lists of float
        The ``counterfactual_weight`` and ``propensity_clip`` values of the
        ``"ips"``, ``"dr"`` and ``"dcmt"`` rows, one row per pair.
    constraint_weights : list of float, default: the estimators' default
        The ``counterfactual_constraint_weight`` values of the ``"dcmt"``
        rows, one row per weight, clip and constraint weight.

    Returns
    -------
    contenders : dict
        ``{label: fit}``; ``fit(problem, seed, max_epochs)`` returns the test
        rows' pCVR, the fit seconds and the ``n_iter_`` of the model.
    """
    contenders = {}
    for name, estimator in (("ESMM", ESMMClassifier), ("AITM", AITMClassifier)):
        contenders[name] = functools.partial(_funnel_pcvr, estimator, {"counterfactual": None})
        for method in COUNTERFACTUALS:
            for weight in weights:
                for clip in clips:
                    params = {"counterfactual": method, "counterfactual_weight": weight,
                              "propensity_clip": clip}
                    label = f"{name} {method} w={weight:g} clip={clip:g}"
                    if method != "dcmt":
                        contenders[label] = functools.partial(_funnel_pcvr, estimator, params)
                        continue
                    for constraint in constraint_weights:
                        contenders[f"{label} λ={constraint:g}"] = functools.partial(
                            _funnel_pcvr, estimator,
                            {**params, "counterfactual_constraint_weight": constraint})
    contenders["MMOEClassifier on clicked rows"] = _clicked_mmoe_pcvr
    contenders["HistGradientBoosting on clicked rows"] = _clicked_hgb_pcvr
    return contenders


def _scored(fit, scores, problem, seed, max_epochs, kept=None):
    """A :func:`pcvr_contenders` fit scored by ``scores(problem, pcvr)``; the pCVR also in
    ``kept["pcvr"]``, when given."""
    pcvr, seconds, n_iter = fit(problem, seed, max_epochs)
    if kept is not None:
        kept["pcvr"] = pcvr
    return scores(problem, pcvr), seconds, n_iter


def load_synthetic(seed, n_rows=SYNTHETIC_ROWS):
    """``make_entire_space(n_rows)`` with a fixed seed, random 80/20 split for ``seed``.

    ``test_proba`` holds the test rows' true p(click) and p(conversion | click).
    """
    bunch = make_entire_space(n_rows, random_state=SYNTHETIC_DATA_SEED)
    train, test = train_test_split(np.arange(n_rows), test_size=TEST_FRACTION,
                                   random_state=seed)

    def take(frame, rows):
        return frame.iloc[rows].reset_index(drop=True)

    return Problem("synthetic", take(bunch.data, train), take(bunch.target, train),
                   holdout_mask(len(train), VALIDATION_FRACTION, seed), take(bunch.data, test),
                   take(bunch.target, test), test_proba=bunch.conditional_proba[test])


# -- the sections ----------------------------------------------------------------------------
#
# Each fits its contenders on the data of one seed, every one through
# measure(record, run): ``record`` names the section, data set, seed and
# contender, ``run()`` fits and scores (see measure_one); measure returns the
# completed record.


def missing(seed, args, measure):
    """Census with part of the ``never_married`` labels hidden: NaN, dropped rows, single task."""
    problem = load_census(seed, args.census_rows, not args.no_download)
    X, Y = problem.X_train, problem.Y_train
    income, married = CENSUS_TASKS
    training = _training(seed, args.max_epochs)
    record = {"section": "missing", "dataset": "census", "seed": seed}
    measure({**record, "fraction": 0.0, "contender": "every label known"},
            functools.partial(_census_multitask, problem, X, Y, training))
    # the same model for every fraction: fitted once, its seconds in every row
    income_alone = functools.cache(
        functools.partial(_fit, MMOEClassifier(**training), X, Y[income]))
    for fraction in MISSING_FRACTIONS:
        hidden = holdout_mask(len(Y), fraction, (seed, round(1000 * fraction)))
        masked = Y.astype(np.float64)
        masked.loc[hidden, married] = np.nan
        known = ~hidden
        runs = {
            "masked (NaN)": functools.partial(_census_multitask, problem, X, masked, training),
            "drop rows": functools.partial(_census_multitask, problem, X[known], Y[known],
                                           training),
            "single-task": functools.partial(_census_single_tasks, problem, income_alone,
                                             X[known], Y[married][known], training),
        }
        for option in args.masked_weightings:
            runs[f"masked (NaN), loss_weighting={option!r}"] = functools.partial(
                _census_multitask, problem, X, masked, training, loss_weighting=option)
        for label, run in runs.items():
            measure({**record, "fraction": fraction, "contender": label}, run)


def weighting(seed, args, measure):
    """Every ``loss_weighting`` option, MMoE on Census and ESMM on Coat."""
    problems = ((load_census(seed, args.census_rows, not args.no_download), MMOEClassifier),
                (load_coat(seed, args.coat_rows, not args.no_download), ESMMClassifier))
    training = _training(seed, args.max_epochs)
    for problem, estimator in problems:
        done = {option: measure({"section": "weighting", "dataset": problem.name, "seed": seed,
                                 "contender": option},
                                functools.partial(_weighted, estimator, option, problem, training))
                for option in LOSS_WEIGHTINGS}
        equal = done["equal"]
        for record in done.values():
            if record["status"] == "ok" and equal["status"] == "ok":
                record["epoch_ratio"] = record["seconds_per_epoch"] / equal["seconds_per_epoch"]


def counterfactual(seed, args, measure):
    """:func:`pcvr_contenders` on Coat, scored on the random-exposure ratings.

    With ``--held-out-splits``, each funnel contender's record also keeps its
    test pCVR (``"pcvr"``), for :func:`held_out_choice`.
    """
    problem = load_coat(seed, args.coat_rows, not args.no_download)
    for label, fit in pcvr_contenders(args.counterfactual_weights, args.propensity_clips,
                                      args.constraint_weights).items():
        kept = {}
        record = measure({"section": "counterfactual", "dataset": "coat", "seed": seed,
                          "contender": label},
                         functools.partial(_scored, fit, _coat_scores, problem, seed,
                                           args.max_epochs, kept))
        if args.held_out_splits and "pcvr" in kept and label.split()[0] in FUNNEL_NAMES:
            record["pcvr"] = [float(p) for p in kept["pcvr"]]


def held_out_choice(records, conversion, users, n_splits, model="ESMM", seed=0):
    """How a counterfactual setting chosen on some of Coat's test users does on the others.

    The test users are split at random into two halves, ``n_splits`` times.
    On one half the setting of ``model`` is chosen whose mean gap (over the
    seeds) is the smallest among those whose mean AUC there is at least the
    plain model's; it is then scored on the other half; and the other way
    round. Returns ``{"chosen": {label: times}, "choices": 2 * n_splits,
    "auc", "plain_auc", "gap", "plain_gap": means over the choices of the held-out
    half's mean over the seeds, "gap_met": choices whose held-out gap is at most
    0.01, "auc_kept": choices whose held-out AUC is at least the plain model's}``,
    or None without such records.
    """
    pcvr = {}
    for r in records:
        if r["section"] == "counterfactual" and "pcvr" in r and r["contender"].split()[0] == model:
            pcvr.setdefault(r["contender"], {})[r["seed"]] = np.asarray(r["pcvr"])
    seeds = sorted(pcvr.get(model, {}))
    labels = [label for label, by_seed in pcvr.items() if sorted(by_seed) == seeds]
    if not seeds or model not in labels:
        return None
    conversion, users = np.asarray(conversion), np.asarray(users)

    def scores(label, rows):
        return np.mean([[roc_auc_score(conversion[rows], pcvr[label][s][rows]),
                         abs(pcvr[label][s][rows].mean() - conversion[rows].mean())]
                        for s in seeds], axis=0)

    rng = np.random.default_rng(seed)
    distinct = np.unique(users)
    chosen, held_out = [], []
    for _ in range(n_splits):
        half = np.isin(users, rng.permutation(distinct)[:len(distinct) // 2])
        for choose, judge in ((half, ~half), (~half, half)):
            stats = {label: scores(label, choose) for label in labels}
            good = [label for label in labels if stats[label][0] >= stats[model][0]]
            best = min(good, key=lambda label: stats[label][1])
            chosen.append(best)
            held_out.append([*scores(best, judge), *scores(model, judge)])
    held_out = np.array(held_out)
    return {"chosen": {label: chosen.count(label) for label in dict.fromkeys(chosen)},
            "choices": len(chosen), "auc": held_out[:, 0].mean(),
            "plain_auc": held_out[:, 2].mean(), "gap": held_out[:, 1].mean(),
            "plain_gap": held_out[:, 3].mean(),
            "gap_met": int((held_out[:, 1] <= 0.01).sum()),
            "auc_kept": int((held_out[:, 0] >= held_out[:, 2]).sum())}


def synthetic(seed, args, measure):
    """:func:`pcvr_contenders` on :func:`load_synthetic`, against the true pCVR."""
    problem = load_synthetic(seed, args.synthetic_rows)
    for label, fit in pcvr_contenders(args.counterfactual_weights, args.propensity_clips,
                                      args.constraint_weights).items():
        measure({"section": "synthetic", "dataset": "synthetic", "seed": seed,
                 "contender": label},
                functools.partial(_scored, fit, _synthetic_scores, problem, seed,
                                  args.max_epochs))


RUNS = {"missing": missing, "weighting": weighting, "counterfactual": counterfactual,
        "synthetic": synthetic}


def measure_one(record, run):
    """Complete ``record`` with what ``run()`` returns: (metrics, fit seconds, n_iter_ list).

    An exception or a non-finite metric marks the record as failed, with the
    error; the run goes on.
    """
    try:
        metrics, seconds, n_iter = run()
    except Exception as exc:  # reported in the table, not fatal for the run
        traceback.print_exc()
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return record
    record.update(metrics, fit_seconds=seconds, n_iter=[int(n) for n in n_iter], status="ok")
    if not np.all(np.isfinite(list(metrics.values()))):
        record.update(status="failed", error="non-finite metric")
    return record


def _progress(record):
    where = f"  {record['section']:<14} {record['dataset']:<9} seed {record['seed']}"
    if "fraction" in record:
        where += f" f={record['fraction']:g}"
    if record["status"] != "ok":
        return f"{where} {record['contender']}: failed: {record['error']}"
    scores = ", ".join(f"{key} {value:.4f}" for key, value in record.items()
                       if key.startswith(("auc_", "mae_")))
    return f"{where} {record['contender']}: fit {record['fit_seconds']:.1f} s; {scores}"


# -- the report ------------------------------------------------------------------------------


def _stat(key, digits=4):
    """A cell: ``key``'s mean ± std over the seeds."""
    return lambda ok: mean_std(ok, key, digits)


def _n_iter(ok):
    """``n_iter_`` of each model fitted: one number, or the range over the seeds."""
    cells = []
    for values in zip(*(r["n_iter"] for r in ok)):
        low, high = min(values), max(values)
        cells.append(str(low) if low == high else f"{low}–{high}")
    return " + ".join(cells)


def _task_weights(ok):
    """The last epoch's weight of each task, mean over the seeds: ``a / b``."""
    keys = [key for key in ok[0] if key.startswith("task_weight_")]
    return " / ".join(f"{np.mean([r[key] for r in ok]):.3f}" for key in keys)


def _rows(records, section, dataset, label, cells):
    """One row per contender (and fraction) of ``section`` on ``dataset``, in run order.

    ``label(record)`` gives the leading cells; each of ``cells`` maps the
    contender's successful records (one per seed) to a cell.
    """
    groups = {}
    for r in records:
        if r["section"] == section and r["dataset"] == dataset:
            groups.setdefault((r.get("fraction"), r["contender"]), []).append(r)
    rows = []
    for recs in groups.values():
        ok = [r for r in recs if r["status"] == "ok"]
        leading = label(recs[0])
        failed = [r for r in recs if r["status"] != "ok"]
        if failed:
            leading[-1] += (f" — failed on {len(failed)} of {len(recs)} seeds: "
                            f"{failed[0]['error']}")
        rows.append(leading + ([cell(ok) for cell in cells] if ok else ["–"] * len(cells)))
    return rows


_COSTS = [_stat("fit_seconds", 2), _n_iter]
_COST_HEADER = ["fit s", "n_iter_"]


def _held_out_lines(records, meta):
    """The report of :func:`held_out_choice`, for each funnel model with kept pCVR."""
    test = meta.get("coat_test")
    if not test:
        return []
    lines = []
    for model in FUNNEL_NAMES:
        result = held_out_choice(records, test["conversion"], test["user"],
                                 meta["held_out_splits"], model)
        if result is None:
            continue
        n = result["choices"]
        chosen = ", ".join(f"{label} ({times})" for label, times in result["chosen"].items())
        lines += [f"### {model}'s setting chosen on half of the test users", "",
                  f"The test users split in two halves at random {n // 2} times; on one half "
                  f"the setting of smallest gap among those whose AUC is at least plain "
                  f"{model}'s, scored on the other half, and the other way round ({n} "
                  f"choices; means over the seeds, then over the choices).", "",
                  f"- chosen: {chosen}",
                  f"- held-out AUC pCVR {result['auc']:.4f} against plain {model}'s "
                  f"{result['plain_auc']:.4f} (at least it in {result['auc_kept']} of {n})",
                  f"- held-out gap {result['gap']:.3f} against plain {model}'s "
                  f"{result['plain_gap']:.3f} (at most 0.01 in {result['gap_met']} of {n})", ""]
    return lines


def _pcvr_tables(records, meta):
    """The tables of the counterfactual and synthetic sections."""
    lines = []
    if any(r["section"] == "counterfactual" for r in records):
        lines += ["## Counterfactual pCVR on Coat", "",
                  "ESMM and AITM on all impressions, with a counterfactual risk "
                  "(`counterfactual`, weight `w`, DCMT's prior weight `λ`) or without, against "
                  "CVR models fitted on the clicked rows only. pCVR = p(conversion | click) on "
                  "the random-exposure test ratings; gap = absolute difference of the mean pCVR "
                  "and the observed rate.",
                  ""]
        header = (["contender", "AUC pCVR", "mean pCVR", "observed rate", "gap", "log loss pCVR"]
                  + _COST_HEADER)
        cells = [_stat("auc_pcvr"), _stat("mean_pcvr", 3), _stat("observed_rate", 3),
                 _stat("gap_pcvr", 3), _stat("logloss_pcvr")] + _COSTS
        lines += _table(header, _rows(records, "counterfactual", "coat",
                                      lambda r: [r["contender"]], cells)) + [""]
        lines += _held_out_lines(records, meta)
    if any(r["section"] == "synthetic" for r in records):
        lines += ["## Counterfactual pCVR against the truth (make_entire_space)", "",
                  "Mean absolute error of the predicted p(conversion | click) against the "
                  "generator's, on all test impressions and on the clicked and not-clicked "
                  "ones apart.", ""]
        header = (["contender", "MAE all", "MAE clicked", "MAE not clicked", "mean pCVR",
                   "true mean pCVR"] + _COST_HEADER)
        cells = [_stat("mae_all"), _stat("mae_clicked"), _stat("mae_not_clicked"),
                 _stat("mean_pcvr", 3), _stat("true_mean_pcvr", 3)] + _COSTS
        lines += _table(header, _rows(records, "synthetic", "synthetic",
                                      lambda r: [r["contender"]], cells)) + [""]
    return lines


def tables(records, meta=None):
    """The markdown tables of the sections that have records."""
    lines = []
    census_aucs = [_stat(f"auc_{task}") for task in CENSUS_TASKS]
    census_header = [f"AUC {task}" for task in CENSUS_TASKS]
    if any(r["section"] == "missing" for r in records):
        lines += ["## Missing labels (Census-Income)", "",
                  "A fraction of the training part's `never_married` labels hidden at random; "
                  "`MMOEClassifier` with them as NaN, without their rows, or one single-task "
                  "model per task on the rows whose label is known.", ""]
        header = ["hidden never_married", "contender"] + census_header + _COST_HEADER
        lines += _table(header, _rows(records, "missing", "census",
                                      lambda r: [f"{r['fraction']:.0%}", r["contender"]],
                                      census_aucs + _COSTS)) + [""]
    if any(r["section"] == "weighting" for r in records):
        lines += ["## Loss weighting", "",
                  "s/epoch: mean of `history_[:, \"dur\"]`; × equal: its ratio to "
                  "`loss_weighting=\"equal\"` of the same seed; task weights: the last "
                  "epoch's `task_weight_<task>`.", ""]
        speed = [_stat("seconds_per_epoch", 3), _stat("epoch_ratio", 2), _task_weights]
        speed_header = ["s/epoch", "× equal"]
        for dataset, title, header, aucs, tasks in (
                ("census", "Census-Income: MMOEClassifier", census_header, census_aucs,
                 " / ".join(CENSUS_TASKS)),
                ("coat", "Coat: ESMMClassifier", ["AUC pCVR"], [_stat("auc_pcvr")],
                 "click / conversion")):
            rows = _rows(records, "weighting", dataset, lambda r: [r["contender"]],
                         aucs + speed + _COSTS)
            if rows:
                lines += [f"### {title}", ""]
                lines += _table(["loss_weighting"] + header + speed_header
                                + [f"task weights ({tasks})"] + _COST_HEADER, rows) + [""]
    return lines + _pcvr_tables(records, meta or {})


def render(records, meta):
    """The whole markdown report."""
    info = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k not in PEERS)
    sizes = {"census": f"Census rows: {meta['census_rows'] or 'all (99,762)'}",
             "coat": f"Coat impressions: {meta['coat_rows'] or 'all (87,000)'}",
             "synthetic": f"synthetic impressions: {meta['synthetic_rows']:,}"}
    lines = ["# skmtl training objectives", ""]
    if meta.get("partial"):
        lines += [f"**Partial report: {meta['partial']}.**", ""]
    lines += [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']} (took {meta['elapsed_minutes']:.1f} min)",
        f"- machine: {info['cpu']}, {info['cores']} cores; torch threads: {meta['torch_threads']}",
        f"- versions: {versions}",
        f"- seeds: {' '.join(map(str, meta['seeds']))}; max_epochs: "
        f"{meta['max_epochs'] or 'the estimators’ defaults'}; "
        + "; ".join(size for dataset, size in sizes.items()
                    if any(dataset in SECTION_DATASETS[section] for section in meta["sections"])),
        "",
        "Metrics and fit seconds are mean ± standard deviation over the seeds; `n_iter_` is "
        "the number of epochs (boosting iterations for HistGradientBoosting) of each model "
        "fitted, over the seeds.",
        "",
    ]
    return "\n".join(lines + tables(records, meta))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.objectives",
        description="skmtl's training objectives side by side: missing labels, loss "
                    "weighting, counterfactual pCVR on Coat and on a synthetic funnel.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--census-rows", type=positive_int, default=None,
                        help="a fixed random subsample of the Census rows")
    parser.add_argument("--coat-rows", type=positive_int, default=None,
                        help="a fixed random subsample of the Coat training impressions")
    parser.add_argument("--synthetic-rows", type=positive_int, default=SYNTHETIC_ROWS,
                        help="impressions generated by make_entire_space (default: "
                             "%(default)s)")
    parser.add_argument("--counterfactual-weights", type=float, nargs="+",
                        default=[FUNNEL_DEFAULTS["counterfactual_weight"]],
                        help="counterfactual_weight of the ips, dr and dcmt rows, one row each "
                             "(default: %(default)s, the estimators' default)")
    parser.add_argument("--propensity-clips", type=float, nargs="+",
                        default=[FUNNEL_DEFAULTS["propensity_clip"]],
                        help="propensity_clip of the ips, dr and dcmt rows, one row per weight "
                             "and clip (default: %(default)s, the estimators' default)")
    parser.add_argument("--constraint-weights", type=float, nargs="+",
                        default=[FUNNEL_DEFAULTS["counterfactual_constraint_weight"]],
                        help="counterfactual_constraint_weight of the dcmt rows, one row per "
                             "weight, clip and constraint weight (default: %(default)s, the "
                             "estimators' default)")
    parser.add_argument("--masked-weightings", nargs="+", default=[],
                        choices=[o for o in LOSS_WEIGHTINGS if o != "equal"],
                        help="in the missing section, also the masked model with each of "
                             "these loss_weighting options")
    parser.add_argument("--held-out-splits", type=positive_int, default=None,
                        help="in the counterfactual section, also choose each funnel model's "
                             "setting on half of Coat's test users and score it on the other "
                             "half, for this many random splits of the users")
    parser.add_argument("--max-epochs", type=positive_int, default=None,
                        help="max_epochs of every neural estimator (default: their own)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="JSON file of the raw records (default: %(default)s)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail rather than download a data set missing from the data home")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = {"command": "python -m benchmarks.objectives " + shlex.join(argv),
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine_info(), "torch_threads": torch.get_num_threads(),
            "seeds": args.seeds, "sections": args.sections, "max_epochs": args.max_epochs,
            "census_rows": args.census_rows, "coat_rows": args.coat_rows,
            "synthetic_rows": args.synthetic_rows,
            "counterfactual_weights": args.counterfactual_weights,
            "propensity_clips": args.propensity_clips,
            "constraint_weights": args.constraint_weights,
            "held_out_splits": args.held_out_splits}
    if args.held_out_splits and "counterfactual" in args.sections:
        test = load_coat(0, args.coat_rows, not args.no_download)
        meta["coat_test"] = {"conversion": test.Y_test["conversion"].tolist(),
                             "user": test.X_test["user_id"].astype(int).tolist()}
    records = []

    def save(partial):
        meta.update(elapsed_minutes=(time.perf_counter() - started) / 60, partial=partial)
        args.out.write_text(json.dumps({"meta": meta, "records": records}, indent=1))

    def measure(record, run):
        records.append(measure_one(record, run))
        print(_progress(record), flush=True)
        save(f"{len(records)} fits done")
        return record

    _warm_up()
    for section in args.sections:
        print(f"[{section}]", flush=True)
        for seed in args.seeds:
            RUNS[section](seed, args, measure)
    save(None)
    print()
    print(render(records, meta))
    print(f"\nRecords written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
