"""The search behind skmtl's default configuration.

Every candidate configuration is fitted with the same settings on four
problems, for several seeds, in one process, one fit at a time:

* ``census``: ``MMOEClassifier`` on the Census-Income random 80/20 split of
  the seed (``benchmarks.data.load_census``); test ROC AUC of both tasks and
  the fit time, beside ``HistGradientBoostingClassifier`` (one per task) on
  the same split in the same run.
* ``coat``: ``ESMMClassifier`` on all Coat impressions; ROC AUC of
  p(conversion | click) on the random-exposure ratings (rating >= 4).
* ``multitask``: ``MMOEClassifier`` on ``make_multitask`` (20,000 rows, 10
  numeric and 3 categorical features, task correlation 0.5); mean test AUC.
* ``funnel``: ``ESMMClassifier`` on ``make_entire_space`` (50,000
  impressions); AUC of the predicted pCVR against conversions drawn from the
  true p(conversion | click) for every held-out impression, clicked or not.

With ``--missing-fraction F``, that fraction of every numeric column of
Census (training and test rows alike, at random) is missing (NaN) for every
contender, gradient boosting included: what each makes of missing values.

Run from the repository root::

    SKMTL_DATA=../shared/data python -m benchmarks.search [--seeds 0 1 2] \\
        [--candidates NAME ...] [--problems census ...] [--missing-fraction F] \\
        [--output benchmarks/search.md]

Fit times are wall times in a warm process; the census ratio compares them
with gradient boosting's in the same run.
"""

import argparse
import platform
import shlex
import sys
import time
from datetime import datetime, timezone

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skmtl import ESMMClassifier, MMOEClassifier
from skmtl.datasets import make_entire_space, make_multitask

from .data import load_census, load_coat

# The settings before this search, then the candidates; each is a change of
# the estimators' current defaults (piecewise-linear encoding with at most
# 32 target bins; since session 21 numeric_encoding="auto", which keeps them
# on Census and standardises the synthetic generators' smooth columns, so the
# "defaults" candidate's name holds for Census only; cosine schedule,
# learning rate 6e-3, batch_size="auto", every row training (early stopping
# above 10,000 rows until session 27), MMoE experts of 32 units; for
# MMoE batch normalisation, weight decay 1e-4 and 4 epochs since session 29
# (before: none, 1e-5, 5 epochs, and 6 until session 27); for ESMM no batch
# normalisation, weight decay 1e-5 and 10 epochs). Candidates that change only
# MMoE's network repeat the ESMM numbers of the defaults; those named for a
# change the defaults have since made repeat the defaults.
PREVIOUS = {"numeric_encoding": "standard", "frequent_values": None,
            "learning_rate_schedule": "constant", "early_stopping": "auto",
            "learning_rate": 1e-3, "weight_decay": 0.0, "batch_size": 256, "max_epochs": 30,
            "expert_units": (64,), "batch_norm": False}
