"""Smoke test of the benchmark suite (benchmarks/): the whole machinery on tiny data.

Runs ``python -m benchmarks.run``'s code path on 2,000 Census rows for one
epoch and one seed, for the contenders that need no optional package (skmtl,
the hand-written loop, gradient boosting), each in its own worker process,
plus a peer whose package cannot be imported, which must be reported as not
installed instead of crashing the suite. The same for the contenders of the
model family (Shared-Bottom, OMoE, PLE on Census; AITM on Coat; ESMM and
AITM on the four-stage funnel). The peers' contenders run only where their
package is installed (the ``bench`` extra; CI does not install it).
"""

import dataclasses
import functools
import importlib
import importlib.util
import json
import math
import subprocess
import types

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks import run as bench_run
from benchmarks.contenders import CONTENDERS
from benchmarks.contenders.base import conditional_from_entire_space
from benchmarks.data import SharedEncoding, holdout_mask, load_funnel4
from benchmarks.report import funnel_stages
from benchmarks.worker import expected_auc, mean_kl_divergence
from skmtl import ESMMClassifier, MMOEClassifier, MMOERegressor

# fits in other processes (workers, ranks) are compared with fits here: every
# process with the shipped batch_size="auto" (see conftest.py)
pytestmark = pytest.mark.shipped_batch_floor

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


def test_fit_passes_count_each_jobs_fastest_fit(tmp_path, monkeypatch, capsys):
    """--fit-passes 2 runs every job twice, a whole pass after the other."""
    fit_times = {("skmtl", 1): 3.0, ("skmtl", 2): 2.0, ("hgb", 1): 4.0, ("hgb", 2): 8.0}
    calls = []

    def fake_worker(contender, seed, args, log_dir, fit_pass=1):
        calls.append((contender.key, fit_pass))
        return {"status": "ok", "contender": contender.key, "dataset": contender.dataset,
                "seed": seed, "fit_seconds": fit_times[contender.key, fit_pass],
                "auc_income_50k": 0.9 if fit_pass == 1 else 0.1, "auc_never_married": 0.9,
                "logloss_income_50k": 0.2, "logloss_never_married": 0.1, "epochs_run": 1,
                "prep_seconds": 0.0, "predict_rows_per_second": 1.0, "peak_rss_mb": 1.0,
                "rss_increment_mb": 1.0, "notes": []}

    monkeypatch.setattr(bench_run, "run_worker", fake_worker)
    output, raw = tmp_path / "results.md", tmp_path / "results.json"
    assert bench_run.main(["--datasets", "census", "--seeds", "0", "--contenders", "skmtl",
                           "hgb", "--fit-passes", "2", "--output", str(output),
                           "--json", str(raw)]) == 0
    assert calls == [("skmtl", 1), ("hgb", 1), ("skmtl", 2), ("hgb", 2)]
    assert "pass 2 of 2" in capsys.readouterr().out
    records = {r["contender"]: r for r in json.loads(raw.read_text())}
    assert records["skmtl"]["fit_seconds"] == 2.0 and records["hgb"]["fit_seconds"] == 4.0
    assert records["skmtl"]["fit_seconds_passes"] == [3.0, 2.0]
    assert records["skmtl"]["auc_income_50k"] == 0.9     # the first pass's
    markdown = output.read_text()
    assert "the fastest of 2 passes" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| contender"))
    columns = [c.strip() for c in header.strip().strip("|").split("|")]
    hgb = dict(zip(columns, _rows(markdown)["hgb"]))
    assert _number(hgb["fit s"]) == 4.0 and hgb["fit ×"] == "2.00"


def test_a_pass_that_failed_fails_the_job():
    ok = {"status": "ok", "fit_seconds": 1.0}
    failed = {"status": "failed", "error": "worker exited with timeout"}
    assert bench_run.fastest_fit([ok, failed]) == failed
    assert bench_run.fastest_fit([ok]) == ok and "fit_seconds_passes" not in ok


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


@pytest.fixture
def small_search_problems(monkeypatch):
    """The search's problems on a few thousand rows each (a real run fits them whole)."""
    from benchmarks import search

    def fewer_rows(make, n_rows):
        return lambda n_samples, **kwargs: make(min(n_samples, n_rows), **kwargs)

    monkeypatch.setattr(search, "load_census", functools.partial(search.load_census,
                                                                 n_rows=6000))
    monkeypatch.setattr(search, "make_multitask", fewer_rows(search.make_multitask, 5000))
    monkeypatch.setattr(search, "make_entire_space", fewer_rows(search.make_entire_space, 10000))


