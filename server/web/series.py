"""A service's measured series for its page and the API: each once, each with its unit.

The series are the ``service_status`` value columns (response time, CPU,
memory) and every checker metric, one per name and tag set (the host's
``disk_used_percent`` per mount is two series, not one average). Units come
from :mod:`server.core.measures`.

**Each quantity once.** Checkers fill the status row's columns from their own
measurements, so a checker metric often *is* a column under another name: TCP's
``connect_time_ms`` is ``response_time_ms``, the host's and a process's
``cpu_percent``/``memory_percent`` are ``cpu_usage``/``memory_usage``, HTTP's
``response_time_ms`` has the column's very name. One rule for every check type
(and plugins): an untagged metric with a column's name, or with a column's unit
and the column's values in every bucket where it has samples, is that column; it is drawn
and listed once, under the column's name (the "Check" group, where the overview
and alert rules name it). The API still answers ``?name=`` for the metric's own
name. A metric stored under a column's very name always repeats the column's value:
one with a value of its own was renamed ``perf_<name>`` when the check ended
(:func:`server.runner.own_names`), so reading the column loses no measurement.
The name list (``GET …/metrics``) is the charted series' names, so it never lists
a column the service has no samples of.

The page reads them in two queries (the columns, then all metrics) instead of
one per series, so a service with twenty metrics costs what one with three does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.core.measures import COLUMN_UNITS, Unit, unit_of
from server.web.timerange import TimeRange, auto_step

Query = Callable[..., list[dict[str, Any]]]
COLUMNS = tuple(COLUMN_UNITS)  # response_time_ms, cpu_usage, memory_usage
# Chart groups after the columns, by unit; a unit not listed is its own group.
GROUPS = {
    "ms": "Times",
    "seconds": "Times",
    "days": "Times",
    "bytes": "Sizes",
    "percent": "Percentages",
    "ratio": "Ratios",
    "count": "Counts",
    "rows": "Counts",
    "": "Counts",
}
CHECK_GROUP = "Check"


@dataclass
class Series:
    """One line on a chart: ``points`` are ``{"time", "avg", "max"}`` per bucket."""

    name: str
    unit: Unit
    points: list[dict[str, Any]]
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """``name`` or ``name{mount="/"}`` (Prometheus notation) when tagged: the chart's title.

        Two series never share a title: a name a page could not show as written (space at
        either end or doubled, since HTML collapses it; braces or a double quote, which
        read as tags) is written as a JSON string, ``"my label{warn=\"1\"}"`` beside
        ``"my label"{warn="1"}``, ``" lead"`` beside ``lead``, and tag values are quoted
        with ``"`` and ``\\`` escaped, as Prometheus writes label values.
        """
        name = self.name
        if not name or " ".join(name.split()) != name or any(c in name for c in '{}"'):
            name = json.dumps(name, ensure_ascii=False)
        if not self.tags:
            return name
        return (
            name
            + "{"
            + ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.tags)
            + "}"
        )

    @property
    def group(self) -> str:
        if self.name in COLUMN_UNITS:
            return CHECK_GROUP
        return GROUPS.get(self.unit.name, self.unit.name)


@dataclass
class ChartGroup:
    title: str
    series: list[Series] = field(default_factory=list)


def read_all(q: Query, service_id: str, tr: TimeRange, rt: list[dict[str, Any]]) -> list[Series]:
    """Every series with samples in ``tr``: columns first, then metrics by name and tags.

    ``rt`` are the status buckets the page already read (their ``avg_rt`` and
    ``max_rt`` are the response-time series, from raw checks or the hourly
    summary as ``tr`` says).
    """
    out = [
        Series(
            "response_time_ms",
            unit_of("response_time_ms"),
            [{"time": b["time"], "avg": b["avg_rt"], "max": b["max_rt"]} for b in rt],
        )
    ]
    usage = _usage(q, service_id, tr)
    for column in ("cpu_usage", "memory_usage"):
        out.append(Series(column, unit_of(column), usage[column]))
    columns = [s for s in out if _sampled(s)]
    metrics = [m for m in _metrics(q, service_id, tr, None) if _sampled(m)]
    return columns + [m for m in metrics if not any(_same(m, c) for c in columns)]


def _sampled(s: Series) -> bool:
    return any(p["avg"] is not None for p in s.points)


def _same(metric: Series, column: Series) -> bool:
    """Whether ``metric`` is ``column`` recorded again (the module's "each quantity once").

    Compared on every bucket where the metric has samples (a checker that added the
    metric later still repeats the column), to 1 part in 10^6: the CPU and memory
    columns are Float32 (7 significant digits) while metrics are Float64, and the
    response-time column may come from the hourly summary's sums.
    """
    if metric.tags or metric.unit.name != column.unit.name:
        return False
    mine = {p["time"]: p for p in metric.points if p["avg"] is not None}
    theirs = {p["time"]: p for p in column.points if p["avg"] is not None}
    if not mine or not mine.keys() <= theirs.keys():
        return False
    return all(_close(mine[t][k], theirs[t][k]) for t in mine for k in ("avg", "max"))


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), abs(float(b)), 1e-6)


def read_one(q: Query, service_id: str, name: str, tr: TimeRange, rt: Query) -> Series:
    """One series by name (tag sets averaged together), for the API; empty when unknown."""
    if name == "response_time_ms":
        buckets = rt(service_id, tr)
        points = [{"time": b["time"], "avg": b["avg_rt"], "max": b["max_rt"]} for b in buckets]
        return Series(name, unit_of(name), points)
    if name in COLUMN_UNITS:
        return Series(name, unit_of(name), _usage(q, service_id, tr)[name])
    found = _metrics(q, service_id, tr, name)
    if not found:
        return Series(name, unit_of(name), [])
    return found[0]


def read_names(q: Query, service_id: str, tr: TimeRange, rt: list[dict[str, Any]]) -> list[str]:
    """The names of the series :func:`read_all` charts for ``tr``, each once, in its order.

    Exactly the charts' names (a tagged metric's several series are one name):
    no column the service has no samples of, no metric that repeats a column.
    """
    return list(dict.fromkeys(s.name for s in read_all(q, service_id, tr, rt)))


def groups(series: list[Series]) -> list[ChartGroup]:
    """Series by group, the check's own columns first, then groups by title."""
    found: dict[str, ChartGroup] = {}
    for s in series:
        found.setdefault(s.group, ChartGroup(s.group)).series.append(s)
    check = [found.pop(CHECK_GROUP)] if CHECK_GROUP in found else []
    return check + [found[t] for t in sorted(found)]


