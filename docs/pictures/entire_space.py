"""The entire space of impressions, the clicks within it, the conversions within those."""

import matplotlib.pyplot as plt
from matplotlib.patches import Ellipse

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, title in ((left, "A CVR model trained on clicked rows"),
                  (right, "ESMM: both towers trained on every impression")):
    ax.add_patch(Ellipse((0.5, 0.5), 0.95, 0.9, color="#dbe9f6"))
    ax.add_patch(Ellipse((0.42, 0.45), 0.5, 0.5, color="#9ecae1"))
    ax.add_patch(Ellipse((0.38, 0.42), 0.2, 0.2, color="#3182bd"))
    ax.text(0.5, 0.8, "impressions (the space the model will score)", ha="center")
    ax.text(0.42, 0.63, "clicks", ha="center")
    ax.text(0.38, 0.41, "conversions", ha="center", color="white", fontsize=9)
    ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
    ax.set_axis_off()
left.add_patch(Ellipse((0.42, 0.45), 0.52, 0.52, fill=False, edgecolor="#d62728", lw=2.5,
                       linestyle="--"))
left.text(0.78, 0.2, "trained here only,\nscored everywhere:\nsample selection bias",
          color="#d62728", ha="center")
right.add_patch(Ellipse((0.5, 0.5), 0.97, 0.92, fill=False, edgecolor="#2ca02c", lw=2.5,
                        linestyle="--"))
right.text(0.74, 0.17, "pCTCVR = pCTR × pCVR\nsupervised on all\nimpressions", color="#2ca02c",
           ha="center")
fig.tight_layout()