def test_search_runs_a_candidate_on_every_problem(tmp_path, monkeypatch, small_search_problems):
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


def test_search_candidates_of_mmoe_alone_leave_esmm_at_its_defaults():
    from benchmarks import search

    params = {"cross_layers": 1, "n_experts": 3, "mmoe_max_epochs": 4,
              "mmoe_weight_decay": 3e-3, "impute": True}
    assert search._estimator_params(params) == {"cross_layers": 1, "n_experts": 3,
                                                "max_epochs": 4, "weight_decay": 3e-3}
    esmm = search._esmm(params, seed=0)
    assert (esmm.cross_layers, esmm.max_epochs, esmm.weight_decay) == (1, 10, 1e-5)


def test_search_on_census_only(tmp_path, monkeypatch, small_search_problems):
    from benchmarks import search

    monkeypatch.setitem(search.CANDIDATES, "short one", {"max_epochs": 1})
    monkeypatch.setitem(search.PROBLEMS, "coat", None)  # would fail if it were run
    output = tmp_path / "search.md"
    search.main(["--seeds", "0", "--candidates", "short one", "--problems", "census",
                 "--output", str(output)])
    lines = output.read_text().splitlines()
    assert "--candidates 'short one' --problems census" in lines[0]  # a command to paste
    row = next(line for line in lines if line.startswith("| short one"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert 0.5 < _number(cells[1]) <= 1.0 and cells[-4:] == ["–", "–", "–", "–"]


def test_search_with_missing_numbers(tmp_path, monkeypatch, small_search_problems):
    from benchmarks import search

    monkeypatch.setattr(search, "MISSING_FRACTION", 0.0)  # restored after the test
    monkeypatch.setitem(search.CANDIDATES, "short one", {"max_epochs": 1})
    monkeypatch.setitem(search.CANDIDATES, "short imputed", {"max_epochs": 1, "impute": True})
    output = tmp_path / "search.md"
    search.main(["--seeds", "0", "--candidates", "short one", "short imputed", "--problems",
                 "census", "--missing-fraction", "0.3", "--output", str(output)])
    problem = search._census(0)
    numbers = problem.X_test.select_dtypes("number")
    assert numbers.isna().mean().between(0.27, 0.33).all()
    rows = [line for line in output.read_text().splitlines() if line.startswith("| short")]
    assert len(rows) == 2
    for row in rows:
        assert 0.5 < _number(row.strip("|").split("|")[1]) <= 1.0
    with pytest.raises(SystemExit):
        search.main(["--missing-fraction", "1", "--output", str(output)])


def test_small_data_puts_candidates_beside_gradient_boosting(tmp_path, monkeypatch):
    from benchmarks import small_data

    monkeypatch.setattr(small_data, "TEST_ROWS", 1000)
    output = tmp_path / "small.md"
    small_data.main(["--sizes", "300", "--seeds", "0", "1", "--candidates", "defaults",
                     "--output", str(output)])
    lines = [line for line in output.read_text().splitlines() if line.startswith("| ")]
    assert "- command: `python -m benchmarks.small_data --sizes 300" in output.read_text()
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(columns, (c.strip() for c in line.strip("|").split("|"))))
            for line in lines[1:]]
    assert [row["contender"] for row in rows] == [small_data.GRADIENT_BOOSTING, "defaults"]
    for row in rows:
        assert row["training rows"] == "300"
        # (gradient boosting may predict one constant from 300 impressions' few clicks)
        for key in ("census AUC income_50k", "census AUC never_married", "multitask AUC",
                    "funnel AUC pCVR"):
            assert 0.5 <= _number(row[key]) <= 1.0, (key, row)
        assert _number(row["regression R2"]) <= 1.0 and _number(row["fit s (all problems)"]) > 0
    assert _number(rows[1]["census AUC never_married"]) > 0.9
    with pytest.raises(SystemExit):
        small_data.main(["--sizes", "10000", "--output", str(output)])
    # every candidate gives each estimator parameters it takes
    for change in small_data.CANDIDATES.values():
        for estimator_class in (MMOEClassifier, MMOERegressor, ESMMClassifier):
            estimator_class(**change(estimator_class, 300))._validate_params()
    assert small_data.CANDIDATES["batch 1/64 of the rows within [64, 1024]"](
        ESMMClassifier, 300) == {"batch_size": 64}
    six = small_data.CANDIDATES["the defaults until session 27 (MMoE: 6 epochs, no batch "
                                "normalisation)"]
    assert six(ESMMClassifier, 300) == {}
    for estimator_class in (MMOEClassifier, MMOERegressor):  # the regressor's are its defaults
        assert {**estimator_class().get_params(), **six(estimator_class, 300)} == {
            **MMOERegressor().get_params(), "max_epochs": 6}


