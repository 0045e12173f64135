"""Maintenance windows around DST: skipped times open at the next minute that exists,
repeated times open once, and every window lasts its duration of elapsed time.

The clock is pinned: each test walks a FakeClock minute by minute over the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.alerting.silences import Cron, Silence
from tests.conftest import run_cli
from tests.support.clock import FakeClock

HOUR = timedelta(hours=1)


def silence(cron: str, zone: str, duration: timedelta = HOUR) -> Silence:
    return Silence("maint", service="db", cron=Cron(cron, zone), duration=duration)


def active_stretches(s: Silence, day: str) -> list[tuple[str, str]]:
    """Walk a pinned clock over the local day (and a margin) a minute at a time;
    return each stretch the silence was active, as UTC ISO pairs."""
    clock = FakeClock(datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=14))
    end = clock.now() + timedelta(hours=40)
    stretches: list[tuple[str, str]] = []
    opened: datetime | None = None
    while clock.now() < end:
        now = clock.now()
        if s.active(now) and opened is None:
            opened = now
        elif not s.active(now) and opened is not None:
            stretches.append((opened.isoformat(), now.isoformat()))
            opened = None
        clock.advance(60)
    return stretches


# (zone, cron, local date of the change, the windows that day as UTC, minutes each)
CASES = [
    # spring forward: 02:30 does not exist; the window opens at 03:00 local, lasts 1 h
    ("Europe/Berlin", "30 2 * * *", "2026-03-29", [("2026-03-29T01:00:00+00:00", 60)]),
    ("America/New_York", "30 2 * * *", "2026-03-08", [("2026-03-08T07:00:00+00:00", 60)]),
    ("Australia/Sydney", "30 2 * * *", "2026-10-04", [("2026-10-03T16:00:00+00:00", 60)]),
    # a 30-minute shift: 02:15 does not exist, 02:30 is the next minute that does
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-04", [("2026-10-03T15:30:00+00:00", 60)]),
    # fall back: 02:30 happens twice; the window opens once, at the first, for 1 h
    ("Europe/Berlin", "30 2 * * *", "2026-10-25", [("2026-10-25T00:30:00+00:00", 60)]),
    ("America/New_York", "30 1 * * *", "2026-11-01", [("2026-11-01T05:30:00+00:00", 60)]),
    ("Australia/Sydney", "30 2 * * *", "2026-04-05", [("2026-04-04T15:30:00+00:00", 60)]),
]


@pytest.mark.parametrize(("zone", "cron", "day", "expected"), CASES)
def test_a_daily_window_on_a_dst_day_opens_once_and_lasts_its_duration(
    zone: str, cron: str, day: str, expected: list[tuple[str, int]]
) -> None:
    s = silence(cron, zone)
    local_day = datetime.fromisoformat(day).replace(tzinfo=s.zone)
    windows = s.windows(local_day.astimezone(UTC), (local_day + timedelta(days=1)).astimezone(UTC))
    assert [(o.isoformat(), (c - o) // timedelta(minutes=1)) for o, c in windows] == expected
    stretches = [s_ for s_ in active_stretches(s, day) if s_[0][:10] == expected[0][0][:10]]
    opened, minutes = expected[0]
    closed = (datetime.fromisoformat(opened) + timedelta(minutes=minutes)).isoformat()
    assert stretches == [(opened, closed)]


def test_every_skipped_time_of_a_cron_collapses_onto_the_one_minute_after_the_gap() -> None:
    s = silence("*/20 2 * * *", "Europe/Berlin", timedelta(minutes=10))
    day = datetime(2026, 3, 29, tzinfo=UTC)
    opened = [o.isoformat() for o, _ in s.windows(day - timedelta(hours=2), day + HOUR * 22)]
    assert opened == ["2026-03-29T01:00:00+00:00"]  # 02:00, 02:20, 02:40 -> 03:00 once


def test_ordinary_days_keep_their_local_time_across_the_change() -> None:
    s = silence("30 2 * * *", "Europe/Berlin")
    start = datetime(2026, 3, 27, tzinfo=UTC)
    local = [
        o.astimezone(s.zone).strftime("%d %H:%M %Z") for o, _ in s.windows(start, start + HOUR * 96)
    ]
    assert local == ["27 02:30 CET", "28 02:30 CET", "29 03:00 CEST", "30 02:30 CEST"]


def test_maintenance_command_prints_each_window_in_utc_and_in_its_zone(tmp_path: Path) -> None:
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        """services:
  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
silences:
  - {service: db, cron: "30 2 * * *", duration: 1h, timezone: America/New_York}
  - {service: "stack:payments", rule: down,
     start: "2026-03-09T10:00:00Z", end: "2026-03-09T12:00:00Z"}
"""
    )
    done = run_cli(
        "-m", "server.cli", "maintenance", "--config", str(config), "--from", "2026-03-07",
        "--days", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [line.split("  ") for line in done.stdout.splitlines()] == [
        ["db", "2026-03-07T07:30:00Z", "2026-03-07T08:30:00Z",
         "2026-03-07T02:30:00-05:00", "2026-03-07T03:30:00-05:00"],
        # 02:30 does not exist on 8 March in New York: the window opens at 03:00 EDT
        ["db", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z",
         "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
        ["db", "2026-03-09T06:30:00Z", "2026-03-09T07:30:00Z",
         "2026-03-09T02:30:00-04:00", "2026-03-09T03:30:00-04:00"],
        ["stack:payments", "2026-03-09T10:00:00Z", "2026-03-09T12:00:00Z",
         "2026-03-09T10:00:00+00:00", "2026-03-09T12:00:00+00:00", "rule=down"],
    ]  # fmt: skip
    bad = run_cli("-m", "server.cli", "maintenance", "--config", str(config), "--from", "9/3/26")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
