"""Packaging: every library the package imports is declared in pyproject.toml, the core plus the `serve` extra is all
that predict and serve import (tests/e2e/test_packaging_processes.py runs them in a fresh interpreter without the
rest), constraints.txt pins every declared library, environment.yml installs every extra, and the LICENSE file is the
license pyproject names."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

from otherdata_utils.constraints import read_pins

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_name(requirement: str) -> str:
    """'scikit-learn>=1.4' -> 'scikit-learn', normalised as PyPI compares names."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)).lower()


def declared_distributions() -> set[str]:
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {requirement_name(r) for r in requirements} - {PYPROJECT["project"]["name"]}


def own_extras(requirement: str) -> list[str]:
    """The extras of this project that a requirement names (`otherdata[train]` -> ["train"]); [] for a library."""
    if requirement_name(requirement) != PYPROJECT["project"]["name"]:
        return []
    return [extra.strip() for extra in re.search(r"\[([^\]]+)\]", requirement).group(1).split(",")]


def extra_distributions(extra: str) -> set[str]:
    """The distributions an extra installs, through the extras of this project it names too."""
    names: set[str] = set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
        for named in own_extras(requirement):
            names |= extra_distributions(named)
        if not own_extras(requirement):
            names.add(requirement_name(requirement))
    return names


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


# --- the lean install: `pip install -e ".[serve]"` predicts and serves without the `run` extra ------------------------

SERVE_MODULES = ("serve", "http_app", "predictor")  # the serving step itself: its lazy imports (uvicorn) count too


def package_file(module: str) -> Path | None:
    """otherdata_utils/<module>.py or its package's __init__.py, for a dotted name relative to the package."""
    path = REPO_ROOT / "otherdata_utils" / Path(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def import_time_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported: none inside a function or `if TYPE_CHECKING`."""
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def module_imports(module: str, *, anywhere: bool) -> tuple[set[str], set[str]]:
    """(package modules, third-party top-level modules) that `module` imports: at import time, or `anywhere`."""
    path = package_file(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))] if anywhere \
        else import_time_imports(tree)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    local, third_party = set(), set()
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "otherdata_utils":
                    local.add(alias.name.partition(".")[2])
                else:
                    third_party.add(alias.name.split(".")[0])
            continue
        if node.level:
            prefix = [*here[: len(here) - node.level + 1], *(node.module.split(".") if node.module else [])]
        elif node.module.split(".")[0] == "otherdata_utils":
            prefix = node.module.split(".")[1:]
        else:
            third_party.add(node.module.split(".")[0])
            continue
        for alias in node.names:  # `from . import data` names a module; `from .config import Config` a name in one
            name = ".".join([*prefix, alias.name])
            local.add(name if package_file(name) else ".".join(prefix))
    return {name for name in local if name}, {name for name in third_party if name not in sys.stdlib_module_names
                                              and name != "__future__"}


def serving_imports() -> dict[str, str]:
    """Third-party module -> the package module importing it, over everything importing the serving step loads
    (its parent packages too), plus the serving modules' own lazy imports. A lazy import further down, such as
    adapters' peft for PEFT training, is not reached when predicting or serving."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    todo = ["serve", "predictor"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        local, third_party = module_imports(module, anywhere=module in SERVE_MODULES)
        todo += sorted(local)
        for name in sorted(third_party):
            found.setdefault(name, module)
    return found


def test_the_core_and_the_serve_extra_provide_every_library_predict_and_serve_import():
    project = PYPROJECT["project"]
    lean = {requirement_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["serve"]]}
    providers = metadata.packages_distributions()
    imports = serving_imports()
    missing = {module: where for module, where in imports.items()
               if not {requirement_name(d) for d in providers.get(module, [])} & lean}
    assert {"torch", "transformers", "fastapi", "uvicorn"} <= set(imports)  # the walk reached the serving step
    assert missing == {}, f"imported by predict/serve but neither core nor the serve extra: {missing}"


# What `pip install -e ".[serve]"` must not pull: the training and data side, and the notebook machinery.
TRAINING_SIDE = ("datasets", "accelerate", "pandas", "pyarrow", "scipy", "scikit-learn", "matplotlib")


def test_the_lean_install_leaves_training_data_and_notebooks_to_the_train_and_run_extras():
    core = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    lean = core | extra_distributions("serve")
    assert lean == {"torch", "transformers", "tokenizers", "numpy", "pyyaml", "pydantic", "tqdm", "fastapi", "uvicorn"}
    assert lean.isdisjoint({*TRAINING_SIDE, "papermill", "nbformat", "ipykernel", "jupyter-client", "pyzmq", "httpx"})
    assert {*TRAINING_SIDE, "papermill", "nbformat", "ipykernel"} <= extra_distributions("run")
    # the notebooks (and Colab) get the training side without the runner
    assert set(TRAINING_SIDE) <= extra_distributions("train")
    assert extra_distributions("train").isdisjoint({"papermill", "nbformat", "ipykernel"})
    assert "httpx" in extra_distributions("dev")  # the tests' HTTP client, nothing a service needs


# --- constraints.txt: the published versions, used by make ------------------------------------------------------------

def test_constraints_pin_every_declared_library_but_the_package_itself():
    pins = read_pins(REPO_ROOT / "constraints.txt")
    assert sorted(declared_distributions() - set(pins)) == []
    assert PYPROJECT["project"]["name"] not in pins
    assert "+" not in pins["torch"]  # any build of the pinned torch (CPU, CUDA) satisfies it
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"TORCH_SPEC ?= torch=={pins['torch']}" in makefile  # make's torch is the pinned one


def test_environment_yml_installs_the_package_with_every_extra():
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert "conda-forge" in environment["channels"] and "pytorch" not in environment["channels"]
    pip_lines = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    extras = set(re.search(r"\.\[([^\]]+)\]", " ".join(pip_lines)).group(1).split(","))
    named_by_them = {extra for listed in extras for requirement in PYPROJECT["project"]["optional-dependencies"][listed]
                     for extra in own_extras(requirement)}
    assert extras | named_by_them == set(PYPROJECT["project"]["optional-dependencies"])
    assert any(str(item).startswith("pytorch") for item in environment["dependencies"])


def test_license_file_is_the_license_pyproject_names():
    assert PYPROJECT["project"]["license"]["text"] == "Apache-2.0"
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
