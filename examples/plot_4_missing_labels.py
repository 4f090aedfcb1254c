"""
Missing labels: keep the rows
=============================

In Census-Income, pretend the income is known for only some people (a
survey answered by a few). Rows with a missing label can be dropped, or kept
with the label marked missing (NaN): the row then trains the other task and
the shared layers, and leaves only that task's loss. The test ROC AUC of
income as its labels grow scarce:
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
fractions = [0.0, 0.5, 0.8, 0.95]
# sphinx_gallery_start_ignore
import os  # noqa: E402 (hidden from the page, as is this block)

if os.environ.get("SKMTL_DOCS_QUICK"):
    X, Y = X.iloc[:8_000], Y.iloc[:8_000]
    fractions = [0.0, 0.8, 0.95]
# sphinx_gallery_end_ignore
X_train, X_test, Y_train, Y_test = train_test_split(
    X, Y, test_size=0.2, random_state=0)

rng = np.random.default_rng(0)
results = {"kept, label missing": [], "dropped": []}
for fraction in fractions:
    missing = rng.random(len(Y_train)) < fraction
    Y_partial = Y_train.astype(float)
    Y_partial.loc[missing, "income_50k"] = np.nan
    kept = MMOEClassifier(random_state=0).fit(X_train, Y_partial)
    dropped = MMOEClassifier(random_state=0).fit(X_train[~missing],
                                                 Y_train[~missing])
    for name, model in (("kept, label missing", kept), ("dropped", dropped)):
        proba = model.predict_proba(X_test)[0][:, 1]
        results[name].append(roc_auc_score(Y_test["income_50k"], proba))

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name, aucs in results.items():
    ax.plot([100 * f for f in fractions], aucs, marker="o", label=name)
ax.set(xlabel="% of income labels missing", ylabel="test ROC AUC, income_50k",
       title="Rows with a missing income label")
ax.legend()

# %%
# With few income labels left, the rows kept with the label marked missing
# still train the shared layers through the other task (never married),
# which shares much with income: the model degrades more slowly than one
# that drops them.
