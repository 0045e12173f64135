"""An incident is the same whatever page size, range or service filter lists it.

Real chDB, the real recorder feeding the real alert engine (tests.alerting_harness:
api depends on db, web on api), the real coverage rows a daemon writes. Each list
read — any ``limit``, any ``service_id`` or ``services`` filter — must give exactly
the incidents of the full read, cut or filtered whole: the same id, start, members
and note, never a fragment grouped from the rows the limit or filter happened to let
through.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from server.analytics.incident_read import Read
from server.analytics.incidents import Incident, Incidents, incident_id
from server.analytics.rule_coverage import record
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage import StorageError
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.alerting_harness import SERVICES, Harness
from tests.support.clock import FakeClock
from tests.support.incident_site import play
from tests.web_fixture import NOW, RULES

STEP = timedelta(minutes=5)
DB_ONLY = """
alert_rules:
  - {id: db-down, service: db, condition: "status >= FAILED", channels: [hook]}
"""
WEB_TOO = DB_ONLY + '  - {id: web-down, service: web, condition: "status >= FAILED"}\n'


class Daemon:
    """Checks feed the recorder and the engine; rows reach chDB; a reload records the
    rules' coverage as the daemon does."""

    def __init__(self, root: Path, rules: str) -> None:
        self.store = EmbeddedStorage(root / "db", "monitor")
        apply_schema(self.store, Target("monitor"))
        self.h = Harness(rules, FakeClock(NOW - timedelta(hours=3)))
        self.recorder = Recorder(self.h, listener=self.h.engine)
        record(self.store, self.h.config, self.h.clock.now())

    def reload(self, rules: str, services: str = SERVICES) -> None:
        self.h.clock.advance(1)
        config = parse_config(services.format(url=self.h.receiver.url + self.h.path) + rules
                              + "\nalerting: {group_wait: 0s}\n", "test.yaml")  # fmt: skip
        self.h.engine.configure(config)
        self.h.config = config
        record(self.store, config, self.h.clock.now())

    def checks(self, **plans: str) -> None:
        """One check per character per service, ``STEP`` apart: ``.`` OK, ``x`` FAILED,
        the services in the order given (a cause first, as a daemon's tick may)."""
        play(self.h, self.recorder, self.store, plans, STEP)

    def read(self, **how: Any) -> list[tuple[Any, ...]]:
        found = Incidents(self.store, self.h.config).between(
            NOW - timedelta(days=1), self.h.clock.now() + timedelta(seconds=1), **how
        )
        return shape(found)


def shape(found: list[Incident]) -> list[tuple[Any, ...]]:
    return [(i.id, i.start, i.end, [m.key for m in i.members],
             i.note["note"] if i.note else None) for i in found]  # fmt: skip


@pytest.fixture
def tmp_daemon(tmp_path: Path) -> Iterator[Any]:
    made: list[Daemon] = []

    def make(rules: str) -> Daemon:
        made.append(Daemon(tmp_path / str(len(made)), rules))
        return made[-1]

    yield make
    for d in made:
        d.store.close()


def test_a_page_of_incidents_lists_whole_incidents_whatever_its_size(tmp_daemon: Any) -> None:
    """web fails with no rule (a run of FAILED), a rule is added and fires, joining the
    run; api, rule-less, flaps afterwards: its runs are newer than web's, so a small
    page once held web's firing without the run it joined (another id, start, no note)."""
    d = tmp_daemon(DB_ONLY)
    d.checks(web=".x", api="..")
    d.checks(web="xxxxxx", api=".x.x.x")
    d.reload(WEB_TOO)
    d.checks(web="x.", api="x.")
    everything = d.read()
    web = next(i for i in everything if "web" in i[3][0])
    Incidents(d.store, d.h.config).save_note(web[0], "PAR-14", "ana", d.h.clock.now(), None)
    everything = d.read()
    web = next(i for i in everything if "web" in i[3][0])
    assert [k.split("@")[0] for k in web[3]] == ["status:web", "web-down:web"]
    assert web[4] == "PAR-14" and web == everything[-1]  # the oldest start
    for limit in range(1, len(everything) + 2):
        assert d.read(limit=limit) == everything[:limit], limit


def test_a_service_filter_picks_incidents_and_never_regroups_them(tmp_daemon: Any) -> None:
    """db fails; api (depends on db) fails, inhibited, and joins; db recovers; web
    (depends on api) fails, inhibited by api, and joins: one incident of three services,
    whichever of them a filter names."""
    d = tmp_daemon(RULES)
    d.checks(db="xx......", api=".xxxxxx.", web="...xxx..")
    everything = d.read()
    (one,) = everything
    Incidents(d.store, d.h.config).save_note(one[0], "CANON", "ana", d.h.clock.now(), None)
    everything = d.read()
    assert [k.split("@")[0] for k in everything[0][3]] == ["down:db", "down:api", "down:web"]
    for sid in ("db", "api", "web"):
        assert d.read(service_id=sid) == everything, sid
        assert d.read(services={sid}) == everything, sid
        assert d.read(service_id=sid, limit=1) == everything, sid


