"""/status and its feed keep their incidents while nothing they read changed, and only then.

Real chDB, the real recorder and alert engine (tests.test_status_recovered's site:
db, hidden, fails first; api and web, on the page, fail after it and recover). The
read cache's own counters say how often the incidents were worked out; the pages
say what they show, which must be what a dashboard that kept nothing shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incidents
from server.config.models import StatusPageConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage import changes
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from server.web.read_cache import ReadCache
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.support.incident_site import Site, entries, sections
from tests.test_status_recovered import AFTER, PLAN
from tests.web_fixture import NOW, RULES, Svc


class Kept:
    """The shared incident site seen through one dashboard kept across requests (so its
    read cache lives on): ``c`` the app, ``client`` its test client."""

    def __init__(self, site: Site) -> None:
        self.site, self.store, self.h, self.at = site, site.store, site.h, site.at
        self.c = create_app(WebContext(site.config(), site.store, site.h.clock, site.h.engine))
        self.client = self.c.test_client()

    def checks(self, first: int, last: int) -> None:
        """Checks ``first`` to ``last`` of :data:`PLAN`, then the rows into storage."""
        self.site.play({sid: line[first:last] for sid, line in PLAN.items()})


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Kept]:
    s = Site(tmp_path)
    s.play({sid: line[:AFTER] for sid, line in PLAN.items()})
    yield Kept(s)
    s.close()


TABLES = ["alert_events", "incident_notes", "service_status"]


def counts(kept: Any) -> tuple[int, int]:
    """(worked out, handed out again) of the incident lists (the page's and the feed's),
    derived without notes (their notes are read apart: :func:`noted`)."""
    return tuple(
        sum(
            n
            for name, n in c.items()
            if name.startswith("recent incidents") and not name.endswith(", notes")
        )
        for c in (kept.computed, kept.reused)
    )  # type: ignore[return-value]


def noted(kept: Any) -> tuple[int, int]:
    """(worked out, handed out again) of the notes of the incident lists."""
    return tuple(
        sum(
            n
            for name, n in c.items()
            if name.startswith("recent incidents") and name.endswith(", notes")
        )
        for c in (kept.computed, kept.reused)
    )  # type: ignore[return-value]


def cache(s: Kept) -> tuple[int, int]:
    return counts(s.c.extensions["lightbulb"].read_cache)


def shown(page: str) -> str:
    """The page's incidents, groups (statuses, bars, uptimes) and headline."""
    found = re.findall(r'<section class="group".*?</section>|<p class="overall.*?</p>', page, re.S)
    return sections(page) + "".join(found)


def fresh(s: Kept) -> str:
    """The page as a dashboard that kept nothing shows it."""
    ctx = s.c.extensions["lightbulb"]
    other = create_app(WebContext(ctx.config, s.store, s.h.clock, s.h.engine))
    return shown(other.test_client().get("/status").get_data(as_text=True))


def test_the_incidents_are_read_once_while_nothing_changes_then_again_after_new_checks(
    site: Kept,
) -> None:
    s, c = site, site.client
    pages = [shown(c.get("/status").get_data(as_text=True)) for _ in range(3)]
    history = s.c.extensions["lightbulb"].read_cache
    assert cache(s) == (1, 2)
    assert (history.computed["status history"], history.reused["status history"]) == (1, 2)
    assert pages[0] == pages[1] == pages[2] == fresh(s)
    assert "recovered: api" in pages[0] and "Current incidents" in pages[0]
    assert "1 of 2 services has a problem" in pages[0]

    s.checks(AFTER, len(PLAN["db"]))  # new transitions: web recovers (db, hidden, fails on)
    page = shown(c.get("/status").get_data(as_text=True))
    assert cache(s) == (2, 2)
    assert (history.computed["status history"], history.reused["status history"]) == (2, 2)
    assert "Current incidents" not in page and page == fresh(s) and page != pages[0]
    assert "All 2 checked services are up" in page
    assert entries(c)[0]["title"] == "Resolved: api, web"  # the page's answer: one for both
    assert entries(c)[0]["title"] == "Resolved: api, web"
    assert cache(s) == (2, 4)


def test_a_note_another_dashboard_stored_is_shown_at_the_next_request(site: Kept) -> None:
    """Written straight into ``incident_notes`` (another dashboard over the same cluster):
    nothing in this process knows of it but the table's parts."""
    s, c = site, site.client
    assert "Looking into it." not in sections(c.get("/status").get_data(as_text=True))
    (incident,) = Incidents(s.store, s.h.config).between(NOW - timedelta(days=1), s.at[-1])
    s.store.insert("incident_notes", ("incident_id", "note", "author", "updated_at"),
                   [(incident.id, "Looking into it.", "ops", s.h.clock.now())])  # fmt: skip
    assert "Looking into it." in sections(c.get("/status").get_data(as_text=True))
    # the list is kept (derived without notes); only its notes are read again
    assert cache(s) == (1, 1) and noted(s.c.extensions["lightbulb"].read_cache) == (2, 0)


def test_a_reload_is_shown_at_the_next_request(site: Kept) -> None:
    s, c = site, site.client
    ctx = s.c.extensions["lightbulb"]
    assert "recovered: api" in sections(c.get("/status").get_data(as_text=True))
    only_web = StatusPageConfig.model_validate({"groups": [{"name": "Front", "services": ["web"]}]})
    ctx.reconfigure(ctx.config.model_copy(update={"status_page": only_web}))
    page = shown(c.get("/status").get_data(as_text=True))
    assert cache(s) == (2, 0)
    assert "api" not in page and "web" in page and page == fresh(s)


