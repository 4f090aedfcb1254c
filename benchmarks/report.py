"""Turn the workers' records into the markdown report."""

import math
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata

import numpy as np

from .contenders import CONTENDERS

DISTRIBUTIONS = ("torch", "skorch", "scikit-learn", "numpy", "pandas", "torch-rechub",
                 "deepctr-torch")


def machine_info():
    """CPU model, cores, RAM, load and package versions of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    ram_gib = int(line.split()[1]) / 1024 ** 2
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    # the skmtl the workers import (the repository's, put first on their
    # PYTHONPATH), not the metadata of whichever copy pip installed
    import skmtl

    versions["skmtl"] = skmtl.__version__
    versions["skmtl commit"] = _git_commit()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "versions": versions,
            "platform": platform.platform(), "load_at_start": load}


def script_header(title, command, machine, started, note="", extra_versions=""):
    """The lines that open a separate script's report: title, command, machine, duration.

    ``command`` is the exact command line; ``extra_versions`` (e.g.
    ``"onnxruntime 1.32.0, "``) goes before skmtl's version.
    """
    versions = machine["versions"]
    return [f"# {title}", "", f"- command: `{command}`",
            f"- machine: {machine['cpu']}, {machine['cores']} cores; torch {versions['torch']}, "
            f"{extra_versions}skmtl {versions['skmtl']} "
            f"(commit {versions.get('skmtl commit', '?')})",
            f"- took {(time.perf_counter() - started) / 60:.1f} min{note}", ""]


def write_script_table(path, title, script, argv, started, clock, seeds, columns, rows):
    """Write a separate script's report: its header, then one markdown table.

    ``argv``: the script's arguments (None: ``sys.argv``'s); ``started``: the UTC
    datetime, ``clock``: the ``time.perf_counter()`` of its start; ``rows``: the
    tables' cells, as strings in ``columns``' order.
    """
    argv = sys.argv[1:] if argv is None else argv
    lines = script_header(title, f"python -m {script} {shlex.join(argv)}".strip(),
                          machine_info(), clock,
                          note=f"; started {started:%Y-%m-%d %H:%M} UTC; seeds {seeds}")
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _git_commit():
    """The repository's HEAD (read only), or "unknown" outside a git work tree."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


# -- numbers -------------------------------------------------------------------


def _values(records, key):
    return [r[key] for r in records if r.get(key) is not None]


def _mean(records, key):
    values = _values(records, key)
    return float(np.mean(values)) if values else None


def mean_std(records, key, digits=4):
    """``mean ± std`` over the seeds (sample std); just the mean for one seed."""
    values = _values(records, key)
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _ratio(value, reference):
    if value is None or reference is None or reference == 0 or not math.isfinite(reference):
        return "–"
    return f"{value / reference:.2f}"


def _fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def _epochs(records):
    """Epochs run: one number, or the range over the seeds."""
    values = [r["epochs_run"] for r in records if r.get("epochs_run") is not None]
    if not values:
        return "–"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


# -- tables --------------------------------------------------------------------


def _group(records, dataset, table):
    """``{contender key: [records]}`` in registry order for one table of ``dataset``."""
    groups = {}
    for key, contender in CONTENDERS.items():
        if contender.dataset == dataset and contender.table == table:
            mine = [r for r in records if r["contender"] == key]
            if mine:
                groups[key] = mine
    return groups


def tables_of(records, dataset):
    """The tables of ``dataset`` that have records, in registry order."""
    present = {r["contender"] for r in records}
    tables = []
    for key, contender in CONTENDERS.items():
        if (contender.dataset == dataset and key in present
                and contender.table not in tables):
            tables.append(contender.table)
    return tables


def reference_key(table_of_dataset):
    """The key of the reference contender of ``(dataset, table)``, or None."""
    dataset, table = table_of_dataset
    for key, contender in CONTENDERS.items():
        if contender.dataset == dataset and contender.table == table and contender.reference:
            return key
    return None


def _status_line(records):
    """Why a contender has no numbers: ``not installed: ...`` or ``failed: ...``."""
    bad = [r for r in records if r.get("status") != "ok"]
    if not bad:
        return None
    first = bad[0]
    n_ok = len(records) - len(bad)
    prefix = first["status"]
    detail = first.get("error", "")
    if n_ok:
        return f"{prefix} on {len(bad)} of {len(records)} seeds: {detail}"
    return f"{prefix}: {detail}"


def _cost_columns(ok, reference):
    fit = _mean(ok, "fit_seconds")
    rate = _mean(ok, "predict_rows_per_second")
    inc = _mean(ok, "rss_increment_mb")
    return [
        mean_std(ok, "fit_seconds", 2),
        _ratio(fit, reference.get("fit")),
        _fmt(_mean(ok, "prep_seconds"), 2),
        _fmt(rate, 0),
        _ratio(rate, reference.get("rate")),
        _fmt(_mean(ok, "peak_rss_mb"), 0),
        _fmt(inc, 0),
        _ratio(inc, reference.get("increment")),
    ]


