"""What a tile shows beyond the current status, for many services in two queries.

From ``service_status_daily``: 7 d and 30 d uptime (whole UTC days, today so far
included), the first check among the days read, and each SLO window of a day or
more. From ``service_status_hourly`` (the last 24 hours): the 24 h uptime, strip
and sparkline, and the 1 h and 6 h burn rates (and SLO windows under a day).

Every query costs a few ms of engine time however small, and a raw read a granule
of 8,192 rows per service, so nothing here reads raw checks: a window's first,
partial day (or hour) counts pro rata from its summary row, the current day (or
hour) holds the checks so far. The uptime API counts exactly instead
(:func:`server.analytics.uptime.counts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from server.analytics.slo import Counts, Objective, report
from server.analytics.uptime import DAY, HOUR, HOURLY_UP, PAGE_WINDOWS, WORST_SQL

Query = Callable[..., list[dict[str, Any]]]
STRIP_HOURS = 24


def _floor_day(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_terms(windows: list[timedelta], now: datetime) -> tuple[list[str], dict[str, Any], str]:
    """SQL sums of each window (a day or longer) over daily rows, its parameters, and the
    first day they need: whole days from the window's first midnight through today, plus
    the day it starts in, pro rata."""
    terms: list[str] = []
    params: dict[str, Any] = {}
    first = _floor_day(now - timedelta(days=29)).date()
    for k, window in enumerate(windows):
        start = now - window
        whole = _floor_day(start) + DAY
        weight = (whole - start) / DAY
        params |= {f"w{k}": whole.date().isoformat(), f"p{k}": _floor_day(start).date().isoformat()}
        for out, column in (("sc", "checks"), ("su", "up")):
            whole_days = f"sumIf({column}, day >= {{w{k}:Date}})"
            first_day = f"{weight!r} * sumIf({column}, day = {{p{k}:Date}})"
            terms.append(f"{whole_days} + {first_day} AS {out}{k}")
        first = min(first, _floor_day(start).date())
    params["low"] = first.isoformat()
    return terms, params, "{low:Date}"


def hour_sums(
    windows: list[timedelta], now: datetime, n_at: list[int], ok_at: list[int], first: datetime
) -> list[Counts]:
    """Counts of each window (under a day) from hourly sums: whole hours after its start,
    the current one as far as it is checked, and the hour it starts in, pro rata.

    ``n_at``/``ok_at``: checks and up checks per hour from ``first`` (index 0), the last
    slot holding every later hour. The same arithmetic, in the same order, as
    ClickHouse's ``sumIf(n, hour > h) + weight * sumIf(n, hour = h)``: a whole-number
    sum plus a float product.
    """
    out = []
    for window in windows:
        start = now - window
        at = _floor_hour(start)
        weight = 1 - (start - at) / HOUR
        k = int((at - first).total_seconds()) // 3600
        if k < 0:  # the window starts before the hours read: all of them are after it
            out.append(Counts(sum(ok_at), sum(n_at)))
        else:
            out.append(Counts(sum(ok_at[k + 1 :]) + weight * ok_at[k],
                              sum(n_at[k + 1 :]) + weight * n_at[k]))  # fmt: skip
    return out


def objectives(config_services: Any) -> dict[str, Objective]:
    """The SLO of each service that has one, by id (built once per configuration)."""
    return {s.id: Objective(s.slo.target, s.slo.window) for s in config_services if s.slo}


def load(q: Query, views: Mapping[str, Any], now: datetime, goals: dict[str, Objective]) -> None:
    """Fill ``uptime``, the strips, ``first_check`` and ``slo`` of ``views`` (by id)."""
    ids = list(views)
    long = sorted({o.window for o in goals.values() if o.window >= DAY})
    terms, params, low = day_terms(long, now)
    extra = "".join(", " + t for t in terms)
    totals = q(
        f"""
        SELECT service_id,
               sumIf(checks, day >= {{d7:Date}}) AS c7, sumIf(up, day >= {{d7:Date}}) AS u7,
               sumIf(checks, day >= {{d30:Date}}) AS c30, sumIf(up, day >= {{d30:Date}}) AS u30,
               min(first_check) AS first_check{extra}
        FROM {{db}}.service_status_daily
        WHERE service_id IN {{ids:Array(String)}} AND day >= {low}
        GROUP BY service_id
        """,
        ids=ids,
        d7=(now - timedelta(days=6)).date().isoformat(),
        d30=(now - timedelta(days=29)).date().isoformat(),
        **params,
    )
    begin = _floor_hour(now) - timedelta(hours=STRIP_HOURS - 1)
    short = sorted({o.window for o in goals.values() if o.window < DAY} | set(PAGE_WINDOWS))
    # per hour: checks and up beside the worst status and mean time; the 24 h uptime
    # and the windows under a day are summed here from them. As sumIf terms in the
    # statement they cost ~4 ms of chDB's query analysis per request (each aggregate
    # and expression is analysed before any row is read), for 24 small rows each.
    strips = q(
        f"""
        SELECT service_id,
               groupArray((intDiv(toUnixTimestamp(hour) - {{first:UInt32}}, 3600),
                           worst, avg_rt, n, ok)) AS strip
        FROM (
            SELECT service_id, hour, sum(checks) AS n, sum({HOURLY_UP}) AS ok,
                   {WORST_SQL} AS worst,
                   if(sum(response_time_count) > 0,
                      sum(response_time_sum) / sum(response_time_count), NULL) AS avg_rt
            FROM {{db}}.service_status_hourly
            WHERE service_id IN {{ids:Array(String)}}
              AND hour >= toDateTime({{strip:DateTime64(3, 'UTC')}}, 'UTC')
            GROUP BY service_id, hour
        )
        GROUP BY service_id
        """,
        ids=ids,
        strip=begin,
        first=int(begin.timestamp()),
    )
    hours = [begin + timedelta(hours=i) for i in range(STRIP_HOURS)]
    per_window: dict[str, dict[timedelta, Counts]] = {sid: {} for sid in goals}
    oldest = _floor_day(now - timedelta(days=29))
    for row in totals:
        view = views[row["service_id"]]
        view.uptime["7d"] = _share(row["u7"], row["c7"])
        view.uptime["30d"] = _share(row["u30"], row["c30"])
        first = row["first_check"]
        view.first_check = first
        view.first_check_exact = first is not None and _floor_day(first) > oldest
        if view.since is None and view.checked:
            view.since = first
        if row["service_id"] in per_window:
            for k, window in enumerate(long):
                per_window[row["service_id"]][window] = Counts(row[f"su{k}"], row[f"sc{k}"])
    for row in strips:
        sid = row["service_id"]
        view = views[sid]
        codes, rts = view.strip_codes, view.strip_rt
        n_at, ok_at = [0] * (STRIP_HOURS + 1), [0] * (STRIP_HOURS + 1)
        for index, worst, rt, n, ok in row["strip"]:  # hour index: plain ints on both backends
            if 0 <= index < STRIP_HOURS:  # a clock ahead of ours must not break the page
                codes[index], rts[index] = worst, rt
            slot = min(index, STRIP_HOURS)  # never below 0: hours from `begin` are read
            n_at[slot] += n
            ok_at[slot] += ok
        view.uptime["24h"] = _share(sum(ok_at), sum(n_at))
        if sid in per_window:
            for window, found in zip(short, hour_sums(short, now, n_at, ok_at, begin), strict=True):
                per_window[sid][window] = found
    for sid, view in views.items():
        view.strip_hours = hours
        view.uptime = {k: view.uptime.get(k) for k in ("24h", "7d", "30d")}
        if sid in goals:
            # a service younger than its window has spent only the time it was checked
            first = view.first_check
            view.slo = report(goals[sid], per_window[sid], None if first is None else now - first)


def _share(up: float, checks: float) -> float | None:
    return round(100.0 * up / checks, 3) if checks else None
