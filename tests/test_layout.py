"""The floor plan's guard: no import cycle, and no import from a lower floor to a higher one.

Every `import` counts, at module level or inside a function (a lazy import is still an arrow
between two modules), except under `if TYPE_CHECKING:`. The floors, lowest first:

    core < config < metrics, data, models < features, segmentation, convert < tasks
         < results < api, train < cli < bench

A module may import from its own floor or below. `train` stands beside `api` and nothing on
the evaluation side imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "silc_bench"
FLOORS = {
    "core": 0, "config": 1, "metrics": 2, "data": 2, "models": 2, "features": 3, "segmentation": 3,
    "convert": 3, "tasks": 4, "results": 5, "api": 6, "train": 6, "cli": 7, "__main__": 7, "bench": 8,
}  # fmt: skip
EVALUATION = ("core", "config", "metrics", "data", "models", "features", "segmentation", "convert",
              "tasks", "results", "api")  # fmt: skip
TOP_LEVEL_MODULES = {"__init__", "__main__", "api"}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return skip


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module → {imported module of the same package: line}."""
    files = {_module_name(root, p): p for p in root.rglob("*.py")}
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip, deps = _type_checking_nodes(tree), {}
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.setdefault(t, node.lineno)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(graph: dict[str, dict[str, int]], floors: dict[str, int]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        here = floors.get(_unit(mod), 0)
        for dep, line in sorted(deps.items()):
            if floors.get(_unit(dep), 0) > here:
                bad.append(f"{mod} (line {line}) imports {dep}: floor {_unit(dep)} is above {_unit(mod)}")
    return bad


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(g) for g in found)


def test_no_module_imports_from_a_higher_floor() -> None:
    bad = upward_imports(import_graph(PACKAGE), FLOORS)
    assert not bad, "\n".join(bad)


def test_the_evaluation_side_never_imports_training() -> None:
    graph = import_graph(PACKAGE)
    bad = [f"{m} imports {d}" for m, deps in graph.items() if _unit(m) in EVALUATION
           for d in deps if _unit(d) == "train"]  # fmt: skip
    assert not bad, bad


def test_every_top_level_unit_has_a_floor_and_the_top_holds_only_folders() -> None:
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose == TOP_LEVEL_MODULES, f"loose modules in silc_bench/: {sorted(loose - TOP_LEVEL_MODULES)}"
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders - FLOORS.keys() == set(), f"folders with no floor: {sorted(folders - FLOORS.keys())}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_guard_finds_a_deliberate_cycle_even_through_a_lazy_import(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "core/__init__.py": "", "core/a.py": "from pkg.core import b\n",
        "core/b.py": "def f():\n    from pkg.core.a import x\n",
        "core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.core import a\n",
    })  # fmt: skip
    assert cycles(import_graph(root)) == [["pkg.core.a", "pkg.core.b"]]


def test_the_guard_names_an_import_from_a_lower_floor_to_a_higher_one(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "core/__init__.py": "", "core/x.py": "from ..api import run\n", "api.py": "run = 1\n",
    })  # fmt: skip
    bad = upward_imports(import_graph(root), FLOORS)
    assert bad == ["pkg.core.x (line 1) imports pkg.api: floor api is above core"]


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_every_floor_named_exists(name: str) -> None:
    assert (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
