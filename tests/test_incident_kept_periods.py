"""A page of incidents completed from its own statement of firing periods.

An unlimited page (the status page's, a report's) reads the periods overlapping its
window and keeps with them those that ended up to ``KEEP_BEFORE`` earlier
(:meth:`server.analytics.incidents.Incidents._periods`); completing its incidents
then asks for the periods of some services from an earlier start, and that ask is
answered from the kept rows instead of a second windowed statement. The answer
must be the one the second statement gives: checked on the benchmark's own
generated history (200 services, 30 days, dependants inhibited by their cause, runs
of FAILED of unwatched services) against the old path, for many windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from benchmarks.dashboard import config_text, generate_incidents
from server.analytics.incident_news import newest
from server.analytics.incidents import Incident, Incidents, _Read
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config

SERVICES = 200


class Counting(EmbeddedStorage):
    """chDB that counts the statements pairing firing periods it is sent."""

    def __init__(self, path: Path, database: str) -> None:
        super().__init__(path, database)
        self.periods = 0

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.periods += "alert_events" in sql and "leadInFrame" in sql
        return super().query(sql, params)


class Unkept(Incidents):
    """The old path: every read of periods is its own statement."""

    def _periods(self, *args: Any, read: Any = None, **kw: Any) -> Any:
        return super()._periods(*args, **kw)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Counting, Any]]:
    store = Counting(tmp_path_factory.mktemp("kept") / "db", "monitor")
    apply_schema(store, Target("monitor"))
    generate_incidents(store, SERVICES, 30)
    yield store, parse_config(config_text(SERVICES), "bench.yaml", {})
    store.close()


def _dicts(found: list[Incident], now: datetime) -> list[dict[str, Any]]:
    return [i.as_dict(now) | {"members": [m.key for m in i.members]} for i in found]


def test_a_status_page_completes_its_incidents_from_its_own_statement(site: Any) -> None:
    store, config = site
    now = datetime.now(UTC)
    services = sorted(s.id for s in config.services)
    kept, old = Incidents(store, config), Unkept(store, config)
    reused = 0
    for hours in (1, 3, 7, 20, 23, 49, 24 * 9, 24 * 30):
        for wanted in (services, services[::3], None):
            start, end = now - timedelta(hours=hours), now + timedelta(seconds=1)
            kw: dict[str, Any] = {"services": wanted, "details": False, "now": now}
            store.periods = 0
            before = old.between(start, end, lookback=timedelta(days=30), **kw)
            statements_before = store.periods
            store.periods = 0
            after = kept.between(start, end, lookback=timedelta(days=30), **kw)
            assert _dicts(after, now) == _dicts(before, now), (hours, wanted is None)
            assert store.periods <= statements_before
            reused += store.periods < statements_before
    # the status page's own list (its first stretch, then wider), and a report's window
    assert reused >= 8
    for limit in (5, 50, 200):
        args = (now - timedelta(days=30), now + timedelta(seconds=1))
        got = newest(kept, *args, services=services, limit=limit, now=now)
        want = newest(old, *args, services=services, limit=limit, now=now)
        assert _dicts(got, now) == _dicts(want, now)


def test_an_ask_answered_from_the_kept_page_is_the_statements_answer(site: Any) -> None:
    """The kept page against the statement it stands for, asked from the page's own
    floor on: every service, a third of them, the causes of dependants."""
    store, config = site
    now = datetime.now(UTC)
    services = sorted(s.id for s in config.services)
    kept = Incidents(store, config)
    since, end = now - timedelta(days=60), now + timedelta(seconds=1)
    answered = 0
    for hours in (1, 5, 23, 24 * 3, 24 * 29):
        start = now - timedelta(hours=hours)
        read = _Read(kept, since, end, None)
        seeds = kept._periods(start, end, since=since, services=services, read=read)
        assert [m.key for m in seeds] == [
            m.key for m in kept._periods(start, end, since=since, services=services)
        ]
        assert read.periods is not None
        floor = read.periods[3]
        for first in (floor, floor + timedelta(minutes=7), start):
            for alerts, causes in ((services[::3], services[::7]), ([], services[::10]),
                                   (services[1::2], [])):  # fmt: skip
                among = sorted(set(alerts) | {f"svc-{int(c[4:]) + 1}" for c in causes})
                ask = {"since": since, "services": alerts, "caused": causes, "among": among}
                store.periods = 0
                got = kept._periods(first, end, read=read, **ask)
                answered += store.periods == 0
                want = kept._periods(first, end, **ask)
                assert [(m.key, m.end) for m in got] == [(m.key, m.end) for m in want]
    assert answered == 5 * 3 * 3