_COST_HEADER = ["fit s", "fit ×", "prep s", "predict rows/s", "predict ×", "peak RSS MB",
                "Δ RSS MB", "Δ RSS ×"]


def _reference(groups):
    for key, records in groups.items():
        if CONTENDERS[key].reference:
            ok = [r for r in records if r.get("status") == "ok"]
            if ok:
                return {"fit": _mean(ok, "fit_seconds"),
                        "rate": _mean(ok, "predict_rows_per_second"),
                        "increment": _mean(ok, "rss_increment_mb")}
    return {}


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _label(key):
    return f"{CONTENDERS[key].label} (`{key}`)"


def census_table(records, table="MMoE", tasks=("income_50k", "never_married")):
    groups = _group(records, "census", table)
    reference = _reference(groups)
    header = (["contender"] + [f"AUC {t}" for t in tasks] + [f"log loss {t}" for t in tasks]
              + ["epochs"] + _COST_HEADER)
    rows = []
    for key, recs in groups.items():
        label = _label(key)
        ok = [r for r in recs if r.get("status") == "ok"]
        status = _status_line(recs)
        if not ok:
            rows.append([label, status] + ["–"] * (len(header) - 2))
            continue
        if status:
            label += f" — {status}"
        rows.append([label] + [mean_std(ok, f"auc_{t}") for t in tasks]
                    + [mean_std(ok, f"logloss_{t}") for t in tasks]
                    + [_epochs(ok)] + _cost_columns(ok, reference))
    return _table(header, rows)


def coat_table(records, table="ESMM"):
    groups = _group(records, "coat", table)
    reference = _reference(groups)
    header = (["contender", "trained on", "AUC pCVR", "mean pCVR", "observed rate",
               "log loss pCVR", "epochs"] + _COST_HEADER)
    rows = []
    for key, recs in groups.items():
        contender = CONTENDERS[key]
        label = f"{contender.label} (`{key}`)"
        ok = [r for r in recs if r.get("status") == "ok"]
        status = _status_line(recs)
        if not ok:
            rows.append([label, contender.trained_on, status] + ["–"] * (len(header) - 3))
            continue
        if status:
            label += f" — {status}"
        rows.append([label, contender.trained_on, mean_std(ok, "auc_pcvr"),
                     mean_std(ok, "mean_pcvr", 3), _fmt(_mean(ok, "observed_rate"), 3),
                     mean_std(ok, "logloss_pcvr"), _epochs(ok)] + _cost_columns(ok, reference))
    return _table(header, rows)


# funnel4: stage k's conditional probability is "k∣k-1" (stage 1: the click), with
# U+2223 (divides), not "|", which would split a markdown table's cell
def _stage(k):
    return "1" if k == 1 else f"{k}\u2223{k - 1}"


def funnel_stages(records):
    """Number of stages scored in the funnel4 records (0 if none)."""
    stages = 0
    for r in records:
        while f"auc_cond_{stages + 1}" in r:
            stages += 1
        if stages:
            break
    return stages


def _millinats(ok, key):
    scaled = [{key: r[key] * 1000.0} for r in ok if r.get(key) is not None]
    return mean_std(scaled, key, 2)


def _calibration(ok, stages):
    """Mean predicted over mean true conditional probability, per stage: ``a / b / ...``."""
    cells = []
    for k in range(1, stages + 1):
        ratios = [r[f"mean_cond_{k}"] / r[f"true_mean_cond_{k}"] for r in ok]
        cells.append(f"{np.mean(ratios):.2f}")
    return " / ".join(cells)


def funnel_tables(records, table="ESMM and AITM"):
    """Three tables: conditional probabilities, entire-space probabilities, costs."""
    groups = _group(records, "funnel4", table)
    stages = funnel_stages([r for recs in groups.values() for r in recs
                            if r.get("status") == "ok"])
    reference = _reference(groups)
    conditional_header = (["contender"] + [f"AUC {_stage(k)}" for k in range(1, stages + 1)]
                          + [f"KL {_stage(k)} (mnat)" for k in range(1, stages + 1)]
                          + ["mean / true, per stage"])
    reach_header = (["contender"] + [f"AUC reach {k}" for k in range(1, stages + 1)]
                    + [f"KL reach {k} (mnat)" for k in range(1, stages + 1)])
    cost_header = ["contender", "epochs"] + _COST_HEADER
    conditional_rows, reach_rows, cost_rows = [], [], []
    for key, recs in groups.items():
        label = _label(key)
        ok = [r for r in recs if r.get("status") == "ok"]
        status = _status_line(recs)
        if not ok or not stages:
            for rows, header in ((conditional_rows, conditional_header),
                                 (reach_rows, reach_header), (cost_rows, cost_header)):
                rows.append([label, status] + ["–"] * (len(header) - 2))
            continue
        if status:
            label += f" — {status}"
        steps = range(1, stages + 1)
        conditional_rows.append([label] + [mean_std(ok, f"auc_cond_{k}") for k in steps]
                                + [_millinats(ok, f"kl_cond_{k}") for k in steps]
                                + [_calibration(ok, stages)])
        reach_rows.append([label] + [mean_std(ok, f"auc_reach_{k}") for k in steps]
                          + [_millinats(ok, f"kl_reach_{k}") for k in steps])
        cost_rows.append([label, _epochs(ok)] + _cost_columns(ok, reference))
    return (_table(conditional_header, conditional_rows), _table(reach_header, reach_rows),
            _table(cost_header, cost_rows))


