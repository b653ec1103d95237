"""No import cycle in the ci_cache package, read from the source (module-level and function-level imports).

A cycle once ran cli -> session -> shims -> cli; this keeps the layout acyclic as modules move.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ci_cache"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The modules of `modules` that module `name` (at `path`) imports anywhere in it: `from a import b`
    names a.b when that is a module, else a."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return (found & modules) - {name}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, name, modules) for name, path in paths.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle as one path that returns to its start (a depth-first search's back edges)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_the_ci_cache_package_has_no_import_cycle() -> None:
    edges = graph()
    assert "ci_cache.cli" in edges and "ci_cache.job.lifecycle" in edges
    assert cycles(edges) == [], "\n".join(" -> ".join(c) for c in cycles(edges))


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    # The cycle this test was written for, as the source had it: shims imported cli inside a function.
    modules = {"ci_cache.cli", "ci_cache.shims", "ci_cache.fsops"}
    source = tmp_path / "shims.py"
    source.write_text("from . import fsops\n\ndef launcher_main() -> None:\n    from ci_cache.cli import main\n")
    assert imports_of(source, "ci_cache.shims", modules) == {"ci_cache.cli", "ci_cache.fsops"}