WEB = "  - {{id: web, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}\n"
LEFT = {
    "disabled": SERVICES.replace(WEB, WEB.replace("port: 1}}", "port: 1}}, enabled: false")),
    "removed": SERVICES.replace(WEB, "").replace("  - {{source: web, target: api}}\n", ""),
}


@pytest.mark.parametrize("how", sorted(LEFT))
def test_a_failing_service_that_leaves_monitoring_ends_its_incident_at_its_last_check(
    tmp_daemon: Any, how: str
) -> None:
    """web fails with no rule, then is disabled or removed while still failing: no
    check is left to end its run, which stayed ongoing for ever. Also when a rule's
    firing had joined the run (the alert is resolved as its rule leaves)."""
    assert LEFT[how] != SERVICES
    d = tmp_daemon(DB_ONLY)
    d.checks(web=".xx")
    d.reload(WEB_TOO)
    d.checks(web="xx")
    last = d.h.clock.now() - timedelta(seconds=1)  # the last check, a second before
    d.reload(DB_ONLY, LEFT[how])
    d.h.engine.tick(d.h.clock.now())
    d.checks(api="..")
    (gone,) = d.read()
    assert [k.split("@")[0] for k in gone[3]] == ["status:web", "web-down:web"]
    assert gone[2] is not None and gone[2] >= last
    assert Incidents(d.store, d.h.config).get(gone[0], d.h.clock.now()).end == gone[2]


def test_a_small_page_holds_the_newest_incident_though_an_older_one_has_newer_members(
    tmp_daemon: Any,
) -> None:
    """api's outage began first; db (upstream, so not inhibited) failed on its own and
    recovered; then web flapped while api still failed, each firing inhibited by api's
    and joining its incident: the newest members read belong to the older incident.
    With ``limit=1`` the first read (two members of each kind) holds only web's, which
    assemble into api's incident: only the larger read again finds db's (seen red
    with that retry removed)."""
    d = tmp_daemon(RULES)
    d.checks(db=".xx.......", api="xxxxxxxxx.", web="....x.x.x.")
    everything = d.read()
    assert [i[3][0].split("@")[0] for i in everything] == ["down:db", "down:api"]
    for limit in range(1, len(everything) + 2):
        assert d.read(limit=limit) == everything[:limit], limit
    # one member alone is assembled into its whole incident, also the members its
    # cause had before that member's start (read again once the cause is found)
    source = Incidents(d.store, d.h.config)
    newest = max((m for m in source.between(NOW - timedelta(days=1), d.h.clock.now())[1].members),
                 key=lambda m: m.start)  # fmt: skip
    whole = source._complete([newest], Read(source, NOW - timedelta(days=1), d.h.clock.now(), None))
    assert sorted(m.key for m in whole) == sorted(everything[1][3])


def test_a_limit_of_zero_lists_none_none_lists_all_and_a_negative_one_is_refused(
    tmp_daemon: Any,
) -> None:
    """0 is a page of no incidents (as 1 is a page of one), not "no limit", and is
    answered without reading (a database that is not there gives no error)."""
    d = tmp_daemon(RULES)
    d.checks(db=".xx.......", api="xxxxxxxxx.", web="....x.x.x.")
    everything = d.read()
    assert len(everything) == 2
    assert d.read(limit=None) == everything
    assert d.read(limit=0) == []
    assert d.read(limit=0, service_id="api") == []
    d.store.database, kept = "absent", d.store.database
    try:
        assert d.read(limit=0) == []
        with pytest.raises(StorageError):
            d.read(limit=1)
    finally:
        d.store.database = kept
    with pytest.raises(ValueError, match="limit"):
        d.read(limit=-1)


def test_any_members_id_opens_the_whole_incident_a_list_shows(tmp_daemon: Any) -> None:
    """A lookup by id assembles as the list does: by its own id or any member's, each
    incident comes back with every member, its start and its end, whatever member
    the id names (web's last flap, long after api's outage began, too)."""
    d = tmp_daemon(RULES)
    d.checks(db=".xx.......", api="xxxxxxxxx.", web="....x.x.x.")
    source = Incidents(d.store, d.h.config)
    now = d.h.clock.now()
    everything = source.between(NOW - timedelta(days=1), now + timedelta(seconds=1))
    assert sum(len(i.members) for i in everything) == 5
    for incident in everything:
        for member in incident.members:
            found = source.get(incident_id(member), now)
            assert found is not None and shape([found]) == shape([incident]), member.key
