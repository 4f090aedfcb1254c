"""The defaults on small tables, beside gradient boosting (``python -m benchmarks.small_data``).

The search behind the defaults (``benchmarks/search.py``) fits 15,000 rows
and more; a user's first table is often a few thousand. This script fits
each candidate and ``HistGradientBoosting*`` (one model per task) on the
first ``n`` training rows of four problems, for each size and seed, and
scores them on the same held-out rows:

* ``census``: Census-Income (``fetch_census_income(subset="test")``), the
  seed's 80/20 split, ``MMOEClassifier``; test AUC of ``income_50k`` and
  ``never_married`` on 10,000 test rows.
* ``multitask``: ``make_multitask`` (10 numeric and 3 categorical features,
  two binary tasks), ``MMOEClassifier``; mean test AUC over 10,000 rows.
* ``regression``: the same generator's real-valued ``target_scores``,
  ``MMOERegressor``; mean test R².
* ``funnel``: ``make_entire_space``, ``ESMMClassifier`` on every impression
  against gradient boosting on the clicked ones; AUC of p(conversion |
  click) against conversions drawn from the generator's true probability,
  on 10,000 impressions, clicked or not.

Candidates change ``batch_size`` (the floor of ``batch_size="auto"``,
which decides it below 65,536 training rows; 1/64 of the rows within
[32, 1024] since session 13) or MMoE's ``max_epochs`` (5 since session
28); ``defaults`` is the installed package's own.
"""

import argparse
import time
from datetime import datetime, timezone

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import r2_score, roc_auc_score

from skmtl import ESMMClassifier, MMOEClassifier, MMOERegressor
from skmtl.datasets import make_entire_space, make_multitask

from .data import load_census
from .report import write_script_table

TEST_ROWS = 10_000


