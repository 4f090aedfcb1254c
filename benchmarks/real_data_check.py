"""Quick real-data check of the core estimators with their default parameters.

* Census-Income (KDD) test file, random 80/20 split: per-task test AUC and
  fit time of ``MMOEClassifier()``.
* Coat: AUC of p(conversion | click) on the random-exposure test ratings
  (rating >= 4 positive) for ``ESMMClassifier()`` against plain classifiers
  trained on the clicked rows only.

Run from the repository root::

    SKMTL_DATA=../shared/data python benchmarks/real_data_check.py [--seeds 0 1 2]
"""

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from skmtl import ESMMClassifier, MMOEClassifier
from skmtl.datasets import fetch_census_income, fetch_coat


def census(seed):
    bunch = fetch_census_income(subset="test")
    X_train, X_test, Y_train, Y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.2, random_state=seed)
    start = time.perf_counter()
    model = MMOEClassifier(random_state=seed).fit(X_train, Y_train)
    fit_seconds = time.perf_counter() - start
    proba = model.predict_proba(X_test)
    aucs = {name: roc_auc_score(Y_test[name], p[:, 1]) for name, p in zip(Y_test, proba)}
    return aucs, fit_seconds, model.n_iter_


def coat(seed):
    bunch = fetch_coat()
    clicked = bunch.target["click"].to_numpy() == 1
    y_test = bunch.test_target["conversion"]
    results = {}

    start = time.perf_counter()
    esmm = ESMMClassifier(random_state=seed).fit(bunch.data, bunch.target[["click", "conversion"]])
    cvr = esmm.predict_conditional_proba(bunch.test_data)[1][:, 1]
    results["ESMMClassifier (all impressions)"] = (roc_auc_score(y_test, cvr), cvr.mean(),
                                                   time.perf_counter() - start)

    X_clicked = bunch.data[clicked]
    y_clicked = bunch.target["conversion"][clicked]
    start = time.perf_counter()
    single = MMOEClassifier(random_state=seed).fit(X_clicked, y_clicked)
    cvr = single.predict_proba(bunch.test_data)[:, 1]
    results["MMOEClassifier, 1 task (clicked rows)"] = (roc_auc_score(y_test, cvr), cvr.mean(),
                                                        time.perf_counter() - start)

    start = time.perf_counter()
    logistic = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                             LogisticRegression(max_iter=1000))
    cvr = logistic.fit(X_clicked, y_clicked).predict_proba(bunch.test_data)[:, 1]
    results["one-hot LogisticRegression (clicked rows)"] = (
        roc_auc_score(y_test, cvr), cvr.mean(), time.perf_counter() - start)
    return results, y_test.mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    seeds = parser.parse_args().seeds

    print("## Census-Income (test file, 80/20 split), MMOEClassifier() defaults\n")
    print("| seed | AUC income_50k | AUC never_married | fit s | epochs |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        aucs, seconds, epochs = census(seed)
        print(f"| {seed} | {aucs['income_50k']:.4f} | {aucs['never_married']:.4f} "
              f"| {seconds:.1f} | {epochs} |")

    print("\n## Coat: p(conversion | click) on random-exposure ratings\n")
    print("| seed | model | AUC | mean pCVR | observed rate | fit s |")
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        results, rate = coat(seed)
        for name, (auc, mean_cvr, seconds) in results.items():
            print(f"| {seed} | {name} | {auc:.4f} | {mean_cvr:.3f} | {rate:.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
