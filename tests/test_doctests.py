"""Every example in skmtl's docstrings runs and prints what it says."""

import doctest
import importlib
import pkgutil

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
def test_docstring_examples_run(name):
    matplotlib.use("Agg")
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