def _batch_within(low):
    """A candidate: ``batch_size`` 1/64 of the training rows within ``[low, 1024]``."""
    return lambda estimator_class, n: {"batch_size": int(np.clip(n // 64, low, 1024))}


# MMoE's defaults until session 28 (its regressor's still)
_UNTIL_SESSION_28 = {"batch_norm": False, "weight_decay": 1e-5, "max_epochs": 5}
# name -> (estimator class, training rows) -> the parameters changed from its defaults
CANDIDATES = {
    "defaults": lambda estimator_class, n: {},
    "batch 1/64 of the rows within [128, 1024] (before session 13)": _batch_within(128),
    "batch 1/64 of the rows within [64, 1024]": _batch_within(64),
    "batch 1/64 of the rows within [16, 1024]": _batch_within(16),
    # MMoE's classifier trains 4 epochs with batch normalisation and a weight decay of
    # 1e-4 since session 29 (its regressor keeps the shared defaults, as ESMM)
    "the defaults until session 28 (MMoE: 5 epochs, no batch normalisation)":
        lambda estimator_class, n: (_UNTIL_SESSION_28 if estimator_class in
                                    (MMOEClassifier, MMOERegressor) else {}),
    "the defaults until session 27 (MMoE: 6 epochs, no batch normalisation)":
        lambda estimator_class, n: ({**_UNTIL_SESSION_28, "max_epochs": 6} if estimator_class
                                    in (MMOEClassifier, MMOERegressor) else {}),
}
GRADIENT_BOOSTING = "HistGradientBoosting, one per task"
COLUMNS = ("census AUC income_50k", "census AUC never_married", "multitask AUC",
           "regression R2", "funnel AUC pCVR", "fit s (all problems)")


def _census(n, seed):
    problem = load_census(seed, download_if_missing=False)
    return (problem.X_train.iloc[:n], problem.Y_train.iloc[:n],
            problem.X_test.iloc[:TEST_ROWS], problem.Y_test.iloc[:TEST_ROWS])


def _multitask(n, seed):
    data = make_multitask(n + TEST_ROWS, n_features=10, n_categorical=3, random_state=seed)
    return data.data, data.target, data.target_scores


def _funnel(n, seed):
    data = make_entire_space(n + TEST_ROWS, random_state=seed)
    converts = (np.random.default_rng(seed).random(TEST_ROWS)
                < data.conversion_proba[n:])
    return data.data, data.target, converts


class _FitClock:
    """Adds up the seconds of the fits it times (not loading nor scoring)."""

    def __init__(self):
        self.seconds = 0.0

    def fit(self, model, X, y):
        start = time.perf_counter()
        model.fit(X, y)
        self.seconds += time.perf_counter() - start
        return model


def _mean_auc(Y, probas):
    return float(np.mean([roc_auc_score(Y.iloc[:, t], p[:, 1]) for t, p in enumerate(probas)]))


def gradient_boosting(n, seed):
    """Scores of one gradient-boosting model per task on every problem."""
    clock = _FitClock()
    X, Y, X_test, Y_test = _census(n, seed)
    census = [roc_auc_score(Y_test[task], clock.fit(HistGradientBoostingClassifier(
        random_state=seed), X, Y[task]).predict_proba(X_test)[:, 1]) for task in Y]
    X, Y, scores = _multitask(n, seed)
    multitask = np.mean([roc_auc_score(Y.iloc[n:, t], clock.fit(HistGradientBoostingClassifier(
        random_state=seed), X.iloc[:n], Y.iloc[:n, t]).predict_proba(X.iloc[n:])[:, 1])
        for t in range(Y.shape[1])])
    regression = np.mean([r2_score(scores.iloc[n:, t], clock.fit(HistGradientBoostingRegressor(
        random_state=seed), X.iloc[:n], scores.iloc[:n, t]).predict(X.iloc[n:]))
        for t in range(scores.shape[1])])
    X, Y, converts = _funnel(n, seed)
    clicked = (Y["click"].iloc[:n] == 1).to_numpy()
    cvr = clock.fit(HistGradientBoostingClassifier(random_state=seed),
                    X.iloc[:n][clicked], Y["conversion"].iloc[:n][clicked])
    funnel = roc_auc_score(converts, cvr.predict_proba(X.iloc[n:])[:, 1])
    return _record(census, multitask, regression, funnel, clock.seconds)


def skmtl_defaults(change, n, seed):
    """Scores of the skmtl estimators at their defaults but for what ``change`` (a value
    of ``CANDIDATES``) returns."""
    clock = _FitClock()
    X, Y, X_test, Y_test = _census(n, seed)
    census = clock.fit(_model(MMOEClassifier, change, X, seed), X, Y).predict_proba(X_test)
    census = [roc_auc_score(Y_test[task], p[:, 1]) for task, p in zip(Y, census)]
    X, Y, scores = _multitask(n, seed)
    X_train, X_test = X.iloc[:n], X.iloc[n:]
    multitask = _mean_auc(Y.iloc[n:], clock.fit(_model(MMOEClassifier, change, X_train, seed),
                                                X_train, Y.iloc[:n]).predict_proba(X_test))
    regression = clock.fit(_model(MMOERegressor, change, X_train, seed), X_train,
                           scores.iloc[:n]).score(X_test, scores.iloc[n:])
    X, Y, converts = _funnel(n, seed)
    X_train, X_test = X.iloc[:n], X.iloc[n:]
    esmm = clock.fit(_model(ESMMClassifier, change, X_train, seed), X_train, Y.iloc[:n])
    funnel = roc_auc_score(converts, esmm.predict_conditional_proba(X_test)[1][:, 1])
    return _record(census, multitask, regression, funnel, clock.seconds)


def _model(estimator_class, change, X, seed):
    """``estimator_class`` at its defaults but for ``change(estimator_class, len(X))``."""
    return estimator_class(random_state=seed, **change(estimator_class, len(X)))


def _record(census, multitask, regression, funnel, seconds):
    return dict(zip(COLUMNS, (census[0], census[1], multitask, regression, funnel, seconds)))


def _cell(values):
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 \
        else f"{values[0]:.4f}"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.small_data",
        description="The defaults on small tables, beside gradient boosting.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000],
                        help="training rows (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES), metavar="NAME",
                        help="names of CANDIDATES to run (default: all)")
    parser.add_argument("--output", default="benchmarks/small_data.md",
                        help="the markdown table to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if not all(100 <= n < 10_000 for n in args.sizes):
        parser.error("sizes must be within [100, 10,000): small tables (python -m "
                     "benchmarks.search fits the large ones)")
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    # The first fits of a process pay one-time costs (lazy imports, torch's first
    # kernels: 10 s and more of a 1 s fit here): one round untimed and unreported.
    gradient_boosting(min(args.sizes), args.seeds[0])
    skmtl_defaults(CANDIDATES["defaults"], min(args.sizes), args.seeds[0])
    rows = []
    for n in args.sizes:
        contenders = {GRADIENT_BOOSTING: lambda seed: gradient_boosting(n, seed)}
        contenders.update({name: (lambda seed, change=CANDIDATES[name]:
                                  skmtl_defaults(change, n, seed))
                           for name in args.candidates})
        for name, run in contenders.items():
            records = [run(seed) for seed in args.seeds]
            cells = {k: _cell([r[k] for r in records]) for k in COLUMNS}
            rows.append((n, name, cells))
            print(f"{n} rows, {name}: " + ", ".join(f"{k} {v}" for k, v in cells.items()),
                  flush=True)
        _write(args, argv, rows, started, clock)


def _write(args, argv, rows, started, clock):
    write_script_table(args.output, "skmtl on small tables", "benchmarks.small_data", argv,
                       started, clock, args.seeds, ("training rows", "contender", *COLUMNS),
                       [(f"{n:,}", name, *(cells[k] for k in COLUMNS))
                        for n, name, cells in rows])


if __name__ == "__main__":
    main()
