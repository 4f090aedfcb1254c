"""Shared-Bottom, OMoE, MMoE and PLE: where the tasks share and where they part."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch


def box(ax, x, y, text, color, width=0.16, height=0.1):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.01", color=color))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def arrow(ax, start, end, color="gray"):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color=color, lw=1))


INPUT, EXPERT, GATE, TOWER = "#dddddd", "#9ecae1", "#fdd0a2", "#c7e9c0"
fig, axes = plt.subplots(1, 4, figsize=(15, 4.2))
for ax, title in zip(axes, ["Shared-Bottom", "OMoE: one gate", "MMoE: a gate per task",
                            "PLE: shared and task experts"]):
    ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
    ax.set_axis_off()
    box(ax, 0.5, 0.08, "embedded input", INPUT, width=0.5)
    box(ax, 0.25, 0.9, "tower A", TOWER)
    box(ax, 0.75, 0.9, "tower B", TOWER)

ax = axes[0]
box(ax, 0.5, 0.45, "shared bottom MLP", EXPERT, width=0.5, height=0.2)
arrow(ax, (0.5, 0.13), (0.5, 0.35))
for x in (0.25, 0.75):
    arrow(ax, (0.5, 0.55), (x, 0.85))

for ax, gates in ((axes[1], [0.5]), (axes[2], [0.25, 0.75])):
    for x in (0.2, 0.4, 0.6, 0.8):
        box(ax, x, 0.4, "expert", EXPERT, width=0.15)
        arrow(ax, (0.5, 0.13), (x, 0.35))
    for g in gates:
        box(ax, g, 0.65, "gate", GATE, width=0.14, height=0.08)
        arrow(ax, (0.5, 0.13), (g, 0.61), color="#e6550d")
    for x in (0.25, 0.75):
        g = gates[0] if len(gates) == 1 else x
        arrow(ax, (g, 0.69), (x, 0.85))
        for e in (0.2, 0.4, 0.6, 0.8):
            arrow(ax, (e, 0.45), (g, 0.61), color="#c6dbef")

ax = axes[3]
for x, label, color in ((0.15, "A's\nexperts", "#a1d99b"), (0.5, "shared\nexperts", EXPERT),
                        (0.85, "B's\nexperts", "#a1d99b")):
    box(ax, x, 0.4, label, color, width=0.2, height=0.14)
    arrow(ax, (0.5, 0.13), (x, 0.33))
for x in (0.25, 0.75):
    box(ax, x, 0.66, "gate", GATE, width=0.14, height=0.08)
    arrow(ax, (x, 0.70), (x, 0.85))
    arrow(ax, (0.5, 0.47), (x, 0.62), color="#c6dbef")
    arrow(ax, (0.15 if x < 0.5 else 0.85, 0.47), (x, 0.62), color="#c6dbef")
ax.text(0.5, 0.22, "on n_levels levels", ha="center", fontsize=8, style="italic")
fig.tight_layout()
