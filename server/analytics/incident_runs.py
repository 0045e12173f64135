"""Rule-less runs of FAILED checks, the other kind of incident member.

A service no enabled alert rule selected when a run began (:mod:`server.analytics.
rule_coverage`) has its runs of FAILED results (``service_transitions``) as incident
members (:mod:`server.analytics.incidents`). Split from there to keep each module on
one concern: this one knows the status tables, that one assembles incidents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

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
         "before": before or end, "limit": limit or 2**32 - 1, **params},
    )  # fmt: skip
    out = []
    for row in rows:
        sid, at = row["service_id"], aware(row["began"])
        message = row["message"].split(": ", 1)[-1]  # "status changed A -> B: <check>"
        ended = aware(row["ended"]) if row["ended"] else None
        out.append(Member(f"status:{sid}@{key_start(at)}", "", sid, "critical", at, ended, message))
    for member in _first_runs(storage, ids, current):
        if (
            (member.end is None or member.end > start)
            and since <= member.start < min(before or end, end)
            and scope.counted(member.service_id, member.start)
        ):
            out.append(member)
    return out


def _first_runs(
    storage: Storage, ids: list[str], current: Mapping[str, int] | None
) -> list[Member]:
    """Runs of FAILED that began with a service's very first check: the recorder
    writes a transition only on a change, so such a run has no transition into
    FAILED. Found as the services whose oldest transition leaves FAILED (the run
    ended there) or that have none and are FAILED now (still open, ``current`` or
    ``service_current``); their first check, the run's start, is then read for
    those few services only."""
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
        sid: aware(r["first_at"]) for sid, r in firsts.items() if r["first_from"] == _FAILED
    }
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