def test_other_data_puts_candidates_beside_gradient_boosting(tmp_path):
    from benchmarks import other_data

    output = tmp_path / "other.md"
    other_data.main(["--problems", "breast_cancer", "diabetes", "--seeds", "0", "1",
                     "--candidates", "defaults", "--output", str(output)])
    text = output.read_text()
    assert "- command: `python -m benchmarks.other_data --problems breast_cancer" in text
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(columns, (c.strip() for c in line.strip("|").split("|"))))
            for line in lines[1:]]
    assert [(row["problem"], row["contender"]) for row in rows] == [
        (problem, contender) for problem in ("breast_cancer", "diabetes")
        for contender in (other_data.GRADIENT_BOOSTING, "defaults")]
    score = "test AUC or R² (mean over tasks)"
    for row in rows:
        assert _number(row["fit s"]) > 0
        # every epoch of the defaults runs: no early stopping ends a fit sooner
        estimator = MMOEClassifier if row["problem"] == "breast_cancer" else MMOERegressor
        assert row["epochs"] == ("–" if row["contender"] == other_data.GRADIENT_BOOSTING
                                 else f"{estimator().max_epochs:.1f}")
    # the cancer's skewed measurements take the bins; the diabetes' smooth ones do not
    assert [row["numeric_encoding_"] for row in rows] == ["–", "piecewise_linear", "–",
                                                          "standard"]
    assert 0.95 < _number(rows[0][score]) <= 1.0 and 0.95 < _number(rows[1][score]) <= 1.0
    assert 0.1 < _number(rows[2][score]) < 0.7 and 0.1 < _number(rows[3][score]) < 0.7


# -- the model family (issue 9) ----------------------------------------------------

FAMILY_CENSUS = ["skmtl-sharedbottom", "floor-sharedbottom", "skmtl-omoe", "floor-omoe",
                 "skmtl-ple", "floor-ple"]
FAMILY_COAT = ["skmtl-aitm", "floor-aitm"]
FAMILY_FUNNEL = ["truth-funnel4", "skmtl-aitm-funnel4", "skmtl-esmm-funnel4"]
TINY = ["--census-rows", "2000", "--coat-rows", "2000", "--funnel4-rows", "3000",
        "--epochs", "1", "--seeds", "0", "--predict-min-seconds", "0.1", "--predict-repeats", "1",
        "--no-download"]


def _run_tiny(tmp_path, datasets, contenders):
    """Run ``contenders`` on tiny data; return (markdown, records)."""
    output, raw = tmp_path / "results.md", tmp_path / "results.json"
    argv = ["--datasets", *datasets, "--contenders", *contenders, *TINY,
            "--output", str(output), "--json", str(raw)]
    assert bench_run.main(argv) == 0
    return output.read_text(), json.loads(raw.read_text())


def _check_records(records, contenders):
    assert sorted(r["contender"] for r in records) == sorted(contenders)
    for record in records:
        assert record["status"] == "ok", record
        assert record["fit_seconds"] >= 0 and record["predict_rows_per_second"] > 0
        aucs = [v for k, v in record.items() if k.startswith("auc_")]
        assert aucs and all(0.0 <= v <= 1.0 for v in aucs), record


def _check_funnel_records(records):
    """Scores against the truth: KL >= 0 (0 for the truth), no AUC above the truth's."""
    by_key = {r["contender"]: r for r in records}
    truth = by_key.get("truth-funnel4")
    for record in records:
        for stage in range(1, 5):
            for kind in ("cond", "reach"):
                assert record[f"kl_{kind}_{stage}"] >= 0.0
                if truth is not None:
                    # ranking by the true probability maximises the expected AUC
                    assert record[f"auc_{kind}_{stage}"] <= truth[f"auc_{kind}_{stage}"] + 1e-12
            assert 0.0 <= record[f"mean_cond_{stage}"] <= 1.0
    if truth is not None:
        assert all(truth[f"kl_cond_{k}"] == pytest.approx(0.0, abs=1e-12) for k in range(1, 5))
        assert truth["epochs_run"] is None


