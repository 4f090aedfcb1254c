"""The documentation site builds with warnings as errors (its gallery on a fraction of the data)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_documentation_builds_without_warnings(tmp_path, shared_data_home):
    pytest.importorskip("sphinx_gallery")  # the docs extra: installed in CI
    env = {**os.environ, "SKMTL_DOCS_QUICK": "1", "SKMTL_DATA": str(shared_data_home),
           "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-D", "sphinx_gallery_conf.run_stale_examples=True", "-d", str(tmp_path / "doctrees"),
         "docs", str(tmp_path / "html")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    html = tmp_path / "html"
    for page in ("index.html", "getting_started.html", "models.html", "api.html",
                 "auto_examples/index.html", "generated/skmtl.MMOEClassifier.html",
                 "generated/skmtl.onnx.to_onnx.html"):
        assert (html / page).exists(), page
    gallery = (html / "auto_examples" / "index.html").read_text()
    for example in ("plot_1_learning_curves", "plot_2_gate_weights", "plot_3_esmm_coat",
                    "plot_4_missing_labels", "plot_5_partial_fit", "plot_6_benchmark"):
        assert example in gallery
        # every example drew at least one figure
        assert list((html / "_images").glob(f"sphx_glr_{example}_001.png")), example
    models = (html / "models.html").read_text()
    assert models.count("<img") >= 2  # the entire-space picture and the experts
