"""The bottom layer (server/core) imports nothing else of ours."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "server" / "core"
OURS = ("server", "checkers", "bootstrap", "validate_schema", "tests")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_core_modules_import_only_the_standard_library_third_parties_and_each_other():
    offending = {
        f"{path.name}: {name}"
        for path in CORE.glob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in OURS and not name.startswith("server.core")
    }
    assert not offending