def from_first_sample(tr: TimeRange, first: datetime | None) -> TimeRange:
    """``tr`` started at the service's first check when the service is younger than it.

    Buckets are re-chosen for the shorter span, so a two-hour-old service's day
    view shows two hours across the chart instead of a sliver at the right edge.
    """
    if first is None or first <= tr.start or first >= tr.end:
        return tr
    step = auto_step(tr.end - first)
    start = datetime.fromtimestamp(int(first.timestamp()) // step * step, UTC)
    return TimeRange(start, tr.end, step)


def _usage(q: Query, service_id: str, tr: TimeRange) -> dict[str, list[dict[str, Any]]]:
    rows = q(
        """
        SELECT toStartOfInterval(timestamp, INTERVAL {step:UInt32} SECOND) AS time,
               avg(cpu_usage) AS cpu_avg, max(cpu_usage) AS cpu_max,
               avg(memory_usage) AS mem_avg, max(memory_usage) AS mem_max
        FROM {db}.service_status
        WHERE service_id = {sid:String}
          AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}
          AND (cpu_usage IS NOT NULL OR memory_usage IS NOT NULL)
        GROUP BY time ORDER BY time
        """,
        sid=service_id,
        step=tr.step,
        start=tr.start,
        end=tr.end,
    )
    return {
        "cpu_usage": [{"time": r["time"], "avg": r["cpu_avg"], "max": r["cpu_max"]} for r in rows],
        "memory_usage": [
            {"time": r["time"], "avg": r["mem_avg"], "max": r["mem_max"]} for r in rows
        ],
    }


def _metrics(q: Query, service_id: str, tr: TimeRange, name: str | None) -> list[Series]:
    """Checker metrics in ``tr``: all (``name`` None, one series per tag set) or one name."""
    split = name is None
    rows = q(
        """
        SELECT metric_name AS name,
               if({split:UInt8}, mapKeys(tags), CAST([], 'Array(String)')) AS tk,
               if({split:UInt8}, mapValues(tags), CAST([], 'Array(String)')) AS tv,
               toStartOfInterval(timestamp, INTERVAL {step:UInt32} SECOND) AS time,
               avg(metric_value) AS avg, max(metric_value) AS max, any(metric_unit) AS unit
        FROM {db}.service_metrics
        WHERE service_id = {sid:String}
          AND ({name:String} = '' OR metric_name = {name:String})
          AND metric_name NOT IN {columns:Array(String)}
          AND timestamp >= {start:DateTime64(3, 'UTC')}
          AND timestamp < {end:DateTime64(3, 'UTC')}
        GROUP BY name, tk, tv, time
        ORDER BY name, tk, tv, time
        """,
        sid=service_id,
        name=name or "",
        split=int(split),
        columns=list(COLUMNS),
        step=tr.step,
        start=tr.start,
        end=tr.end,
    )
    out: list[Series] = []
    for r in rows:
        tags = tuple(zip(r["tk"], r["tv"], strict=True))
        if not out or (out[-1].name, out[-1].tags) != (r["name"], tags):
            out.append(Series(r["name"], unit_of(r["name"], r["unit"]), [], tags))
        if not out[-1].unit.name and r["unit"]:
            out[-1].unit = unit_of(r["name"], r["unit"])
        out[-1].points.append({"time": r["time"], "avg": r["avg"], "max": r["max"]})
    return out
