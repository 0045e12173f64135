"""The command checker runs real Nagios-style plugin scripts."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checkers.base import CheckContext, Status
from checkers.command import CommandChecker, CommandSettings, parse_perfdata
from server.runner import run_check


def plugin(tmp_path: Path, body: str) -> str:
    path = tmp_path / "check_thing"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, Status.OK),
        (1, Status.DEGRADED),
        (2, Status.FAILED),
        (3, Status.UNKNOWN),
        (7, Status.UNKNOWN),
    ],
)
def test_exit_code_maps_to_status(tmp_path: Path, code: int, status: Status) -> None:
    script = plugin(
        tmp_path, f"echo 'THING STATE {code} - all said | load=0.5;1;2;0;4'\nexit {code}\n"
    )
    result = run_check(
        CommandChecker(CommandSettings(command=[script])), CheckContext("c", datetime.now(UTC), 5)
    )
    assert result.status == status
    assert result.details["exit_code"] == code
    assert result.metrics[0].name == "load" and result.metrics[0].value == 0.5
    if code < 4:
        assert result.message == f"THING STATE {code} - all said"
    else:
        assert result.message.startswith("exit code 7:")


def test_perfdata_units_thresholds_and_quoted_labels() -> None:
    metrics = parse_perfdata("'disk /var'=71%;80;90;0;100 time=0.25s;;; count=12c size=1.5MB")
    assert [(m.name, m.value, m.unit) for m in metrics] == [
        ("disk /var", 71.0, "percent"),
        ("time", 0.25, "seconds"),
        ("count", 12.0, "counter"),
        ("size", 1.5, "MB"),
    ]
    assert metrics[0].tags == {"warn": "80", "crit": "90", "min": "0", "max": "100"}


def test_multiline_output_with_long_perfdata(tmp_path: Path) -> None:
    script = plugin(tmp_path, "printf 'OK - two parts | a=1\\nmore text | b=2\\n'\n")
    result = run_check(
        CommandChecker(CommandSettings(command=script)), CheckContext("c", datetime.now(UTC), 5)
    )
    assert result.message == "OK - two parts"
    assert [m.name for m in result.metrics] == ["a", "b"]


def test_plugin_past_timeout_is_unknown(tmp_path: Path) -> None:
    script = plugin(tmp_path, "sleep 10\n")
    result = run_check(
        CommandChecker(CommandSettings(command=[script])), CheckContext("c", datetime.now(UTC), 0.3)
    )
    assert result.status == Status.UNKNOWN and "timed out" in result.message


def test_missing_plugin_is_unknown(tmp_path: Path) -> None:
    result = run_check(
        CommandChecker(CommandSettings(command=[str(tmp_path / "nope")])),
        CheckContext("c", datetime.now(UTC), 1),
    )
    assert result.status == Status.UNKNOWN and result.message.startswith("cannot run")


def test_plugin_does_not_see_daemon_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", "do-not-leak")
    script = plugin(tmp_path, 'echo "pw=[$CLICKHOUSE_PASSWORD] extra=[$EXTRA]"\n')
    settings = CommandSettings(command=[script], env={"EXTRA": "given"})
    result = run_check(CommandChecker(settings), CheckContext("c", datetime.now(UTC), 5))
    assert result.message == "pw=[] extra=[given]"
