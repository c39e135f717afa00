"""Finding string branching on plug-in names (detectors, rollout strategies) in source."""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mlcanary"


def branches_on_names(source: str, names: Collection[str]) -> list[int]:
    """Lines comparing something with one of ``names`` (``==``, ``!=``, ``in``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for value in [node.left, *node.comparators]:
                options = value.elts if isinstance(value, ast.Tuple | ast.List | ast.Set) \
                    else [value]
                if any(isinstance(o, ast.Constant) and o.value in names for o in options):
                    found.append(node.lineno)
    return found


def breaches(names: Collection[str], registry: str, under: str = "") -> list[str]:
    """``path:line`` of every such comparison outside the registry module ``registry``."""
    return [f"{path.relative_to(PACKAGE)}:{line}"
            for path in sorted((PACKAGE / under).rglob("*.py"))
            if path.relative_to(PACKAGE).as_posix() != registry
            for line in branches_on_names(path.read_text(encoding="utf-8"), names)]
