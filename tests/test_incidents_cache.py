"""/incidents and /api/v1/incidents keep their list while nothing it read changed, and only then.

The incident site of tests.test_status_cache (real chDB, recorder and alert engine) seen
through one dashboard kept across requests. The read cache's counters say how often the
list was worked out; the answers must be what a dashboard that kept nothing gives.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from server.analytics.incidents import Incidents
from server.spool import Spool
from server.tables import WRITTEN_TABLES
from server.web import WebContext, create_app
from server.writer import Writer
from tests.support.clock import FakeClock
from tests.test_status_cache import Kept, site  # noqa: F401 - the fixture
from tests.test_status_recovered import AFTER, PLAN
from tests.web_fixture import NOW

PAGE = "/incidents"
API = "/api/v1/incidents"
AUTH = {"Authorization": "Bearer t0ken"}


def counts(s: Kept, name: str) -> tuple[int, int]:
    """(worked out, handed out again) of the route's list."""
    kept = s.c.extensions["lightbulb"].read_cache
    return kept.computed[name], kept.reused[name]


def rows(page: str) -> str:
    """The page's table of incidents (the rest shows the clock and the form)."""
    return page[page.index("<table") : page.index("</table>")]


def both(c: Any) -> tuple[str, Any]:
    return rows(c.get(PAGE).get_data(as_text=True)), c.get(API).get_json()


def fresh(s: Kept) -> tuple[str, Any]:
    """Both answers as a dashboard that kept nothing gives them."""
    ctx = s.c.extensions["lightbulb"]
    other = create_app(WebContext(ctx.config, s.store, s.h.clock, s.h.engine))
    return both(other.test_client())


def test_the_list_is_worked_out_once_while_nothing_changes_then_again_after_new_checks(
    site: Kept,  # noqa: F811
) -> None:
    s, c = site, site.client
    answers = [both(c) for _ in range(3)]
    assert counts(s, "incidents page") == (1, 2) and counts(s, "incidents api") == (1, 2)
    assert answers[0] == answers[1] == answers[2] == fresh(s)
    assert [i["services"] for i in answers[0][1]["incidents"]] == [["db", "api", "web"]]

    s.checks(AFTER, len(PLAN["db"]))  # new transitions: web recovers (db fails on)
    after = both(c)
    assert counts(s, "incidents page") == (2, 2) and counts(s, "incidents api") == (2, 2)
    assert after == fresh(s) and after != answers[0]
    assert both(c) == after
    assert counts(s, "incidents page") == (2, 3) and counts(s, "incidents api") == (2, 3)


def test_a_note_another_dashboard_stored_is_shown_at_the_next_request_without_a_derivation(
    site: Kept,  # noqa: F811
) -> None:
    """Written straight into ``incident_notes``: nothing in this process knows of it but
    the table's parts. The list is kept (notes are read apart from it): only its notes
    are read again."""
    s, c = site, site.client
    before = both(c)
    (incident,) = Incidents(s.store, s.h.config).between(NOW - timedelta(days=1), s.at[-1])
    s.store.insert("incident_notes", ("incident_id", "note", "author", "updated_at"),
                   [(incident.id, "Looking into it.", "ops", s.h.clock.now())])  # fmt: skip
    page, api = both(c)
    assert "Looking into it." not in before[0] and 'class="has-note"' in page
    assert [i["note"] for i in api["incidents"]] == ["Looking into it."]
    assert counts(s, "incidents page") == (1, 1) and counts(s, "incidents page, notes") == (2, 0)
    assert (page, api) == fresh(s)


