"""The command checker runs real Nagios-style plugin scripts."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from checkers.base import CheckContext, Status
from checkers.command import CommandChecker, CommandSettings, parse_perfdata, split_output
from checkers.plugins import MAX_STDERR, MAX_STDOUT
from server.runner import run_check
from tests.conftest import wait_until


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
    metrics, refused = parse_perfdata(
        "'disk /var'=71%;80;90;0;100 time=0.25s;;; count=12c size=1.5MB"
    )
    assert refused == []
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


def test_every_line_after_a_later_pipe_is_perfdata(tmp_path: Path) -> None:
    """Nagios plugin API: after the ``|`` on a later line, all remaining lines are perfdata."""
    script = plugin(
        tmp_path, "printf 'OK first | a=1\\nlong line 1\\nlong line 2 | b=2\\nc=3 d=4ms\\n'\n"
    )
    result = run_check(
        CommandChecker(CommandSettings(command=script)), CheckContext("c", datetime.now(UTC), 5)
    )
    assert result.message == "OK first"
    assert [(m.name, m.value, m.unit) for m in result.metrics] == [
        ("a", 1.0, ""), ("b", 2.0, ""), ("c", 3.0, ""), ("d", 4.0, "ms")]  # fmt: skip
    assert "metrics_refused" not in result.details


def test_long_text_without_a_later_pipe_is_no_perfdata() -> None:
    _, metrics, refused = split_output("OK | a=1\nx=2 is long text\ny=3")
    assert [m.name for m in metrics] == ["a"] and refused == []


def test_perfdata_labels_follow_the_plugin_guidelines() -> None:
    metrics, refused = parse_perfdata(
        "dup=1 dup=2 'quo''te'=3 sp='a b'=1 e2=5=6 x=3 a=1;2;3;4;5;6 'open=1"
    )
    assert [(m.name, m.value) for m in metrics] == [("dup", 1.0), ("quo'te", 3.0), ("x", 3.0)]
    assert refused == [
        "dup=2: label printed twice, first kept",
        "sp='a b'=1: expected 'label'=value[unit];warn;crit;min;max",
        "e2=5=6: expected 'label'=value[unit];warn;crit;min;max",
        "a=1;2;3;4;5;6: expected 'label'=value[unit];warn;crit;min;max",
        "'open=1: expected 'label'=value[unit];warn;crit;min;max",
    ]


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


def live_strays(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(
                proc.info["cmdline"] or []
            ):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


# Children and grandchildren that ignore SIGTERM, one double-forked into its own session.
FORKING = """trap '' TERM
sh -c "trap '' TERM; sleep {n}1" &
( setsid sh -c "trap '' TERM; sleep {n}2" & ) &
sh -c "sleep {n}3 & sleep {n}4" &
{tail}
"""


@pytest.mark.parametrize(
    ("tail", "status", "message"),
    [
        ("sleep 900", Status.UNKNOWN, "timed out after 1.0 s"),
        ("echo 'done, children left running'; exit 0", Status.OK, "done, children left running"),
    ],
)
def test_no_process_of_a_plugin_outlives_its_check(
    tmp_path: Path, tail: str, status: Status, message: str
) -> None:
    n = str(os.getpid() % 1000 + 9000)  # sleep 90001 … : durations unique to this test run
    script = plugin(tmp_path, FORKING.format(n=n, tail=tail))
    started = time.monotonic()
    result = run_check(
        CommandChecker(CommandSettings(command=[script])), CheckContext("c", datetime.now(UTC), 1)
    )
    took = time.monotonic() - started
    assert result.status == status and result.message.endswith(message)
    assert took < 1.5
    assert wait_until(lambda: not live_strays(f"sleep {n}"), 5), live_strays(f"sleep {n}")


def test_latin1_output_is_failed_with_its_message_and_perfdata(tmp_path: Path) -> None:
    script = plugin(tmp_path, "printf 'CRITICAL - caf\\351 ferm\\351 | time=0.5s;1;2\\n'\nexit 2\n")
    result = run_check(
        CommandChecker(CommandSettings(command=[script])), CheckContext("c", datetime.now(UTC), 5)
    )
    assert result.status == Status.FAILED
    assert result.message == "CRITICAL - caf\ufffd ferm\ufffd"
    assert [(m.name, m.value) for m in result.metrics] == [("time", 0.5)]


def test_a_flood_of_output_is_bounded_and_the_exit_code_still_counts(tmp_path: Path) -> None:
    script = plugin(
        tmp_path,
        "echo 'WARNING - noisy | lines=1'\nhead -c 50000000 /dev/zero | tr '\\0' 'x'\n"
        "head -c 5000000 /dev/zero >&2\nexit 1\n",
    )
    result = run_check(
        CommandChecker(CommandSettings(command=[script])), CheckContext("c", datetime.now(UTC), 20)
    )
    assert (result.status, result.message) == (Status.DEGRADED, "WARNING - noisy")
    assert result.details["output_bytes_dropped"] == 55_000_026 - MAX_STDOUT - MAX_STDERR
