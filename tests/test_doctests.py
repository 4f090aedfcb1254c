"""Every example in skmtl's docstrings runs and prints what it says."""

import ast
import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re

import matplotlib
import pytest

import skmtl

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(skmtl.__path__, "skmtl.")
                 if not name.endswith("__main__"))


def _examples(name):
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder(exclude_empty=True).find(module, name)
            if test.examples]


@pytest.mark.parametrize("name", ["skmtl"] + MODULES)
def test_docstring_examples_run(name, request):
    matplotlib.use("Agg")
    if name == "skmtl.onnx":
        request.getfixturevalue("onnx_registry_built_once")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    failed, _ = runner.summarize(verbose=False)
    assert failed == 0


def test_no_example_is_skipped():
    for name in ["skmtl"] + MODULES:
        for test in _examples(name):
            for example in test.examples:
                assert doctest.SKIP not in example.options, f"{test.name}: {example.source}"


def test_every_estimator_has_an_example():
    for name in skmtl.__all__:
        public = getattr(skmtl, name)
        if isinstance(public, type):
            assert ">>> " in (public.__doc__ or ""), name


def test_documented_defaults_are_the_signatures():
    """Each ``name : ..., default=value`` of an estimator's docstring is its ``__init__``'s."""
    checked = 0
    for name in skmtl.__all__:
        public = getattr(skmtl, name)
        if not (isinstance(public, type) and hasattr(public, "get_params")):
            continue
        for parameter in inspect.signature(public).parameters.values():
            documented = re.search(rf"^    {parameter.name} : .*default=(.+)$", public.__doc__,
                                   flags=re.M)
            assert documented, (name, parameter.name)
            value = ast.literal_eval(documented.group(1))
            assert value == parameter.default and type(value) is type(parameter.default), (
                name, parameter.name, documented.group(1))
            checked += 1
    assert checked > 100


API_REFERENCE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def _api_names():
    """``{currentmodule: [dotted names]}`` of the entries of docs/api.rst's autosummary blocks.

    An entry is relative to the ``.. currentmodule::`` in force
    (``parquet.fit_parquet`` under ``skmtl`` is ``skmtl.parquet.fit_parquet``).
    """
    names, module, in_block = {}, None, False
    for line in API_REFERENCE.read_text(encoding="utf-8").splitlines():
        directive = re.match(r"\.\.\s+(currentmodule|autosummary)::\s*(\S*)", line)
        if directive:
            if directive.group(1) == "currentmodule":
                module = directive.group(2)
                names.setdefault(module, [])
            in_block = directive.group(1) == "autosummary"
        elif in_block and line.strip() and not line.strip().startswith(":"):
            if not line[0].isspace():  # the first unindented line ends the block
                in_block = False
                continue
            assert module is not None, f"{line.strip()!r} comes before any currentmodule"
            names[module].append(f"{module}.{line.strip()}")
    return names


def test_every_api_reference_entry_has_an_example():
    names = _api_names()
    assert names and all(names.values()), f"docs/api.rst parsed to {names}"
    missing = [name for entries in names.values() for name in entries
               if ">>> " not in (pkgutil.resolve_name(name).__doc__ or "")]
    assert not missing, f"no '>>> ' example in the docstring of {missing}"


def test_every_name_a_module_exports_is_in_the_api_reference():
    documented = {pkgutil.resolve_name(name) for entries in _api_names().values()
                  for name in entries}
    modules = ["skmtl", "skmtl.onnx", "skmtl.plotting", "skmtl.datasets", "skmtl.parquet",
               "skmtl.dask", "skmtl.nn", "skmtl.nn.weighting", "skmtl.nn.counterfactual"]
    missing = [f"{name}.{public}" for name in modules
               for public in importlib.import_module(name).__all__
               if not public.startswith("__")  # __version__
               and getattr(importlib.import_module(name), public) not in documented]
    assert not missing, f"not in docs/api.rst: {missing}"
