"""A picture of the report: test AUC and fit time per contender (needs matplotlib).

    python -m benchmarks.figure RESULTS.json FIGURE.png

``RESULTS.json`` is what ``python -m benchmarks.run --json`` writes;
``python -m benchmarks.run --figure FIGURE.png`` draws it at the end of a run.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .contenders import CONTENDERS

_QUALITY = {"census": ["auc_income_50k", "auc_never_married"], "coat": ["auc_pcvr"],
            "funnel4": ["auc_cond_1", "auc_cond_2", "auc_cond_3", "auc_cond_4"]}
_AUC_LABEL = {"funnel4": "expected test ROC AUC of p(stage k | stage k - 1) under the true "
                         "probabilities (mean ± std over seeds)"}


def plot(records, path):
    """Save one row of two panels per data set: AUC (mean ± std) and fit time (log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in _QUALITY
                if any(r.get("status") == "ok" and CONTENDERS[r["contender"]].dataset == d
                       for r in records)]
    if not datasets:
        raise ValueError("no successful run to plot")
    fig, axes = plt.subplots(len(datasets), 2, figsize=(13, 0.5 + 3.2 * len(datasets)),
                             squeeze=False)
    for (ax_auc, ax_fit), dataset in zip(axes, datasets):
        keys = [k for k, c in CONTENDERS.items() if c.dataset == dataset and any(
            r["contender"] == k and r.get("status") == "ok" for r in records)]
        ok = {k: [r for r in records if r["contender"] == k and r.get("status") == "ok"]
              for k in keys}
        y = np.arange(len(keys))
        metrics = _QUALITY[dataset]
        height = 0.8 / len(metrics)
        for m, metric in enumerate(metrics):
            values = [[r[metric] for r in ok[k]] for k in keys]
            ax_auc.barh(y + (m - (len(metrics) - 1) / 2) * height, [np.mean(v) for v in values],
                        height, xerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values],
                        label=metric[4:])
        low = min(min(r[m] for k in keys for r in ok[k]) for m in metrics)
        ax_auc.set_xlim(max(0.0, low - 0.05), 1.0)
        ax_auc.set_yticks(y, keys)
        ax_auc.invert_yaxis()
        ax_auc.set_xlabel(_AUC_LABEL.get(dataset, "test ROC AUC (mean ± std over seeds)"))
        ax_auc.set_title(f"{dataset}: quality")
        ax_auc.legend(loc="lower right", fontsize="small")
        fit = [np.mean([r["fit_seconds"] for r in ok[k]]) for k in keys]
        ax_fit.barh(y, fit, color="gray")
        ax_fit.set_xscale("log")
        # a contender that fits nothing (the true probabilities) would stretch the axis
        # over decades: it is left below the axis' start
        fitted = [f for f in fit if f >= 0.01]
        if fitted:
            ax_fit.set_xlim(left=min(fitted) / 2)
        ax_fit.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax_fit.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax_fit.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax_fit.set_yticks(y, keys)
        ax_fit.invert_yaxis()
        ax_fit.set_xlabel("fit time, s (log scale)")
        ax_fit.set_title(f"{dataset}: cost")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.figure",
        description="Draw test AUC and fit time per contender from the records of a run.")
    parser.add_argument("records", type=Path,
                        help="the JSON file written by python -m benchmarks.run --json")
    parser.add_argument("figure", type=Path, help="the image to write, e.g. figure.png")
    args = parser.parse_args(argv)
    try:
        with open(args.records) as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"cannot read the records {str(args.records)!r}: {exc}")
    try:
        plot(records, args.figure)
    except ValueError as exc:  # nothing to draw
        parser.error(f"{args.records}: {exc}")
    print(f"Written to {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
