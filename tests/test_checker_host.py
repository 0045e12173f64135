"""The host checker reads this machine."""

from __future__ import annotations

from datetime import UTC, datetime

from checkers.base import CheckContext, Status
from checkers.host import HostChecker, HostSettings
from server.runner import run_check

CTX = CheckContext("host", datetime.now(UTC), 5)


def test_reports_host_metrics() -> None:
    result = run_check(HostChecker(HostSettings()), CTX)
    assert result.status == Status.OK
    names = {m.name for m in result.metrics}
    assert names >= {
        "cpu_percent",
        "memory_percent",
        "swap_percent",
        "load1",
        "net_bytes_sent",
        "uptime_seconds",
    }
    mounts = {m.tags["mount"] for m in result.metrics if m.name == "disk_used_percent"}
    assert mounts, "at least one mounted file system is reported"


def test_threshold_breach_degrades() -> None:
    settings = HostSettings(thresholds={"memory_percent": 0.001}, mounts=["/"])
    result = run_check(HostChecker(settings), CTX)
    assert result.status == Status.DEGRADED and result.message.startswith("memory_percent ")
