"""
Which experts each task uses: gate weights
==========================================

MMoE mixes shared experts with a softmax gate per task; PLE adds experts of
each task beside the shared ones, on several levels. ``gate_weights(X)``
returns every row's mixture; ``GateWeightsDisplay`` draws their mean as a
gates × experts heat map. Tasks that lean on different experts are keeping
apart what they do not share.
"""

# %%
import matplotlib.pyplot as plt

from skmtl import MMOEClassifier, PLEClassifier
from skmtl.datasets import fetch_census_income
from skmtl.plotting import GateWeightsDisplay

census = fetch_census_income(subset="test")
X, Y = census.data, census.target
# sphinx_gallery_start_ignore
import os  # noqa: E402 (hidden from the page, as is this block)

if os.environ.get("SKMTL_DOCS_QUICK"):
    X, Y = X.iloc[:6_000], Y.iloc[:6_000]
# sphinx_gallery_end_ignore

mmoe = MMOEClassifier(n_experts=6, random_state=0).fit(X, Y)
GateWeightsDisplay.from_estimator(mmoe, X)

# %%
# PLE, level by level
# -------------------
# On the first level a shared gate (last row) also mixes every expert for
# the next level's shared experts; a task's gate sees the shared experts and
# its own only (the others' cells are 0).
ple = PLEClassifier(n_levels=2, random_state=0).fit(X, Y)
fig, axes = plt.subplots(2, 1, figsize=(8, 9), layout="constrained")
for level, ax in enumerate(axes):
    GateWeightsDisplay.from_estimator(ple, X, level=level, ax=ax)
