"""What the dashboard and API read, as a few parameterised queries.

Current state comes from ``service_current`` (one row per service), "since"
from ``service_transitions``, uptime and the 24 h strip from the hourly
summary: the overview never touches raw checks. Raw rows are read only for one
service over short ranges (zoomed timelines, CPU/memory, metrics, logs),
where the primary key (service_id, timestamp) narrows the scan.

Every value from a request goes in as a ``{name:Type}`` parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from server.config.models import Config
from server.core import status
from server.core.levels import LEVELS
from server.core.status import Status
from server.storage import Storage
from server.web.timerange import TimeRange

STATUS_NAMES = status.NAMES
# The worst status of a group of summary rows, from its per-status counters.
WORST_SQL = status.sql_worst_of_counts(
    {
        Status.FAILED: "sum(failures)",
        Status.UNKNOWN: "sum(count_unknown)",
        Status.DEGRADED: "sum(count_degraded)",
        Status.STARTING: "sum(count_starting)",
        Status.STOPPED: "sum(count_stopped)",
    }
)
WORST_RAW_SQL = status.sql_worst("status_code")
BUILTIN_SERIES = {"response_time_ms": "ms", "cpu_usage": "%", "memory_usage": "MB"}
LOG_LEVELS = LEVELS  # the levels stored rows carry (checkers and pushed logs)
STALE_AFTER = 2  # intervals without a result before a status is shown as stale
SELF_INTERVAL = 15.0  # the daemon records its own row this often (server.daemon)


def is_stale(
    last_check: datetime | None, interval_s: float, now: datetime, write_delay_s: float = 0.0
) -> bool:
    """True when the newest result is older than STALE_AFTER intervals (never for no result).

    ``write_delay_s`` (the writer's flush interval) is added: a result reaches
    storage up to that long after its check, which matters for sub-second intervals.
    """
    if last_check is None:
        return False
    if last_check.tzinfo is None:
        last_check = last_check.replace(tzinfo=UTC)
    return (now - last_check).total_seconds() > STALE_AFTER * interval_s + write_delay_s


@dataclass
class ServiceView:
    id: str
    label: str
    type: str
    stack: str
    status_code: int = int(Status.UNKNOWN)
    since: datetime | None = None
    last_check: datetime | None = None
    message: str = "no checks yet"
    response_time_ms: int | None = None
    uptime: dict[str, float | None] = field(default_factory=dict)
    # the last 24 hours, oldest first: worst status and mean response time per hour
    strip_hours: list[datetime] = field(default_factory=list)
    strip_codes: list[int | None] = field(default_factory=lambda: [None] * 24)
    strip_rt: list[float | None] = field(default_factory=lambda: [None] * 24)
    checked: bool = False
    interval_s: float = 30.0
    # The newest result is older than STALE_AFTER intervals: its status is no longer news.
    stale: bool = False

    @property
    def status(self) -> str:
        return STATUS_NAMES.get(self.status_code, "UNKNOWN")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "type": self.type,
            "stack": self.stack,
            "status_code": self.status_code,
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "last_check": self.last_check.isoformat() if self.last_check else None,
            "message": self.message,
            "response_time_ms": self.response_time_ms,
            "uptime": self.uptime,
            "stale": self.stale,
        }


class Reader:
    def __init__(self, storage: Storage, config: Config) -> None:
        self.storage = storage
        self.config = config
        self.db = storage.database

    def _q(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return self.storage.query(sql.replace("{db}", self.db), params)

    # -- services ------------------------------------------------------------------------
    def known(self) -> dict[str, ServiceView]:
        views = {
            s.id: ServiceView(
                s.id, s.display_label, s.type, s.stack, interval_s=s.interval.total_seconds()
            )
            for s in self.config.services
            if s.enabled
        }
        views["lightbulb"] = ServiceView(
            "lightbulb", "Lightbulb daemon", "lightbulb", "lightbulb", interval_s=SELF_INTERVAL
        )
        return views

    def services(
        self, now: datetime, only: str | None = None, history: bool = True
    ) -> list[ServiceView]:
        """Current status of every service (or one); with ``history``, uptime and strips too."""
        views = self.known()
        if only is not None:
            views = {only: views[only]} if only in views else {}
        if not views:
            return []
        ids = list(views)
        for row in self._q(
            "SELECT service_id, max(last_check) AS last_check, "
            "argMaxMerge(status_code) AS status_code, argMaxMerge(message) AS message, "
            "argMaxMerge(response_time_ms) AS response_time_ms "
            "FROM {db}.service_current WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
            ids=ids,
        ):
            view = views[row["service_id"]]
            view.checked = True
            view.status_code = int(row["status_code"])
            view.last_check = row["last_check"]
            view.message = row["message"]
            view.response_time_ms = row["response_time_ms"]
            view.stale = is_stale(
                view.last_check,
                view.interval_s,
                now,
                # rows reach storage up to flush_interval + insert_interval after a check
                (
                    self.config.scheduler.flush_interval + self.config.scheduler.insert_interval
                ).total_seconds(),
            )
        for row in self._q(
            "SELECT service_id, max(timestamp) AS since FROM {db}.service_transitions "
            "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
            ids=ids,
        ):
            views[row["service_id"]].since = row["since"]
        if history:
            self._uptime(views, now)
        return list(views.values())

    def add_history(self, views: list[ServiceView], now: datetime) -> None:
        """Uptime and 24 h strips for just these services (one page of the overview)."""
        if views:
            self._uptime({v.id: v for v in views}, now)

    def _uptime(self, views: dict[str, ServiceView], now: datetime) -> None:
        """24 h uptime and strip from the hourly summary, 7 d / 30 d from the daily one.

        Bounds on ``hour`` (a DateTime) are converted once with toDateTime(): compared
        with a DateTime64 parameter directly, every row would be cast, and the
        primary key would not narrow the scan.

        The 7 d and 30 d windows are whole UTC days (today included), read from
        ``service_status_daily``: about 30 rows per service instead of 720.
        """
        day = now - timedelta(hours=24)
        ids = list(views)
        totals = self._q(
            """
            SELECT service_id,
                   sumIf(checks, day >= {d7:Date}) AS c7, sumIf(up, day >= {d7:Date}) AS u7,
                   sum(checks) AS c30, sum(up) AS u30, min(first_check) AS first_check
            FROM {db}.service_status_daily
            WHERE service_id IN {ids:Array(String)} AND day >= {d30:Date}
            GROUP BY service_id
            """,
            ids=ids,
            d7=(now - timedelta(days=6)).date().isoformat(),
            d30=(now - timedelta(days=29)).date().isoformat(),
        )
        strips = self._q(
            f"""
            SELECT service_id, sum(n) AS c1, sum(ok) AS u1,
                   groupArray((intDiv(toUnixTimestamp(hour) - {{first:UInt32}}, 3600),
                               worst, avg_rt)) AS strip
            FROM (
                SELECT service_id, hour, sum(checks) AS n,
                       sum(count_ok) + sum(count_degraded) AS ok, {WORST_SQL} AS worst,
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
            strip=_hour(day) + timedelta(hours=1),
            first=int((_hour(day) + timedelta(hours=1)).timestamp()),
        )
        hours = [_hour(day) + timedelta(hours=i + 1) for i in range(24)]
        for row in totals:
            view = views[row["service_id"]]
            view.uptime["7d"] = _share(row["u7"], row["c7"])
            view.uptime["30d"] = _share(row["u30"], row["c30"])
            if view.since is None and view.checked:
                view.since = row["first_check"]
        for row in strips:
            view = views[row["service_id"]]
            view.uptime["24h"] = _share(row["u1"], row["c1"])
            codes, rts = view.strip_codes, view.strip_rt
            for index, worst, rt in row["strip"]:  # hour index: plain ints on both backends
                if 0 <= index < len(codes):  # a clock ahead of ours must not break the page
                    codes[index], rts[index] = worst, rt
        for view in views.values():
            view.strip_hours = hours
            view.uptime = {k: view.uptime.get(k) for k in ("24h", "7d", "30d")}

    # -- one service ---------------------------------------------------------------------
    def status_buckets(self, service_id: str, tr: TimeRange) -> list[dict[str, Any]]:
        if tr.hourly:
            return self._q(
                f"""
                SELECT time, n_checks AS checks, n_failures AS failures, worst, avg_rt, max_rt
                FROM (
                    SELECT toStartOfInterval(hour, INTERVAL {{step:UInt32}} SECOND) AS time,
                           sum(checks) AS n_checks, sum(failures) AS n_failures,
                           {WORST_SQL} AS worst,
                           if(sum(response_time_count) > 0,
                              sum(response_time_sum) / sum(response_time_count), NULL) AS avg_rt,
                           max(response_time_max) AS max_rt
                    FROM {{db}}.service_status_hourly
                    WHERE service_id = {{sid:String}}
                      AND hour >= toStartOfHour(toDateTime({{start:DateTime64(3, 'UTC')}}, 'UTC'))
                      AND hour < toDateTime({{end:DateTime64(3, 'UTC')}}, 'UTC')
                    GROUP BY time
                )
                ORDER BY time
                """,
                sid=service_id, step=tr.step, start=tr.start, end=tr.end,
            )  # fmt: skip
        return self._q(
            f"""
            SELECT toStartOfInterval(timestamp, INTERVAL {{step:UInt32}} SECOND) AS time,
                   count() AS checks, countIf(status_code = 2) AS failures,
                   {WORST_RAW_SQL} AS worst,
                   avg(response_time_ms) AS avg_rt, max(response_time_ms) AS max_rt
            FROM {{db}}.service_status
            WHERE service_id = {{sid:String}}
              AND timestamp >= {{start:DateTime64(3, 'UTC')}}
              AND timestamp < {{end:DateTime64(3, 'UTC')}}
            GROUP BY time ORDER BY time
            """,
            sid=service_id, step=tr.step, start=tr.start, end=tr.end,
        )  # fmt: skip

    def metric_names(self, service_id: str, since: datetime) -> list[str]:
        rows = self._q(
            "SELECT DISTINCT metric_name FROM {db}.service_metrics "
            "WHERE service_id = {sid:String} AND timestamp >= {since:DateTime64(3, 'UTC')} "
            "ORDER BY metric_name LIMIT 50",
            sid=service_id, since=since,
        )  # fmt: skip
        return [r["metric_name"] for r in rows]

    def metric_series(self, service_id: str, name: str, tr: TimeRange) -> dict[str, Any]:
        """avg and max per bucket of a built-in column or a checker metric, with its unit."""
        if name == "response_time_ms" and tr.hourly:
            points = [
                {"time": r["time"], "avg": r["avg_rt"], "max": r["max_rt"]}
                for r in self.status_buckets(service_id, tr)
            ]
            return {"name": name, "unit": "ms", "points": points}
        if name in BUILTIN_SERIES:
            rows = self._q(
                f"""
                SELECT toStartOfInterval(timestamp, INTERVAL {{step:UInt32}} SECOND) AS time,
                       avg({name}) AS avg, max({name}) AS max
                FROM {{db}}.service_status
                WHERE service_id = {{sid:String}} AND {name} IS NOT NULL
                  AND timestamp >= {{start:DateTime64(3, 'UTC')}}
                  AND timestamp < {{end:DateTime64(3, 'UTC')}}
                GROUP BY time ORDER BY time
                """,
                sid=service_id, step=tr.step, start=tr.start, end=tr.end,
            )  # fmt: skip
            return {"name": name, "unit": BUILTIN_SERIES[name], "points": rows}
        rows = self._q(
            """
            SELECT toStartOfInterval(timestamp, INTERVAL {step:UInt32} SECOND) AS time,
                   avg(metric_value) AS avg, max(metric_value) AS max, any(metric_unit) AS unit
            FROM {db}.service_metrics
            WHERE service_id = {sid:String} AND metric_name = {name:String}
              AND timestamp >= {start:DateTime64(3, 'UTC')}
              AND timestamp < {end:DateTime64(3, 'UTC')}
            GROUP BY time ORDER BY time
            """,
            sid=service_id, name=name, step=tr.step, start=tr.start, end=tr.end,
        )  # fmt: skip
        unit = next((r["unit"] for r in rows if r["unit"]), "")
        points = [{"time": r["time"], "avg": r["avg"], "max": r["max"]} for r in rows]
        return {"name": name, "unit": unit, "points": points}

    def logs(
        self, service_id: str, levels: list[str], text: str, limit: int, fingerprint: int = 0
    ) -> list[dict[str, Any]]:
        return self._q(
            """
            SELECT timestamp, log_level, message, source, error_code, stack_trace,
                   toString(fingerprint) AS fingerprint
            FROM {db}.service_logs
            WHERE service_id = {sid:String}
              AND (empty({levels:Array(String)}) OR log_level IN {levels:Array(String)})
              AND (empty({q:String}) OR positionCaseInsensitiveUTF8(message, {q:String}) > 0)
              AND ({fp:UInt64} = 0 OR service_logs.fingerprint = {fp:UInt64})
            ORDER BY timestamp DESC LIMIT {limit:UInt32}
            """,
            sid=service_id, levels=levels, q=text, limit=limit, fp=fingerprint,
        )  # fmt: skip

    def top_errors(
        self, service_id: str | None, tr: TimeRange, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Error patterns by count in the range: pattern, sample, services, first/last seen,
        and counts per hour for a sparkline (hour index from the range start)."""
        return self._q(
            """
            SELECT toString(fp) AS fingerprint, anyMerge(p) AS pattern, anyMerge(sm) AS sample,
                   groupUniqArrayMerge(sv) AS services, sum(n) AS count,
                   min(f) AS first_seen, max(l) AS last_seen,
                   groupArray((intDiv(toUnixTimestamp(h) - {first:UInt32}, 3600), n)) AS hourly
            FROM (
                SELECT fingerprint AS fp, hour AS h, anyMergeState(pattern) AS p,
                       anyMergeState(sample) AS sm, groupUniqArrayMergeState(services) AS sv,
                       toUInt64(sum(count)) AS n, min(first_seen) AS f, max(last_seen) AS l
                FROM {db}.error_patterns
                WHERE hour >= toStartOfHour(toDateTime({start:DateTime64(3, 'UTC')}, 'UTC'))
                  AND hour < toDateTime({end:DateTime64(3, 'UTC')}, 'UTC')
                GROUP BY fingerprint, hour
            )
            GROUP BY fp
            HAVING {sid:String} = '' OR has(services, {sid:String})
            ORDER BY count DESC LIMIT {limit:UInt32}
            """,
            sid=service_id or "", start=tr.start, end=tr.end, limit=limit,
            first=int(tr.start.timestamp()) // 3600 * 3600,
        )  # fmt: skip

    def reports(self, limit: int = 60) -> list[dict[str, Any]]:
        return self._q(
            "SELECT day, max(generated_at) AS built, argMax(summary, generated_at) AS summary "
            "FROM {db}.reports GROUP BY day ORDER BY day DESC LIMIT {limit:UInt32}",
            limit=limit,
        )

    def report_html(self, day: str) -> str | None:
        rows = self._q(
            "SELECT argMax(html, generated_at) AS html FROM {db}.reports WHERE day = {day:Date} "
            "GROUP BY day",
            day=day,
        )
        return rows[0]["html"] if rows else None


def _share(up: int, checks: int) -> float | None:
    return round(100.0 * up / checks, 3) if checks else None


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)
