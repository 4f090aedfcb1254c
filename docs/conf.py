"""Sphinx configuration of skmtl's documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (the ``docs``
extra). The gallery (``examples/``) runs at build time; with
``SKMTL_DOCS_QUICK=1`` its examples use a fraction of the data (CI does).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")
# Sphinx reads this file from docs/ and the gallery runs its examples from
# examples/: a relative data home is taken from the repository's root, where
# the README's commands run.
if os.environ.get("SKMTL_DATA"):
    os.environ["SKMTL_DATA"] = str(ROOT / os.environ["SKMTL_DATA"])

import skmtl  # noqa: E402

project = "skmtl"
author = "The skmtl developers"
copyright = "2026, the skmtl developers"
version = release = skmtl.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json",
                    "sg_execution_times.rst"]
templates_path = ["_templates"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {}  # no network at build time: references stay local

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 1,
    "backreferences_dir": None,
    "capture_repr": (),
    # the files are numbered in reading order
    "within_subsection_order": "sphinx_gallery.sorting.FileNameSortKey",
}

html_theme = "pydata_sphinx_theme"
html_title = f"skmtl {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_static_path = []

plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
