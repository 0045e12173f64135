"""The status page's incidents are kept past a note: only their notes are read again.

:func:`server.web.incidents_view.recent` keeps the incidents derived without notes
(:func:`server.analytics.incident_news.candidates`) and reads their notes apart, so
a note saved costs a query, not a derivation (~150 ms at 1,000 services). A note on
an incident that ended before the kept stretch's cut is news all the same: then the
stretch is widened to it, once. Every answer must be what the uncached composition
(:func:`server.analytics.incident_news.newest`) gives. The store of
tests.test_status_newest (its own instance here): ``web`` fails for 10 minutes every
hour for a day, ``db`` once, two days ago.
"""

from __future__ import annotations

from datetime import timedelta

from server.analytics.incident_news import newest
from server.analytics.incidents import Incident, Incidents
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from server.web.incidents_view import recent
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.test_status_newest import DAY, same, store  # noqa: F401 - the fixture
from tests.web_fixture import NOW

SERVICES = {"web", "db"}
NAME = "recent incidents, current False"


def test_a_note_is_shown_at_once_and_the_derivation_kept_widened_once_for_an_old_incident(
    store: tuple[EmbeddedStorage, Harness],  # noqa: F811
) -> None:
    storage, h = store
    app = create_app(WebContext(h.config, storage, FakeClock(NOW), h.engine))
    kept = app.extensions["lightbulb"].read_cache

    def listed() -> list[Incident]:
        with app.test_request_context():
            return recent(NOW, SERVICES, tokens=kept.tokens(storage), limit=2)

    def reference() -> list[Incident]:
        return newest(Incidents(storage, h.config), NOW - 30 * DAY, NOW + timedelta(seconds=1),
                      services=SERVICES, limit=2, now=NOW)  # fmt: skip

    def note(incident: Incident, text: str, seconds_ago: int) -> None:
        at = NOW - timedelta(seconds=seconds_ago)
        storage.insert("incident_notes", ("incident_id", "note", "author", "updated_at"),
                       [(incident.id, text, "ops", at)])  # fmt: skip

    def worked() -> tuple[int, int, int, int]:
        names = (NAME, f"{NAME}, notes", f"{NAME}, widened", f"{NAME}, widened, notes")
        return tuple(kept.computed[n] for n in names)  # type: ignore[return-value]

    first = listed()
    assert [i.services for i in first] == [["web"], ["web"]] and same(first, reference())
    assert listed() == first and worked() == (1, 1, 0, 0)

    # on the second listed: news, so it ranks first; its notes only are read again
    note(first[1], "a deploy", 60)
    shown = listed()
    assert [(i.id, i.note["note"] if i.note else None) for i in shown] == [
        (first[1].id, "a deploy"), (first[0].id, None)]  # fmt: skip
    assert same(shown, reference()) and worked() == (1, 2, 0, 0)

    # on the old incident of ``db``, ended a day before the kept stretch's cut: news, so
    # it ranks first; the stretch is derived again once, widened to it
    (old,) = Incidents(storage, h.config).between(NOW - 30 * DAY, NOW, services={"db"})
    note(old, "root cause: disk", 30)
    shown = listed()
    assert [(i.id, i.note["note"] if i.note else None) for i in shown] == [
        (old.id, "root cause: disk"), (first[1].id, "a deploy")]  # fmt: skip
    assert same(shown, reference()) and worked() == (1, 3, 1, 1)
    assert same(listed(), shown) and worked() == (1, 3, 1, 1)  # all kept
