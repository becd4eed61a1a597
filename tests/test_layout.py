"""The shape of the source tree: layers, import cycles and module sizes.

wskit is layered (README, "Layout"): each layer imports only the ones below
it, no two modules import each other, even lazily, and no module grows
past what a reader can hold in mind. These tests read the imports from the
source with :mod:`ast`, so they see lazy imports inside functions too; only
imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "wskit"

#: The layers, lowest first: a module may import its own layer and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("wskit.speedups",),
    ("wskit.exceptions", "wskit.limits"),
    ("wskit.protocol",),
    ("wskit.asyncio", "wskit.sync"),
    ("wskit.asgi", "wskit.uvicorn", "wskit.metrics"),
    ("wskit.hub",),
    ("wskit.testing", "wskit.demo", "wskit.cli"),
    ("wskit", "wskit.__main__"),
)

#: Modules longer than this many lines need a reason in EXEMPT_FROM_SIZE.
MAX_LINES = 800

#: Modules allowed past MAX_LINES; each must say why it is "one piece" in its docstring.
EXEMPT_FROM_SIZE: set[str] = {"wskit.asyncio.connection"}

#: Import cycles that exist today and are being taken apart (each entry is
#: the set of modules of one cycle). An entry that no longer holds fails the
#: test too, so that this list only ever shrinks.
KNOWN_CYCLES: list[frozenset[str]] = []

#: Modules over MAX_LINES today that are being split; the same rule applies.
KNOWN_OVERSIZE: set[str] = set()


def module_name(path: Path) -> str:
    """``src/wskit/hub/hub.py`` -> ``wskit.hub.hub``; a package's ``__init__`` -> the package."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    """Every Python source file of the package."""
    return sorted(PACKAGE.rglob("*.py"))


MODULES = {module_name(path): path for path in source_files()}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree`` that can run (not under ``if TYPE_CHECKING``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(child)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(module: str) -> set[str]:
    """The wskit modules that ``module`` imports when it runs, lazily or not."""
    path = MODULES[module]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = _resolve(module, path, node)
            # `from pkg import sub` imports the submodule when there is one.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        found.update(name for name in names if name in MODULES and name != module)
    # Importing a.b.c runs the packages a.b and a first, unless the importer
    # is inside them (then they are already running).
    for name in list(found):
        while "." in name:
            name = name.rpartition(".")[0]
            if not (module == name or module.startswith(name + ".")):
                found.add(name)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer ``module`` belongs to (the longest prefix wins)."""
    best, best_length = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def import_cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# -- the helpers above, on small inputs ---------------------------------------------------


def test_import_cycles_finds_only_mutual_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [frozenset({"a", "b", "c"})]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_runtime_imports_skip_type_checking_blocks_but_not_lazy_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .hub import Hub\n"
        "def f():\n    from .wire import Event\n"
    )
    modules = [node.module for node in _runtime_imports(tree) if isinstance(node, ast.ImportFrom)]
    assert modules == ["typing", "wire"]


def test_layer_of_takes_the_longest_prefix() -> None:
    assert layer_of("wskit.hub.backplane.redis") == layer_of("wskit.hub")
    assert layer_of("wskit") > layer_of("wskit.cli") > layer_of("wskit.hub")
    assert layer_of("wskit.protocol.connection") < layer_of("wskit.asyncio.connection")


# -- the tree -------------------------------------------------------------------------------


def test_every_module_belongs_to_a_layer() -> None:
    assert [module for module in MODULES if layer_of(module) < 0] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_only_downward(module: str) -> None:
    upward = sorted(target for target in GRAPH[module] if layer_of(target) > layer_of(module))
    assert upward == [], f"{module} imports a higher layer"


def test_no_runtime_import_cycle() -> None:
    cycles = import_cycles(GRAPH)
    new = [sorted(cycle) for cycle in cycles if cycle not in KNOWN_CYCLES]
    assert new == [], "modules that import each other (lazy imports count)"
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in cycles]
    assert gone == [], "cycles taken apart: remove them from KNOWN_CYCLES"


def test_modules_stay_small() -> None:
    sizes = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    over = {module for module, size in sizes.items() if size > MAX_LINES}
    unexplained = sorted(over - EXEMPT_FROM_SIZE - KNOWN_OVERSIZE)
    assert unexplained == [], f"modules over {MAX_LINES} lines: split them"
    assert sorted(KNOWN_OVERSIZE - over) == [], "split: remove them from KNOWN_OVERSIZE"


def test_a_long_module_says_why_it_is_one_piece() -> None:
    silent = [
        module
        for module in sorted(EXEMPT_FROM_SIZE)
        if "one piece" not in (ast.get_docstring(ast.parse(MODULES[module].read_text())) or "")
    ]
    assert silent == [], "an exempt module's docstring says why it is one piece"
