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
from server.analytics.incident_read import Read
from server.analytics.incident_runs import Runs
from server.analytics.incidents import Incident, Incidents
from server.analytics.rule_coverage import Coverage
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config

SERVICES = 200


class Counting(EmbeddedStorage):
    """chDB that counts the statements pairing firing periods (``periods``) and runs of
    FAILED (``sent``) it is sent."""

    def __init__(self, path: Path, database: str) -> None:
        super().__init__(path, database)
        self.periods = self.sent = 0

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.periods += "alert_events" in sql and "leadInFrame" in sql
        self.sent += "service_transitions" in sql and "leadInFrame" in sql
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
    """The kept page (of half the services) against the statement it stands for, asked
    from before the page's start (read again), from it and later (answered from it
    when the services are among the page's): some services, causes, both."""
    store, config = site
    now = datetime.now(UTC)
    services = sorted(s.id for s in config.services)
    paged = set(services[::2])
    kept = Incidents(store, config)
    since, end = now - timedelta(days=60), now + timedelta(seconds=1)
    answered = []
    for hours in (1, 5, 23, 24 * 3, 24 * 29):
        start = now - timedelta(hours=hours)
        read = Read(kept, since, end, None)
        seeds = kept._periods(start, end, since=since, services=sorted(paged), read=read)
        assert [(m.key, m.end) for m in seeds] == [
            (m.key, m.end) for m in kept._periods(start, end, since=since, services=sorted(paged))
        ]
        assert read.periods is not None
        floor = read.periods[3]
        for first in (floor - timedelta(hours=20), floor, floor + timedelta(minutes=7), start):
            for alerts, causes in ((services[::3], services[::7]), ([], services[::10]),
                                   (services[::4], []),
                                   (services[::6], services[::20])):  # fmt: skip
                among = sorted(set(alerts) | {f"svc-{int(c[4:]) + 1}" for c in causes})
                ask = {"since": since, "services": alerts, "caused": causes, "among": among}
                store.periods = 0
                got = kept._periods(first, end, read=read, **ask)
                answered.append(store.periods == 0)
                assert answered[-1] == (first >= floor and paged.issuperset(among))
                want = kept._periods(first, end, **ask)
                assert [(m.key, m.end) for m in got] == [(m.key, m.end) for m in want]
    assert 5 * 3 <= answered.count(True) < len(answered)  # both kinds of ask were made


def test_runs_asked_again_from_the_kept_page_are_the_statements_runs(site: Any) -> None:
    """The rule-less runs of FAILED kept from ``reach`` (:meth:`Runs.failed`) against a
    fresh read of the same ask: of the page's services or some of them, from the
    page's own start on (answered from it), and from before it or of other services
    (read again)."""
    store, config = site
    now = datetime.now(UTC)
    coverage = Coverage.read(store, config)
    unwatched = sorted(coverage.among(None).candidates)
    assert len(unwatched) == SERVICES // 10
    paged = unwatched[::2]
    since, end = now - timedelta(days=60), now + timedelta(seconds=1)
    answered = []
    for hours in (1, 5, 23, 24 * 3, 24 * 29):
        start = now - timedelta(hours=hours)
        kept, reach = Runs(store), start - timedelta(hours=2)
        seeds = kept.failed(coverage.among(set(paged)), start, end, since=since, reach=reach)
        assert seeds == Runs(store).failed(coverage.among(set(paged)), start, end,
                                           since=since)  # fmt: skip
        for first in (reach - timedelta(hours=20), reach, reach + timedelta(minutes=7), start):
            for some in (paged, paged[::3], unwatched[1:2], unwatched):
                scope = coverage.among(set(some))
                store.sent = 0
                got = kept.failed(scope, first, end, since=since)
                answered.append(store.sent == 0)
                assert got == Runs(store).failed(scope, first, end, since=since)
    # from the page's start on, of its services: 3 starts x 2 asks, at each of 5 pages
    assert answered == 5 * ([False] * 4 + [True, True, False, False] * 3)
