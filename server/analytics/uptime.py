"""Checks up and total over any period, exactly, without scanning months of raw checks.

A period ``[start, end)`` splits into whole hours, read from
``service_status_hourly``, and the partial hours at its two edges, read from raw
``service_status`` (at most two hours of checks per service). The sum is the
exact count of checks in the period, for any start and end, at the cost of
the hourly summary. Days (the 90-day bars) come from ``service_status_daily``.

All counts are :class:`~server.analytics.slo.Counts` (good = up: OK or DEGRADED).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from server.analytics.slo import BURN_WINDOWS, Counts, Objective, SloReport, report
from server.core.status import UP, Status, sql_up
from server.storage import Storage

HOURLY_COLUMNS = {
    Status.OK: "count_ok",
    Status.DEGRADED: "count_degraded",
    Status.FAILED: "failures",
    Status.STARTING: "count_starting",
    Status.STOPPED: "count_stopped",
    Status.UNKNOWN: "count_unknown",
}
HOURLY_UP = " + ".join(HOURLY_COLUMNS[s] for s in sorted(UP))
PAGE_WINDOWS = (timedelta(hours=1), timedelta(hours=6))  # burn rates the pages show

Period = tuple[datetime, datetime]


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: datetime) -> datetime:
    floor = _floor_hour(at)
    return floor if floor == at else floor + timedelta(hours=1)


def counts(
    storage: Storage, ids: Sequence[str], periods: Sequence[Period]
) -> dict[str, list[Counts]]:
    """For each service, its checks in each period (same order); services without checks
    in any period get ``Counts(0, 0)`` everywhere. One query, whatever the periods.

    Raises :class:`~server.storage.StorageError` when ClickHouse does not answer.
    """
    if not ids or not periods:
        return {sid: [Counts(0, 0)] * len(periods) for sid in ids}
    params: dict[str, Any] = {"ids": list(ids)}
    raw_cols, hourly_cols, raw_ranges = [], [], []
    for i, (start, end) in enumerate(periods):
        inner, outer = _ceil_hour(start), _floor_hour(end)
        params |= {f"s{i}": start, f"e{i}": end, f"a{i}": inner, f"b{i}": outer}
        s, e, a, b = (f"{{{name}{i}:DateTime64(3, 'UTC')}}" for name in "seab")
        if inner >= outer:  # inside one hour, or across one boundary: raw checks only
            edge = f"(timestamp >= {s} AND timestamp < {e})"
            hourly = "0"
        else:
            edge = (
                f"((timestamp >= {s} AND timestamp < {a}) "
                f"OR (timestamp >= {b} AND timestamp < {e}))"
            )
            hourly = f"hour >= toDateTime({a}, 'UTC') AND hour < toDateTime({b}, 'UTC')"
        raw_ranges.append(edge)
        raw_cols.append(f"countIf({edge}) AS c{i}, countIf({edge} AND {sql_up()}) AS u{i}")
        hourly_cols.append(f"sumIf(checks, {hourly}) AS c{i}, sumIf({HOURLY_UP}, {hourly}) AS u{i}")
    sums = ", ".join(f"sum(c{i}) AS c{i}, sum(u{i}) AS u{i}" for i in range(len(periods)))
    params["low"] = min(_ceil_hour(s) for s, _ in periods)
    params["high"] = max(_floor_hour(e) for _, e in periods)
    sql = f"""
        SELECT service_id, {sums} FROM (
            SELECT service_id, {", ".join(raw_cols)}
            FROM {{db}}.service_status
            WHERE service_id IN {{ids:Array(String)}} AND ({" OR ".join(raw_ranges)})
            GROUP BY service_id
            UNION ALL
            SELECT service_id, {", ".join(hourly_cols)}
            FROM {{db}}.service_status_hourly
            WHERE service_id IN {{ids:Array(String)}}
              AND hour >= toDateTime({{low:DateTime64(3, 'UTC')}}, 'UTC')
              AND hour < toDateTime({{high:DateTime64(3, 'UTC')}}, 'UTC')
            GROUP BY service_id
        ) GROUP BY service_id
    """
    rows = storage.query(sql.replace("{db}", storage.database), params)
    found = {
        r["service_id"]: [Counts(int(r[f"u{i}"]), int(r[f"c{i}"])) for i in range(len(periods))]
        for r in rows
    }
    return {sid: found.get(sid, [Counts(0, 0)] * len(periods)) for sid in ids}


def slo_reports(
    storage: Storage, objectives: Mapping[str, Objective], now: datetime
) -> dict[str, SloReport]:
    """Each service's objective over its window ending ``now``, with 1 h and 6 h burn rates."""
    if not objectives:
        return {}
    windows = sorted({o.window for o in objectives.values()} | set(PAGE_WINDOWS))
    found = counts(storage, list(objectives), [(now - w, now) for w in windows])
    return {
        sid: report(objective, dict(zip(windows, found[sid], strict=True)))
        for sid, objective in objectives.items()
    }