@pytest.fixture
def workers_in_this_process(monkeypatch):
    """The runner's workers run in the test's process (about 6 s less each: importing
    torch and scikit-learn). test_suite_on_tiny_census runs them as the benchmark does."""
    from benchmarks import worker

    def run(command, **kwargs):
        assert command[1:3] == ["-m", "benchmarks.worker"], command
        worker.main(command[3:])
        return subprocess.CompletedProcess(command, 0)

    in_process = types.SimpleNamespace(**vars(subprocess))
    in_process.run = run
    monkeypatch.setattr(bench_run, "subprocess", in_process)


def test_model_family_contenders_on_tiny_data(tmp_path, workers_in_this_process):
    contenders = FAMILY_CENSUS + FAMILY_COAT + FAMILY_FUNNEL
    markdown, records = _run_tiny(tmp_path, ["census", "coat", "funnel4"], contenders)
    _check_records(records, contenders)
    _check_funnel_records([r for r in records if r["dataset"] == "funnel4"])
    for record in records:
        if record["contender"] != "truth-funnel4":
            assert record["epochs_run"] == 1, record

    # one table per model, each with its own reference
    for heading in ("### Census: Shared-Bottom", "### Census: OMoE", "### Census: PLE",
                    "### Coat: AITM", "## funnel4: ESMM and AITM"):
        assert heading in markdown
    assert "### Census: MMoE" not in markdown and "### Coat: ESMM" not in markdown
    rows = _rows(markdown)
    assert set(contenders) <= set(rows)
    for reference in ("skmtl-sharedbottom", "skmtl-omoe", "skmtl-ple", "skmtl-aitm",
                      "skmtl-aitm-funnel4"):
        assert "1.00" in rows[reference], reference     # fit × against itself
    assert "Conditional probabilities" in markdown and "Entire-space probabilities" in markdown
    assert "| AUC 1 | AUC 2\u22231 | AUC 3\u22232 | AUC 4\u22233 |" in markdown


_PEERS = {
    "torch_rechub": (["census", "coat", "funnel4"],
                     ["torch-rechub-sharedbottom", "torch-rechub-ple", "torch-rechub-aitm",
                      "torch-rechub-aitm-funnel4"]),
    "deepctr_torch": (["census"], ["deepctr-torch-sharedbottom", "deepctr-torch-ple"]),
}


