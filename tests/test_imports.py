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
