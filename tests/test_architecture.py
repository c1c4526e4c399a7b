"""The import graph of harness/, sae/ and tui/, read from the source with `ast`: no module imports
itself in a circle, and `harness` imports nothing from `sae` or `tui`.

Every import counts, the ones inside functions too: a function-level import only hides a cycle
until the function runs. `from package import name` is an edge to the submodule when `name` is one,
else to the package (its `__init__.py`, a module like any other). Modules named by a string (the
command registry's `importlib.import_module`) are not edges: nothing imports them at load time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "sae", "tui")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in its source."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, module, path.name == "__init__.py")
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules and n != module}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan's algorithm),
    each as a path a -> b -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_path(graph, set(c)) for c in components]


def _cycle_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path through the component from its first module back to it (breadth first)."""
    start = min(component)
    came_from: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w not in came_from:
                came_from[w] = v
                todo.append(w)
    return sorted(component)


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "harness.study.config" in graph["harness.study.plan"]  # from x import Name
    assert "harness.cli" in graph["harness.study.plan"]  # inside a function
    assert "harness.rundir.files" in graph["harness.study.layout"]  # from package import module
    assert "harness.backends" in graph and "harness.backends.base" in graph["harness.backends"]


def test_a_cycle_is_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_no_module_imports_itself_in_a_circle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_harness_imports_neither_sae_nor_tui():
    wrong = sorted(
        f"{m} imports {t}" for m, targets in import_graph().items() if m.split(".")[0] == "harness"
        for t in targets if t.split(".")[0] in ("sae", "tui")
    )
    assert not wrong, "\n".join(wrong)


def _file_names() -> list[str]:
    """Every file name `harness/rundir/files.py` defines (the constants with a file ending)."""
    from harness.rundir import files

    return sorted({v for k, v in vars(files).items() if k.isupper() and isinstance(v, str) and "." in v})


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions, and attribute docs."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                found.add(id(stmt.value))
    return found


def spelt_file_names(path: Path, names: list[str]) -> list[str]:
    """`line: name` for each string in the code (docstrings aside) that spells a file name out (a
    page of the docs, `docs/status.md`, is no run file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = re.sub(r"docs/[\w./-]+", "", node.value)
            out += [f"{node.lineno}: {n}" for n in names if n in text]
    return out


def test_file_names_are_spelt_only_in_the_file_names_module():
    names = _file_names()
    assert {"games.jsonl", "events.jsonl", "manifest.json"} <= set(names)
    wrong = [
        f"{path.relative_to(ROOT)}:{hit}" for name, path in project_modules().items()
        if name != "harness.rundir.files" for hit in spelt_file_names(path, names)
    ]
    assert not wrong, "spell these with harness.rundir.files:\n" + "\n".join(wrong)
