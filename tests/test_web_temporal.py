"""The Temporal section of the service page, over what the real checkers recorded.

The checkers run against the session's dev server (a queue nobody polls, an
activity retried forever, a schedule whose workflow fails, a count), their
results go through the real Recorder into chDB, and the pages are rendered by
the Flask app over that store.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

import checkers
from checkers.base import CheckContext, Status
from server.config.models import Config
from server.core.clock import SystemClock
from server.recorder import Recorder
from server.runner import run_check
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.web import WebContext, create_app
from tests.support import temporal_workflows as wf
from tests.support.temporal_server import Harness, until

UI = "http://ui.test:8233"
HOSTILE_ID = 'stuck-"><script>alert(1)</script>/../x'


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows.append((table, row))


@dataclass
class Svc:
    id: str
    type: str
    stack: str = "temporal"


@dataclass
class Site:
    store: EmbeddedStorage
    config: dict[str, Any]
    stuck_id: str
    stuck_run: str
    schedule_id: str

    def page(self, service_id: str, ui_url: str = UI) -> str:
        config = Config.model_validate({**self.config, "temporal": {"ui_url": ui_url}})
        app = create_app(WebContext(config, self.store, SystemClock()))
        response = app.test_client().get(f"/services/{service_id}?range=1h")
        assert response.status_code == 200
        return response.get_data(as_text=True)


@pytest.fixture(scope="module")
def site(temporal_server: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = temporal_server
    tag = uuid.uuid4().hex[:6]
    idle, busy = f"web-idle-{tag}", f"web-busy-{tag}"
    blocks: dict[str, tuple[str, dict[str, Any]]] = {
        "tq": ("temporal_task_queue", {"task_queue": idle}),
        "stuck": ("temporal_stuck", {"query": f"TaskQueue = '{busy}'"}),
        "sched": ("temporal_schedule", {"schedule_id": f"web-sched-{tag}"}),
        "count": (
            "temporal_count",
            {"count_query": f"TaskQueue = '{busy}' AND ExecutionStatus = 'Running'"},
        ),
    }
    config = {
        "services": [
            {"id": sid, "type": kind, kind: {"address": server.address, **block}}
            for sid, (kind, block) in blocks.items()
        ]
        + [{"id": "web", "type": "tcp", "tcp": {"host": "127.0.0.1", "port": 1}}]
    }
    store = EmbeddedStorage(tmp_path_factory.mktemp("web-temporal") / "db", "monitor")
    apply_schema(store, Target("monitor"))
    sink = Rows()
    recorder = Recorder(sink)
    built = {sid: checkers.build_checker(kind, {"address": server.address, **block})
             for sid, (kind, block) in blocks.items()}  # fmt: skip

    def record(sid: str, predicate: Any = lambda r: True, seconds: float = 40) -> Any:
        def once() -> Any:
            return run_check(built[sid], CheckContext(sid, datetime.now(UTC), 10))

        result = until(once, predicate, seconds)
        # until() returns the last result even when the state never came: say so here,
        # not later as a page missing what this result never had.
        assert predicate(result), f"{sid}: never reached the awaited state: {result.message}"
        recorder.record(Svc(sid, blocks[sid][0]), result, datetime.now(UTC))
        return result

    def retrying_always_fails(result: Any) -> bool:
        return any(e["activity_type"] == "always_fails" for e in result.details.get("stuck", []))

    waiting = [server.start(wf.CompletesAtOnce.run, queue=idle) for _ in range(2)]
    with server.worker(busy, [*wf.WORKFLOWS, wf.RetriesForever], wf.ACTIVITIES):
        stuck_id = server.start(wf.RetriesForever.run, queue=busy, id=f"{HOSTILE_ID}-{tag}")
        handle = server.run(
            server.client.create_schedule(
                f"web-sched-{tag}",
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        wf.FailsAtOnce.run, id=f"web-sched-{tag}-wf", task_queue=busy
                    ),
                    spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
                ),
                trigger_immediately=True,
            )
        )
        try:
            record("tq", lambda r: r.details["queues"]["workflow"].get("backlog"))
            record("tq")
            # What the page shows: the execution stuck on its retried activity. On a loaded
            # machine its workflow task may fail or time out first (FAILED, no activity
            # yet): the server's state is waited on, with room for that.
            stuck = record("stuck", retrying_always_fails, seconds=120)
            record("sched", lambda r: r.status == Status.FAILED)
            record("count", lambda r: r.details.get("count") == 1)
        finally:
            server.run(handle.delete())
            server.terminate(stuck_id, *waiting)
    for table, columns in WRITTEN_TABLES.items():
        rows = [row for t, row in sink.rows if t == table]
        if rows:
            store.insert(table, columns, rows)
    run = stuck.details["stuck"][0]["run_id"]
    yield Site(store, config, stuck_id, run, f"web-sched-{tag}")
    store.close()


def test_a_task_queue_page_charts_backlog_and_age_per_type(site: Site) -> None:
    page = site.page("tq")
    section = page.split('data-section="temporal"')[1].split("</section>")[0]
    assert 'data-series="workflow_approximate_backlog_count"' in section
    assert 'data-series="workflow_approximate_backlog_age"' in section
    assert "workflow backlog" in section and "workflow backlog age" in section
    assert 'data-queue="workflow"' in section and "none" in section  # no pollers


def test_stuck_executions_link_their_workflow_ids_to_the_temporal_ui(site: Site) -> None:
    page = site.page("stuck")
    escaped = quote(site.stuck_id, safe="")
    link = f"{UI}/namespaces/default/workflows/{escaped}/{site.stuck_run}/history"
    assert f'href="{link.replace("&", "&amp;")}"' in page
    row = page.split('data-section="temporal"')[1].split("</section>")[0]
    assert "always_fails" in row and "downstream API returned 503" in row, row
    assert "<script>alert(1)</script>" not in page  # the hostile id is escaped, not run
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_schedules_show_next_and_last_action_times_and_link_the_last_run(site: Site) -> None:
    page = site.page("sched")
    row = page.split(f'data-schedule="{site.schedule_id}"')[1].split("</tr>")[0]
    assert f'href="{UI}/namespaces/default/schedules/{site.schedule_id}"' in row
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row)) == 4, "3 next, 1 last"
    assert f"{UI}/namespaces/default/workflows/{site.schedule_id}-wf" in row
    assert "failed: payment ledger out of balance" in row


def test_a_count_page_shows_its_query_and_count(site: Site) -> None:
    section = site.page("count").split('data-section="temporal"')[1]
    assert "<strong>1</strong> executions match" in section


def test_without_a_ui_url_ids_are_shown_but_not_linked(site: Site) -> None:
    page = site.page("stuck", ui_url="")
    assert "/namespaces/default/workflows/" not in page
    assert "set <code>temporal.ui_url</code>" in page


def test_other_service_types_have_no_temporal_section(site: Site) -> None:
    assert 'data-section="temporal"' not in site.page("web")


def test_ui_url_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        Config.model_validate({"temporal": {"ui_url": "javascript:alert(1)"}})
    assert Config.model_validate({"temporal": {"ui_url": "http://t:8233/"}}).temporal.ui_url == (
        "http://t:8233"
    )
