"""The package's layers: each imports only those before it, and only ``store`` touches the
database (docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mlcanary"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"", "types", "signature", "errors", "bodies", "config", "logs", "progress",
               "tables", "columns", "dates"}),
    frozenset({"store"}),
    frozenset({"registry", "train"}),
    frozenset({"models"}),
    frozenset({"monitor"}),
    frozenset({"control"}),
    frozenset({"serve"}),
    frozenset({"backtest", "demo_traffic", "demo"}),
    frozenset({"cli", "__main__"}),
)
"""In order: a module may import its own layer and those before it, never one after."""

DATABASE_MODULES = ("sqlalchemy", "alembic", "psycopg", "sqlite3", "mlcanary.store.schema")
"""What only ``store`` imports: the database drivers, the ORM and the tables."""


def part(module: str) -> str:
    """``mlcanary.control.gates`` -> ``control``; ``mlcanary`` -> ``""``."""
    return module.split(".")[1] if module.count(".") else ""


def layer(module: str) -> int:
    name = part(module)
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise AssertionError(f"{module}: in no layer; add '{name}' to LAYERS (and the docs)")


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, at module level or inside a function."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def violations(module: str, source: str) -> list[str]:
    """Every import against the layer order, every database import outside ``store`` and
    every private member of a store used outside it, as ``module:line: what``."""
    tree = ast.parse(source)
    own, inside_store = layer(module), part(module) == "store"
    found = []
    for line, name in imported(tree):
        if name.startswith("mlcanary") and layer(name) > own:
            found.append(f"{module}:{line}: imports {name}, a later layer")
        database = any(name == d or name.startswith(f"{d}.") for d in DATABASE_MODULES)
        if database and not inside_store:
            found.append(f"{module}:{line}: imports {name}; only mlcanary.store may")
    if not inside_store:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and "store" in ast.unparse(node.value).lower()
            ):
                found.append(f"{module}:{node.lineno}: uses {ast.unparse(node)}, a private member")
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_every_module_keeps_to_its_layer(module: str, path: Path) -> None:
    assert violations(module, path.read_text()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("mlcanary.store.database", "from mlcanary.monitor.tap import x", "a later layer"),
        ("mlcanary.monitor.watch", "def f():\n    import mlcanary.control.loop", "a later layer"),
        ("mlcanary.control.gates", "from sqlalchemy import select", "only mlcanary.store may"),
        ("mlcanary.control.gates", "from mlcanary.store.schema import events", "only"),
        ("mlcanary.monitor.watch", "self.store._write()", "private member"),
        ("mlcanary.serve.app", "with store._read() as c: pass", "private member"),
    ],
)
def test_the_checker_finds_each_kind_of_breach(module: str, source: str, expected: str) -> None:
    (found,) = violations(module, source)
    assert expected in found


def test_the_checker_allows_what_the_layers_allow() -> None:
    fine = "from mlcanary.store.database import Store\nfrom mlcanary.config import Settings\n"
    assert violations("mlcanary.control.gates", fine + "store.read_window('m')") == []
    assert violations("mlcanary.store.signals", "from sqlalchemy import select\ns._read()") == []
