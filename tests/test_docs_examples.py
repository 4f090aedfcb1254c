"""The code examples of the docs run as they are."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _examples(page):
    text = (DOCS / page).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


SCALING_OUT = _examples("scaling_out.md")


def test_the_scaling_out_page_has_its_examples():
    assert len(SCALING_OUT) == 4


@pytest.mark.parametrize("code", SCALING_OUT, ids=["hashing", "partial_fit", "parquet", "dask"])
def test_scaling_out_example_runs(code, capsys):
    exec(compile(code, "docs/scaling_out.md", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out.strip()  # every example prints what it shows
