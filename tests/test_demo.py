"""The demo, on real data and with the synthetic fallback, at one epoch per fit."""

import functools
import os

import pytest

from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, OMOEClassifier,
                   PLEClassifier, SharedBottomClassifier, _demo)
from skmtl.__main__ import main


@pytest.fixture
def one_epoch(monkeypatch):
    for cls in (MMOEClassifier, ESMMClassifier, AITMClassifier, OMOEClassifier, PLEClassifier,
                SharedBottomClassifier):
        monkeypatch.setattr(_demo, cls.__name__, functools.partial(cls, max_epochs=1))


def test_demo_on_real_data(one_epoch, tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "out"), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "Census-Income (KDD) test file" in out and "Coat" in out
    assert "synthetic" not in out
    assert "income_50k" in out and "never_married" in out
    assert "boosting AUC" in out and "gradient boosting:" in out
    for name in ("MMOEClassifier()", "PLEClassifier()", "OMOEClassifier()",
                 "SharedBottomClassifier()", "AITMClassifier, all impressions",
                 "ESMMClassifier(counterfactual='dcmt', counterfactual_weight=1)"):
        assert name in out
    assert "Mean pCVR minus the observed rate: ESMM +" in out or \
        "Mean pCVR minus the observed rate: ESMM -" in out
    assert ", ESMM with DCMT " in out and ", single-task " in out
    assert "Serving: MMOEClassifier() exported to ONNX" in out
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "mmoe_income_50k.png", "mmoe_never_married.png", "esmm_conversion.png", "mmoe.onnx"}


def test_demo_falls_back_to_synthetic_data(one_epoch, tmp_path):
    lines = []
    results = _demo.run_demo(tmp_path / "out", data_home=tmp_path / "empty", download=False,
                             print_fn=lines.append)
    text = "\n".join(lines)
    assert text.count("using synthetic data instead") == 2
    assert f"({tmp_path / 'empty'} does not exist, though --data-home names it" in text
    assert [row["task"] for row in results["mmoe"]] == ["task_0", "task_1"]
    for row in results["mmoe"]:
        assert 0.5 < row["MMoE AUC"] <= 1.0 and 0.5 < row["boosting AUC"] <= 1.0
    assert [row["model"] for row in results["family"]] == [
        "MMOEClassifier()", "PLEClassifier()", "OMOEClassifier()", "SharedBottomClassifier()"]
    for row in results["family"]:
        assert 0.5 < row["task_0 AUC"] <= 1.0 and row["epochs"] == 1
    assert len(results["esmm"]) == 4 and len(results["plots"]) == 3
    assert results["serving"]["max difference"] < 1e-5


def test_demo_says_when_its_data_home_does_not_exist(tmp_path, monkeypatch, capsys):
    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop  # the message comes before any fit; the fallback is tested above

    lines = []
    monkeypatch.setenv("SKMTL_DATA", str(tmp_path / "typo"))
    monkeypatch.setattr(_demo, "_mmoe_on_census", stop)
    with pytest.raises(Stop):
        _demo.run_demo(tmp_path / "out", download=False, print_fn=lines.append)
    assert f"({tmp_path / 'typo'} does not exist, though SKMTL_DATA names it" in "\n".join(lines)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(Stop):
        _demo.run_demo(tmp_path / "out", data_home=tmp_path / "a_file", download=False,
                       print_fn=lines.append)
    assert f"({tmp_path / 'a_file'} is not a folder, though --data-home names it" in lines[-1]
    with pytest.raises(SystemExit):  # "" was the current folder (and SKMTL_DATA="" unset)
        main(["demo", "--data-home", ""])
    assert "--data-home is empty" in capsys.readouterr().err


def test_demo_refuses_an_output_that_is_a_file_before_any_work(tmp_path, capsys):
    (tmp_path / "results").write_text("")
    with pytest.raises(SystemExit):
        main(["demo", "--output", str(tmp_path / "results")])
    assert "--output" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux's /proc")
def test_demo_refuses_a_folder_it_cannot_write_to_before_any_work(monkeypatch, capsys):
    # an existing folder passed; the demo trained for a minute, then failed to save
    monkeypatch.setattr(_demo, "run_demo", lambda *a, **k: pytest.fail("the demo ran"))
    with pytest.raises(SystemExit):
        main(["demo", "--output", "/proc"])  # a folder even root cannot create files in
    assert "--output '/proc' cannot be a folder for the results" in capsys.readouterr().err


@pytest.mark.parametrize("seed, message", [("-1", "must be between 0 and 2**32 - 1; got -1"),
                                           ("x", "not an integer: 'x'")])
def test_demo_refuses_a_bad_seed_before_any_work(seed, message, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--random-state", seed])
    assert f"argument --random-state: {message}" in capsys.readouterr().err
