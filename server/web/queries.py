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
from datetime import UTC, datetime
from typing import Any

from server.analytics.slo import SloReport
from server.analytics.uptime import HOURLY_UP, WORST_SQL
from server.config.models import Config
from server.core import status
from server.core.levels import LEVELS
from server.core.status import Status
from server.storage import Storage
from server.web import history
from server.web.series import Series, read_all, read_names, read_one
from server.web.timerange import TimeRange

STATUS_NAMES = status.NAMES
WORST_RAW_SQL = status.sql_worst("status_code")
UP_RAW_SQL = status.sql_up("status_code")
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
    slo: SloReport | None = None  # with history, for services with an objective
    # with history: the first check among the days read (30 or more); exact when it is
    # later than the first of them (a younger service), else only an upper bound
    first_check: datetime | None = None
    first_check_exact: bool = False

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
            "slo": self.slo.as_dict() if self.slo else None,
        }


class Reader:
    def __init__(self, storage: Storage, config: Config) -> None:
        self.storage = storage
        self.config = config
        self.db = storage.database
        self.objectives = history.objectives(config.services)
        # what a view takes from the configuration, worked out once per configuration
        # (1,000 label properties and intervals cost ~2 ms a page)
        self._shown = [
            (s.id, s.display_label, s.type, s.stack, s.interval.total_seconds())
            for s in config.services
            if s.enabled
        ]

    def _q(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return self.storage.query(sql.replace("{db}", self.db), params)

    # -- services ------------------------------------------------------------------------
    def known(self) -> dict[str, ServiceView]:
        views = {
            sid: ServiceView(sid, label, type_, stack, interval_s=interval)
            for sid, label, type_, stack, interval in self._shown
        }
        views["lightbulb"] = ServiceView(
            "lightbulb", "Lightbulb daemon", "lightbulb", "lightbulb", interval_s=SELF_INTERVAL
        )
        return views

    def absent(self, service_id: str) -> str:
        """Why ``service_id`` has no page: disabled in the configuration, or unknown."""
        if self.disabled(service_id) is not None:
            return (f"service {service_id!r} is disabled (enabled: false in the "
                    "configuration); its stored history is kept")  # fmt: skip
        return f"no service {service_id!r}"

    def disabled(self, service_id: str) -> str | None:
        """The display label of ``service_id`` when it is configured but disabled."""
        return next((s.display_label for s in self.config.services
                     if s.id == service_id and not s.enabled), None)  # fmt: skip

    def services(
        self, now: datetime, only: str | None = None, history: bool = True, since: bool = True,
        brief: bool = False,
    ) -> list[ServiceView]:  # fmt: skip
        """Current status of every service (or one); with ``since``, when its status last
        changed; with ``history``, uptime and strips too. ``brief``: the status code only
        (no message, response time, last check or staleness: the status page shows none,
        and 1,000 messages and times cost ~5 ms to read and convert)."""
        if brief:
            return self._codes()
        views = self.known()
        if only is not None:
            views = {only: views[only]} if only in views else {}
        if not views:
            return []
        # every service: no id list (encoding and matching 1,000 ids cost ~15 ms a query);
        # the table holds one row per service, rows of removed services are skipped
        ids = [only] if only is not None else []
        every = "(empty({ids:Array(String)}) OR service_id IN {ids:Array(String)})"
        for row in self._q(
            "SELECT service_id, max(last_check) AS last_check, "
            "argMaxMerge(status_code) AS status_code, argMaxMerge(message) AS message, "
            "argMaxMerge(response_time_ms) AS response_time_ms "
            f"FROM {{db}}.service_current WHERE {every} GROUP BY service_id",
            ids=ids,
        ):
            view = views.get(row["service_id"])
            if view is None:
                continue
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
        changes = self._q(
            "SELECT service_id, max(timestamp) AS since FROM {db}.service_transitions "
            f"WHERE {every} GROUP BY service_id",
            ids=ids,
        ) if since else []  # fmt: skip
        for row in changes:
            if row["service_id"] in views:
                views[row["service_id"]].since = row["since"]
        if history:
            self._uptime(views, now)
        return list(views.values())

    def _codes(self) -> list[ServiceView]:
        views = self.known()
        for row in self._q(
            "SELECT service_id, argMaxMerge(status_code) AS status_code "
            "FROM {db}.service_current GROUP BY service_id"
        ):
            view = views.get(row["service_id"])
            if view is not None:
                view.checked, view.status_code = True, int(row["status_code"])
        return list(views.values())

    def add_history(self, views: list[ServiceView], now: datetime) -> None:
        """Uptime and 24 h strips for just these services (one page of the overview)."""
        if views:
            self._uptime({v.id: v for v in views}, now)

    def _uptime(self, views: dict[str, ServiceView], now: datetime) -> None:
        """Uptime, strips and SLOs of ``views`` from the summaries (:mod:`server.web.history`)."""
        goals = {sid: self.objectives[sid] for sid in views if sid in self.objectives}
        history.load(self._q, views, now, goals)

    # -- one service ---------------------------------------------------------------------
    def status_buckets(self, service_id: str, tr: TimeRange) -> list[dict[str, Any]]:
        if tr.hourly:
            return self._q(
                f"""
                SELECT time, n_checks AS checks, n_up AS up, n_failures AS failures, worst,
                       avg_rt, max_rt
                FROM (
                    SELECT toStartOfInterval(hour, INTERVAL {{step:UInt32}} SECOND) AS time,
                           sum(checks) AS n_checks, sum({HOURLY_UP}) AS n_up,
                           sum(failures) AS n_failures,
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
                   count() AS checks, countIf({UP_RAW_SQL}) AS up,
                   countIf(status_code = 2) AS failures,
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

    def series(self, service_id: str, tr: TimeRange, rt: list[dict[str, Any]]) -> list[Series]:
        """Every series of the service with samples in ``tr`` (see :mod:`server.web.series`)."""
        return read_all(self._q, service_id, tr, rt)

    def series_names(self, service_id: str, tr: TimeRange) -> list[str]:
        """The names of the series the service page charts for ``tr`` (see :func:`read_names`)."""
        return read_names(self._q, service_id, tr, self.status_buckets(service_id, tr))

    def metric_series(self, service_id: str, name: str, tr: TimeRange) -> dict[str, Any]:
        """avg and max per bucket of a column or a checker metric, with its unit's name."""
        found = read_one(self._q, service_id, name, tr, self.status_buckets)
        return {"name": name, "unit": found.unit.name, "points": found.points}

    def first_check(self, service_id: str) -> datetime | None:
        """When the service was first checked (within retention), from the daily summary."""
        rows = self._q(
            "SELECT min(first_check) AS first FROM {db}.service_status_daily "
            "WHERE service_id = {sid:String} HAVING count() > 0",
            sid=service_id,
        )
        return rows[0]["first"] if rows else None

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
