"""The package's shape: one import name, no import cycles (imports inside
functions included), and the layer contract of pyproject.toml."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "src" / "torchparity"


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE, type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, wherever the import statement
    sits (module level, inside a function; under TYPE_CHECKING only when
    ``type_checking``: the graph a type checker walks)."""
    modules = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
            and not type_checking
            for n in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle_even_through_imports_inside_functions():
    graph = import_graph()
    assert len(graph) > 50, "the walk found the package's modules"
    assert cycles(graph) == []


def test_no_cycle_even_through_imports_for_the_type_checker_only():
    """``if TYPE_CHECKING:`` imports count here: a type named across two layers in
    both directions (PrepareContext and TrainJob, once) belongs below both."""
    graph = import_graph(type_checking=True)
    # The public surface (the root package) names its lazy re-exports for the checker.
    graph = {k: v - {"torchparity"} for k, v in graph.items() if k != "torchparity"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(planted) == [["a", "b", "c"]]


def test_only_torchparity_is_importable_at_top_level_from_the_source_tree():
    top = {p.name for p in (ROOT / "src").iterdir() if not p.name.endswith(".egg-info")}
    assert top == {"torchparity"}
    assert not (ROOT / "harness").exists() and not (ROOT / "suites").exists()


def test_layer_contract_holds():
    lint_imports = shutil.which(
        "lint-imports", path=str(Path(sys.executable).parent)
    ) or shutil.which("lint-imports")
    if lint_imports is None:
        pytest.skip("import-linter is not installed here; `nox -s lint` installs and runs it")
    proc = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
