"""The package's import graph points one way: no cycle, counting imports inside functions and for typing."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "azexec"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """Return the azexec modules PATH imports anywhere in it (a function, a TYPE_CHECKING block)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from azexec import sources` imports the module azexec.sources.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(files)
    edges = {name: imports(path, known) - {name} for name, path in files.items()}
    # A package's __init__ is imported with each of its modules: a module naming its own package is no edge back.
    return {
        name: {target for target in targets if not name.startswith(target + ".")} for name, targets in edges.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return one cycle through each module that is on one (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_the_checker_sees_a_planted_cycle() -> None:
    """The search finds a cycle when there is one, so its silence below means something."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_graph_is_read_from_the_package() -> None:
    """The graph holds the package's modules and the edges known to exist (cli → plan, inside a function)."""
    edges = graph()
    assert {"azexec.cli", "azexec.plan", "azexec.sources", "azexec.parts.identity"} <= set(edges)
    assert "azexec.plan" in edges["azexec.cli"]
    assert "azexec.tokencmd" in edges["azexec.sources"]


def test_azexec_has_no_import_cycle() -> None:
    """Every import points down: shared pieces live below everything that uses them."""
    assert cycles(graph()) == []


def _table_order() -> list[list[str]]:
    """Return the modules of docs/development.md's layout table, a group per row, top to bottom."""
    import re

    page = (PACKAGE.parent / "docs" / "development.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    order: list[list[str]] = []
    for row in rows:
        names = re.findall(r"`([a-z_/.]+)`", row.split("|")[1])
        group: list[str] = []
        for name in names:
            path = name.removeprefix("azexec/").removesuffix(".py").removesuffix("/")
            group.append("azexec." + path.replace("/", ".").removesuffix(".__init__"))
        order.append(group)
    return order


def upward(edges: dict[str, set[str]], order: list[list[str]]) -> list[tuple[str, str]]:
    """Return each import of a module listed above it in ORDER (a row names a module, or a package and its
    modules); a module ORDER does not list is an error of its own."""
    rank = {name: index for index, group in enumerate(order) for name in group}

    def row(module: str) -> int:
        owner = [name for name in rank if module == name or module.startswith(name + ".")]
        assert owner, f"{module} is not in docs/development.md's layout table"
        return rank[max(owner, key=len)]

    modules = [module for module in edges if module != "azexec"]
    rows = {module: row(module) for module in modules}
    return [(m, t) for m in modules for t in sorted(edges[m]) if t in rows and rows[t] < rows[m]]


def test_the_order_check_sees_an_import_upward() -> None:
    """A module importing one listed above it is found, so silence below means something."""
    assert upward({"azexec.a": {"azexec.b"}, "azexec.b": set()}, [["azexec.b"], ["azexec.a"]]) == [
        ("azexec.a", "azexec.b")
    ]


def test_the_layout_table_lists_every_module_above_what_it_imports() -> None:
    """docs/development.md says each module imports only what is listed below it: true of the code."""
    order = _table_order()
    assert len(order) > 15  # the table was read
    assert upward(graph(), order) == []
