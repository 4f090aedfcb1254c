"""
Learning curves and ROC per task, against single-task models
============================================================

``MMOEClassifier`` learns Census-Income's two tasks (income above $50,000,
never married) in one network. Here it is compared with the same network
trained on one task at a time: the learning curves of each task (training
and validation loss, validation ROC AUC) and the ROC curves on held-out
rows.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split

from skmtl import MMOEClassifier
from skmtl.datasets import fetch_census_income
from skmtl.plotting import HistoryDisplay

census = fetch_census_income(subset="test")
X, Y = census.data, census.target
# sphinx_gallery_start_ignore
import os  # noqa: E402 (hidden from the page, as is this block)

if os.environ.get("SKMTL_DOCS_QUICK"):  # the CI build: a fraction of the rows
    X, Y = X.iloc[:6_000], Y.iloc[:6_000]
# sphinx_gallery_end_ignore
X_train, X_test, Y_train, Y_test = train_test_split(
    X, Y, test_size=0.2, random_state=0)

# early stopping holds out 10 % of the training rows: the curves' validation
mmoe = MMOEClassifier(early_stopping=True, random_state=0)
mmoe.fit(X_train, Y_train)
single = {
    task: MMOEClassifier(early_stopping=True, random_state=0).fit(
        X_train, Y_train[task])
    for task in mmoe.task_names_}

# %%
# Learning curves
# ---------------
# One panel per task: the multi-task model's losses, and its validation AUC
# on the right-hand axis.
fig, axes = plt.subplots(2, 1, figsize=(8, 8), layout="constrained")
for ax, task in zip(axes, mmoe.task_names_):
    HistoryDisplay.from_estimator(mmoe, tasks=[task], ax=ax)
    ax.set_title(task)

# %%
# ROC per task
# ------------
# On the held-out rows, the multi-task model against the single-task one
# (the curves differ little: the left part, where ranking matters most, is
# enlarged).
fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
for t, (ax, task) in enumerate(zip(axes, mmoe.task_names_)):
    scores = {"MMoE, both tasks": mmoe.predict_proba(X_test)[t][:, 1],
              "single task": single[task].predict_proba(X_test)[:, 1]}
    for name, score in scores.items():
        auc = roc_auc_score(Y_test[task], score)
        print(f"{task}, {name}: ROC AUC {auc:.4f}")
        RocCurveDisplay.from_predictions(Y_test[task], score, ax=ax, name=name)
    ax.set(xlim=(0, 0.4), title=task, aspect="auto")
