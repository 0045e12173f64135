"""Rule-less runs of FAILED checks, the other kind of incident member.

A service no enabled alert rule selected when a run began (:mod:`server.analytics.
rule_coverage`) has its runs of FAILED results (``service_transitions``) as incident
members (:mod:`server.analytics.incidents`). Split from there to keep each module on
one concern: this one knows the status tables, that one assembles incidents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.alerting.log import aware
from server.analytics.incident_model import Member, key_start
from server.analytics.rule_coverage import Coverage
from server.core import status as statuses
from server.storage import Storage

_FAILED = int(statuses.Status.FAILED)


def failed_runs(storage: Storage, scope: Coverage, start: datetime, end: datetime, *,
                since: datetime, limit: int = 0, before: datetime | None = None,
                current: Mapping[str, int] | None = None) -> list[Member]:  # fmt: skip
    """Runs of FAILED overlapping ``[start, end)`` that began after ``since`` (and
    before ``before``) while no rule watched their service, paired in ClickHouse
    like the firing periods."""
    ids = scope.candidates
    if not ids:
        return []
    counted, params = scope.sql()
    rows = _paired(storage, ids, start, end, since=since, before=before or end, limit=limit,
                   counted=counted, params=params)  # fmt: skip
    out = []
    for row in rows:
        sid, at = row["service_id"], aware(row["began"])
        message = row["message"].split(": ", 1)[-1]  # "status changed A -> B: <check>"
        ended = aware(row["ended"]) if row["ended"] else None
        out.append(Member(f"status:{sid}@{key_start(at)}", "", sid, "critical", at, ended, message))
    for member in _first_runs(storage, ids, current, start):
        if (
            (member.end is None or member.end > start)
            and since <= member.start < min(before or end, end)
            and scope.counted(member.service_id, member.start)
        ):
            out.append(member)
    return out + _handed_over(storage, scope, start, end, since=since, before=before or end)


def _handed_over(storage: Storage, scope: Coverage, start: datetime, end: datetime, *,
                 since: datetime, before: datetime) -> list[Member]:  # fmt: skip
    """The rest of each run that began while a rule watched its service and went on
    after no rule did (the rule removed, disabled or no longer selecting it while the
    service failed): from when the coverage changed to the run's end. Without it the
    outage looked resolved when its alert was (*no longer in the configuration*)
    though the service still failed. It starts as the alert ends, so it joins the
    alert's incident (:func:`server.analytics.incident_model.group`)."""
    flips = {sid: [at for (at, w), (_, was) in zip(points[1:], points, strict=False)
                   if not w and was] for sid, points in scope.points.items()}  # fmt: skip
    flips = {sid: ats for sid, ats in flips.items() if ats}
    if not flips:
        return []
    rows = _paired(storage, sorted(flips), start, end, since=since, before=before, limit=0,
                   counted="", params={})  # fmt: skip
    out = []
    for row in rows:
        sid, began = row["service_id"], aware(row["began"])
        ended = aware(row["ended"]) if row["ended"] else None
        if scope.counted(sid, began):
            continue  # a run of its own already
        at = next((t for t in flips[sid] if began < t and (ended is None or t < ended)), None)
        if at is not None and at < min(before, end) and (ended is None or ended > start):
            message = row["message"].split(": ", 1)[-1]
            out.append(Member(f"status:{sid}@{key_start(at)}", "", sid, "critical", at, ended,
                              message))  # fmt: skip
    return out


def _paired(storage: Storage, ids: list[str], start: datetime, end: datetime, *,
            since: datetime, before: datetime, limit: int, counted: str,
            params: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Runs of FAILED of ``ids`` paired with their ends in ClickHouse (``ended`` NULL
    while open) overlapping ``[start, end)``, begun in ``[since, before)``, open first,
    then newest first; ``counted``: an extra condition (``AND …``) with ``params``."""
    rows = storage.query(
        f"""
        SELECT service_id, began, if(has_next, next_at, NULL) AS ended, message
        FROM (
            SELECT service_id, to_status, message, timestamp AS began,
                   leadInFrame(timestamp) OVER w AS next_at,
                   leadInFrame(toUInt8(1)) OVER w AS has_next
            FROM {storage.database}.service_transitions
            WHERE service_id IN {{ids:Array(String)}}
              AND (to_status = {{f:UInt8}} OR from_status = {{f:UInt8}})
              AND timestamp >= {{since:DateTime64(3, 'UTC')}}
              AND timestamp < {{end:DateTime64(3, 'UTC')}}
            WINDOW w AS (PARTITION BY service_id ORDER BY timestamp
                         ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
        )
        WHERE to_status = {{f:UInt8}} AND began < {{before:DateTime64(3, 'UTC')}}
          AND (NOT has_next OR next_at > {{start:DateTime64(3, 'UTC')}}){counted}
        ORDER BY has_next, began DESC, service_id LIMIT {{limit:UInt32}}""",
        {"ids": ids, "f": _FAILED, "since": since, "start": start, "end": end,
         "before": before, "limit": limit or 2**32 - 1, **params},
    )  # fmt: skip
    return rows


def _first_runs(
    storage: Storage, ids: list[str], current: Mapping[str, int] | None, start: datetime
) -> list[Member]:
    """Runs of FAILED that began with a service's very first check: the recorder
    writes a transition only on a change, so such a run has no transition into
    FAILED. Found as the services whose oldest transition leaves FAILED (the run
    ended there) or that have none and are FAILED now (still open, ``current`` or
    ``service_current``); their first check, the run's start, is then read for
    those few services only, and only for runs that end after ``start`` (the others
    cannot touch the window: their first check is not looked up at all)."""
    db = storage.database
    rows = storage.query(
        "SELECT service_id, min(timestamp) AS first_at, argMin(from_status, timestamp) "
        f"AS first_from FROM {db}.service_transitions "
        "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
        {"ids": ids},
    )
    firsts = {r["service_id"]: r for r in rows}
    quiet = [sid for sid in ids if sid not in firsts]
    if quiet and current is None:
        rows = storage.query(
            f"SELECT service_id, argMaxMerge(status_code) AS code FROM {db}.service_current "
            "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
            {"ids": quiet},
        )
        current = {r["service_id"]: int(r["code"]) for r in rows}
    ended: dict[str, datetime | None] = {
        sid: at for sid, r in firsts.items()
        if r["first_from"] == _FAILED and (at := aware(r["first_at"])) > start
    }  # fmt: skip
    ended |= {sid: None for sid in quiet if (current or {}).get(sid) == _FAILED}
    if not ended:
        return []
    checks = storage.query(
        f"""
        SELECT service_id, min(timestamp) AS began,
               argMin(message, timestamp) AS message
        FROM {storage.database}.service_status
        WHERE service_id IN {{ids:Array(String)}}
          AND timestamp >= (
              SELECT min(hour) FROM {storage.database}.service_status_hourly
              WHERE service_id IN {{ids:Array(String)}})
        GROUP BY service_id""",
        {"ids": sorted(ended)},
    )  # fmt: skip
    out = []
    for row in checks:
        sid, at = row["service_id"], aware(row["began"])
        out.append(Member(f"status:{sid}@{key_start(at)}", "", sid, "critical", at, ended[sid],
                          row["message"]))  # fmt: skip
    return out