@pytest.mark.parametrize("package", sorted(_PEERS))
def test_peer_model_family_contenders_on_tiny_data(tmp_path, package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (pip install -e \".[bench]\")")
    datasets, contenders = _PEERS[package]
    for key in contenders:
        assert CONTENDERS[key].requires == (package,)
    _, records = _run_tiny(tmp_path, datasets, contenders)
    _check_records(records, contenders)
    _check_funnel_records([r for r in records if r["dataset"] == "funnel4"])


def test_registry_tables_have_one_reference_each():
    tables = {}
    for contender in CONTENDERS.values():
        tables.setdefault((contender.dataset, contender.table), []).append(contender)
    for (dataset, table), members in tables.items():
        assert sum(c.reference for c in members) == 1, (dataset, table)
        reference = next(c for c in members if c.reference)
        assert reference.key.startswith("skmtl") and not reference.requires


def test_load_funnel4_splits_one_data_set():
    first, second = load_funnel4(0, n_rows=5000), load_funnel4(1, n_rows=5000)
    for problem in (first, second):
        assert problem.name == "funnel4"
        assert len(problem.X_train) == 4000 and len(problem.X_test) == 1000
        assert list(problem.Y_train.columns) == ["click", "stage_2", "stage_3", "stage_4"]
        assert problem.test_proba.shape == (1000, 4)
        assert problem.valid_mask.sum() == 400
        reached = problem.Y_test.to_numpy()
        assert (np.diff(reached, axis=1) <= 0).all()
        assert ((problem.test_proba > 0) & (problem.test_proba < 1)).all()
    # the same 5,000 impressions, split differently per seed
    both = pd.concat([first.X_train, first.X_test]).sort_values("num_0", ignore_index=True)
    again = pd.concat([second.X_train, second.X_test]).sort_values("num_0", ignore_index=True)
    pd.testing.assert_frame_equal(both, again)
    assert not first.X_test["num_0"].equals(second.X_test["num_0"])
    # each test row keeps its own true probabilities: the labels follow them
    stage_1 = first.Y_test["click"].to_numpy()
    assert roc_auc_score(stage_1, first.test_proba[:, 0]) > 0.7


def test_expected_auc_and_divergence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    score = rng.random(200)
    # hard probabilities: the expected AUC is the AUC of those labels
    assert expected_auc(labels.astype(float), score) == pytest.approx(
        roc_auc_score(labels, score))
    p = rng.uniform(0.05, 0.95, 500)
    assert expected_auc(p, p) > expected_auc(p, rng.random(500))
    assert expected_auc(p, p) == pytest.approx(1 - expected_auc(p, -p))
    assert mean_kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    q = np.clip(p + 0.05, 0, 1)
    manual = np.mean(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
    assert mean_kl_divergence(p, q) == pytest.approx(manual)
    assert np.isfinite(mean_kl_divergence(p, np.zeros_like(p)))


def test_conditional_from_entire_space():
    reach = np.array([[0.5, 0.25, 0.05], [0.2, 0.3, 0.1], [0.0, 0.0, 0.0]])
    conditional, n_above_one = conditional_from_entire_space(reach)
    np.testing.assert_allclose(conditional, [[0.5, 0.5, 0.2], [0.2, 1.0, 1 / 3], [0.0, 0.0, 0.0]])
    assert n_above_one == 1
    assert funnel_stages([{"auc_cond_1": 0.5, "auc_cond_2": 0.5}]) == 2


# -- the training objectives (benchmarks/objectives.py) ----------------------------


def _tables_by_heading(markdown):
    """``{heading: [{column: cell}]}`` of the markdown tables, each under its last heading."""
    tables, heading, columns = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading, columns = line.lstrip("#").strip(), None
        elif line.startswith("|---"):
            continue
        elif line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if columns is None:
                columns = cells
            else:
                tables.setdefault(heading, []).append(dict(zip(columns, cells)))
    return tables


def test_objectives_on_tiny_data(tmp_path, capsys):
    from benchmarks import objectives

    out = tmp_path / "results" / "objectives.json"
    weights = ["0.5", "1"]
    argv = ["--seeds", "0", "--census-rows", "3000", "--coat-rows", "3000", "--synthetic-rows",
            "3000", "--max-epochs", "1", "--counterfactual-weights", *weights,
            "--propensity-clips", "0.2", "--constraint-weights", "0.1", "0.3",
            "--masked-weightings", "gradnorm", "--held-out-splits", "2", "--out", str(out),
            "--no-download"]
    assert objectives.main(argv) == 0
    markdown = capsys.readouterr().out
    assert "python -m benchmarks.objectives --seeds 0 --census-rows 3000" in markdown
    assert "torch 2" in markdown and "skmtl 0." in markdown

    data = json.loads(out.read_text())
    assert data["meta"]["partial"] is None
    records = data["records"]
    assert [r for r in records if r["status"] != "ok"] == []
    for record in records:
        assert record["fit_seconds"] > 0 and all(n >= 1 for n in record["n_iter"]), record
    pcvr_labels = list(objectives.pcvr_contenders([float(w) for w in weights], [0.2],
                                                  [0.1, 0.3]))
    # per model: plain, ips and dr per weight, dcmt per weight and constraint weight
    assert len(pcvr_labels) == 2 * (1 + 2 * len(weights) + 2 * len(weights)) + 2
    assert "ESMM dcmt w=0.5 clip=0.2 λ=0.3" in pcvr_labels
    expected = {
        "missing": {(0.0, "every label known")} | {
            (f, c) for f in objectives.MISSING_FRACTIONS
            for c in ("masked (NaN)", "drop rows", "single-task",
                      "masked (NaN), loss_weighting='gradnorm'")},
        "weighting": {(d, o) for d in ("census", "coat") for o in objectives.LOSS_WEIGHTINGS},
        "counterfactual": {("coat", c) for c in pcvr_labels},
        "synthetic": {("synthetic", c) for c in pcvr_labels},
    }
    for section, keys in expected.items():
        found = [(r["fraction"] if section == "missing" else r["dataset"], r["contender"])
                 for r in records if r["section"] == section]
        assert sorted(found, key=str) == sorted(keys, key=str), section
    for record in records:  # the funnels' test pCVR kept for the held-out choice
        funnel = record["section"] == "counterfactual" and record["contender"].startswith(
            ("ESMM", "AITM"))
        assert ("pcvr" in record) == funnel, record["contender"]
        if funnel:
            assert len(record["pcvr"]) == 4640
    for model in ("ESMM", "AITM"):
        section = markdown.split(f"### {model}'s setting chosen on half of the test users")[1]
        assert "(4 choices" in section.split("###")[0]
        gap = section.split("held-out gap ")[1].split()[0]
        assert 0 <= float(gap) < 1
    for record in records:
        if record["contender"] == "single-task":
            assert record["n_iter"] == [1, 1]     # one model per task
        elif "HistGradientBoosting" not in record["contender"]:
            assert record["n_iter"] == [1]        # --max-epochs

    tables = _tables_by_heading(markdown)
    labels = {"Missing labels (Census-Income)": ("hidden never_married", "contender"),
              "Census-Income: MMOEClassifier": ("loss_weighting",),
              "Coat: ESMMClassifier": ("loss_weighting",),
              "Counterfactual pCVR on Coat": ("contender",),
              "Counterfactual pCVR against the truth (make_entire_space)": ("contender",)}
    assert set(tables) == set(labels)
    rows = {heading: {tuple(row[c] for c in columns): row for row in tables[heading]}
            for heading, columns in labels.items()}
    assert set(rows["Missing labels (Census-Income)"]) == {
        (f"{f:.0%}", c) for f, c in expected["missing"]}
    assert set(rows["Census-Income: MMOEClassifier"]) == {
        (o,) for o in objectives.LOSS_WEIGHTINGS}
    assert set(rows["Coat: ESMMClassifier"]) == {(o,) for o in objectives.LOSS_WEIGHTINGS}
    for heading in ("Counterfactual pCVR on Coat",
                    "Counterfactual pCVR against the truth (make_entire_space)"):
        assert set(rows[heading]) == {(c,) for c in pcvr_labels}
    for heading, table in rows.items():
        for key, row in table.items():
            for column, cell in row.items():
                if column in labels[heading] or column == "n_iter_":
                    continue
                values = ([float(v) for v in cell.split(" / ")] if column.startswith("task weights")
                          else [_number(cell)])
                assert all(math.isfinite(v) for v in values), (heading, key, column, cell)
                if column.startswith(("AUC", "MAE")):
                    assert 0.0 <= values[0] <= 1.0, (heading, key, column, cell)
    for heading in ("Census-Income: MMOEClassifier", "Coat: ESMMClassifier"):
        assert rows[heading][("equal",)]["× equal"] == "1.00"
        assert rows[heading][("equal",)][next(c for c in tables[heading][0]
                                               if c.startswith("task weights"))] == "1.000 / 1.000"


def test_held_out_choice_picks_on_one_half_and_scores_on_the_other():
    from benchmarks.objectives import held_out_choice

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 10)
    conversion = (rng.random(200) < 0.3).astype(int)
    predictions = {"ESMM": np.full(200, 0.5),                  # AUC 0.5, gap about 0.2
                   "ESMM dcmt w=1": conversion * 1.0,          # AUC 1, gap 0 on every half
                   "ESMM ips w=1": np.full(200, 0.3),          # ties plain's AUC, a small gap
                   "ESMM dr w=1": 1.0 - conversion,            # AUC 0: never allowed
                   "AITM": np.full(200, 0.9)}                  # another model: not a choice
    records = [{"section": "counterfactual", "seed": seed, "contender": label,
                "pcvr": list(values)} for seed in (0, 1) for label, values in predictions.items()]
    result = held_out_choice(records, conversion, users, n_splits=3)
    assert result["choices"] == 6 and result["chosen"] == {"ESMM dcmt w=1": 6}
    assert result["auc"] == 1.0 and result["gap"] == 0.0 and result["gap_met"] == 6
    assert result["plain_auc"] == 0.5 and result["auc_kept"] == 6
    assert result["plain_gap"] == pytest.approx(abs(0.5 - conversion.mean()), abs=0.05)
    assert held_out_choice(records, conversion, users, 3, model="DCMT") is None


def test_scale_out_hashing_on_tiny_data(capsys):
    from benchmarks import scale_out

    assert scale_out.main(["--seeds", "0", "--buckets", "8", "--census-rows", "2000",
                           "--coat-rows", "2000"]) == 0
    tables = _tables_by_heading(capsys.readouterr().out)
    census = tables["Census-Income: MMOEClassifier"]
    assert [row["hash_buckets"] for row in census] == ["exact vocabularies", "8"]
    assert census[0]["Δ income_50k"] == "+0.0000"
    coat = tables["Coat: ESMMClassifier (pCVR on the random-exposure ratings)"]
    assert all(0.0 <= float(row["AUC pcvr"]) <= 1.0 for row in coat)


@pytest.fixture
def children_in_this_process(monkeypatch):
    """scale_out's measurements in the test's process, not one each (about 6 s less per
    measurement); their records make the same round trip through JSON."""
    from benchmarks import scale_out

    monkeypatch.setattr(scale_out, "_in_child", lambda function, **kwargs: json.loads(
        json.dumps(getattr(scale_out, function)(**json.loads(json.dumps(kwargs))))))


def test_scale_out_streaming_on_tiny_data(tmp_path, capsys, children_in_this_process):
    from benchmarks import scale_out

    assert scale_out.main(["--streaming", "20000", "--folder", str(tmp_path)]) == 0
    rows = _tables_by_heading(capsys.readouterr().out)["Streaming from Parquet (1 epoch(s))"]
    assert [row["contender"] for row in rows] == [
        "streamed (fit_parquet)", "in memory (fit, cosine schedule)",
        "in memory (fit, constant schedule)"]
    assert len(list((tmp_path / "rows-20000").glob("*.parquet"))) == 1
    for row in rows:
        assert float(row["rows/s"].replace(",", "")) > 0
        assert 0.5 < float(row["test AUC a"]) <= 1.0
    # a folder of another size under that name (an interrupted write, say) is not taken
    (tmp_path / "rows-20000").rename(tmp_path / "rows-30000")
    with pytest.raises(SystemExit, match="holds 20,000 rows, not 30,000"):
        scale_out.streaming([30000], 1, tmp_path)


def test_scale_out_embedding_updates_on_tiny_data(monkeypatch, capsys,
                                                  children_in_this_process):
    from benchmarks import scale_out

    # one table, which "auto" updates sparsely (tests/test_scale_out.py has the rest of
    # "auto"); the lazy fit's stand-in for catching up is undone after it
    monkeypatch.setattr(scale_out, "EMBEDDING_TABLES", (("hashed", 10_000_000, 300_000),))
    assert scale_out.main(["--embeddings", "--rows", "3000", "--seeds", "0", "--epochs",
                           "1"]) == 0
    heading = ("Dense and sparse embedding updates (3,000 training rows, 1 epoch(s), "
               "MMOEClassifier)")
    rows = _tables_by_heading(capsys.readouterr().out)[heading]
    assert [(row["embedding table"], row["updates"]) for row in rows] == [
        ("hashed", updates)
        for updates in ("dense", "sparse", "sparse, lazy (without catching up)")]
    assert [row["auto picks"] for row in rows] == ["sparse"] * 3
    assert int(rows[-1]["rows of the table"].replace(",", "")) > 300_000
    for row in rows:
        assert 0.5 < float(row["AUC like"].split()[0]) <= 1.0
        assert float(row["fit ×"]) > 0
    assert rows[0]["fit ×"] == "1.00" and rows[0]["Δ AUC click"] == "+0.0000"
    from skmtl import _optim
    assert _optim._catch_up.__module__ == "skmtl._optim"


def test_speed_of_a_wide_tables_bins_on_tiny_data():
    import torch
    from benchmarks import speed

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        record = speed.measure_wide(300, 12)
    finally:
        torch.set_num_threads(threads)
    assert record["columns"] == 12 and set(record["bins_s"]) == {"1", "2"}
    assert min(record["bins_s"].values()) > 0 and record["fit_s"] > 0


@pytest.mark.parametrize("kind", ["category", "str", "object"])
def test_speed_of_encoding_each_kind_of_column_on_tiny_data(kind):
    from benchmarks import speed

    record = speed.measure_encoding(2000, kind)
    assert record["rows"] == 2000 and record["fit_s"] > 0 and record["transform_s"] > 0


def test_figure_without_a_successful_run_is_a_usage_error(tmp_path, capsys):
    from benchmarks import figure

    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"contender": "skmtl", "dataset": "census", "seed": 0,
                                    "status": "failed", "error": "boom"}]))
    with pytest.raises(SystemExit) as exit_info:
        figure.main([str(records), str(tmp_path / "figure.png")])
    assert exit_info.value.code == 2
    assert "no successful run to plot" in capsys.readouterr().err


