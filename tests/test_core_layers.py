"""The cache decisions stay free of aiohttp, so another front end can reuse them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edgecache"
# Modules that decide the key, the lookup, freshness and storability.
DECISION_MODULES = ["key", "store", "entry", "freshness", "storability", "cache_control", "vary", "coalesce"]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", DECISION_MODULES)
def test_decision_module_avoids_aiohttp(module: str) -> None:
    imports = imported_modules(PACKAGE / f"{module}.py")

    assert [name for name in imports if name.split(".")[0] == "aiohttp"] == []