# parameters of MMoE only; "mmoe_<name>" is <name> for MMoE alone (ESMM keeps its own)
MMOE_ONLY = ("n_experts", "expert_units")
MMOE_PREFIX = "mmoe_"
CANDIDATES = {
    "previous defaults": PREVIOUS,
    "standard encoding": {"numeric_encoding": "standard"},
    "quantile encoding": {"numeric_encoding": "quantile"},
    "periodic encoding": {"numeric_encoding": "periodic"},
    "piecewise-linear, quantile bins": {"numeric_encoding": "piecewise_linear",
                                        "bin_strategy": "quantile"},
    "defaults: piecewise-linear, target bins": {},
    "experts of 64": {"expert_units": (64,)},
    "8 experts of 16": {"n_experts": 8, "expert_units": (16,)},
    "6 epochs (changes ESMM; since session 28 MMoE too)": {"max_epochs": 6},
    "10 epochs (changes MMoE)": {"max_epochs": 10},
    "16 bins": {"numeric_encoding": "piecewise_linear", "n_bins": 16},
    "embedding 16": {"embedding_dim": 16},
    "learning rate 3e-3": {"learning_rate": 3e-3},
    "learning rate 1e-2": {"learning_rate": 1e-2},
    "batch 512": {"batch_size": 512},
    "batch 1024": {"batch_size": 1024},
    "no weight decay": {"weight_decay": 0.0},
    "constant learning rate": {"learning_rate_schedule": "constant"},
    # the probes of income's gap to gradient boosting (run with --problems census)
    "dropout 0.1": {"dropout": 0.1},
    "towers of 64": {"tower_units": (64,)},
    "experts of 64 then 32": {"expert_units": (64, 32)},
    "64 bins": {"numeric_encoding": "piecewise_linear", "n_bins": 64},
    "weight decay 1e-4 (MMoE's default since session 29; changes ESMM)":
        {"weight_decay": 1e-4},
    "8 epochs": {"max_epochs": 8},
    "embedding 4": {"embedding_dim": 4},
    "batch normalisation (MMoE's default since session 29; changes ESMM)":
        {"batch_norm": True},
    # boosted trees whose leaves the network embeds (session 24)
    "leaf trees 10": {"leaf_trees": 10},
    "leaf trees 20": {"leaf_trees": 20},
    # the numeric columns' frequent values embedded as categories (session 25):
    # the defaults since then; without them, the defaults before
    "no frequent values": {"frequent_values": None},
    "frequent values of every column": {"frequent_values": "all"},
    # low-rank cross layers on the embedded input (session 27), and what their
    # accuracy buys back in experts and epochs
    "cross layer": {"cross_layers": 1},
    "2 cross layers": {"cross_layers": 2},
    "cross layer, 3 experts": {"cross_layers": 1, "n_experts": 3},
    "cross layer, 3 experts, 5 epochs (MMoE)": {"cross_layers": 1, "n_experts": 3,
                                                "mmoe_max_epochs": 5},
    "cross layer, 3 experts, 4 epochs (MMoE)": {"cross_layers": 1, "n_experts": 3,
                                                "mmoe_max_epochs": 4},
    # every row trains since session 28: with 6 epochs and n_iter_no_change=5 early
    # stopping never ended a fit early, it only held 10 % of the rows out. Until
    # then early stopping was on above 10,000 rows and MMoE trained 6 epochs.
    "defaults until session 27: early stopping above 10,000 rows, 6 epochs (MMoE)":
        {"early_stopping": "auto", "mmoe_max_epochs": 6, "mmoe_batch_norm": False,
         "mmoe_weight_decay": 1e-5},
    "early stopping above 10,000 rows": {"early_stopping": "auto"},
    "6 epochs (MMoE)": {"mmoe_max_epochs": 6},
    # batch normalisation, weight decay 1e-4 and 4 epochs for MMoE since session 29
    "defaults until session 28: no batch normalisation, weight decay 1e-5, 5 epochs (MMoE)":
        {"mmoe_batch_norm": False, "mmoe_weight_decay": 1e-5, "mmoe_max_epochs": 5},
    # with --missing-fraction: what a user would otherwise do, the defaults behind
    # scikit-learn's imputer (the median, and a 0/1 indicator column per column)
    "defaults after SimpleImputer(median, add_indicator)": {"impute": True},
}
# share of every numeric Census value hidden (--missing-fraction)
MISSING_FRACTION = 0.0


def _timed_fit(model, X, Y):
    start = time.perf_counter()
    model.fit(X, Y)
    return time.perf_counter() - start


def _census(seed):
    """The Census split of ``seed``, with ``MISSING_FRACTION`` of its numbers missing."""
    problem = load_census(seed, download_if_missing=False)
    if MISSING_FRACTION:
        rng = np.random.default_rng(seed)
        for X in (problem.X_train, problem.X_test):
            for column in X.select_dtypes("number").columns:
                X.loc[rng.random(len(X)) < MISSING_FRACTION, column] = np.nan
    return problem


def _estimator_params(params, esmm=False):
    """A candidate's parameters of MMoE (or of ESMM, without ``MMOE_ONLY``'s and the
    ``MMOE_PREFIX``ed); ``impute`` is the benchmark's."""
    params = {k: v for k, v in params.items()
              if k != "impute" and not (esmm and (k in MMOE_ONLY or k.startswith(MMOE_PREFIX)))}
    return {k.removeprefix(MMOE_PREFIX): v for k, v in params.items()}


def _with_imputer(model):
    """``model`` behind a median imputer with indicators of the numeric columns."""
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    imputer = make_column_transformer(
        (SimpleImputer(strategy="median", add_indicator=True),
         make_column_selector(dtype_include="number")),
        remainder="passthrough", verbose_feature_names_out=False).set_output(transform="pandas")
    return make_pipeline(imputer, model)


def census(params, seed):
    problem = _census(seed)
    model = MMOEClassifier(random_state=seed, **_estimator_params(params))
    if params.get("impute"):
        model = _with_imputer(model)
    seconds = _timed_fit(model, problem.X_train, problem.Y_train)
    proba = model.predict_proba(problem.X_test)
    aucs = [roc_auc_score(problem.Y_test[task], p[:, 1])
            for task, p in zip(problem.Y_train.columns, proba)]
    return {"auc income_50k": aucs[0], "auc never_married": aucs[1], "census fit s": seconds,
            "epochs": model[-1].n_iter_ if params.get("impute") else model.n_iter_}


