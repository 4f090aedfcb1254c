"""Smoke test of the benchmark suite (benchmarks/): the whole machinery on tiny data.

Runs ``python -m benchmarks.run``'s code path on 2,000 Census rows for one
epoch and one seed, for the contenders that need no optional package (skmtl,
the hand-written loop, gradient boosting), each in its own worker process,
plus a peer whose package cannot be imported, which must be reported as not
installed instead of crashing the suite.
"""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import run as bench_run
from benchmarks.contenders import CONTENDERS
from benchmarks.data import SharedEncoding, holdout_mask

RUN = ["skmtl", "floor", "hgb"]
GHOST = "ghost-peer"
MISSING_MODULE = "skmtl_benchmark_no_such_package"


def _number(cell):
    """A table cell as a float: ``0.8123``, ``0.81 ± 0.01`` or ``12,345``."""
    return float(cell.split("±")[0].replace(",", "").strip())


def _rows(markdown):
    """``{contender key: [cells]}`` of the markdown tables."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and "(`" in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            key = cells[0].split("(`")[1].split("`)")[0]
            rows[key] = cells
    return rows


@pytest.fixture
def ghost_peer(monkeypatch):
    """A peer contender whose package is not installed."""
    ghost = dataclasses.replace(CONTENDERS["torch-rechub"], key=GHOST,
                                label="a peer that is not installed",
                                requires=(MISSING_MODULE,))
    monkeypatch.setitem(CONTENDERS, GHOST, ghost)
    return ghost


def test_suite_on_tiny_census(tmp_path, ghost_peer, capsys):
    output, raw = tmp_path / "results.md", tmp_path / "results.json"
    argv = ["--datasets", "census", "--census-rows", "2000", "--epochs", "1", "--seeds", "0",
            "--contenders", *RUN, GHOST, "--predict-min-seconds", "0.2",
            "--output", str(output), "--json", str(raw), "--no-download"]
    assert bench_run.main(argv) == 0

    markdown = output.read_text()
    assert markdown in capsys.readouterr().out
    assert "python -m benchmarks.run --datasets census --census-rows 2000" in markdown
    assert "cores" in markdown and "torch 2" in markdown and "scikit-learn" in markdown
    assert "## Census-Income" in markdown and "## Coat" not in markdown

    rows = _rows(markdown)
    assert set(rows) == set(RUN) | {GHOST}
    header = next(line for line in markdown.splitlines() if line.startswith("| contender"))
    columns = [c.strip() for c in header.strip().strip("|").split("|")]
    numeric = ["AUC income_50k", "AUC never_married", "log loss income_50k",
               "log loss never_married", "fit s", "fit ×", "predict rows/s", "predict ×",
               "peak RSS MB", "Δ RSS MB"]
    for key in RUN:
        cells = dict(zip(columns, rows[key]))
        values = {name: _number(cells[name]) for name in numeric}
        assert all(math.isfinite(v) for v in values.values()), (key, cells)
        assert 0.0 <= values["AUC income_50k"] <= 1.0 and 0.0 <= values["AUC never_married"] <= 1.0
        assert values["log loss income_50k"] > 0 and values["fit s"] > 0
        assert values["predict rows/s"] > 0 and values["peak RSS MB"] > 0
    assert dict(zip(columns, rows["skmtl"]))["fit ×"] == "1.00"   # the reference row
    assert dict(zip(columns, rows["skmtl"]))["epochs"] == "1"
    assert dict(zip(columns, rows["floor"]))["epochs"] == "1"
    ghost_row = " ".join(rows[GHOST])
    assert "not installed" in ghost_row and MISSING_MODULE in ghost_row

    records = json.loads(raw.read_text())
    ran = [r for r in records if r["contender"] in RUN]
    assert sorted(r["contender"] for r in ran) == sorted(RUN)
    for record in ran:
        assert record["status"] == "ok", record
        assert record["n_train"] == 1600 and record["n_test"] == 400
        assert record["peak_rss_mb"] >= record["baseline_rss_mb"] > 0
        assert record["rss_increment_mb"] >= 0
        assert record["predict_repeats"] >= 3
    assert [r["status"] for r in records if r["contender"] == GHOST] == ["not installed"]


def test_shared_encoding_reserves_code_zero_and_standardises():
    train = pd.DataFrame({"color": pd.Categorical(["red", "blue", "red", None]),
                          "size": ["s", "m", "l", "m"],
                          "x": [1.0, 2.0, 3.0, 4.0], "const": [5, 5, 5, 5]})
    test = pd.DataFrame({"color": pd.Categorical(["green", "blue"]), "size": ["m", "xl"],
                         "x": [2.5, 10.0], "const": [5, 7]})
    encoding = SharedEncoding().fit(train)
    assert encoding.categorical_names_ == ["color", "size"]
    assert encoding.cardinalities == [3, 4]      # 2 colours, 3 sizes, + the reserved code
    encoded = encoding.transform(test)
    # sorted categories: blue=1, red=2; l=1, m=2, s=3; unseen and missing -> 0
    np.testing.assert_array_equal(encoded.codes, [[0, 2], [1, 0]])
    assert encoding.transform(train).codes[3, 0] == 0
    np.testing.assert_allclose(encoded.numeric[:, 0], (np.array([2.5, 10.0]) - 2.5) / np.std(
        [1.0, 2.0, 3.0, 4.0]), rtol=1e-6)
    np.testing.assert_allclose(encoded.numeric[:, 1], [0.0, 2.0])   # constant: scale 1
    assert set(encoded.columns()) == {"color", "size", "x", "const"}


def test_holdout_mask_is_a_seeded_tenth():
    mask = holdout_mask(1001, 0.1, seed=3)
    assert mask.sum() == 101
    np.testing.assert_array_equal(mask, holdout_mask(1001, 0.1, seed=3))
    assert not np.array_equal(mask, holdout_mask(1001, 0.1, seed=4))


def test_search_runs_a_candidate_on_every_problem(tmp_path, monkeypatch):
    from benchmarks import search

    # one short candidate keeps the smoke test short; the real run uses the defaults
    monkeypatch.setitem(search.CANDIDATES, "short", {"max_epochs": 1})
    output = tmp_path / "search.md"
    search.main(["--seeds", "0", "--candidates", "short", "--output", str(output)])
    lines = output.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| candidate"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in lines if line.startswith("| ") and not line.startswith("| candidate")}
    assert set(rows) == {"HistGradientBoostingClassifier, one per task (census only)", "short"}
    cells = dict(zip(columns, rows["short"]))
    for key in ("auc income_50k", "auc never_married", "coat auc pCVR", "multitask auc",
                "funnel auc pCVR"):
        assert 0.5 < _number(cells[key]) <= 1.0, (key, cells)
    assert _number(cells["census fit s"]) > 0 and cells["epochs"] == "1.0"