def test_scale_out_dask_search_on_tiny_data(capsys, monkeypatch):
    from benchmarks import scale_out

    # two candidates × two folds: the fits are the same on every backend, only fewer
    monkeypatch.setattr(scale_out, "DASK_GRID", {"n_experts": [2, 4]})
    monkeypatch.setattr(scale_out, "DASK_FOLDS", 2)
    assert scale_out.main(["--dask", "--census-rows", "1500"]) == 0
    tables = _tables_by_heading(capsys.readouterr().out)
    rows = tables["GridSearchCV on Dask (1,200 Census training rows, 2 candidates × 2 folds)"]
    assert [row["backend"] for row in rows] == [
        "default backend (n_jobs=None)", "loky, n_jobs=2", "dask, LocalCluster of 2 processes"]
    assert {row["same scores as default"] for row in rows} == {"yes"}


def test_scale_out_ddp_on_tiny_data(capsys):
    from benchmarks import scale_out

    assert scale_out.main(["--ddp", "--census-rows", "2000"]) == 0
    rows = _tables_by_heading(capsys.readouterr().out)[
        "Data-parallel fit under torch.distributed (Census-Income)"]
    assert [row["run"] for row in rows] == ["1 process, 2 threads", "1 process, 1 thread",
                                            "2 processes (gloo), 1 thread each"]
    assert all(0.5 < float(row["AUC never_married"]) <= 1.0 for row in rows)