def census_gradient_boosting(seed):
    problem = _census(seed)
    start = time.perf_counter()
    models = [HistGradientBoostingClassifier(random_state=seed).fit(problem.X_train,
                                                                     problem.Y_train[task])
              for task in problem.Y_train.columns]
    seconds = time.perf_counter() - start
    aucs = [roc_auc_score(problem.Y_test[task], m.predict_proba(problem.X_test)[:, 1])
            for task, m in zip(problem.Y_train.columns, models)]
    return {"auc income_50k": aucs[0], "auc never_married": aucs[1], "census fit s": seconds}


def _esmm(params, seed):
    return ESMMClassifier(random_state=seed, **_estimator_params(params, esmm=True))


def coat(params, seed):
    problem = load_coat(seed, download_if_missing=False)
    model = _esmm(params, seed)
    seconds = _timed_fit(model, problem.X_train, problem.Y_train[["click", "conversion"]])
    _, cvr = model.predict_conditional_proba(problem.X_test)
    return {"coat auc pCVR": roc_auc_score(problem.Y_test["conversion"], cvr[:, 1]),
            "coat fit s": seconds}


def multitask(params, seed):
    data = make_multitask(20_000, n_features=10, n_categorical=3, random_state=seed)
    X_train, X_test, Y_train, Y_test = train_test_split(data.data, data.target,
                                                        test_size=0.25, random_state=seed)
    model = MMOEClassifier(random_state=seed, **_estimator_params(params)).fit(X_train, Y_train)
    proba = model.predict_proba(X_test)
    return {"multitask auc": np.mean([roc_auc_score(Y_test.iloc[:, t], p[:, 1])
                                      for t, p in enumerate(proba)])}


def funnel(params, seed):
    data = make_entire_space(50_000, random_state=seed)
    rows = np.arange(len(data.data))
    train, test = train_test_split(rows, test_size=0.25, random_state=seed)
    model = _esmm(params, seed).fit(data.data.iloc[train], data.target.iloc[train])
    _, cvr = model.predict_conditional_proba(data.data.iloc[test])
    converts = np.random.default_rng(seed).random(len(test)) < data.conversion_proba[test]
    return {"funnel auc pCVR": roc_auc_score(converts, cvr[:, 1])}


PROBLEMS = {"census": census, "coat": coat, "multitask": multitask, "funnel": funnel}
COLUMNS = ("auc income_50k", "auc never_married", "census fit s", "fit / hgb", "epochs",
           "coat auc pCVR", "coat fit s", "multitask auc", "funnel auc pCVR")


def _summary(records):
    """Mean and sample standard deviation (as the rest of the suite) of every column."""
    keys = [k for k in COLUMNS if k in records[0]]
    return {k: (np.mean([r[k] for r in records]),
                np.std([r[k] for r in records], ddof=1) if len(records) > 1 else None)
            for k in keys}


def _cell(key, stats):
    if stats is None:
        return "–"
    mean, std = stats
    if key == "epochs":
        return f"{mean:.1f}"
    if key.endswith(" s") or key == "fit / hgb":
        return f"{mean:.2f}"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the splits (and estimators' seeds) to average over "
                             "(default: 0 1 2)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES), metavar="NAME",
                        help="names of CANDIDATES to run (default: all)")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS),
                        help="the problems to fit each candidate on (default: all; census "
                             "always, as the gradient boosting reference)")
    parser.add_argument("--missing-fraction", type=float, default=0.0,
                        help="share of every numeric Census value made missing, in [0, 1) "
                             "(default: 0)")
    parser.add_argument("--output", default="benchmarks/search.md",
                        help="the markdown table to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.missing_fraction < 1.0:
        parser.error(f"--missing-fraction must be in [0, 1); got {args.missing_fraction}")
    global MISSING_FRACTION
    MISSING_FRACTION = args.missing_fraction

    multitask({"max_epochs": 1}, 0)  # warm up torch and the caches of this process
    started = datetime.now(timezone.utc)
    hgb = [census_gradient_boosting(seed) for seed in args.seeds]
    rows = {"HistGradientBoostingClassifier, one per task (census only)": _summary(hgb)}
    for name in args.candidates:
        records = []
        for seed, reference in zip(args.seeds, hgb):
            record = {}
            for problem in dict.fromkeys(["census", *args.problems]):
                record.update(PROBLEMS[problem](CANDIDATES[name], seed))
            record["fit / hgb"] = record["census fit s"] / reference["census fit s"]
            records.append(record)
        rows[name] = _summary(records)
        print(f"{name}: " + ", ".join(f"{k} {_cell(k, v)}" for k, v in rows[name].items()),
              flush=True)
        _write(args, argv, rows, started)


def _write(args, argv, rows, started):
    argv = sys.argv[1:] if argv is None else argv
    lines = [
        f"command: `python -m benchmarks.search {shlex.join(argv)}`  ",
        f"started: {started:%Y-%m-%d %H:%M} UTC; python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}; seeds {args.seeds}",
        "",
        "| candidate | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, stats in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(k, stats.get(k)) for k in COLUMNS) + " |")
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
