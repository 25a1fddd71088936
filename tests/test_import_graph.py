"""The package's floor plan: every module imports on its own, and no modules import each
other in a loop, however indirectly, counting imports inside functions too."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import smsbot

ROOT = Path(smsbot.__file__).parent
# Alembic loads these itself (env.py runs a migration when imported).
NOT_IMPORTED = ("smsbot.migrations",)


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(NOT_IMPORTED):
            names[name] = path
    return names


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its code.

    Importing ``a.b.c`` runs the ``__init__`` of ``a.b`` first, unless the importer is inside
    ``a.b`` itself, so that package counts too. The root package does not: every module
    is inside it, and its ``__init__`` imports the app's parts only inside ``create_app``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative import (smsbot imports by full name)"
            base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            if target not in known:
                continue
            found.add(target)
            parts = target.split(".")
            for depth in range(2, len(parts)):
                ancestor = ".".join(parts[:depth])
                if not (name == ancestor or name.startswith(ancestor + ".")):
                    found.add(ancestor)
    found.discard(name)
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other in a loop (strongly connected, Tarjan)."""
    known = module_names(root)
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


@pytest.mark.parametrize("name", sorted(set(module_names(ROOT)) - {"smsbot.__main__"}))  # runs the CLI
def test_every_module_imports_on_its_own(name: str) -> None:
    importlib.import_module(name)


def test_no_modules_import_each_other_in_a_loop() -> None:
    assert import_cycles(ROOT) == []


def test_a_loop_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from pkg.inner.b import B\n")
    (package / "inner" / "b.py").write_text("B = 1\n")
    (package / "a.py").write_text("def f():\n    from pkg.inner import b\n")
    (package / "inner" / "c.py").write_text("from pkg import a\n")
    assert import_cycles(package) == []
    (package / "inner" / "b.py").write_text("from pkg.a import f\nB = 1\n")
    assert import_cycles(package) == [["pkg.a", "pkg.inner", "pkg.inner.b"]]
