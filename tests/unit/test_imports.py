"""Every embedpipe module imports, and the package's import graph has no cycle.

The graph is read statically with ``ast``: every ``import`` and ``from ... import`` anywhere in a
module, function-level (lazy) imports included, since a lazy import still ties the two modules
together; only imports under ``if TYPE_CHECKING:`` are left out (they never run). An edge goes to
the most specific embedpipe module named (``from embedpipe.torchtrain import pairwise_cpu`` is an
edge to ``embedpipe.torchtrain.pairwise_cpu``; ``from embedpipe.torchtrain import SGNSParams`` one to
the package ``embedpipe.torchtrain``).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import embedpipe

PACKAGE = Path(embedpipe.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool, modules: set[str] | dict[str, Path] = MODULES
                    ) -> set[str]:
    """The dotted names ``tree`` imports: ``a.b.x`` for ``from a.b import x`` where that is one of
    ``modules``, else ``a.b``."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                names.add(submodule if submodule in modules else source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _known(name: str) -> str | None:
    """``name``, or its nearest enclosing embedpipe module (``import embedpipe.a.b`` of a function ``b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the embedpipe modules it imports."""
    graph = {}
    for module, path in MODULES.items():
        names = _imported_names(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py")
        targets = {_known(name) for name in names if name.split(".")[0] == "embedpipe"} - {module, None}
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _edges_within(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    members = set(component)
    return [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_the_graph_reader_sees_lazy_imports_and_skips_type_checking_ones():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from embedpipe import errors\n"
        "from embedpipe.torchtrain import SGNSParams\n"
        "if TYPE_CHECKING:\n"
        "    from embedpipe import table\n"
        "def lazy():\n"
        "    import embedpipe.schema\n"
        "    from . import batching\n"
    )
    names = _imported_names(ast.parse(source), "embedpipe.torchtrain.sgns_train", is_package=False)
    assert names == {"typing", "embedpipe.errors", "embedpipe.torchtrain", "embedpipe.schema",
                     "embedpipe.torchtrain.batching"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert graph["embedpipe.torchtrain.sgns_train"] >= {"embedpipe.torchtrain.pairwise_cpu"}  # the reader works
    found = ["; ".join(_edges_within(component, graph)) for component in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)
