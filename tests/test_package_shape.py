"""The package's shape: no import cycle, modules and functions a newcomer can read whole.

Read with ``ast`` only (nothing is imported): every ``import`` anywhere in a module counts —
module level, inside functions and under ``if TYPE_CHECKING:`` — and ``from pkg import name``
counts as an import of the submodule ``pkg.name`` when there is one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mlflow_green"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Import cycles allowed on purpose, each as the sorted tuple of its modules, with the reason
# in a comment. Keep this empty: a lower module that must call a higher one takes a callback
# or a Protocol of its own instead of importing it.
ALLOWED_CYCLES: set[tuple[str, ...]] = set()

# The registry does not import reports, except the server apps, which mount the /green page.
REGISTRY_MAY_IMPORT_REPORTS = {"mlflow_green.registry.app", "mlflow_green.registry.app_auth"}


@cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in its body."""
    modules = _modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    out.add(f"{target}.{alias.name}")
                elif target in modules:
                    out.add(target)
    out.discard(name)
    return out


@cache
def import_graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(_imported(name, path)) for name, path in _modules().items()}


def import_cycles(graph: dict[str, frozenset[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _a_cycle_through(graph: dict[str, frozenset[str]], component: tuple[str, ...]) -> str:
    """One concrete cycle inside ``component``, as ``a -> b -> ... -> a`` (for the message)."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return " -> ".join([*paths[node], start])
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return ", ".join(component)


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    cycles = [c for c in import_cycles(graph) if c not in ALLOWED_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join(_a_cycle_through(graph, c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a", "d"}),
        "d": frozenset(),
    }
    assert import_cycles(graph) == [("a", "b", "c")]
    assert _a_cycle_through(graph, ("a", "b", "c")) == "a -> b -> c -> a"


def test_imports_resolve_to_submodules() -> None:
    graph = import_graph()
    # `from mlflow_green import _settings` is the submodule, not the package's __init__.
    assert "mlflow_green._settings" in graph["mlflow_green.tracking.inputs"]
    assert "mlflow_green" not in graph["mlflow_green.tracking.inputs"]
    # Imports under TYPE_CHECKING and inside functions count.
    assert "mlflow_green.tracking.tracker" in graph["mlflow_green"]
    assert "mlflow_green.tracking.session" in graph["mlflow_green.tracking.tracker"]


def test_the_registry_does_not_import_reports() -> None:
    graph = import_graph()
    offenders = sorted(
        f"{name} imports {dep}"
        for name, deps in graph.items()
        if name.startswith("mlflow_green.registry") and name not in REGISTRY_MAY_IMPORT_REPORTS
        for dep in deps
        if dep.startswith("mlflow_green.reports")
    )
    assert not offenders, offenders


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_module_is_too_long() -> None:
    too_long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in _modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_no_function_is_too_long() -> None:
    too_long = {}
    for path in _modules().values():
        for fn in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            # From the def line (decorators aside) to the end, docstring included.
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_long[f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name}"] = length
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
