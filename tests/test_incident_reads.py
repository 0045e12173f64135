"""What a read of incidents reads: the same rows once, and only what it shows and completes.

The incidents of a page are completed (:meth:`server.analytics.incidents.Incidents.
_complete`) from the oldest start of what the page's first statements found; the
rule-less runs of FAILED that completing reads are the ones the page's statement of
runs already held (:func:`server.alerting.log_reads.covering_page`), so they are
not read a second time. An incident's own page is seeded by its id's instant only
(:meth:`server.analytics.incidents.Incidents.get`). Counted on real chDB through the
statements it is sent and the rows it answers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incidents
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.validation import parse_config
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.support.incident_site import Site
from tests.web_fixture import NOW, RULES, Svc

# one check every 10 minutes; x FAILED: runs one after another, never two at once
PLANS = {"a": ".xx......x.......", "b": "...xx......x.....", "c": "......xx.....xx.."}


class CountingStorage(EmbeddedStorage):
    """chDB that keeps the text of every statement it is asked to answer."""

    def __init__(self, path: Path, database: str) -> None:
        super().__init__(path, database)
        self.sent: list[str] = []

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.sent.append(sql)
        return super().query(sql, params)

    def runs_read(self) -> int:
        """Statements that paired runs of FAILED (``service_transitions`` windowed)."""
        return sum("service_transitions" in s and "leadInFrame" in s for s in self.sent)


def _site(tmp_path: Path) -> tuple[CountingStorage, Incidents]:
    store = CountingStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    config = parse_config(
        "services:\n"
        + "".join(f"  - {{id: {s}, type: tcp, tcp: {{host: 127.0.0.1, port: 1}}}}\n"
                  for s in PLANS),
        "t.yaml",
    )  # fmt: skip
    h = Harness(RULES, FakeClock(NOW - timedelta(hours=4)))
    recorder = Recorder(h)
    for i in range(len(PLANS["a"])):
        at = NOW - timedelta(hours=4) + timedelta(minutes=10 * i)
        for sid, plan in PLANS.items():
            status = Status.FAILED if plan[i] == "x" else Status.OK
            recorder.record(Svc(sid), CheckResult(status, f"{sid} {i}"), at)
    for table, columns in WRITTEN_TABLES.items():
        rows = [row for t, row in h.rows if t == table]
        if rows:
            store.insert(table, columns, rows)
    return store, Incidents(store, config)


def test_a_list_of_incidents_pairs_the_runs_of_failed_checks_once(tmp_path: Path) -> None:
    store, source = _site(tmp_path)
    start = NOW - timedelta(days=1)
    store.sent.clear()
    whole = source.between(start, NOW)
    assert len(whole) == 6 and store.runs_read() == 1
    for limit in range(1, 8):
        store.sent.clear()
        page = source.between(start, NOW, limit=limit)
        assert [i.as_dict(NOW) for i in page] == [i.as_dict(NOW) for i in whole[:limit]]
        assert store.runs_read() == 1, limit
    store.close()


def test_a_list_of_one_service_reads_its_runs_as_before(tmp_path: Path) -> None:
    """A filtered page holds only its own service's runs: completing reads again."""
    store, source = _site(tmp_path)
    start = NOW - timedelta(days=1)
    store.sent.clear()
    found = source.between(start, NOW, service_id="b", limit=1)
    assert [i.services for i in found] == [["b"]]
    assert found[0].start == NOW - timedelta(hours=4) + timedelta(minutes=110)
    assert store.runs_read() == 2
    store.close()


def test_an_incidents_own_page_reads_nothing_of_later_incidents_of_other_services(
    tmp_path: Path,
) -> None:
    """An incident's page reads from its id's start to now, but only what meets its own
    instant and what completes it: db's three outages after web's are not read."""
    s = Site(tmp_path)
    s.play({"web": ".xx.......", "db": "......xx....xx....xx...."})
    web, *dbs = s.incidents()  # get(id) is the listed one, for each of them
    assert web.services == ["web"] and [i.services for i in dbs] == [["db"]] * 3
    returned: list[dict[str, Any]] = []
    query = s.store.query

    def counting(sql: str, params: Any = None) -> list[dict[str, Any]]:
        rows = query(sql, params)
        returned.extend(rows)
        return rows

    s.store.query = counting  # type: ignore[method-assign]
    got = Incidents(s.store, s.config()).get(web.id, s.h.clock.now())
    assert got is not None and got.as_dict(NOW) == web.as_dict(NOW)
    assert returned and not [r for r in returned if r.get("service_id") == "db"]
    s.close()
