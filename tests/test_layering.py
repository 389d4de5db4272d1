"""The package's imports point one way: no import cycle among hookrunner's modules.

Static, from the source (``ast``), so that it sees every import, wherever it is written:

* at module level, in a function (the lazy imports that keep a login's start-up small), and
  under ``if TYPE_CHECKING:``. A lazy import still makes the two modules depend on each other
  (it only delays the error a cycle can give: a half-initialised module at the first call on
  an unusual path); a type-only one still ties their designs. DESIGN.md's data flow has one
  direction; so do the modules.
* ``from .x import y``, ``from . import x``, ``import hookrunner.x``, ``from hookrunner import x``;
  a name that is not a module (``from . import hookimpl``) is an edge to ``__init__``.
* Not counted: the parent package that Python initialises before any submodule (every module
  would otherwise "import" ``__init__``), and ``__main__`` (a script; nothing imports it).
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hookrunner"
Graph = dict[str, dict[str, int]]  # module -> {module it imports: line of the first such import}


def import_graph(package: Path) -> Graph:
    modules = {p.stem for p in package.glob("*.py")}
    graph: Graph = {}
    for path in sorted(package.glob("*.py")):
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for module in imported(node, package.name, modules):
                    if module != path.stem:
                        edges.setdefault(module, node.lineno)
        graph[path.stem] = edges
    graph.pop("__main__", None)
    return graph


def imported(node: ast.Import | ast.ImportFrom, package: str, modules: set[str]) -> list[str]:
    """The package's modules an import statement imports (none for the standard library)."""
    if isinstance(node, ast.Import):
        dotted = [alias.name.split(".") for alias in node.names]
        return [parts[1] if len(parts) > 1 else "__init__" for parts in dotted
                if parts[0] == package and (len(parts) == 1 or parts[1] in modules)]
    assert node.level <= 1, f"line {node.lineno}: the package has no subpackages"
    parts = (node.module or "").split(".")
    if node.level == 0:
        if parts[0] != package:
            return []  # the standard library, pluggy
        parts = parts[1:]
    if parts and parts[0]:
        return [parts[0]] if parts[0] in modules else []
    # from . import x: the submodule x, or a name the package itself defines
    return [alias.name if alias.name in modules else "__init__" for alias in node.names]


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) for each strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; a few dozen modules: recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
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
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_around(graph, sorted(c)) for c in components]


def _path_around(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, staying inside the component."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                return [*paths[v], start]
            if w in inside and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in {component}")


def describe(graph: Graph, cycle: list[str]) -> str:
    return ", ".join(f"{a}.py:{graph[a][b]} imports {b}" for a, b in pairwise(cycle))


# None left: config <-> schema (issue 14, item 8) was untangled (config.py holds the records,
# schema.py validates, dropins.py loads). The test fails as soon as a cycle is found; never
# add to this.
KNOWN_CYCLES: set[frozenset[str]] = set()


def test_no_import_cycle_among_hookrunner_modules() -> None:
    graph = import_graph(PACKAGE)
    assert {"cli", "commands", "invocation", "dispatch"} <= set(graph)  # the walk sees the package
    assert "invocation" in graph["commands"] and "commands" in graph["cli"]  # ... and lazy imports
    found = {frozenset(c): describe(graph, c) for c in cycles(graph)}
    new = [text for modules, text in found.items() if modules not in KNOWN_CYCLES]
    assert not new, "import cycles: " + "; ".join(new)
    gone = [" <-> ".join(sorted(modules)) for modules in KNOWN_CYCLES - set(found)]
    assert not gone, f"no longer a cycle, remove it from KNOWN_CYCLES: {', '.join(gone)}"


# The checker itself, on small packages: a cycle of each kind of import is found.

@pytest.mark.parametrize(("files", "expected"), [
    ({"a": "from .b import x\n", "b": "def f():\n    from .a import y\n"}, [["a", "b", "a"]]),
    ({"a": "from . import b\n", "b": "import pkg.c\n", "c": "from pkg import a\n"},
     [["a", "b", "c", "a"]]),
    ({"a": "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from .b import B\n", "b": "from .a import x\n"},
     [["a", "b", "a"]]),
    ({"__init__": "def __getattr__(n):\n    from .a import x\n", "a": "from . import thing\n"},
     [["__init__", "a", "__init__"]]),
    ({"a": "import os\nfrom .b import x\n", "b": "from .c import y\n", "c": "import json\n"}, []),
    ({"__init__": "", "a": "from .b import x\n", "b": "from . import c\n", "c": ""}, []),
])
def test_the_checker_finds_cycles(tmp_path: Path, files: dict[str, str],
                                  expected: list[list[str]]) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    for name, text in files.items():
        (package / f"{name}.py").write_text(text)
    assert cycles(import_graph(package)) == expected
