"""verbose: nothing, a table row per epoch, or progress within the epoch too."""

import io
import sys

import pandas as pd
import pytest

from skmtl import ESMMClassifier, MMOEClassifier, PLERegressor
from skmtl.parquet import fit_parquet

from conftest import make_tasks


@pytest.fixture(scope="module")
def data():
    X, Y, funnel = make_tasks(2000, seed=0)
    # vocabularies known up front, for partial_fit
    X = X.assign(color=X["color"].astype(pd.CategoricalDtype(["black", "blue", "green", "red"])))
    return X, Y, funnel


def _table(out):
    """The epoch table's header and rows (lines that start with spaces and a number)."""
    lines = [line for line in out.splitlines() if line.strip()]
    header = next(line.split() for line in lines if line.split()[0] == "epoch")
    rows = [line.split() for line in lines if line.split()[0].isdigit()]
    return header, rows


def test_verbose_0_prints_nothing(data, capsys):
    X, Y, _ = data
    MMOEClassifier(max_epochs=2, early_stopping=True, random_state=0).fit(X, Y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_1_prints_a_row_per_epoch_with_each_tasks_scores(data, capsys):
    X, Y, _ = data
    MMOEClassifier(max_epochs=3, early_stopping=True, verbose=1, random_state=0).fit(X, Y)
    captured = capsys.readouterr()
    header, rows = _table(captured.out)
    assert header == ["epoch", "train_loss", "train_loss_t1", "train_loss_t2", "valid_auc_t1",
                      "valid_auc_t2", "valid_loss", "valid_loss_t1", "valid_loss_t2", "dur"]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert len(captured.out.splitlines()) == 5  # header, rule, three rows
    assert captured.err == ""


def test_tasks_named_like_skorchs_flags_keep_their_columns(data, capsys):
    # skorch's table hid keys ending in "_best" and coloured "<key>" by "<key>_best"
    X, Y, _ = data
    Y = Y.set_axis(["t1", "t1_best"], axis=1)
    MMOEClassifier(max_epochs=2, early_stopping=True, verbose=1, random_state=0).fit(X, Y)
    out = capsys.readouterr().out
    header, rows = _table(out)
    assert header == ["epoch", "train_loss", "train_loss_t1", "train_loss_t1_best",
                      "valid_auc_t1", "valid_auc_t1_best", "valid_loss", "valid_loss_t1",
                      "valid_loss_t1_best", "dur"]
    assert all(len(row) == len(header) for row in rows)
    assert "\x1b[" not in out  # no colour: no value is flagged best


def test_verbose_1_prints_the_epoch_early_stopping_ends_on(data, capsys):
    X, Y, _ = data
    model = MMOEClassifier(max_epochs=5, early_stopping=True, n_iter_no_change=1, tol=10.0,
                           verbose=1, random_state=0).fit(X, Y)
    _, rows = _table(capsys.readouterr().out)
    assert model.n_iter_ == 2 and [row[0] for row in rows] == ["1", "2"]


def test_verbose_turned_on_at_a_warm_start_gets_a_header(data, capsys):
    X, Y, _ = data
    model = MMOEClassifier(max_epochs=1, warm_start=True, random_state=0).fit(X, Y)
    assert capsys.readouterr().out == ""
    model.set_params(verbose=1).fit(X, Y)
    model.fit(X, Y)
    out = capsys.readouterr().out
    header, rows = _table(out)
    assert header[0] == "epoch" and [row[0] for row in rows] == ["2", "3"]
    assert sum(line.split()[0] == "epoch" for line in out.splitlines() if line.strip()) == 1


def test_a_warm_start_with_new_columns_prints_a_new_header(data, capsys):
    # validation columns added on a warm start were printed under the first header
    X, Y, _ = data
    model = MMOEClassifier(max_epochs=1, warm_start=True, verbose=1, random_state=0).fit(X, Y)
    model.set_params(early_stopping=True, scoring="roc_auc").fit(X, Y)
    model.fit(X, Y)
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    headers = [i for i, line in enumerate(lines) if line[0] == "epoch"]
    assert len(headers) == 2
    rows = [line for line in lines if line[0].isdigit()]
    assert [len(row) for row in rows] == [len(lines[headers[0]]), len(lines[headers[1]]),
                                          len(lines[headers[1]])]
    assert "valid_auc_t1" in lines[headers[1]]


def test_verbose_1_shows_learned_task_weights(data, capsys):
    X, _, funnel = data
    ESMMClassifier(max_epochs=1, verbose=1, loss_weighting="uncertainty",
                   random_state=0).fit(X, funnel)
    header, rows = _table(capsys.readouterr().out)
    assert "task_weight_click" in header and "task_weight_conversion" in header
    assert len(rows) == 1


def test_verbose_2_reports_progress_in_plain_lines_off_a_terminal(data, capsys):
    X, Y, _ = data
    PLERegressor(max_epochs=2, batch_size=250, verbose=2, random_state=0).fit(
        X, X[["num_a", "num_b"]])
    out = capsys.readouterr().out.splitlines()
    progress = [line for line in out if line.startswith("epoch ") and "batches" in line]
    assert [line.split(",")[0] for line in progress] == [
        f"epoch {epoch}: {done}/8 batches" for epoch in (1, 2) for done in (2, 4, 6, 8)]
    _, rows = _table("\n".join(out))
    assert len(rows) == 2


def test_verbose_2_draws_a_bar_on_a_terminal(data, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    X, Y, _ = data
    model = MMOEClassifier(max_epochs=1, batch_size=500, verbose=2, random_state=0).fit(X, Y)
    assert "epoch 1:" in terminal.getvalue() and "/4 [" in terminal.getvalue()  # tqdm's bar
    progress = dict(model.net_.callbacks_)["batch_progress"]
    assert progress.done_ == 4 and progress.bar_ is None  # every batch counted, bar closed
    assert "batches," not in capsys.readouterr().out  # no plain lines beside the bar


def test_partial_fit_and_fit_parquet_print_a_row_per_call(data, capsys, tmp_path):
    X, Y, _ = data
    model = MMOEClassifier(verbose=1, random_state=0)
    for start in (0, 1000):
        model.partial_fit(X[start:start + 1000], Y[start:start + 1000])
    out = capsys.readouterr().out
    _, rows = _table(out)
    assert [row[0] for row in rows] == ["1", "2"]
    assert out.count("epoch") == 1  # one table: its header printed once

    pytest.importorskip("pyarrow")  # the parquet extra: installed in CI
    path = tmp_path / "data.parquet"
    X.assign(t1=Y["t1"], t2=Y["t2"]).to_parquet(path)
    vocabularies = {"color": ["black", "blue", "green", "red"], "shop": list(range(30))}
    fit_parquet(MMOEClassifier(categorical_features=["color", "shop"], categories=vocabularies,
                               verbose=1, random_state=0), path,
                ["t1", "t2"], epochs=2, batch_rows=1000, shuffle_buffer=None)
    out = capsys.readouterr().out
    _, rows = _table(out)
    assert len(rows) == 4 and out.count("train_loss_t1") == 1
    assert "fit_parquet: pass 2/2 over 2,000 rows" in out