def notes(records):
    out = []
    for key in CONTENDERS:
        seen = []
        for r in records:
            if r["contender"] == key:
                for note in r.get("notes", []):
                    if note not in seen:
                        seen.append(note)
        if seen:
            out.append(f"- `{key}`: " + "; ".join(seen))
    return out


def render(records, meta):
    """The whole markdown report."""
    info = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    threads = sorted({r["torch_threads"] for r in records if r.get("torch_threads")})
    load = info.get("load_at_start")
    lines = [
        "# skmtl side-by-side benchmark",
        "",
    ]
    if meta.get("partial"):
        lines += [f"**Partial report: {meta['partial']} done; the run is still going or "
                  "was interrupted.**", ""]
    lines += [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']} (took {meta['elapsed_minutes']:.0f} min)",
        f"- machine: {info['cpu']}, {info['cores']} cores, "
        + (f"{info['ram_gib']:.0f} GiB RAM" if info["ram_gib"] else "RAM unknown")
        + (f"; load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}" if load
           else ""),
        f"- versions: {versions}",
        f"- torch threads per worker: {'/'.join(map(str, threads)) or '–'} (torch's default, "
        "not set by the suite)",
        f"- seeds: {' '.join(map(str, meta['seeds']))}; epochs: {meta['epochs']}; "
        f"Census rows: {meta['census_rows'] or 'all (99,762)'}; "
        f"Coat impressions: {meta['coat_rows'] or 'all (87,000)'}; "
        f"funnel4 impressions: {meta.get('funnel4_rows') or 'all (100,000)'}",
    ]
    if meta.get("fit_passes", 1) > 1:
        lines.append(f"- fit times: the fastest of {meta['fit_passes']} passes over every job "
                     "(every other number is the first pass's)")
    lines += [
        "",
        "Metrics are mean ± standard deviation over the seeds; costs are means. "
        "Ratios (×) are against the row marked as reference of each table "
        "(skmtl's estimator of that table's model at the common configuration). "
        "`fit s` excludes `prep s`, the shared "
        "encoding given to the peers and the hand-written loop (the skmtl estimators "
        "encode the DataFrame inside fit and predict). `predict rows/s`: test rows "
        "over the median time of repeated predictions of the test set. `peak RSS`: "
        "ru_maxrss of the worker process; `Δ RSS`: peak during fit and predict over the "
        "resident set after imports, data loading and preparation.",
        "",
    ]
    census_tables = tables_of(records, "census")
    if census_tables:
        lines += ["## Census-Income (KDD): tasks income_50k and never_married", "",
                  f"Random 80/20 split per seed of the {meta['census_rows'] or '99,762'}-row "
                  "test file; 10 % of the training part for validation.", ""]
        for table in census_tables:
            lines += [f"### Census: {table}", "",
                      f"Reference: `{reference_key(('census', table))}`.", ""]
            lines += census_table(records, table) + [""]
    coat_tables = tables_of(records, "coat")
    if coat_tables:
        lines += ["## Coat: funnel models on all impressions (ESMM, AITM) against CVR models "
                  "on clicked rows", "",
                  "pCVR = p(conversion | click) scored on the random-exposure test "
                  "ratings (conversion = rating ≥ 4); mean pCVR against the observed "
                  "conversion rate there.", ""]
        for table in coat_tables:
            lines += [f"### Coat: {table}", "",
                      f"Reference: `{reference_key(('coat', table))}`.", ""]
            lines += coat_table(records, table) + [""]
    for table in tables_of(records, "funnel4"):
        conditional, reach, costs = funnel_tables(records, table)
        lines += [f"## funnel4: {table} on four nested stages against the true probabilities",
                  "",
                  f"`make_entire_space(n_stages=4)`, {meta.get('funnel4_rows') or '100,000'} "
                  "impressions, random 80/20 split per seed; 10 % of the training part for "
                  "validation. Every test row is scored against the generator's probabilities: "
                  "AUC expected under labels drawn from them (each row a positive with weight "
                  "p, a negative with weight 1 − p) and the mean KL divergence from them, in "
                  "millinats (0 for the truth). Reference of the costs: "
                  f"`{reference_key(('funnel4', table))}`.", "",
                  "Conditional probabilities, p(stage k | stage k − 1), on every test row "
                  "(reached stage k − 1 or not); `mean / true`: mean predicted over mean true "
                  "probability, stage by stage:", ""]
        lines += conditional + ["", "Entire-space probabilities, p(stage k reached):", ""]
        lines += reach + ["", "Costs:", ""] + costs + [""]
    extra = notes(records)
    if extra:
        lines += ["Notes:", ""] + extra + [""]
    return "\n".join(lines)
