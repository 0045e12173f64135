"""Command-line habits: ``--version``, and ``lightbulb check`` exiting like a Nagios plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server import __version__
from tests.conftest import REPO, run_cli


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


def test_check_prints_each_metric_value_with_every_digit_it_has(tmp_path: Path) -> None:
    plugin = tmp_path / "check_big"
    plugin.write_text("#!/bin/sh\necho 'OK | flat=123456789.123 bigneg=-9.99e14 tiny=0.0000001'\n")
    plugin.chmod(0o755)
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"services:\n  - {{id: svc, type: command, command: {{command: [{plugin}]}}}}\n"
    )
    done = run_cli("-m", "server.cli", "check", "svc", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "metric flat = 123456789.123\n" in done.stdout, done.stdout
    assert "metric bigneg = -999000000000000\n" in done.stdout, done.stdout
    assert "metric tiny = 0.0000001\n" in done.stdout, done.stdout


def test_check_that_cannot_run_exits_3_unknown(tmp_path: Path) -> None:
    config = tmp_path / "lightbulb.yaml"
    config.write_text("services:\n  - {id: svc, type: host, interval: often}\n")
    bad = run_cli("-m", "server.cli", "check", "svc", "--config", str(config))
    assert bad.returncode == 3 and "services[0].interval" in bad.stderr
    config.write_text("services:\n  - {id: svc, type: host, interval: 1s}\n")
    missing = run_cli("-m", "server.cli", "check", "other", "--config", str(config))
    assert missing.returncode == 3 and "no service 'other'" in missing.stderr


def fresh_config(tmp_path: Path) -> Path:
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        "services:\n  - {id: me, type: host, interval: 5s}\n"
    )
    return config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["report", "--date", "0001-01-01"],
            "--date: expected a day from 1970-01-01 to 2105-12-31",
        ),
        (
            ["report", "--date", "9999-12-31"],
            "--date: expected a day from 1970-01-01 to 2105-12-31",
        ),
        (
            ["report", "--date", "1969-12-31"],
            "--date: expected a day from 1970-01-01 to 2105-12-31",
        ),
        (["maintenance", "--from", "9999-12-31"], "--from: expected a day from 1970-01-01 to "),
        (
            ["maintenance", "--from", "2105-12-30", "--days", "7"],
            "--from: expected a day from 1970-01-01 to 2105-12-25",
        ),
    ],
)
def test_a_day_outside_what_the_tables_hold_is_refused_with_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    config = fresh_config(tmp_path)
    done = run_cli("-m", "server.cli", *args, "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {message}") and "unexpected" not in done.stderr
    assert done.stdout == ""


def test_a_report_of_a_day_that_has_not_begun_is_refused_with_exit_2(tmp_path: Path) -> None:
    """Two days ahead of UTC has not begun in any time zone (UTC+14 at most); today in
    the report's zone (UTC here) has."""
    config = fresh_config(tmp_path)
    config.write_text(config.read_text() + "report: {timezone: UTC}\n")
    ahead = (datetime.now(UTC) + timedelta(days=2)).date()
    done = run_cli("-m", "server.cli", "report", "--date", str(ahead), "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: --date: {ahead} has not begun yet") and not done.stdout
    assert "or an earlier day" in done.stderr and "Traceback" not in done.stderr
    today = run_cli("-m", "server.cli", "report", "--date", str(datetime.now(UTC).date()),
                    "--config", str(config))  # fmt: skip
    assert today.returncode == 1 and "bootstrap" in today.stderr  # begun: on to the database


def test_a_missing_database_says_to_run_bootstrap(tmp_path: Path) -> None:
    config = fresh_config(tmp_path)
    done = run_cli("-m", "server.cli", "report", "--date", "2026-11-30", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "hint: the database or its tables are not there yet; create them with "
        f"`lightbulb bootstrap --config {config}`"
    )


def test_a_reader_that_goes_away_stops_the_command_quietly(tmp_path: Path) -> None:
    """`lightbulb check x | head -1`: the pipe closes early; no traceback, no error."""
    config = fresh_config(tmp_path)
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "check", "me", "--config", str(config)],
            cwd=REPO,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == 141  # as a shell reports a command ended by SIGPIPE
