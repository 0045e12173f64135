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


ROOT = CORE.parents[1]
PLUGINS = ("checkers", "server.alerting", "server.notify", "server.validation")


def _package_imports(folder: Path) -> set[str]:
    return {f"{path.name}: {name}" for path in folder.glob("*.py") for name in _imports(path)}


def test_config_imports_no_registry_so_plugins_can_own_their_settings():
    offending = {
        entry
        for entry in _package_imports(ROOT / "server" / "config")
        if entry.split(": ")[1].startswith(PLUGINS)
    }
    assert not offending


def test_checkers_and_channels_import_nothing_from_config():
    folders = [ROOT / "checkers", ROOT / "server" / "notify"]
    offending = {
        f"{folder.name}/{entry}"
        for folder in folders
        for entry in _package_imports(folder)
        if entry.split(": ")[1].startswith("server.config")
        and not entry.startswith("dispatcher.py")  # the delivery worker, not a channel
    }
    assert not offending
