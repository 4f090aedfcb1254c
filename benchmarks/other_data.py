"""The defaults on data they were not chosen on (``python -m benchmarks.other_data``).

The search behind the defaults (``benchmarks/search.py``) and the small
tables (``benchmarks/small_data.py``) fit Census, Coat and skmtl's own
generators. A user's first try is as likely to be a table of scikit-learn's:
this script fits ``MMOEClassifier`` / ``MMOERegressor`` with their
defaults, with other numeric encodings and more epochs, and ``HistGradientBoosting*``
(one model per task) on data scikit-learn ships or generates (nothing is
downloaded), on the same random 70/30 split of each seed:

* ``breast_cancer``: 569 rows, 30 numeric columns, one binary task;
* ``digits``: 1,797 rows of 64 pixel columns, three binary tasks (the digit
  is even, above 4, a prime);
* ``digits_multiclass``: the same rows, one task of ten classes (one-vs-rest
  ROC AUC, macro average);
* ``multilabel``: ``make_multilabel_classification``, 3,000 rows, 40
  columns, 6 labels;
* ``classification``: ``make_classification``, 10,000 rows, 20 columns (10
  informative), one binary task;
* ``hastie``: ``make_hastie_10_2``, 12,000 rows, 10 columns, one binary task;
* ``diabetes``: 442 rows, 10 columns, one real-valued task;
* ``regression``: ``make_regression``, 5,000 rows, 20 columns, 3 real-valued
  tasks (linear, with noise);
* ``friedman1``: ``make_friedman1``, 20,000 rows, 10 columns, one
  real-valued task (a smooth non-linear function).

The score is the mean over tasks of the test ROC AUC (classifiers) or R²
(regressors); fit times are wall times in one warm process, gradient
boosting's summed over its models.
"""

import argparse
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from skmtl import MMOEClassifier, MMOERegressor

from .report import write_script_table

GRADIENT_BOOSTING = "HistGradientBoosting, one per task"
# name -> the change of the estimators' defaults
CANDIDATES = {
    "defaults": {},
    "numeric_encoding='piecewise_linear' (the default before session 21)":
        {"numeric_encoding": "piecewise_linear"},
    "numeric_encoding='standard'": {"numeric_encoding": "standard"},
    "numeric_encoding='piecewise_linear', max_epochs=12":
        {"numeric_encoding": "piecewise_linear", "max_epochs": 12},
    "leaf_trees=10": {"leaf_trees": 10},
    "leaf_trees=20": {"leaf_trees": 20},
    "frequent_values=None (the default before session 25)": {"frequent_values": None},
    "frequent_values='all'": {"frequent_values": "all"},
    # for MMOEClassifier; what MMOERegressor has by default
    "batch_norm=False, weight_decay=1e-5, max_epochs=5 (the defaults until session 28)":
        {"batch_norm": False, "weight_decay": 1e-5, "max_epochs": 5},
    # MMOEClassifier's defaults since session 29, for MMOERegressor
    "batch_norm=True, weight_decay=1e-4, max_epochs=4 (the classifiers' defaults)":
        {"batch_norm": True, "weight_decay": 1e-4, "max_epochs": 4},
    "max_epochs=6, early_stopping='auto' (the defaults until session 27)":
        {"max_epochs": 6, "early_stopping": "auto", "batch_norm": False, "weight_decay": 1e-5},
}


def _frame(X, prefix="x"):
    return pd.DataFrame(X, columns=[f"{prefix}{i}" for i in range(X.shape[1])])


def _digits():
    data = datasets.load_digits()
    return _frame(data.data, "pixel"), data.target


def breast_cancer():
    data = datasets.load_breast_cancer(as_frame=True)
    return data.data, data.target.to_frame("benign"), "classification"


def digits():
    X, digit = _digits()
    Y = pd.DataFrame({"even": digit % 2 == 0, "above_4": digit > 4,
                      "prime": np.isin(digit, [2, 3, 5, 7])}).astype(int)
    return X, Y, "classification"


def digits_multiclass():
    X, digit = _digits()
    return X, pd.DataFrame({"digit": digit}), "classification"


def multilabel():
    X, Y = datasets.make_multilabel_classification(n_samples=3000, n_features=40,
                                                   n_classes=6, random_state=0)
    return _frame(X), _frame(Y, "label"), "classification"


def classification():
    X, y = datasets.make_classification(n_samples=10_000, n_features=20, n_informative=10,
                                        random_state=0)
    return _frame(X), pd.DataFrame({"y": y}), "classification"


def hastie():
    X, y = datasets.make_hastie_10_2(n_samples=12_000, random_state=0)
    return _frame(X), pd.DataFrame({"y": (y > 0).astype(int)}), "classification"


def diabetes():
    data = datasets.load_diabetes(as_frame=True)
    return data.data, data.target.to_frame("progression"), "regression"


