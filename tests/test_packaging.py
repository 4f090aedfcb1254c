"""The package's metadata: what skmtl imports is what it declares."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11 on

REPOSITORY = Path(__file__).resolve().parents[1]
# Modules that need an extra check for it themselves and name it in their ImportError.
OPTIONAL_MODULES = {"onnx.py": "onnx"}


def module_level_imports(path):
    """Top-level names imported when ``path`` is imported (function bodies left out)."""
    names = set()
    for statement in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(statement, (ast.Import, ast.ImportFrom, ast.Try, ast.If)):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "skmtl"}


def requirement_names(requirements):
    return {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            for requirement in requirements}


def test_every_module_level_import_is_a_declared_dependency():
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    base = requirement_names(project["dependencies"])
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for path in sorted((REPOSITORY / "skmtl").rglob("*.py")):
        extra = OPTIONAL_MODULES.get(path.name) if path.parent.name == "skmtl" else None
        allowed = base | (requirement_names(project["optional-dependencies"][extra])
                          if extra else set())
        for name in module_level_imports(path):
            provided_by = {dist.lower() for dist in distributions.get(name, [name])}
            if not provided_by & allowed:
                undeclared.setdefault(str(path.relative_to(REPOSITORY)), []).append(name)
    assert not undeclared, f"imported without being declared in pyproject.toml: {undeclared}"
    # the check reads what it should: scipy is imported by the encoders
    assert "scipy" in module_level_imports(REPOSITORY / "skmtl" / "_encoding" / "_numeric.py")


def test_the_licence_named_in_the_metadata_is_in_the_repository():
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    for licence_file in project["license-files"]:
        assert "BSD 3-Clause License" in (REPOSITORY / licence_file).read_text()
