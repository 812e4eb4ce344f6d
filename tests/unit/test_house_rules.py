"""The house rules a reader relies on, checked on the source itself.

- No import cycles among the project's modules: each module's dependencies can be read
  without reading its dependents. Every import counts, also one inside a function (a
  cycle hidden in a function is still a cycle), except those under ``TYPE_CHECKING``.
- No source module above ~600 lines, except the modules that are tables (printer
  columns, protobuf field numbers): a module should fit in a reader's head.
- Steps stay thin: a step function's body (after its docstring) is a dozen lines at most;
  the logic lives in meshgate/, where it is unit-tested.
- The one rule of the architecture: nothing in meshgate/, fixtures/ or steps/ imports
  localmesh, except the target that boots it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("meshgate", "localmesh", "fixtures", "steps", "workloads")
MAX_LINES = 600
# Modules that are tables: rows of data, read by lookup, not as prose.
TABLES = {"localmesh/api/tables.py", "localmesh/api/protobuf.py"}
MAX_STEP_BODY = 12


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for block in ast.walk(tree) if _type_checking_block(block)
               for n in ast.walk(block)}
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_local_target_imports_localmesh() -> None:
    modules = _modules()
    offenders = sorted(
        name for name, path in modules.items()
        if name.split(".")[0] in ("meshgate", "fixtures", "steps")
        and name != "meshgate.targets.local"
        and any(t.split(".")[0] == "localmesh" for t in _imports(name, path, set(modules))))
    assert offenders == []


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_fit_in_a_head(package: str) -> None:
    long = {str(p.relative_to(REPO)): n for p in (REPO / package).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and str(p.relative_to(REPO)) not in TABLES}
    assert long == {}


def _step_functions() -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for path in sorted((REPO / "steps").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", "") in
                    ("given", "when", "then") for d in node.decorator_list):
                out.append((f"{path.name}:{node.name}", node))
    return out


def test_step_bodies_are_thin() -> None:
    steps = _step_functions()
    assert len(steps) >= 10  # the finder finds the steps
    fat = {}
    for where, node in steps:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        lines = (body[-1].end_lineno or 0) - body[0].lineno + 1 if body else 0
        if lines > MAX_STEP_BODY:
            fat[where] = lines
    assert fat == {}