def regression():
    X, Y = datasets.make_regression(n_samples=5000, n_features=20, n_targets=3, noise=10,
                                    random_state=0)
    return _frame(X), _frame(Y, "target"), "regression"


def friedman1():
    X, y = datasets.make_friedman1(n_samples=20_000, noise=1.0, random_state=0)
    return _frame(X), pd.DataFrame({"y": y}), "regression"


PROBLEMS = {f.__name__: f for f in (breast_cancer, digits, digits_multiclass, multilabel,
                                    classification, hastie, diabetes, regression, friedman1)}


def _score(kind, Y_test, predictions):
    """Mean over tasks of ROC AUC (one-vs-rest for several classes) or R²."""
    if kind == "regression":
        predictions = np.asarray(predictions).reshape(len(Y_test), -1)
        return float(np.mean([r2_score(Y_test.iloc[:, t], predictions[:, t])
                              for t in range(Y_test.shape[1])]))
    scores = []
    for t, proba in enumerate(predictions):
        y = Y_test.iloc[:, t]
        scores.append(roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else
                      roc_auc_score(y, proba, multi_class="ovr"))
    return float(np.mean(scores))


def gradient_boosting(problem, seed):
    X_train, X_test, Y_train, Y_test, kind = _split(problem, seed)
    estimator = (HistGradientBoostingRegressor if kind == "regression"
                 else HistGradientBoostingClassifier)
    start = time.perf_counter()
    models = [estimator(random_state=seed).fit(X_train, Y_train[task]) for task in Y_train]
    seconds = time.perf_counter() - start
    if kind == "regression":
        predictions = np.column_stack([m.predict(X_test) for m in models])
    else:
        predictions = [m.predict_proba(X_test) for m in models]
    return {"score": _score(kind, Y_test, predictions), "fit s": seconds, "epochs": None,
            "encoding": None}


def skmtl_candidate(params, problem, seed):
    X_train, X_test, Y_train, Y_test, kind = _split(problem, seed)
    estimator = MMOERegressor if kind == "regression" else MMOEClassifier
    model = estimator(random_state=seed, **params)
    start = time.perf_counter()
    model.fit(X_train, Y_train)
    seconds = time.perf_counter() - start
    predictions = model.predict(X_test) if kind == "regression" else model.predict_proba(X_test)
    return {"score": _score(kind, Y_test, predictions), "fit s": seconds,
            "epochs": model.n_iter_, "encoding": model.numeric_encoding_}


def _split(problem, seed):
    X, Y, kind = PROBLEMS[problem]()
    X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.3, random_state=seed)
    return X_train, X_test, Y_train, Y_test, kind


def _cells(records):
    scores = [r["score"] for r in records]
    score = (f"{np.mean(scores):.4f} ± {np.std(scores, ddof=1):.4f}" if len(scores) > 1
             else f"{scores[0]:.4f}")
    epochs = [r["epochs"] for r in records if r["epochs"] is not None]
    encodings = sorted({r["encoding"] for r in records if r["encoding"] is not None})
    return {"score": score, "fit s": f"{np.mean([r['fit s'] for r in records]):.2f}",
            "epochs": f"{np.mean(epochs):.1f}" if epochs else "–",
            "numeric_encoding_": ", ".join(encodings) or "–"}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.other_data",
        description="The defaults on data they were not chosen on, beside gradient boosting.")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS),
                        metavar="NAME", help="names of PROBLEMS to fit (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES), metavar="NAME",
                        help="names of CANDIDATES to run (default: all)")
    parser.add_argument("--output", default="benchmarks/other_data.md",
                        help="the markdown table to write (default: %(default)s)")
    args = parser.parse_args(argv)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    # The first fits of a process pay one-time costs (lazy imports, torch's first
    # kernels): one round untimed and unreported.
    gradient_boosting("diabetes", args.seeds[0])
    skmtl_candidate({}, "breast_cancer", args.seeds[0])
    rows = []
    for problem in args.problems:
        contenders = {GRADIENT_BOOSTING: lambda seed: gradient_boosting(problem, seed)}
        contenders.update({name: (lambda seed, params=CANDIDATES[name]:
                                  skmtl_candidate(params, problem, seed))
                           for name in args.candidates})
        for name, run in contenders.items():
            cells = _cells([run(seed) for seed in args.seeds])
            rows.append((problem, name, cells))
            print(f"{problem}, {name}: " + ", ".join(f"{k} {v}" for k, v in cells.items()),
                  flush=True)
        _write(args, argv, rows, started, clock)


def _write(args, argv, rows, started, clock):
    write_script_table(args.output, "skmtl on data its defaults were not chosen on",
                       "benchmarks.other_data", argv, started, clock, args.seeds,
                       ("problem", "contender", "test AUC or R² (mean over tasks)", "fit s",
                        "epochs", "numeric_encoding_"),
                       [(problem, name, cells["score"], cells["fit s"], cells["epochs"],
                         cells["numeric_encoding_"]) for problem, name, cells in rows])


if __name__ == "__main__":
    main()