def test_a_reloaded_configuration_is_never_answered_from_the_replaced_ones_answer(
    site: Kept,
) -> None:
    """A reload (SIGHUP, ``WebContext.reconfigure``) replaces the configuration object.
    An answer that depends on it (here, as the incidents' does: which services are
    still monitored) asked with an equal key over unchanged tables is worked out again
    under the new object, and handed out again while that object stays."""
    s = site
    kept = ReadCache()

    def ask(config: Any) -> list[str]:
        def monitored(storage: Any) -> list[str]:
            live = {svc.id for svc in config.services if svc.enabled}
            rows = storage.query(f"SELECT DISTINCT service_id FROM {storage.database}"
                                 ".service_status")  # fmt: skip
            return sorted(r["service_id"] for r in rows if r["service_id"] in live)

        found: list[str] = kept.get("monitored", s.store, monitored,
                                    tokens=kept.tokens(s.store), config=config, key=(),
                                    now=NOW, edges=())  # fmt: skip
        return found

    config = s.site.config()
    assert ask(config) == ask(config) == ["api", "db", "web"]
    services = [svc.model_copy(update={"enabled": False}) if svc.id == "db" else svc
                for svc in config.services]  # fmt: skip
    reloaded = config.model_copy(update={"services": services})
    assert ask(reloaded) == ask(reloaded) == ["api", "web"]  # not the replaced one's
    assert ask(config.model_copy()) == ["api", "db", "web"]  # an unchanged file, reloaded
    assert (kept.computed["monitored"], kept.reused["monitored"]) == (3, 2)


def test_the_kept_list_follows_the_clock_past_rows_ahead_and_the_window_edge(
    tmp_path: Path,
) -> None:
    """The engine's rows are written ahead of the dashboard's own (pinned) clock: they
    are shown once its clock passes them, and gone once 30 days have passed since the
    incident ended; no row is written in between."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    h = Harness(RULES, FakeClock(NOW))
    recorder = Recorder(h, listener=h.engine)
    for i, down in enumerate([False, True, True, False]):  # web down from NOW + 5 min
        at = h.clock.advance(300 if i else 0)
        recorder.record(Svc("web"), CheckResult(Status.FAILED if down else Status.OK, "x"), at)
        h.deliver()
    h.log.sync()
    h.insert_into(store)
    clock = FakeClock(NOW)
    app = create_app(WebContext(h.config, store, clock, h.engine))
    c, kept = app.test_client(), app.extensions["lightbulb"].read_cache
    try:

        def shown() -> str:
            return sections(c.get("/status").get_data(as_text=True))

        assert "web" not in shown() and "web" not in shown()
        assert counts(kept) == (1, 1)
        clock.advance(4 * 60)  # still before the firing at NOW + 5 min
        assert "web" not in shown() and counts(kept) == (1, 2)
        clock.advance(2 * 60)  # past it: shown, ongoing
        assert "Current incidents" in shown() and counts(kept)[0] == 2
        clock.advance(3600)  # resolved at NOW + 15 min
        page = shown()
        assert "web" in page and "Current incidents" not in page and counts(kept)[0] == 3
        assert "web" in shown() and counts(kept)[0] == 3
        clock.advance(30 * 86400 - 52 * 60)  # a minute before 30 days after its end: an
        assert "web" in shown() and counts(kept)[0] == 4  # edge passed the firing's rows
        clock.advance(120)  # its end is more than 30 days ago
        assert "web" not in shown() and counts(kept)[0] == 5
    finally:
        store.close()


def test_the_parts_of_every_replica_are_read_in_one_statement_a_server_parses(
    tmp_path: Path,
) -> None:
    """On a cluster the hashes come from every replica's parts (a read may go to any):
    the statement parses (EXPLAIN AST, the embedded engine's parser); and on the
    embedded store a new part (an insert) changes its table's hash alone."""

    class Cluster:  # what part_tokens asks of a cluster storage: its names, one query
        database, cluster = "monitor", "prod-1"
        sql = ""

        def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
            self.sql = sql
            return []

    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        remote = Cluster()
        assert changes.part_tokens(remote, ["alert_events"]) == {}  # type: ignore[arg-type]
        assert "clusterAllReplicas('prod-1', system.parts)" in remote.sql
        params = {"db": "monitor", "tables": ["alert_events"]}
        assert store.query("EXPLAIN AST " + remote.sql, params)
        store.insert("incident_notes", ("incident_id", "note", "author", "updated_at"),
                     [("x", "n", "a", NOW)])  # fmt: skip
        before = changes.part_tokens(store, TABLES)
        store.insert("incident_notes", ("incident_id", "note", "author", "updated_at"),
                     [("y", "n", "a", NOW)])  # fmt: skip
        after = changes.part_tokens(store, TABLES)
        assert {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)} == {
            "incident_notes"
        }
    finally:
        store.close()


def test_an_answer_that_read_a_table_not_classed_is_worked_out_every_time(
    tmp_path: Path,
) -> None:
    """Whether a table's rows are compared with a window's edge must be known before an
    answer read from it is kept: service_logs is not classed, incident_notes is."""

    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        kept = ReadCache()

        def ask(table: str) -> list[Any]:
            sql = f"SELECT count() AS n FROM monitor.{table}"
            return kept.get(table, store, lambda s: s.query(sql), tokens=kept.tokens(store),
                            config=None, key=(), now=NOW, edges=(NOW,))  # fmt: skip

        for _ in range(3):
            assert ask("service_logs") == [{"n": 0}] and ask("incident_notes") == [{"n": 0}]
        assert dict(kept.computed) == {"service_logs": 3, "incident_notes": 1}
        assert dict(kept.reused) == {"incident_notes": 2}
    finally:
        store.close()
