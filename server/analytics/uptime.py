"""Checks up and total over any period, exactly, without scanning months of raw checks.

A period ``[start, end)`` splits into whole UTC days, read from
``service_status_daily``; the whole hours around them, from
``service_status_hourly``; and the partial hours at its two edges, from raw
``service_status`` (:func:`split`). The sum is the exact count of checks in the
period, for any start and end, at about 30 daily, 47 hourly and two hours of raw
rows per service for a 30-day window. Days (the 90-day bars) come from
``service_status_daily``.

All counts are :class:`~server.analytics.slo.Counts` (good = up: OK or DEGRADED).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

Period = tuple[datetime, datetime]


@dataclass
class Split:
    """A period as ranges of each table, together covering it exactly once."""

    raw: list[Period] = field(default_factory=list)  # service_status timestamps
    hourly: list[Period] = field(default_factory=list)  # service_status_hourly hours
    daily: list[Period] = field(default_factory=list)  # service_status_daily days (midnights)


def _floor(at: datetime, unit: timedelta) -> datetime:
    at = at.astimezone(UTC)
    if unit == DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def _ceil(at: datetime, unit: timedelta) -> datetime:
    floor = _floor(at, unit)
    return floor if floor == at else floor + unit


def split(start: datetime, end: datetime) -> Split:
    """``[start, end)`` as raw edges, whole hours and whole UTC days (empty ranges dropped)."""
    out = Split()
    hour_a, hour_b = _ceil(start, HOUR), _floor(end, HOUR)
    if hour_a >= hour_b:
        out.raw = [(start, end)] if start < end else []
        return out
    out.raw = [(a, b) for a, b in ((start, hour_a), (hour_b, end)) if a < b]
    day_a, day_b = _ceil(hour_a, DAY), _floor(hour_b, DAY)
    if day_a >= day_b:
        out.hourly = [(hour_a, hour_b)]
        return out
    out.hourly = [(a, b) for a, b in ((hour_a, day_a), (day_b, hour_b)) if a < b]
    out.daily = [(day_a, day_b)]
    return out


class _Params:
    """Names query parameters as they are used: ``{p0:DateTime64(3, 'UTC')}`` ..."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.values: dict[str, Any] = {"ids": list(ids)}

    def __call__(self, value: datetime | date, kind: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{kind}}}"

    def ranges(self, column: str, periods: list[Period], kind: str) -> str:
        """``column`` within any of ``periods`` (``0`` for none)."""
        if not periods:
            return "0"
        parts = []
        for a, b in periods:
            if kind == "Date":
                low, high = self(a.date(), "Date"), self(b.date(), "Date")
            elif kind == "DateTime":  # a DateTime column: bounds converted once, key usable
                t = "DateTime64(3, 'UTC')"
                low, high = f"toDateTime({self(a, t)}, 'UTC')", f"toDateTime({self(b, t)}, 'UTC')"
            else:
                low, high = self(a, kind), self(b, kind)
            parts.append(f"({column} >= {low} AND {column} < {high})")
        return "(" + " OR ".join(parts) + ")"