# -- ONNX serving (benchmarks/serving.py) ---------------------------------------------

def test_serving_on_tiny_data(capsys, onnx_registry_built_once):
    from benchmarks import serving

    assert serving.main(["--census-rows", "2000", "--coat-rows", "3000", "--rows", "3000",
                         "--repeats", "2", "--estimators", "PLEClassifier", "AITMClassifier",
                         "SharedBottomRegressor"]) == 0
    markdown = capsys.readouterr().out
    assert "python -m benchmarks.serving --census-rows 2000" in markdown
    fidelity = [line for line in markdown.splitlines() if line.startswith(
        ("| PLEClassifier", "| AITMClassifier", "| SharedBottomRegressor"))]
    assert len(fidelity) == 3
    for line in fidelity:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        differences = [float(cell.split()[0]) for cell in cells[3:7] if cell != "–"]
        assert differences and max(differences) < 1e-4, line
        assert cells[7] in ("yes", "–")
    for title in ("MMOEClassifier() on Census-Income", "ESMMClassifier() on Coat"):
        assert f"### Latency and throughput: {title}" in markdown
    assert markdown.count("| throughput, 3,000 rows |") == 2


@pytest.mark.parametrize("module, argv, message", [
    ("run", ["--contenders", "skmtl-esmm", "--datasets", "census"],
     "skmtl-esmm run on coat, which --datasets (census) leaves out"),
    ("run", ["--census-rows", "0"], "--census-rows: 0 must be at least 1"),
    ("run", ["--timeout", "-1"], "--timeout: -1 must be above 0"),
    ("run", ["--fit-passes", "0"], "--fit-passes: 0 must be at least 1"),
    ("speed", ["--rows", "-3"], "--rows: -3 must be at least 1"),
    ("objectives", ["--max-epochs", "x"], "--max-epochs: 'x' is not an integer"),
    ("search", ["--candidates", "no such candidate"],
     "argument --candidates: invalid choice: 'no such candidate'"),
    ("small_data", ["--candidates", "defaults", "other"],
     "argument --candidates: invalid choice: 'other'"),
    ("other_data", ["--problems", "iris"], "argument --problems: invalid choice: 'iris'"),
    ("figure", [], "the following arguments are required: records, figure"),
    ("figure", ["/no/such/records.json", "out.png"], "cannot read the records"),
])
def test_benchmark_command_lines_refuse_bad_arguments(module, argv, message, capsys):
    main = importlib.import_module(f"benchmarks.{module}").main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
