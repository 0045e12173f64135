"""The daily report: how the fleet did yesterday, from stored history only.

Per service uptime; incidents (the same incidents as ``/incidents``, from
:mod:`server.analytics.incidents`: an alert's firing period with what it
inhibited, or a run of FAILED checks of a service no alert rule watches; clipped
to the day, with duration and cause); MTTR; top new and top growing error
patterns; anomaly alerts. Rendered to HTML and text with Jinja (templates/report/),
stored in ``reports`` and sent to ``report.channels``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from server.analytics.incidents import Incidents
from server.config.models import Config
from server.core.status import sql_up
from server.storage import Storage
from server.templating import environment

_env = environment("report")
REPORT_COLUMNS = ("day", "generated_at", "summary", "html", "text")


@dataclass
class Incident:
    """One incident of ``/incidents`` as the day saw it: ``rule_id`` '' for a run of
    FAILED checks; ``service_id`` the services affected, the cause's first."""

    rule_id: str
    service_id: str
    severity: str
    start: datetime
    end: datetime | None  # None: still firing at the end of the day
    duration_s: float
    cause: str
    id: str = ""  # the incident's id on /incidents/<id>

    @property
    def duration(self) -> str:
        return _duration(self.duration_s)


@dataclass
class Report:
    day: date
    generated_at: datetime
    services: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    new_patterns: list[dict[str, Any]] = field(default_factory=list)
    growing_patterns: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mttr_s(self) -> float | None:
        done = [i.duration_s for i in self.incidents if i.end is not None]
        return sum(done) / len(done) if done else None

    @property
    def title(self) -> str:
        return f"Lightbulb daily report for {self.day.isoformat()}"

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "services": self.services,
            "incidents": [
                {**asdict(i), "start": i.start.isoformat(),
                 "end": i.end.isoformat() if i.end else None}
                for i in self.incidents
            ],
            "mttr_seconds": self.mttr_s,
            "new_patterns": self.new_patterns,
            "growing_patterns": self.growing_patterns,
            "anomalies": self.anomalies,
        }  # fmt: skip

    def render(self) -> tuple[str, str]:
        context = {"r": self, "mttr": _duration(self.mttr_s)}
        return (
            _env.get_template("report.html").render(context),
            _env.get_template("report.txt").render(context),
        )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def day_bounds(day: date, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """``[start, end)`` of calendar ``day`` in ``zone`` as UTC instants: from one local
    midnight to the next, so 23 or 25 hours long on a DST change day."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def build(storage: Storage, config: Config, day: date, now: datetime, zone: tzinfo = UTC) -> Report:
    """The report of calendar ``day`` in ``zone`` (``report.timezone``; the daemon's
    rule is in :mod:`server.periodic`)."""
    start, end = day_bounds(day, zone)
    report = Report(day, now)
    utc_day = start == datetime(day.year, day.month, day.day, tzinfo=UTC) and (
        end - start == timedelta(days=1)
    )
    report.services = _uptime(storage, config, day, None if utc_day else (start, end))
    # today's report is built before the day ends: an open incident runs to now, not midnight
    until = min(end, max(now, start))
    found = Incidents(storage, config).between(start, until, details=False)
    clipped = (_incident(i, start, until) for i in found)
    report.incidents = sorted((i for i in clipped if i is not None), key=lambda i: i.start)
    report.new_patterns, report.growing_patterns = _patterns(storage, start, end)
    anomaly_rules = {r.id for r in config.alert_rules if r.condition.strip().startswith("anomaly")}
    anomalous = sorted(
        (m for i in found for m in i.members if m.rule_id in anomaly_rules),
        key=lambda m: m.start,
    )
    report.anomalies = [
        {"rule_id": m.rule_id, "service_id": m.service_id, "start": m.start.isoformat(),
         "duration": _duration((min(m.end or until, until) - max(m.start, start)).total_seconds())}
        for m in anomalous
    ]  # fmt: skip
    return report


def _uptime(
    storage: Storage, config: Config, day: date, window: tuple[datetime, datetime] | None
) -> list[dict[str, Any]]:
    """Checks and uptime per service: from the UTC daily rollup for a UTC day, else
    counted from the results within ``window`` (a local day)."""
    if window is None:
        rows = storage.query(
            f"SELECT service_id, sum(checks) AS checks, sum(up) AS up "
            f"FROM {storage.database}.service_status_daily WHERE day = {{day:Date}} "
            f"GROUP BY service_id ORDER BY service_id",
            {"day": day.isoformat()},
        )
    else:
        rows = storage.query(
            f"SELECT service_id, count() AS checks, countIf({sql_up('status_code')}) AS up "
            f"FROM {storage.database}.service_status "
            f"WHERE timestamp >= {{start:DateTime64(3, 'UTC')}} "
            f"AND timestamp < {{end:DateTime64(3, 'UTC')}} "
            f"GROUP BY service_id ORDER BY service_id",
            {"start": window[0], "end": window[1]},
        )
    labels = {s.id: s.display_label for s in config.services}
    return [
        {
            "service_id": r["service_id"],
            "label": labels.get(r["service_id"], r["service_id"]),
            "checks": int(r["checks"]),
            "uptime": round(100 * int(r["up"]) / int(r["checks"]), 3) if r["checks"] else None,
        }
        for r in rows
    ]


def _incident(found: Any, start: datetime, end: datetime) -> Incident | None:
    """An incident of :class:`server.analytics.incidents.Incidents` clipped to ``[start, end)``."""
    finish = found.end if found.end is not None and found.end <= end else None
    begin, stop = max(found.start, start), min(found.end or end, end)
    if stop <= begin:
        return None
    root = found.root
    return Incident(
        root.rule_id, ", ".join(found.services), found.severity, begin, finish,
        (stop - begin).total_seconds(), root.message, found.id,
    )  # fmt: skip


def _patterns(
    storage: Storage, start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = storage.query(
        f"""
        SELECT anyMerge(pattern) AS pattern, groupUniqArrayMerge(services) AS services,
               sumIf(count, hour >= toDateTime({{start:DateTime64(3, 'UTC')}}, 'UTC')) AS today,
               sumIf(count, hour < toDateTime({{start:DateTime64(3, 'UTC')}}, 'UTC')) AS before,
               fingerprint IN (
                   SELECT fingerprint FROM {storage.database}.error_patterns
                   GROUP BY fingerprint
                   HAVING min(first_seen) >= {{start:DateTime64(3, 'UTC')}}
               ) AS is_new
        FROM {storage.database}.error_patterns
        WHERE hour >= toDateTime({{prev:DateTime64(3, 'UTC')}}, 'UTC')
          AND hour < toDateTime({{end:DateTime64(3, 'UTC')}}, 'UTC')
        GROUP BY fingerprint
        HAVING today > 0
        """,
        {"start": start, "end": end, "prev": start - timedelta(days=1)},
    )
    new = [
        {"pattern": r["pattern"], "count": int(r["today"]), "services": r["services"]}
        for r in rows
        if r["is_new"]
    ]
    growing = [
        {"pattern": r["pattern"], "count": int(r["today"]), "before": int(r["before"]),
         "services": r["services"]}
        for r in rows if int(r["before"]) > 0 and int(r["today"]) > int(r["before"])
    ]  # fmt: skip
    new.sort(key=lambda p: -p["count"])
    growing.sort(key=lambda p: -(p["count"] / max(p["before"], 1)))
    return new[:10], growing[:10]


def publish(report: Report, sink: Any, notices: Any, config: Config, alert_log: Any) -> int:
    """Queue the report's notices to ``report.channels``, then store it; returns notices queued.

    Exactly once across a crash: each notice's id is ``report-<day>-<channel>``,
    queued in the durable outbox unless that id is there already, and the report
    row (which marks the day done) is stored last, durably.
    """
    from server.notify.base import Notice

    html, text = report.render()
    queued = 0
    for channel in config.report.channels if notices is not None else ():
        notice = Notice(channel, "report", f"report:{report.day}", [], report.generated_at,
                        config.dashboard_url, report.title, text,
                        id=f"report-{report.day}-{channel}")  # fmt: skip
        if not alert_log.has_notice(notice.id) and notices.commit(notice) is not None:
            queued += 1
    summary = json.dumps(report.summary(), default=str)
    sink.add_durable("reports", [(report.day, report.generated_at, summary, html, text)])
    return queued


def latest_day(storage: Storage) -> date | None:
    rows = storage.query(
        f"SELECT max(day) AS day FROM {storage.database}.reports HAVING count() > 0"
    )
    return rows[0]["day"] if rows else None
