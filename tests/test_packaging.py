"""Packaging: every library the package imports is declared in pyproject.toml, environment.yml installs every extra,
and the LICENSE file is the license pyproject names."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_name(requirement: str) -> str:
    """'scikit-learn>=1.4' -> 'scikit-learn', normalised as PyPI compares names."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)).lower()


def declared_distributions() -> set[str]:
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {requirement_name(r) for r in requirements}


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> first file importing it, over every module of the package (imports in functions too)."""
    found: dict[str, str] = {}
    for path in sorted((REPO_ROOT / "otherdata_utils").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def test_every_third_party_import_of_the_package_is_declared_in_pyproject():
    providers = metadata.packages_distributions()
    declared = declared_distributions()
    local = {"otherdata_utils"}
    undeclared = {}
    for module, where in imported_top_level_modules().items():
        if module in local or module in sys.stdlib_module_names or module == "__future__":
            continue
        distributions = {requirement_name(d) for d in providers.get(module, [])}
        assert distributions, f"{where} imports {module!r}, which no installed distribution provides"
        if not distributions & declared:
            undeclared[module] = (where, sorted(distributions))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_environment_yml_installs_the_package_with_every_extra():
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert "conda-forge" in environment["channels"] and "pytorch" not in environment["channels"]
    pip_lines = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    extras = set(re.search(r"\.\[([^\]]+)\]", " ".join(pip_lines)).group(1).split(","))
    assert extras == set(PYPROJECT["project"]["optional-dependencies"])
    assert any(str(item).startswith("pytorch") for item in environment["dependencies"])


def test_license_file_is_the_license_pyproject_names():
    assert PYPROJECT["project"]["license"]["text"] == "Apache-2.0"
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