def test_a_note_saved_here_is_shown_at_once_before_the_writer_stores_it(
    site: Kept,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Saved through this dashboard's own API into its writer, whose inserter has not
    run: held by the process (``SavedNotes``), in no table's parts yet."""
    s, ctx = site, site.c.extensions["lightbulb"]
    writer = Writer(s.store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    app = create_app(WebContext(ctx.config, s.store, s.h.clock, s.h.engine, sink=writer))
    c, kept = app.test_client(), app.extensions["lightbulb"].read_cache
    (listed,) = c.get(API).get_json()["incidents"]
    assert listed["note"] is None and 'class="has-note"' not in c.get(PAGE).get_data(as_text=True)
    for note in ["Investigating.", "Failing over.", ""]:
        saved = c.put(f"{API}/{listed['id']}/note", json={"note": note}, headers=AUTH)
        assert saved.status_code == 200, saved.get_data(as_text=True)
        assert [i["note"] for i in c.get(API).get_json()["incidents"]] == [note or None]
        assert ('class="has-note"' in c.get(PAGE).get_data(as_text=True)) == bool(note)
        assert c.get(f"{API}/{listed['id']}").get_json()["note"] == (note or None)
    assert s.store.query("SELECT count() AS n FROM monitor.incident_notes")[0]["n"] == 0
    # the lists were derived once; their notes read again after each save
    assert (kept.computed["incidents api"], kept.computed["incidents page"]) == (1, 1)
    assert (kept.computed["incidents api, notes"], kept.computed["incidents page, notes"]) == (4, 4)


def test_a_reload_is_shown_at_the_next_request(site: Kept) -> None:  # noqa: F811
    s, c = site, site.client
    ctx = s.c.extensions["lightbulb"]
    both(c)
    # a reload replaces the configuration object: the list is worked out again under it
    # (the rules an answer is judged by: tests.test_status_cache shows one that differs)
    ctx.reconfigure(s.site.config(disabled="db"))
    assert both(c) == fresh(s)
    assert counts(s, "incidents page") == (2, 0) and counts(s, "incidents api") == (2, 0)
    both(c)
    assert counts(s, "incidents page") == (2, 1) and counts(s, "incidents api") == (2, 1)


def test_a_kept_ongoing_incident_lasts_until_each_request(site: Kept) -> None:  # noqa: F811
    """The list is kept while the clock moves past no row; what depends on ``now``
    beyond it (an ongoing incident's duration) is worked out at each request."""
    s, c = site, site.client
    (first,) = c.get(API).get_json()["incidents"]
    s.h.clock.advance(3600)
    (later,) = c.get(API).get_json()["incidents"]
    assert counts(s, "incidents api") == (1, 1) and first["end"] is None
    assert later["duration_seconds"] == first["duration_seconds"] + 3600
    assert both(c) == fresh(s)


class Ticking(FakeClock):
    """A clock later at each reading, by a longer tick each time, as a real one is
    between two reads (never the same gap twice)."""

    ticks = 0

    def now(self) -> datetime:
        self.ticks += 1
        self.advance(0.001 * self.ticks)
        return super().now()


def test_the_list_is_kept_while_the_clock_ticks_between_a_requests_reads(site: Kept) -> None:  # noqa: F811
    """The window's ends and the kept answer's ``now`` are one reading of the clock: two
    readings a tick apart made each request's key new (nothing was ever kept)."""
    s = site
    app = create_app(WebContext(s.site.config(), s.store, Ticking(s.h.clock.now()), s.h.engine))
    c, kept = app.test_client(), app.extensions["lightbulb"].read_cache
    answers = [c.get(API).get_json()["incidents"] for _ in range(3)]
    assert (kept.computed["incidents api"], kept.reused["incidents api"]) == (1, 2)
    assert [i["id"] for a in answers for i in a] == [answers[0][0]["id"]] * 3


def test_an_incident_is_worked_out_once_while_nothing_changes_then_again_after_new_checks(
    site: Kept,  # noqa: F811
) -> None:
    s, c = site, site.client
    (listed,) = c.get(API).get_json()["incidents"]
    url = f"{API}/{listed['id']}"
    ctx = s.c.extensions["lightbulb"]
    other = create_app(WebContext(ctx.config, s.store, s.h.clock, s.h.engine)).test_client()
    answers = [c.get(url).get_json() for _ in range(3)]
    assert counts(s, "incident") == (1, 2)
    assert answers[0] == answers[1] == answers[2] == other.get(url).get_json()
    page = c.get(f"/incidents/{listed['id']}").get_data(as_text=True)
    assert counts(s, "incident") == (1, 3) and listed["id"] in page

    s.checks(AFTER, len(PLAN["db"]))  # new transitions: web recovers (db fails on)
    after = c.get(url).get_json()
    assert counts(s, "incident") == (2, 3)
    assert after == other.get(url).get_json() and after != answers[0]