def counts(
    storage: Storage, ids: Sequence[str], periods: Sequence[Period], exact: bool = True
) -> dict[str, list[Counts]]:
    """For each service, its checks in each period (same order); services without checks
    in any period get ``Counts(0, 0)`` everywhere. One query, whatever the periods.

    ``exact`` counts the partial hours at a period's edges from raw checks. Without it
    only the summaries are read (what pages showing many services can afford: a raw
    read costs a granule of 8,192 rows per service): the partial hour a period starts
    in counts pro rata from its hourly row, the hour it ends in counts whole, which
    for a period ending now is exactly the checks so far; counts may then be fractional.

    Raises :class:`~server.storage.StorageError` when ClickHouse does not answer.
    """
    if not ids or not periods:
        return {sid: [Counts(0, 0)] * len(periods) for sid in ids}
    p = _Params(ids)
    splits = [split(a, b) for a, b in periods]
    raw, hourly, daily, raw_any, hours_read = [], [], [], [], []
    for i, ((start, _), sp) in enumerate(zip(periods, splits, strict=True)):
        h = p.ranges("hour", sp.hourly, "DateTime")
        d = p.ranges("day", sp.daily, "Date")
        checks, up = [f"sumIf(checks, {h})"], [f"sumIf({HOURLY_UP}, {h})"]
        if exact:
            r = p.ranges("timestamp", sp.raw, "DateTime64(3, 'UTC')")
            raw_any.append(r)
            raw.append(f"toFloat64(countIf({r})) AS c{i}, "
                       f"toFloat64(countIf({r} AND {sql_up()})) AS u{i}")  # fmt: skip
        for a, b in [] if exact else sp.raw:
            weight = (b - a) / HOUR if a == start else 1.0
            hour = p.ranges("hour", [(_floor(a, HOUR), _floor(a, HOUR) + HOUR)], "DateTime")
            checks.append(f"{weight!r} * sumIf(checks, {hour})")
            up.append(f"{weight!r} * sumIf({HOURLY_UP}, {hour})")
            hours_read.append((_floor(a, HOUR), _floor(a, HOUR) + HOUR))
        # one type across the UNION (Float64 holds any count below 2^53 exactly)
        hourly.append(
            f"toFloat64({' + '.join(checks)}) AS c{i}, toFloat64({' + '.join(up)}) AS u{i}"
        )
        daily.append(f"toFloat64(sumIf(checks, {d})) AS c{i}, toFloat64(sumIf(up, {d})) AS u{i}")
    hours = p.ranges("hour", [r for sp in splits for r in sp.hourly] + hours_read, "DateTime")
    days = p.ranges("day", [r for sp in splits for r in sp.daily], "Date")
    sums = ", ".join(f"sum(c{i}) AS c{i}, sum(u{i}) AS u{i}" for i in range(len(periods)))
    ids_in = "service_id IN {ids:Array(String)}"
    raw_part = (
        f"SELECT service_id, {', '.join(raw)} FROM {{db}}.service_status "
        f"WHERE {ids_in} AND ({' OR '.join(raw_any)}) GROUP BY service_id UNION ALL"
        if exact
        else ""
    )
    sql = f"""
        SELECT service_id, {sums} FROM (
            {raw_part}
            SELECT service_id, {", ".join(hourly)} FROM {{db}}.service_status_hourly
            WHERE {ids_in} AND {hours} GROUP BY service_id
            UNION ALL
            SELECT service_id, {", ".join(daily)} FROM {{db}}.service_status_daily
            WHERE {ids_in} AND {days} GROUP BY service_id
        ) GROUP BY service_id
    """
    rows = storage.query(sql.replace("{db}", storage.database), p.values)

    def number(value: Any) -> float:
        return int(value) if exact else float(value)

    found = {
        r["service_id"]: [
            Counts(number(r[f"u{i}"]), number(r[f"c{i}"])) for i in range(len(periods))
        ]
        for r in rows
    }
    return {sid: found.get(sid, [Counts(0, 0)] * len(periods)) for sid in ids}


def slo_reports(
    storage: Storage, objectives: Mapping[str, Objective], now: datetime, exact: bool = True
) -> dict[str, SloReport]:
    """Each service's objective over its window ending ``now``, with 1 h and 6 h burn rates.

    ``exact``: as in :func:`counts` (pages pass False: summaries only).
    """
    if not objectives:
        return {}
    windows = sorted({o.window for o in objectives.values()} | set(PAGE_WINDOWS))
    found = counts(storage, list(objectives), [(now - w, now) for w in windows], exact)
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
    member_of: dict[str, list[str]] = {}
    for name, ids in groups.items():
        for sid in ids:
            member_of.setdefault(sid, []).append(name)
    if not member_of:
        return {}
    sids = sorted(member_of)
    flat: list[str] = []
    starts: list[int] = []
    lengths: list[int] = []
    for sid in sids:
        starts.append(len(flat) + 1)
        lengths.append(len(member_of[sid]))
        flat += member_of[sid]
    # a service's groups are a slice of one flat array, found with transform() (a hash
    # lookup): 1,000 services x 90 days cost about what one group would
    rows = storage.query(
        f"""
        SELECT arrayJoin(arraySlice({{flat:Array(String)}},
                   transform(service_id, {{ids:Array(String)}}, {{starts:Array(UInt32)}}, 1),
                   transform(service_id, {{ids:Array(String)}}, {{lengths:Array(UInt32)}}, 0)))
                   AS grp,
               day, sum(checks) AS checks, sum(up) AS up
        FROM (
            SELECT service_id, day, sum(checks) AS checks, sum(up) AS up
            FROM {storage.database}.service_status_daily
            WHERE service_id IN {{ids:Array(String)}}
              AND day >= {{first:Date}} AND day <= {{last:Date}}
            GROUP BY service_id, day
        )
        GROUP BY grp, day
        """,
        {"ids": sids, "flat": flat, "starts": starts, "lengths": lengths,
         "first": first.isoformat(), "last": last.isoformat()},
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
