"""The Temporal section of a service page (``temporal_*`` types other than ``temporal_workflow``).

What the newest check saw (its ``details``): the stuck executions with their
workflow ids, the schedules with their next and last action times, the count
query; and, for a task queue, backlog and backlog-age charts per task queue
type. Workflow ids and schedule ids link to the Temporal Web UI when
``temporal.ui_url`` is set. Reads are two parameterised queries on the
primary key (service_id, timestamp).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from server.core.measures import unit as measured_in
from server.web.charts import line_chart
from server.web.context import WebContext
from server.web.timerange import TimeRange

TEMPORAL_TYPES = frozenset(
    {"temporal_task_queue", "temporal_schedule", "temporal_stuck", "temporal_count"}
)
QUEUE_CHARTS = (
    ("approximate_backlog_count", "backlog", "tasks"),
    ("approximate_backlog_age", "backlog age", "s"),
)


def ui_link(ui_url: str, namespace: str, *path: str) -> str | None:
    """``{ui}/namespaces/{ns}/…`` with every segment escaped; None without a UI."""
    if not ui_url:
        return None
    parts = [quote(p, safe="") for p in (namespace, *path)]
    return f"{ui_url}/namespaces/" + "/".join(parts)


def _when(value: Any) -> datetime | None:
    """A time from a check's details (ISO 8601), or None when absent or malformed."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _latest_details(ctx: WebContext, service_id: str) -> dict[str, Any]:
    rows = ctx.storage.query(
        f"SELECT details FROM {ctx.storage.database}.service_status "
        "WHERE service_id = {sid:String} ORDER BY timestamp DESC LIMIT 1",
        {"sid": service_id},
    )
    if not rows:
        return {}
    try:
        found = json.loads(rows[0]["details"] or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _series(ctx: WebContext, service_id: str, name: str, kind: str, tr: TimeRange) -> Any:
    return ctx.storage.query(
        "SELECT toStartOfInterval(timestamp, INTERVAL {step:UInt32} SECOND) AS time, "
        "avg(metric_value) AS avg, max(metric_value) AS max "
        f"FROM {ctx.storage.database}.service_metrics "
        "WHERE service_id = {sid:String} AND metric_name = {name:String} "
        "AND tags['task_queue_type'] = {kind:String} "
        "AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')} "
        "GROUP BY time ORDER BY time",
        {"sid": service_id, "name": name, "kind": kind, "step": tr.step,
         "start": tr.start, "end": tr.end},
    )  # fmt: skip


def temporal_section(ctx: WebContext, service_id: str, tr: TimeRange) -> dict[str, Any] | None:
    """What ``_temporal.html`` shows for this service, or None for other types."""
    service = next((s for s in ctx.config.services if s.id == service_id), None)
    if service is None or service.type not in TEMPORAL_TYPES:
        return None
    block = service.block()
    namespace = str(block.get("namespace", "default"))
    ui = ctx.config.temporal.ui_url
    details = _latest_details(ctx, service_id)
    section: dict[str, Any] = {"type": service.type, "namespace": namespace, "ui": ui}
    if service.type == "temporal_task_queue":
        section.update(_queue(ctx, service_id, block, details, tr))
    elif service.type == "temporal_stuck":
        section["running"] = details.get("running")
        section["described"] = details.get("described")
        section["stuck"] = [
            {**e, "link": _run_link(ui, namespace, e.get("workflow_id"), e.get("run_id"))}
            for e in details.get("stuck", [])
            if isinstance(e, dict)
        ]
    elif service.type == "temporal_schedule":
        section["schedules"] = [
            {
                **s,
                "next": [_when(t) for t in s.get("next_action_times", [])],
                "last": _when(s.get("last_action_time")),
                "overdue_at": _when(s.get("overdue")),
                "link": ui_link(ui, namespace, "schedules", str(s.get("schedule_id", ""))),
                "last_link": _run_link(
                    ui, namespace, s.get("last_workflow_id"), s.get("last_run_id")
                ),
            }
            for s in details.get("schedules", [])
            if isinstance(s, dict)
        ]
    else:
        section["query"] = block.get("count_query", "")
        section["count"] = details.get("count")
        section["groups"] = details.get("groups", {})
    return section


def _run_link(ui: str, namespace: str, workflow_id: Any, run_id: Any) -> str | None:
    if not workflow_id:
        return None
    if run_id:
        return ui_link(ui, namespace, "workflows", str(workflow_id), str(run_id), "history")
    return ui_link(ui, namespace, "workflows", str(workflow_id))


def _queue(
    ctx: WebContext, service_id: str, block: dict[str, Any], details: dict[str, Any], tr: TimeRange
) -> dict[str, Any]:
    chosen = str(block.get("task_queue_type", "workflow"))
    kinds = ["workflow", "activity"] if chosen == "both" else [chosen]
    charts = []
    for kind in kinds:
        for metric, label, unit in QUEUE_CHARTS:
            points = _series(ctx, service_id, metric, kind, tr)
            svg = line_chart(
                points, start=tr.start, end=tr.end, unit=measured_in(unit), name=f"{kind}_{metric}"
            )
            charts.append({"name": f"{kind} {label}", "unit": unit, "svg": svg})
    queues = {
        kind: {**q, "pollers": [{**p, "at": _when(p.get("last_access"))} for p in q["pollers"]]}
        for kind, q in details.get("queues", {}).items()
        if isinstance(q, dict) and isinstance(q.get("pollers"), list)
    }
    return {"task_queue": block.get("task_queue", ""), "queues": queues, "charts": charts}
