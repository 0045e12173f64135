"""/status's incidents (and its feed's, the same list): the page's own, however many others.

Its own chDB store (one per process: not in tests/test_status_scope.py, whose module
fixture holds one), written by the real recorder and alert engine.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from checkers.base import CheckResult, Status
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from server.web.incidents_view import recent
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.web_fixture import NOW, RULES, Svc


def test_incidents_of_hidden_services_do_not_crowd_the_pages_own_off_it(tmp_path: Path) -> None:
    """web failed first, then db, hidden, failed later: with room for one incident, the page
    (web only) still shows web's, not an empty list."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    h = Harness(RULES, FakeClock(NOW - timedelta(hours=3)))
    recorder = Recorder(h, listener=h.engine)
    for i in range(3 * 12):
        at = h.clock.advance(300 if i else 0)
        web_down, db_down = 6 <= i < 12, i >= 24
        for sid, down in (("web", web_down), ("db", db_down)):
            result = CheckResult(Status.FAILED if down else Status.OK, "x")
            recorder.record(Svc(sid), result, at)
        h.deliver()
    h.log.sync()
    h.insert_into(store)
    app = create_app(WebContext(h.config, store, h.clock, h.engine))
    try:
        with app.test_request_context("/status"):
            everything = recent(h.clock.now(), {"web", "db"}, tokens=None)
            assert [i.services for i in everything] == [["db"], ["web"]]
            one = recent(h.clock.now(), {"web"}, tokens=None, limit=1)
            assert [i.services for i in one] == [["web"]]
    finally:
        store.close()
