"""The alert engine: rule state machines fed by check results.

Per (rule, service) an :class:`Alert` moves inactive -> pending -> firing ->
resolved. Separately from the state, the engine tracks what receivers were
last told (``announced``); whenever the two differ and nothing holds the news
back (a silence, an upstream alert that inhibits, flapping), it sends the news.
That one reconcile step covers transitions, silences expiring, inhibition
ending and flapping settling, so a notification goes out once per change and
is never lost while held.

Every transition and every delivery outcome is a row of ``alert_events``;
:meth:`AlertEngine.restore` rebuilds states and ``announced`` from those rows,
so a restart neither repeats nor drops a notification.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from checkers.base import CheckResult, Status
from server.alerting.conditions import AbsentCondition
from server.alerting.evaluate import NEW_PATTERN_WINDOW, evaluate, is_log_driven
from server.alerting.history import History
from server.alerting.rules import AlertState, Rule
from server.alerting.silences import Silence, Silences, new_silence_id, parse_cron
from server.config.models import Config, ServiceConfig, SilenceConfig
from server.core.clock import Clock
from server.core.levels import ERROR_LEVELS
from server.logs.patterns import pattern_of
from server.notify.base import AlertItem, Notice, NoticeKind
from server.recorder import RowSink
from server.storage import Storage

log = logging.getLogger("lightbulb.alerting")

ALERT_EVENT_COLUMNS = (
    "timestamp",
    "event",
    "rule_id",
    "service_id",
    "from_state",
    "to_state",
    "severity",
    "value",
    "message",
    "channels",
    "delivery_result",
    "delivery_error",
    "caused_by",
)
SILENCE_COLUMNS = (
    "silence_id",
    "service",
    "rule",
    "starts_at",
    "ends_at",
    "author",
    "comment",
    "created_at",
    "updated_at",
)
ALERT_TABLE_COLUMNS = {"alert_events": ALERT_EVENT_COLUMNS, "silences": SILENCE_COLUMNS}
RECENT_RESOLVED = timedelta(hours=24)


class NoticeSink(Protocol):
    def submit(self, notice: Notice) -> None: ...


@dataclass
class Alert:
    rule: Rule
    service: ServiceConfig
    state: AlertState = AlertState.INACTIVE
    since: datetime | None = None
    value: float | None = None
    holds: bool = False
    message: str = ""
    announced: bool = False  # receivers were last told "firing"
    last_sent: datetime | None = None
    suppressed: str = ""  # silenced | inhibited | flapping
    caused_by: str = ""
    silence_id: str = ""
    annotations: dict[str, str] | None = None
    acked_by: str = ""  # acknowledged: no repeats until it resolves

    @property
    def id(self) -> str:
        return f"{self.rule.id}:{self.service.id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_id": self.rule.id,
            "rule_name": self.rule.name,
            "service_id": self.service.id,
            "service_label": self.service.display_label,
            "stack": self.service.stack,
            "state": self.state.value,
            "severity": self.rule.severity,
            "condition": self.rule.condition_text,
            "threshold": self.rule.threshold,
            "value": self.value,
            "since": self.since.isoformat() if self.since else None,
            "message": self.message,
            "suppressed": self.suppressed or None,
            "caused_by": self.caused_by or None,
            "silence_id": self.silence_id or None,
            "notified": self.announced,
            "acknowledged_by": self.acked_by or None,
            "annotations": self.annotations or {},
            "labels": self.rule.labels,
        }


def silence_from_config(index: int, cfg: SilenceConfig) -> Silence:
    silence = Silence(
        id=cfg.id or f"config-{index}",
        service=cfg.service or "",
        rule=cfg.rule or "",
        author=cfg.author,
        comment=cfg.comment,
        source="config",
    )
    if cfg.start is not None:
        silence.start = _aware(cfg.start)
    if cfg.end is not None:
        silence.end = _aware(cfg.end)
    if cfg.cron:
        silence.cron = parse_cron(cfg.cron, cfg.timezone)
        silence.duration = cfg.duration or timedelta(hours=1)
    return silence


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class AlertEngine:
    def __init__(
        self,
        config: Config,
        sink: RowSink,
        notices: NoticeSink | None,
        clock: Clock,
        baselines: Any = None,
    ) -> None:
        self.baselines = baselines  # server.analytics.baselines.Baselines, for anomaly rules
        self.sink = sink
        self.notices = notices
        self.clock = clock
        self.started = clock.now()
        self.silences = Silences()
        self._lock = threading.RLock()
        self._alerts: dict[str, Alert] = {}
        self._by_service: dict[str, list[Alert]] = {}
        self._history: dict[str, History] = {}
        self._firing: dict[str, set[str]] = {}  # service -> ids of its firing alerts
        self._live: dict[str, Alert] = {}  # pending, firing, announced or recently resolved
        self._absent: list[Alert] = []
        self._log_driven: list[Alert] = []
        self._book: dict[int, datetime] = {}  # error fingerprint -> first seen (fleet)
        self.configure(config)

    # -- configuration -----------------------------------------------------------------
    def configure(self, config: Config) -> None:
        """Build (or rebuild on reload) rules and alerts, keeping state of those that stay."""
        with self._lock:
            self.config = config
            self.dashboard_url = config.dashboard_url
            flapping = config.alerting.flapping
            self._flap = (flapping.high, flapping.low)
            services = [s for s in config.services if s.enabled]
            rules = [Rule.from_config(r) for r in config.alert_rules if r.enabled]
            old = self._alerts
            self._alerts, self._by_service, self._absent, self._log_driven = {}, {}, [], []
            self._keep = max((r.window for r in rules), default=timedelta(0))
            self._keep = max(self._keep, timedelta(seconds=1))
            # patterns: no more than fingerprints and times, so an hour costs little
            self._pattern_keep = max(self._keep, NEW_PATTERN_WINDOW)
            self._history = self._build_alerts(services, rules, old, flapping.window)
            self._upstream: dict[str, list[str]] = {}
            for relation in config.relations:
                if relation.enabled and relation.type == "depends_on":
                    self._upstream.setdefault(relation.source, []).append(relation.target)
            self._firing = {}
            self._live = {}
            for alert in self._alerts.values():
                self._track(alert)
            for silence in self.silences.all():
                if silence.source == "config":
                    self.silences.remove(silence.id)
            for index, cfg in enumerate(config.silences):
                self.silences.add(silence_from_config(index, cfg))

    def _build_alerts(
        self, services: list[ServiceConfig], rules: list[Rule], old: dict[str, Alert], window: int
    ) -> dict[str, History]:
        """One alert per (rule, service it selects); state carried over from ``old``."""
        histories = {}
        exact: dict[str, list[Rule]] = {}
        patterns: list[Rule] = []
        for rule in rules:  # index by id: 10,000 rules x 2,000 services is no loop
            if rule.is_exact:
                exact.setdefault(rule.selector, []).append(rule)
            else:
                patterns.append(rule)
        for service in services:
            selected = exact.get(service.id, []) + [r for r in patterns if r.selects(service)]
            if not selected:
                continue  # no rule looks at this service: keep no history for it
            history = self._history.get(service.id)
            if history is None or history.flap_window != window:
                history = History(service.interval.total_seconds(), window)
                history.last_seen = self.started
            history.book = self._book
            history.service_id = service.id
            history.baselines = self.baselines
            history.interval = service.interval.total_seconds()
            histories[service.id] = history
            for rule in selected:
                alert = Alert(rule, service)
                previous = old.get(alert.id)
                if previous is not None:
                    alert = replace(previous, rule=rule, service=service)
                self._alerts[alert.id] = alert
                self._by_service.setdefault(service.id, []).append(alert)
                if isinstance(rule.condition, AbsentCondition):
                    self._absent.append(alert)
                elif is_log_driven(rule.condition):
                    self._log_driven.append(alert)
        return histories

    def _track(self, alert: Alert) -> None:
        firing = self._firing.setdefault(alert.service.id, set())
        if alert.state is AlertState.FIRING:
            firing.add(alert.id)
        else:
            firing.discard(alert.id)
        if alert.state in (AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED) or (
            alert.announced
        ):
            self._live[alert.id] = alert
        else:
            self._live.pop(alert.id, None)

    # -- results -----------------------------------------------------------------------
    def observe(self, service_id: str, result: CheckResult, at: datetime) -> None:
        with self._lock:
            self._observe(service_id, result, at)

    def observe_many(self, batch: Iterable[tuple[str, CheckResult, datetime]]) -> None:
        with self._lock:
            for service_id, result, at in batch:
                self._observe(service_id, result, at)

    def _observe(self, service_id: str, result: CheckResult, at: datetime) -> None:
        history = self._history.get(service_id)
        if history is None:
            # no rule on this service, but its errors still make patterns known fleet-wide
            for entry in result.logs:
                if entry.level.upper() in ERROR_LEVELS:
                    self._book.setdefault(pattern_of(entry.level, entry.message)[1], at)
            return
        history.add(result, at, self._keep, self._pattern_keep)
        flap = history.update_flapping(*self._flap)
        if flap is True:
            self._flapping(service_id, at, started=True)
        for alert in self._by_service.get(service_id, ()):
            holds, value = evaluate(
                alert.rule.condition, history, alert.rule.threshold, alert.rule.window, at
            )
            alert.message = result.message
            self._step(alert, holds, value, at)
        if flap is False:
            self._flapping(service_id, at, started=False)

    def note_logs(self, rows: Iterable[tuple[str, datetime, str, int]]) -> None:
        """Pushed log rows (service, time, level, fingerprint): ERROR and above feed the
        log conditions, evaluated at the next tick."""
        with self._lock:
            for service_id, at, level, fp in rows:
                history = self._history.get(service_id)
                if fp:
                    self._book.setdefault(fp, at)
                if history is not None and level in ERROR_LEVELS:
                    history.add_error(at, fp)

    def tick(self, now: datetime | None = None) -> None:
        """Time-driven work: absent results, pending that elapsed, repeats, held news."""
        now = now or self.clock.now()
        with self._lock:
            for gone in self.silences.purge(now):
                log.info("silence %s expired", gone.id)
            for alert in self._log_driven:
                history = self._history[alert.service.id]
                history.trim(now - self._keep, now - self._pattern_keep)
                holds, value = evaluate(
                    alert.rule.condition, history, alert.rule.threshold, alert.rule.window, now
                )
                if holds or alert.state is not AlertState.INACTIVE:
                    self._step(alert, holds, value, now)
            for alert in self._absent:
                history = self._history[alert.service.id]
                holds, value = evaluate(
                    alert.rule.condition, history, alert.rule.threshold, alert.rule.window, now
                )
                if holds or alert.state is not AlertState.INACTIVE:
                    if holds:
                        alert.message = f"no result for {value:g} intervals"
                    self._step(alert, holds, value, now)
            for alert in list(self._live.values()):
                if alert.state is AlertState.PENDING and alert.holds:
                    self._step(alert, True, alert.value, now)
                else:
                    self._reconcile(alert, now)
                if (
                    alert.state is AlertState.RESOLVED
                    and alert.since
                    and (now - alert.since > RECENT_RESOLVED and not alert.announced)
                ):
                    self._live.pop(alert.id, None)

    # -- state machine -----------------------------------------------------------------
    def _step(self, alert: Alert, holds: bool, value: float | None, now: datetime) -> None:
        alert.holds = holds
        if value is not None:
            alert.value = value
        state = alert.state
        if holds:
            if state in (AlertState.INACTIVE, AlertState.RESOLVED):
                pending = bool(alert.rule.pending)
                self._transition(alert, AlertState.PENDING if pending else AlertState.FIRING, now)
            elif state is AlertState.PENDING and alert.since is not None:
                if now - alert.since >= alert.rule.pending:
                    self._transition(alert, AlertState.FIRING, now)
            else:
                self._reconcile(alert, now)
        elif state is AlertState.PENDING:
            self._transition(alert, AlertState.INACTIVE, now)
        elif state is AlertState.FIRING:
            self._transition(alert, AlertState.RESOLVED, now)
        elif alert.announced:
            self._reconcile(alert, now)

    def _transition(self, alert: Alert, to: AlertState, now: datetime) -> None:
        before = alert.state
        alert.state, alert.since = to, now
        if to is not AlertState.FIRING:
            alert.acked_by = ""
        if to is AlertState.FIRING:
            alert.annotations = self._render(alert)
        self._track(alert)
        result = ""
        if to in (AlertState.FIRING, AlertState.RESOLVED):
            result = self._reconcile(alert, now, event=None)
        self._row(now, "transition", alert, before=before.value, after=to.value, result=result)
        suffix = f" ({result})" if result else ""
        log.info("alert %s: %s -> %s%s", alert.id, before.value, to.value, suffix)

    def _reconcile(self, alert: Alert, now: datetime, event: str | None = "notify") -> str:
        """Bring receivers in line with the state; returns what happened to the news."""
        firing = alert.state is AlertState.FIRING
        in_step = firing == alert.announced
        if in_step and not (firing and self._repeat_due(alert, now)):
            return ""  # the hot path: nothing new to tell, no need to look at silences
        reason, cause, silence = self._suppression(alert, firing, now)
        alert.suppressed, alert.caused_by, alert.silence_id = reason, cause, silence
        if in_step:
            if reason:
                return ""
            self._announce(alert, "repeat", now)
            self._row(now, "repeat", alert, before="firing", after="firing", result="queued")
            return "queued"
        if reason:
            return reason
        if not alert.rule.channels:
            alert.announced = firing
            self._track(alert)
            return "none"
        self._announce(alert, "alert", now)
        if event is not None:
            told = "firing" if firing else "resolved"
            self._row(now, event, alert, before=alert.state.value, after=told, result="queued")
        return "queued"

    def _repeat_due(self, alert: Alert, now: datetime) -> bool:
        if alert.acked_by or alert.last_sent is None:
            return False
        return now - alert.last_sent >= alert.rule.repeat

    def acknowledge(self, alert_id: str, who: str, comment: str = "") -> Alert | None:
        """Someone is on it: stop repeats until the alert resolves. None if not firing."""
        now = self.clock.now()
        with self._lock:
            alert = self._alerts.get(alert_id)
            if alert is None or alert.state is not AlertState.FIRING:
                return None
            alert.acked_by = who
            self._emit(
                now, "ack", rule_id=alert.rule.id, service_id=alert.service.id,
                before="firing", after="firing", severity=alert.rule.severity,
                value=alert.value, message=comment or f"acknowledged by {who}", caused_by=who,
            )  # fmt: skip
        log.info("alert %s acknowledged by %s", alert_id, who)
        return alert

    def _suppression(self, alert: Alert, firing: bool, now: datetime) -> tuple[str, str, str]:
        sid = alert.service.id
        cause = self._cause(sid) if firing else ""
        if self._history[sid].flapping:
            return "flapping", cause, ""
        silence = self.silences.matching(alert.rule.id, sid, alert.service.stack, now)
        if silence is not None:
            return "silenced", cause, silence.id
        if cause:
            return "inhibited", cause, ""
        return "", "", ""

    def _cause(self, service_id: str) -> str:
        """The firing upstream furthest up the depends_on chain, or ''."""
        cause, seen, frontier = "", {service_id}, [service_id]
        while frontier:
            upper = []
            for sid in frontier:
                for up in self._upstream.get(sid, ()):
                    if up not in seen:
                        seen.add(up)
                        upper.append(up)
                        if self._firing.get(up):
                            cause = up
            frontier = upper
        return cause

    # -- notifications -----------------------------------------------------------------
    def _announce(self, alert: Alert, kind: NoticeKind, now: datetime) -> None:
        firing = alert.state is AlertState.FIRING
        alert.announced = firing
        if firing:
            alert.last_sent = now
        self._track(alert)
        if self.notices is None:
            return
        item = self._item(alert, "firing" if firing else "resolved")
        for channel in alert.rule.channels:
            self.notices.submit(
                Notice(channel, kind, alert.rule.id, [item], now, self.dashboard_url)
            )

    def _item(self, alert: Alert, state: str) -> AlertItem:
        annotations = alert.annotations or {}
        summary = annotations.get("summary") or (
            f"{alert.rule.name} on {alert.service.display_label}"
            + (f": {alert.message}" if alert.message else "")
        )
        return AlertItem(
            alert_id=alert.id,
            rule_id=alert.rule.id,
            rule_name=alert.rule.name,
            service_id=alert.service.id,
            service_label=alert.service.display_label,
            stack=alert.service.stack,
            state=state,
            severity=alert.rule.severity,
            condition=alert.rule.condition_text,
            threshold=alert.rule.threshold,
            value=alert.value,
            since=alert.since or self.started,
            message=alert.message,
            summary=summary,
            description=annotations.get("description", ""),
            caused_by=alert.caused_by,
            labels=alert.rule.labels,
            annotations=annotations,
        )

    def _render(self, alert: Alert) -> dict[str, str]:
        if not alert.rule.annotations:
            return {}
        history = self._history[alert.service.id]
        result = history.last_result
        service = alert.service
        return alert.rule.render(
            {
                "service": {
                    "id": service.id,
                    "label": service.display_label,
                    "type": service.type,
                    "stack": service.stack,
                },
                "rule": {
                    "id": alert.rule.id,
                    "name": alert.rule.name,
                    "severity": alert.rule.severity,
                    "threshold": alert.rule.threshold,
                    "condition": alert.rule.condition_text,
                },
                "value": alert.value,
                "status": result.status.name if result else "UNKNOWN",
                "status_code": int(result.status) if result else int(Status.UNKNOWN),
                "message": alert.message,
                "details": dict(result.details) if result else {},
                "labels": alert.rule.labels,
            }
        )

    def _flapping(self, service_id: str, at: datetime, started: bool) -> None:
        history = self._history[service_id]
        alerts = self._by_service.get(service_id, [])
        share = f"{history.flap_share:.0%}"
        if not started:
            log.info("%s stopped flapping (%s of recent checks changed)", service_id, share)
            self._emit(
                at, "flapping_end", service_id=service_id, before="flapping", after="settled",
                message=share,
            )  # fmt: skip
            for alert in alerts:
                self._reconcile(alert, at)
            return
        channels = sorted({c for a in alerts for c in a.rule.channels})
        label = alerts[0].service.display_label if alerts else service_id
        text = (
            f"{label} is flapping: its status changed in {share} of its last "
            f"{history.flap_window} checks; notifications are held until it settles"
        )
        log.warning(text)
        self._emit(
            at, "flapping", service_id=service_id, after="flapping", result="queued",
            message=text, channels=channels,
        )  # fmt: skip
        if self.notices is not None:
            for channel in channels:
                self.notices.submit(
                    Notice(
                        channel,
                        "flapping",
                        f"flapping:{service_id}",
                        [],
                        at,
                        self.dashboard_url,
                        text,
                    )
                )

    def recheck(self, notice: Notice) -> Notice | None:
        """Just before sending: drop firing items that became inhibited, silenced or flapping.

        Closes the race where a downstream check reports before its upstream's:
        by the time ``group_wait`` has passed the upstream is firing too.
        """
        if notice.kind not in ("alert", "repeat"):
            return notice
        now = self.clock.now()
        keep = []
        with self._lock:
            for item in notice.items:
                alert = self._alerts.get(item.alert_id)
                if alert is None or item.state != "firing" or alert.state is not AlertState.FIRING:
                    keep.append(item)
                    continue
                reason, cause, silence = self._suppression(alert, True, now)
                if not reason:
                    keep.append(item)
                    continue
                alert.suppressed, alert.caused_by, alert.silence_id = reason, cause, silence
                if alert.announced and notice.kind == "alert":
                    alert.announced = False
                    self._track(alert)
                    self._row(
                        now, "recalled", alert, before="firing", after="recalled", result=reason
                    )
        if not keep:
            return None
        notice.items = keep
        return notice

    def delivered(self, notice: Notice, error: str | None, attempts: int) -> None:
        """Delivery outcome from a channel worker: one alert_events row per alert."""
        now = self.clock.now()
        outcome = "failed" if error else "sent"
        note = f"{attempts} attempt(s)"
        if not notice.items:
            self._emit(
                now, "delivery", service_id=notice.group_key, after=notice.kind, result=outcome,
                message=note, channels=[notice.channel], error=error or "",
            )  # fmt: skip
            return
        for item in notice.items:
            self._emit(
                now, "delivery", rule_id=item.rule_id, service_id=item.service_id,
                before=item.state, after=item.state, severity=item.severity, value=item.value,
                message=note, channels=[notice.channel], result=outcome, error=error or "",
            )  # fmt: skip
        if error:
            log.error("notification to %s failed after %s: %s", notice.channel, note, error)

    # -- rows ------------------------------------------------------------------------------
    def _row(
        self, at: datetime, event: str, alert: Alert, *, before: str, after: str, result: str
    ) -> None:
        self._emit(
            at,
            event,
            rule_id=alert.rule.id,
            service_id=alert.service.id,
            before=before,
            after=after,
            severity=alert.rule.severity,
            value=alert.value,
            message=alert.message,
            channels=list(alert.rule.channels) if result == "queued" else [],
            result=result,
            caused_by=alert.caused_by,
        )

    def _emit(
        self,
        at: datetime,
        event: str,
        *,
        rule_id: str = "",
        service_id: str = "",
        before: str = "",
        after: str = "",
        severity: str = "",
        value: float | None = None,
        message: str = "",
        channels: list[str] | None = None,
        result: str = "",
        error: str = "",
        caused_by: str = "",
    ) -> None:
        self.sink.add(
            "alert_events",
            (at, event, rule_id, service_id, before, after, severity, value, message,
             channels or [], result, error, caused_by),
        )  # fmt: skip

    # -- silences ------------------------------------------------------------------------
    def add_silence(
        self,
        *,
        service: str,
        rule: str,
        start: datetime,
        end: datetime,
        author: str,
        comment: str,
    ) -> Silence:
        now = self.clock.now()
        silence = Silence(
            new_silence_id(), service, rule, start, end, author=author, comment=comment,
            created_at=now,
        )  # fmt: skip
        with self._lock:
            self.silences.add(silence)
            self._persist_silence(silence, now)
            for alert in list(self._live.values()):
                self._reconcile(alert, now)
        log.info("silence %s added by %s until %s: %s", silence.id, author, end, comment)
        return silence

    def expire_silence(self, silence_id: str) -> Silence | None:
        now = self.clock.now()
        with self._lock:
            silence = self.silences.get(silence_id)
            if silence is None or silence.source != "api":
                return None
            self.silences.remove(silence_id)
            silence.end = now
            self._persist_silence(silence, now)
            for alert in list(self._live.values()):
                self._reconcile(alert, now)
        log.info("silence %s expired early", silence_id)
        return silence

    def _persist_silence(self, silence: Silence, now: datetime) -> None:
        self.sink.add(
            "silences",
            (silence.id, silence.service, silence.rule, silence.start, silence.end,
             silence.author, silence.comment, silence.created_at or now, now),
        )  # fmt: skip

    # -- queries for the API ---------------------------------------------------------------
    def alerts(self) -> list[dict[str, Any]]:
        """Live alerts with what holds each back right now (silence, upstream, flapping)."""
        now = self.clock.now()
        with self._lock:
            for alert in self._live.values():
                firing = alert.state is AlertState.FIRING
                reason, cause, silence = self._suppression(alert, firing, now)
                alert.suppressed, alert.caused_by, alert.silence_id = reason, cause, silence
            return [a.as_dict() for a in self._live.values()]

    def firing_count(self) -> int:
        with self._lock:
            return sum(len(ids) for ids in self._firing.values())

    def alert(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    # -- restart ---------------------------------------------------------------------------
    def restore(self, storage: Storage) -> int:
        """Rebuild states, ``announced``, runtime silences and flap state from storage.

        Returns the number of alerts restored. A notification that was queued
        but has no delivery row (the daemon died first) is sent again.
        """
        db = storage.database
        rows = storage.query(
            f"""
            SELECT rule_id, service_id,
                   argMaxIf(to_state, timestamp, event = 'transition') AS state,
                   maxIf(timestamp, event = 'transition') AS since,
                   argMaxIf(value, timestamp, event = 'transition') AS value,
                   argMaxIf(message, timestamp, event = 'transition') AS message,
                   argMaxIf(to_state, timestamp,
                            delivery_result = 'queued' OR event = 'recalled') AS told,
                   maxIf(timestamp, delivery_result = 'queued' AND to_state = 'firing') AS sent_at,
                   maxIf(timestamp, delivery_result = 'queued') AS queued_at,
                   maxIf(timestamp, event IN ('delivery', 'recalled')) AS done_at,
                   argMaxIf(caused_by, timestamp, event = 'ack') AS acked_by,
                   maxIf(timestamp, event = 'ack') AS acked_at
            FROM {db}.alert_events
            WHERE rule_id != ''
            GROUP BY rule_id, service_id
            """
        )
        flaps = storage.query(
            f"SELECT service_id, argMax(event, timestamp) AS last FROM {db}.alert_events "
            "WHERE event IN ('flapping', 'flapping_end') GROUP BY service_id"
        )
        silences = storage.query(
            f"SELECT silence_id, argMax(service, updated_at) AS service, "
            f"argMax(rule, updated_at) AS rule, argMax(starts_at, updated_at) AS starts_at, "
            f"argMax(ends_at, updated_at) AS ends_at, argMax(author, updated_at) AS author, "
            f"argMax(comment, updated_at) AS comment, min(created_at) AS created_at "
            f"FROM {db}.silences GROUP BY silence_id "
            f"HAVING ends_at > {{now:DateTime64(3, 'UTC')}}",
            {"now": self.clock.now()},
        )
        for row in storage.query(
            f"SELECT fingerprint, min(first_seen) AS first FROM {db}.error_patterns "
            "GROUP BY fingerprint"
        ):
            self._book.setdefault(int(row["fingerprint"]), _aware(row["first"]))
        window = max((h.flap_window for h in self._history.values()), default=0)
        statuses = []
        if self._history:  # only services some rule watches; none at all: nothing to read
            statuses = storage.query(
                f"SELECT service_id, status_code FROM {db}.service_status "
                f"WHERE service_id IN {{ids:Array(String)}} "
                f"AND timestamp > {{since:DateTime64(3, 'UTC')}} "
                f"ORDER BY service_id, timestamp DESC LIMIT {{n:UInt32}} BY service_id",
                {"ids": list(self._history), "since": self.clock.now() - timedelta(days=1),
                 "n": window},
            )  # fmt: skip
        return self._apply_restore(rows, flaps, silences, statuses)

    def _apply_restore(
        self,
        rows: list[dict[str, Any]],
        flaps: list[dict[str, Any]],
        silences: list[dict[str, Any]],
        statuses: list[dict[str, Any]],
    ) -> int:
        now = self.clock.now()
        with self._lock:
            self._restore_history(flaps, statuses)
            for row in silences:
                self.silences.add(
                    Silence(
                        row["silence_id"], row["service"], row["rule"],
                        _aware(row["starts_at"]), _aware(row["ends_at"]),
                        author=row["author"], comment=row["comment"],
                        created_at=_aware(row["created_at"]),
                    )
                )  # fmt: skip
            restored = sum(self._restore_alert(row) for row in rows)
            self._firing, self._live = {}, {}
            for alert in self._alerts.values():
                self._track(alert)
            for alert in list(self._live.values()):
                self._reconcile(alert, now)
        log.info("alert state restored: %d alerts, %d silences", restored, len(silences))
        return restored

    def _restore_history(self, flaps: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> None:
        recent: dict[str, list[Status]] = {}
        for row in statuses:
            recent.setdefault(row["service_id"], []).append(Status(row["status_code"]))
        for sid, codes in recent.items():
            if sid in self._history:
                self._history[sid].seed(list(reversed(codes)), None)
        for row in flaps:
            if row["service_id"] in self._history:
                self._history[row["service_id"]].flapping = row["last"] == "flapping"

    def _restore_alert(self, row: dict[str, Any]) -> bool:
        alert = self._alerts.get(f"{row['rule_id']}:{row['service_id']}")
        if alert is None or not row["state"]:
            return False
        alert.state = AlertState(row["state"])
        alert.since = _aware(row["since"])
        alert.value = row["value"]
        alert.message = row["message"]
        alert.holds = alert.state in (AlertState.PENDING, AlertState.FIRING)
        alert.announced = row["told"] == "firing"
        alert.last_sent = _aware(row["sent_at"]) if alert.announced else None
        if alert.state is AlertState.FIRING:
            alert.annotations = self._render(alert)
            if _aware(row["acked_at"]) >= alert.since:
                alert.acked_by = row["acked_by"]
        told = row["told"] in ("firing", "resolved")
        if told and _aware(row["queued_at"]) > _aware(row["done_at"]):
            log.warning("alert %s: re-sending a notification lost at shutdown", alert.id)
            alert.announced = not alert.announced  # so reconcile sends it again
        return True
