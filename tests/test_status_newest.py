"""/status's list of the newest changed incidents, derived from the last few only.

:func:`server.analytics.incident_news.newest` derives the incidents overlapping a
stretch ending now and widens it only when it holds too few: its answer must be
the one derived from the whole window, notes included (a note saved on an old
incident is news). Its own chDB store, written by the real recorder and alert
engine: ``web`` fails for 10 minutes every hour for a day, ``db`` once, long ago.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from checkers.base import CheckResult, Status
from server.analytics.incident_news import newest, newest_changed
from server.analytics.incidents import Incident, Incidents
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.web_fixture import NOW, RULES, Svc

DAY = timedelta(days=1)


class Spied(Incidents):
    """Incidents whose :meth:`between` notes each start it was asked from."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.starts: list[datetime] = []

    def between(self, start: datetime, end: datetime, **kw: Any) -> list[Incident]:  # type: ignore[override]
        self.starts.append(start)
        return super().between(start, end, **kw)


class Held:
    """A writer's stand-in that keeps the rows (as before its next insert)."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.rows += rows


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStorage, Harness]]:
    store = EmbeddedStorage(tmp_path_factory.mktemp("newest") / "db", "monitor")
    apply_schema(store, Target("monitor"))
    h = Harness(RULES, FakeClock(NOW - 2 * DAY))
    recorder = Recorder(h, listener=h.engine)
    step = 300
    for i in range(2 * 24 * 3600 // step):
        at = h.clock.advance(step if i else 0)
        web_down = at >= NOW - DAY and at.minute < 10  # 24 incidents, one an hour
        db_down = NOW - 2 * DAY + timedelta(hours=1) <= at < NOW - 2 * DAY + timedelta(hours=2)
        for sid, down in (("web", web_down), ("db", db_down)):
            recorder.record(Svc(sid), CheckResult(Status.FAILED if down else Status.OK, "x"), at)
        h.deliver()
    h.log.sync()
    h.insert_into(store)
    yield store, h
    store.close()


def whole(incidents: Incidents, services: Collection[str], limit: int) -> list[Incident]:
    """What the page showed before: every incident of the 30 days, ranked, the first kept."""
    now = NOW
    found = incidents.between(now - 30 * DAY, now + timedelta(seconds=1), services=services,
                              details=False, now=now)  # fmt: skip
    return newest_changed(found, limit)


def same(a: list[Incident], b: list[Incident]) -> bool:
    return [(i.id, i.members, i.note) for i in a] == [(i.id, i.members, i.note) for i in b]


def ask(incidents: Incidents, services: Collection[str], limit: int) -> list[Incident]:
    return newest(incidents, NOW - 30 * DAY, NOW + timedelta(seconds=1), services=services,
                  limit=limit, now=NOW)  # fmt: skip


def test_newest_derives_only_the_last_hours_when_they_hold_enough(
    store: tuple[EmbeddedStorage, Harness],
) -> None:
    storage, h = store
    incidents = Spied(storage, h.config)
    got = ask(incidents, {"web", "db"}, 3)
    assert [i.services for i in got] == [["web"]] * 3
    assert same(got, whole(Incidents(storage, h.config), {"web", "db"}, 3))
    assert len(incidents.starts) == 1  # one derivation, from a few hours back only
    assert NOW - timedelta(hours=12) < incidents.starts[0] < NOW - timedelta(hours=2)


@pytest.mark.parametrize("limit", [1, 2, 5, 23, 24, 25, 26, 50])
@pytest.mark.parametrize("services", [("web", "db"), ("web",), ("db",)])
def test_newest_answers_what_the_whole_window_does(
    store: tuple[EmbeddedStorage, Harness], limit: int, services: tuple[str, ...]
) -> None:
    """However many fit, and for a service whose only incident is old (widened to it)."""
    storage, h = store
    incidents = Incidents(storage, h.config)
    got = ask(incidents, services, limit)
    assert same(got, whole(incidents, services, limit))
    assert len(got) == min(limit, {"web": 24, "db": 1}.get(services[0], 0) + (len(services) - 1))


def test_a_note_saved_on_an_old_incident_puts_it_first_at_once(
    store: tuple[EmbeddedStorage, Harness],
) -> None:
    """A note is news: the old incident noted (stored, or saved by this process and not
    yet stored) ranks above the newest changed, though it ended a day before them. Last
    in this file: it stores notes in the module's store."""
    storage, h = store
    incidents = Incidents(storage, h.config)
    (old,) = [i for i in whole(incidents, {"web", "db"}, 50) if i.services == ["db"]]
    assert ask(incidents, {"web", "db"}, 1)[0].services == ["web"]
    # saved through a writer that has not inserted it yet: read from this process's
    incidents.save_note(old.id, "root cause: disk", "ops", NOW - timedelta(minutes=1), Held())
    first = ask(incidents, {"web", "db"}, 1)
    assert [(i.id, i.note["note"] if i.note else None) for i in first] == [
        (old.id, "root cause: disk")
    ]
    assert same(first, whole(incidents, {"web", "db"}, 1))
    # stored, read by another reader (no saves of its own)
    incidents.save_note(old.id, "fixed", "ops", NOW - timedelta(seconds=30), None)
    other = Incidents(storage, h.config)
    first = ask(other, {"web", "db"}, 2)
    assert first[0].id == old.id and first[0].note is not None
    assert first[0].note["note"] == "fixed"
    assert same(first, whole(other, {"web", "db"}, 2))
