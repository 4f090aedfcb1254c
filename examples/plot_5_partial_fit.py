"""
Training on chunks with ``partial_fit``
=======================================

When the rows do not fit in memory, or arrive day by day, ``partial_fit``
trains one pass over each chunk. The first call fixes the tasks, classes and
encoders, so every categorical column needs its vocabulary known up front:
a pandas ``category`` dtype listing every value (as Census-Income's columns
have), ``categories=`` or ``hash_buckets=``. The test ROC AUC after each
chunk, against ``fit`` on all the rows at once:
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skmtl import MMOEClassifier
from skmtl.datasets import fetch_census_income

census = fetch_census_income(subset="test")
X, Y = census.data, census.target
n_chunks = 8
# sphinx_gallery_start_ignore
import os  # noqa: E402 (hidden from the page, as is this block)

if os.environ.get("SKMTL_DOCS_QUICK"):
    X, Y = X.iloc[:20_000], Y.iloc[:20_000]
    n_chunks = 4
# sphinx_gallery_end_ignore
X_train, X_test, Y_train, Y_test = train_test_split(
    X, Y, test_size=0.2, random_state=0)


def test_auc(model):
    probas = model.predict_proba(X_test)
    return [roc_auc_score(Y_test[task], proba[:, 1])
            for task, proba in zip(model.task_names_, probas)]


streamed = MMOEClassifier(random_state=0)
aucs = []
for chunk in np.array_split(np.arange(len(X_train)), n_chunks):
    streamed.partial_fit(X_train.iloc[chunk], Y_train.iloc[chunk])
    aucs.append(test_auc(streamed))
whole = test_auc(MMOEClassifier(random_state=0).fit(X_train, Y_train))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for t, (ax, task) in enumerate(zip(axes, streamed.task_names_)):
    ax.plot(range(1, n_chunks + 1), [a[t] for a in aucs], marker="o",
            label="partial_fit")
    ax.axhline(whole[t], color="gray", linestyle="--", label="fit on all rows")
    ax.set(xlabel="chunks seen", ylabel="test ROC AUC", title=task)
    ax.legend()
fig.tight_layout()

# %%
# Each call is one pass over its chunk at a constant learning rate, with no
# early stopping; ``fit`` sees every row in each of its epochs, under a cosine
# schedule. Chunk by chunk the streamed model closes most of the gap.
