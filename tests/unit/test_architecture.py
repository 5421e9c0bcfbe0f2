"""The package's layers only import downwards, with no cycle, no oversized module and no mock in shipped code.

Reads the source with `ast` (imports inside functions count as much as those at the top), so the check needs no
import of the package and names the two modules of every violation.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "otherdata_utils"

# Lowest first. A module may import its own layer or a lower one; a new module must be placed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("env", "precision", "params_text", "execution", "clock", "folder_lock", "progress", "study_registry", "config", "io", "runs",
     "step_records", "files", "constraints"),
    ("data", "clean", "augment", "mix"),
    ("inference", "pooling", "modeling", "adapters", "model_card"),
    ("checkpoints", "trackers", "train", "launcher", "metrics", "routing", "stats", "plots", "pretrain", "anchors",
     "selection", "label_errors"),
    ("studies", "pipeline"),
    ("run", "preflight", "report", "republish", "publish", "predictor", "monitoring", "http_app", "serve", "bench", "colab",
     "__main__", "__init__"),
)
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}
MAX_LINES = 600


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, package: Path, package_name: str) -> set[str]:
    """Package modules `path` imports, anywhere in the file, as dotted names relative to the package."""
    here = module_name(path, package).split(".")
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(package_name + "."):
                    found.add(alias.name[len(package_name) + 1:])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from . import x` inside a/b.py is relative to a; inside a/__init__.py it is relative to a too
                anchor = here if is_package else here[:-1]
                base = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                prefix = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and (node.module == package_name or node.module.startswith(package_name + ".")):
                prefix = node.module.split(".")[1:]
            else:
                continue
            if node.module is None or (not node.level and node.module == package_name):
                found.update(".".join([*prefix, alias.name]) for alias in node.names)
            else:
                found.add(".".join(prefix))
    return {name for name in found if name}


def import_graph(package: Path, package_name: str) -> dict[str, set[str]]:
    modules = {module_name(p, package): p for p in package.rglob("*.py") if "evaluate_modules" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in imported_modules(path, package, package_name):
            # `from .data import load_source` names a package or module; a name inside a module maps to it
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def upward_imports(graph: dict[str, set[str]], layer_of: dict[str, int]) -> list[str]:
    problems = []
    for source, targets in sorted(graph.items()):
        source_layer = layer_of.get(source.split(".")[0])
        if source_layer is None:
            problems.append(f"{source} is in no layer: add it to LAYERS in tests/unit/test_architecture.py")
            continue
        for target in sorted(targets):
            target_layer = layer_of.get(target.split(".")[0])
            if target_layer is not None and target_layer > source_layer:
                problems.append(f"{source} (layer {source_layer}) imports {target} (layer {target_layer}), "
                                f"a higher layer")
    return problems


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


# --- the package itself -----------------------------------------------------------------------------------------------

def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph(PACKAGE, "otherdata_utils"), LAYER_OF) == []


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph(PACKAGE, "otherdata_utils")) == []


def test_no_module_is_over_600_lines():
    long = {module_name(p, PACKAGE): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_shipped_code_patches_nothing():
    assert [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "unittest.mock" in p.read_text()] == []


# --- the checks can fail ----------------------------------------------------------------------------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_an_upward_import_inside_a_function_is_named(tmp_path):
    root = _package(tmp_path, {
        "low.py": "def f():\n    from .high import g\n    return g\n",
        "high.py": "from . import low\n",
    })
    problems = upward_imports(import_graph(root, "pkg"), {"low": 0, "high": 1, "__init__": 1})
    assert problems == ["low (layer 0) imports high (layer 1), a higher layer"]


def test_a_cycle_through_a_subpackage_is_found(tmp_path):
    root = _package(tmp_path, {
        "a.py": "from .sub.b import thing\n",
        "sub/__init__.py": "",
        "sub/b.py": "import pkg.c\n",
        "c.py": "from pkg import a\n",
    })
    assert find_cycle(import_graph(root, "pkg")) == ["a", "sub.b", "c", "a"]


@pytest.mark.parametrize("text, expected", [
    ("from . import x, y\n", {"x", "y"}),
    ("from .x import y\n", {"x"}),
    ("import pkg.x.y\n", {"x.y"}),
    ("from pkg import x\n", {"x"}),
    ("import os\nfrom json import loads\n", set()),
])
def test_imports_are_read_relative_to_the_package(tmp_path, text, expected):
    root = _package(tmp_path, {"m.py": text})
    assert imported_modules(root / "m.py", root, "pkg") == expected


def test_a_submodule_importing_its_package_back_is_a_cycle(tmp_path):
    root = _package(tmp_path, {
        "data/__init__.py": "from .local import read\n",
        "data/local.py": "from . import helper_name_defined_in_init\n",
    })
    assert find_cycle(import_graph(root, "pkg")) == ["data", "data.local", "data"]
