"""The code examples of the docs run as they are."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _examples(page):
    text = (DOCS / page).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


SCALING_OUT = _examples("scaling_out.md")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_scaling_out_page_has_its_examples():
    assert len(SCALING_OUT) == 5


@pytest.mark.parametrize("code", SCALING_OUT[:4],
                         ids=["hashing", "partial_fit", "parquet", "dask"])
def test_scaling_out_example_runs(code, capsys):
    exec(compile(code, "docs/scaling_out.md", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out.strip()  # every example prints what it shows


def test_scaling_out_torchrun_example_runs(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCALING_OUT[4])
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(_free_port()), str(script)], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(DOCS.parent)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "esmm_ddp.skmtl").exists()
    assert len(result.stdout.strip().splitlines()) == 1  # only rank 0 prints


SERVING = _examples("serving.md")


def test_serving_examples_run_in_order(tmp_path, monkeypatch, capsys, onnx_registry_built_once):
    assert len(SERVING) == 3
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_example"}
    for code in SERVING:  # each example goes on from the ones before
        exec(compile(code, "docs/serving.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert float(printed[0]) < 1e-5
    assert printed[1].startswith("input  num_0 tensor(double)")
    assert printed[-1] == str(["label_click", "label_conversion", "proba_click",
                               "proba_conversion", "gate_weights"])
    assert (tmp_path / "esmm.onnx").exists()


@pytest.mark.parametrize("page", ["getting_started.md", "models.md", "data.md",
                                  "objectives.md", "workflow.md"])
def test_user_guide_examples_run_in_order(page, tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    examples = _examples(page)
    assert examples
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_example"}
    for code in examples:  # each example goes on from the ones before
        exec(compile(code, f"docs/{page}", "exec"), namespace)
    out = capsys.readouterr().out
    if page == "getting_started.md":
        assert out.strip().splitlines()[-1] == "True"  # ONNX agrees with the loaded model
        # the scores the page shows as printed
        shown = re.findall(r"^# ((?:PLE|SharedBottom)Classifier \d\.\d+)$",
                           (DOCS / page).read_text(), flags=re.M)
        assert len(shown) == 2 and all(line in out.splitlines() for line in shown), shown
