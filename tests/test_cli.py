"""Command-line habits: ``--version``, and ``lightbulb check`` exiting like a Nagios plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import __version__
from tests.conftest import run_cli


def test_version_prints_the_package_version() -> None:
    done = run_cli("-m", "server.cli", "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"lightbulb {__version__}"


@pytest.mark.parametrize(
    ("plugin_exit", "status"), [(0, "OK"), (1, "DEGRADED"), (2, "FAILED"), (3, "UNKNOWN")]
)
def test_check_exits_0_ok_1_degraded_2_failed_3_otherwise(
    tmp_path: Path, plugin_exit: int, status: str
) -> None:
    plugin = tmp_path / "check_says"  # a Nagios plugin: first line, then its exit code
    plugin.write_text('#!/bin/sh\necho "$2"\nexit "$1"\n')
    plugin.chmod(0o755)
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"services:\n  - {{id: svc, type: command, command: {{command: [{plugin}, '{plugin_exit}',"
        f" 'said so']}}}}\n"
    )
    done = run_cli("-m", "server.cli", "check", "svc", "--config", str(config))
    assert done.returncode == plugin_exit, done.stdout + done.stderr
    assert done.stdout.startswith(f"svc: {status} (")


def test_check_that_cannot_run_exits_3_unknown(tmp_path: Path) -> None:
    config = tmp_path / "lightbulb.yaml"
    config.write_text("services:\n  - {id: svc, type: host, interval: often}\n")
    bad = run_cli("-m", "server.cli", "check", "svc", "--config", str(config))
    assert bad.returncode == 3 and "services[0].interval" in bad.stderr
    config.write_text("services:\n  - {id: svc, type: host, interval: 1s}\n")
    missing = run_cli("-m", "server.cli", "check", "other", "--config", str(config))
    assert missing.returncode == 3 and "no service 'other'" in missing.stderr