def burn_counts(
    storage: Storage, ids: Sequence[str], now: datetime
) -> dict[str, dict[timedelta, Counts]]:
    """Counts over every window of :data:`~server.analytics.slo.BURN_ALERTS`, ending ``now``
    (what a multi-window burn-rate condition evaluates)."""
    found = counts(storage, ids, [(now - w, now) for w in BURN_WINDOWS])
    return {sid: dict(zip(BURN_WINDOWS, found[sid], strict=True)) for sid in ids}


def days(today: date, count: int) -> list[date]:
    """The ``count`` UTC days ending with ``today``, oldest first."""
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def daily(
    storage: Storage, groups: Mapping[str, Sequence[str]], first: date, last: date
) -> dict[str, dict[date, Counts]]:
    """Checks per UTC day from ``first`` to ``last`` (inclusive), summed per group.

    ``groups`` maps a group name to its service ids (a service may be in several
    groups); pass ``{sid: [sid]}`` for one bar per service. Days without checks
    are absent. One query: the services' days are summed, then spread to groups.
    """
    pairs = [(sid, name) for name, ids in groups.items() for sid in ids]
    if not pairs:
        return {}
    rows = storage.query(
        f"""
        SELECT grp, day, sum(checks) AS checks, sum(up) AS up
        FROM (
            SELECT service_id, day, sum(checks) AS checks, sum(up) AS up
            FROM {storage.database}.service_status_daily
            WHERE service_id IN {{ids:Array(String)}}
              AND day >= {{first:Date}} AND day <= {{last:Date}}
            GROUP BY service_id, day
        )
        ARRAY JOIN arrayFilter((g, s) -> s = service_id, {{grps:Array(String)}},
                               {{sids:Array(String)}}) AS grp
        GROUP BY grp, day
        """,
        {"ids": sorted({sid for sid, _ in pairs}), "sids": [p[0] for p in pairs],
         "grps": [p[1] for p in pairs], "first": first.isoformat(), "last": last.isoformat()},
    )  # fmt: skip
    out: dict[str, dict[date, Counts]] = {}
    for r in rows:
        out.setdefault(r["grp"], {})[r["day"]] = Counts(int(r["up"]), int(r["checks"]))
    return out


def daily_totals(
    storage: Storage, ids: Sequence[str], first: date, last: date
) -> dict[str, Counts]:
    """Checks per service over the UTC days ``first`` to ``last`` (inclusive)."""
    if not ids:
        return {}
    rows = storage.query(
        f"SELECT service_id, sum(checks) AS checks, sum(up) AS up "
        f"FROM {storage.database}.service_status_daily "
        f"WHERE service_id IN {{ids:Array(String)}} AND day >= {{first:Date}} "
        f"AND day <= {{last:Date}} GROUP BY service_id",
        {"ids": list(ids), "first": first.isoformat(), "last": last.isoformat()},
    )
    return {r["service_id"]: Counts(int(r["up"]), int(r["checks"])) for r in rows}


def utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()
