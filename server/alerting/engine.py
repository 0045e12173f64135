"""The alert engine: check results in, alert news out, state as rows.

Evaluates rules (:mod:`.evaluate`), moves each alert's state machine
(:mod:`.state`), asks what holds news back (:mod:`.suppression`), and has a
:class:`~.telling.Teller` build the news (:mod:`.notices`) and hand it to the
delivery stages (:mod:`server.notify`). News goes out when the state changes
and, on every tick, whenever a channel lacks news it should have (a hold ended,
a restart): the dispatcher's ledger, the one notion of "told", answers that.
Every write goes through the alert log (:mod:`.log`), from which
:meth:`AlertEngine.restore` rebuilds it all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from checkers.base import CheckResult
from server.alerting import catalog, notices
from server.alerting.catalog import Catalog
from server.alerting.conditions import AbsentCondition, NewErrorPattern
from server.alerting.evaluate import NEW_PATTERN_WINDOW, evaluate, new_pattern_message
from server.alerting.history import History
from server.alerting.log import AlertLog, Snapshot
from server.alerting.restore import notices_since, put_back
from server.alerting.rules import Rule
from server.alerting.silences import Silence, Silences, from_config, new_silence_id
from server.alerting.state import Alert, AlertState, alert_id, enter, next_state
from server.alerting.suppression import Suppression, said
from server.alerting.telling import RECENT_RESOLVED, TELLS, Teller
from server.config.models import Config
from server.core.clock import Clock
from server.core.levels import ERROR_LEVELS
from server.logs.patterns import pattern_of
from server.notify.base import Notice
from server.notify.dispatcher import Dispatcher
from server.notify.ledger import DeliveryState

log = logging.getLogger("lightbulb.alerting")
WAITING_OR_FIRING = (AlertState.PENDING, AlertState.FIRING)


class AlertEngine:
    def __init__(
        self,
        config: Config,
        alert_log: AlertLog,
        dispatcher: Dispatcher | None,
        clock: Clock,
        baselines: Any = None,
        *,
        slo: Any = None,
    ) -> None:
        self.baselines = baselines  # server.analytics.baselines.Baselines, for anomaly rules
        self.slo = slo  # server.analytics.burn.BurnCounts, for slo_burn rules
        self.log = alert_log
        self.dispatcher = dispatcher
        if dispatcher is not None:
            dispatcher.recheck = self.recheck
        self.clock = clock
        self.started = clock.now()
        self.teller = Teller(alert_log, dispatcher, self.started)
        self.silences = Silences()
        self._lock = threading.RLock()
        self._catalog = Catalog()
        self._firing: dict[str, set[str]] = {}  # service -> ids of its firing alerts
        self._live: dict[str, Alert] = {}  # pending, firing, or resolved within a day
        self._book: dict[int, datetime] = {}  # error fingerprint -> first seen (fleet)
        self.configure(config)

    # -- configuration -----------------------------------------------------------------
    def configure(self, config: Config) -> None:
        """Build (or rebuild on reload) rules and alerts, keeping state of those that stay."""
        with self._lock:
            self.config = config
            flapping = config.alerting.flapping
            self._flap = (flapping.high, flapping.low)
            services = [s for s in config.services if s.enabled]
            rules = [Rule.from_config(r) for r in config.alert_rules if r.enabled]
            old = dict(self._catalog.alerts)
            was_flapping = {sid for sid, h in self._catalog.histories.items() if h.flapping}
            before = set(old)
            self._keep = max(max((r.window for r in rules), default=timedelta(0)),
                             timedelta(seconds=1))  # fmt: skip
            # patterns: no more than fingerprints and times, so an hour costs little
            self._pattern_keep = max(self._keep, NEW_PATTERN_WINDOW)
            self._catalog = c = catalog.build(
                services, rules, self._catalog, flap_window=flapping.window,
                started=self.started, book=self._book, baselines=self.baselines, slo=self.slo,
            )  # fmt: skip
            self._alerts, self._by_service, self._history = c.alerts, c.by_service, c.histories
            for sid in sorted(was_flapping - set(c.histories)):  # left while flapping
                self.teller.settled(sid, self.clock.now(), "no longer checked")
            self._absent, self._log_driven = c.absent, c.log_driven
            if self.dispatcher is not None:  # alerts that left the config: forget what was told
                self.dispatcher.ledger.forget(before - set(c.alerts))
            for gone in (old[a] for a in sorted(before - set(c.alerts))):
                if gone.state is AlertState.FIRING:
                    self.log.retired(self.clock.now(), gone.rule.id, gone.service.id,
                                     gone.rule.severity)  # fmt: skip
            upstream: dict[str, list[str]] = {}
            for relation in config.relations:
                if relation.enabled and relation.type == "depends_on":
                    upstream.setdefault(relation.source, []).append(relation.target)
            self.suppression = Suppression(
                self.silences, upstream, lambda sid: bool(self._firing.get(sid)),
                lambda sid: sid in self._history and self._history[sid].flapping,
            )  # fmt: skip
            self.teller.configure(self.suppression, config.dashboard_url)
            self._reindex()
            for silence in self.silences.all():
                if silence.source == "config":
                    self.silences.remove(silence.id)
            for index, cfg in enumerate(config.silences):
                self.silences.add(from_config(index, cfg))

    def _reindex(self) -> None:
        self._firing, self._live = {}, {}
        for alert in self._alerts.values():
            self._track(alert)

    def _track(self, alert: Alert) -> None:
        firing = self._firing.setdefault(alert.service.id, set())
        if alert.state is AlertState.FIRING:
            firing.add(alert.id)
        else:
            firing.discard(alert.id)
        if alert.state is not AlertState.INACTIVE:
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
        if history is None:  # not (or no longer) an enabled service of the configuration
            # its errors still make patterns known fleet-wide
            for entry in result.logs:
                if entry.level.upper() in ERROR_LEVELS:
                    self._book.setdefault(pattern_of(entry.level, entry.message)[1], at)
            return
        # every service's flapping is declared and recorded as it happens, with the
        # thresholds in force then, rule or no rule: incidents read those rows, so a
        # later change of ``alerting.flapping`` never rewrites a past incident
        history.add(result, at, self._keep, self._pattern_keep)
        flap = history.update_flapping(*self._flap)
        if flap is True:
            self._flapping(service_id, at, started=True)
        for alert in self._by_service.get(service_id, ()):
            holds, value = evaluate(
                alert.rule.condition, history, alert.rule.threshold, alert.rule.window, at
            )
            alert.message = result.message
            self._describe(alert, holds, history, at)
            self._step(alert, holds, value, at)
        if flap is False:
            self._flapping(service_id, at, started=False)

    def note_logs(
        self, rows: Iterable[tuple[str, datetime, str, int] | tuple[str, datetime, str, int, str]]
    ) -> None:
        """Pushed log rows (service, time, level, fingerprint[, pattern]): ERROR and above
        feed the log conditions, evaluated at the next tick."""
        with self._lock:
            for service_id, at, level, fp, *pattern in rows:
                history = self._history.get(service_id)
                if fp:
                    self._book.setdefault(fp, at)
                if history is not None and level in ERROR_LEVELS:
                    history.add_error(at, fp, *pattern)

    def tick(self, now: datetime | None = None) -> None:
        """Time-driven work: absent results, pending that elapsed, repeats, held news."""
        now = now or self.clock.now()
        with self._lock:
            for gone in self.silences.purge(now):
                log.info("silence %s expired", gone.id)
            for alert in self._log_driven:
                self._history[alert.service.id].trim(now - self._keep, now - self._pattern_keep)
                self._timed(alert, now)
            for alert in self._absent:
                self._timed(alert, now)
            for alert in list(self._live.values()):
                if alert.state is AlertState.PENDING and alert.holds:
                    self._step(alert, True, alert.value, now)
                else:
                    self.teller.reconcile(alert, now)
                old = alert.since is not None and now - alert.since > RECENT_RESOLVED
                if alert.state is AlertState.RESOLVED and old:
                    self._live.pop(alert.id, None)
        self.log.sync()

    def _timed(self, alert: Alert, now: datetime) -> None:
        """Evaluate a condition that time alone can change (absent, log-driven)."""
        history = self._history[alert.service.id]
        holds, value = evaluate(
            alert.rule.condition, history, alert.rule.threshold, alert.rule.window, now
        )
        if holds or alert.state is not AlertState.INACTIVE:
            if holds and isinstance(alert.rule.condition, AbsentCondition):
                alert.message = f"no result for {value:g} intervals"
            self._describe(alert, holds, history, now)
            self._step(alert, holds, value, now)

    @staticmethod
    def _describe(alert: Alert, holds: bool, history: History, now: datetime) -> None:
        """A log-pattern alert says which patterns are new, not the last check's message."""
        if holds and isinstance(alert.rule.condition, NewErrorPattern):
            alert.message = new_pattern_message(history, alert.rule.window, now)

    # -- the state machine (telling is the Teller's) -------------------------------------
    def _step(self, alert: Alert, holds: bool, value: float | None, now: datetime) -> None:
        alert.holds = holds
        if value is not None:
            alert.value = value
        to = next_state(alert, holds, now)
        if to is not None:
            self._transition(alert, to, now)
        elif alert.state is AlertState.FIRING:
            self.teller.reconcile(alert, now)

    def _transition(self, alert: Alert, to: AlertState, now: datetime) -> None:
        before = enter(alert, to, now)
        if to is AlertState.FIRING:
            alert.annotations = notices.render_annotations(alert, self._history[alert.service.id])
        self._track(alert)
        result = self.teller.tell(alert, now) if to in TELLS else ""
        self.log.alert_event(now, "transition", alert, before.value, to.value, result=result,
                  durable=to in TELLS)  # fmt: skip
        suffix = f" ({said(alert, result, self.config.alerting.group_wait)})" if result else ""
        log.info("alert %s: %s -> %s%s", alert.id, before.value, to.value, suffix)

    def recheck(self, notice: Notice) -> Notice | None:
        """Just before a notice is queued: drop items whose news is held now."""
        now = self.clock.now()
        keep = []
        with self._lock:
            for item in notice.items:
                alert = self._alerts.get(item.alert_id)
                hold = self.suppression.hold(alert, now) if alert is not None else None
                if alert is None or hold is None or not hold.reason:
                    keep.append(item)
                    continue
                alert.hold, alert.submitted = hold, None  # sent when the hold ends
                log.info("alert %s: %s news held at send time (%s)", alert.id, item.state,
                         said(alert, hold.reason, self.config.alerting.group_wait))  # fmt: skip
                self.log.alert_event(now, "recalled", alert, item.state, "held", result=hold.reason)
        if not keep:
            return None
        notice.items = keep
        return notice

    def _flapping(self, service_id: str, at: datetime, started: bool) -> None:
        alerts = self._by_service.get(service_id, [])
        self.teller.flapping(service_id, self._history[service_id], alerts, at, started)

    def acknowledge(self, alert_id: str, who: str, comment: str = "") -> Alert | None:
        """Someone is on it: stop repeats until the alert resolves. None if not firing."""
        now = self.clock.now()
        with self._lock:
            alert = self._alerts.get(alert_id)
            if alert is None or alert.state is not AlertState.FIRING:
                return None
            alert.acked_by = who
        self.log.ack(now, alert_id, who, comment=comment, severity=alert.rule.severity,
                     value=alert.value)  # fmt: skip
        log.info("alert %s acknowledged by %s", alert_id, who)
        return alert

    # -- silences ------------------------------------------------------------------------
    def add_silence(
        self, *, service: str, rule: str, start: datetime, end: datetime, author: str,
        comment: str,
    ) -> Silence:  # fmt: skip
        now = self.clock.now()
        silence = Silence(new_silence_id(), service, rule, start, end, author=author,
                          comment=comment, created_at=now)  # fmt: skip
        self.log.silence(silence, now)  # on disk before anyone is told it exists
        with self._lock:
            self.silences.add(silence)
            for alert in list(self._live.values()):
                self.teller.reconcile(alert, now)
        log.info("silence %s added by %s until %s: %s", silence.id, author, end, comment)
        return silence

    def expire_silence(self, silence_id: str) -> Silence | None:
        now = self.clock.now()
        with self._lock:
            silence = self.silences.get(silence_id)
            if silence is None or silence.source != "api":
                return None
            self.log.silence(replace(silence, end=now), now)  # refused (Busy): unchanged
            silence.end = now
            self.silences.remove(silence_id)
            for alert in list(self._live.values()):
                self.teller.reconcile(alert, now)
        log.info("silence %s expired early", silence_id)
        return silence

    # -- queries for the API ---------------------------------------------------------------
    def alerts(self) -> list[dict[str, Any]]:
        """Live alerts with what holds each back now and how its news stands per channel."""
        now = self.clock.now()
        with self._lock:
            out = []
            for alert in self._live.values():
                alert.hold = self.suppression.hold(alert, now)
                out.append({**alert.as_dict(), **self.teller.delivery(alert)})
            return out

    def firing_count(self) -> int:
        with self._lock:
            return sum(len(ids) for ids in self._firing.values())

    def alert(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    # -- restart ---------------------------------------------------------------------------
    def restore(self) -> int:
        """Rebuild states, acks, runtime silences, flap state, status runs and the told
        ledger from storage, resume the notices still queued; returns alerts restored.

        Also late, once storage answers after checks began (it was unreachable at
        start): what this run has seen wins. Only alerts with no transition yet and
        services with no result yet take the stored state, the dispatcher skips the
        notices this run queued itself, and a restored alert is judged at once by the
        results seen meanwhile, so a firing that ended during the outage is resolved
        (told once).
        """
        now = self.clock.now()
        window = max((h.flap_window for h in self._history.values()), default=0)
        span = max((h.flap_span for h in self._history.values()), default=0.0)
        snap = self.log.restore(list(self._history), window, now, timedelta(seconds=2 * span))
        queued = self._stored_notices(snap, now)  # every read before any change: a failed
        with self._lock:  # read (StorageError) leaves nothing half restored to redo
            # fired in this run before it could restore: their older news is stale
            moved = {a.id: a.incident for a in self._alerts.values()
                     if a.started is not None and a.started >= self.started}  # fmt: skip
            restored = self._put_back(snap)
            for sid, flapping in sorted(snap.flapping.items()):
                # stored as flapping, but no longer judged so (its service left, or this
                # run's checks found it settled before the restore): the period ends now,
                # never left open
                if flapping and not (sid in self._history and self._history[sid].flapping):
                    self.teller.settled(sid, now, "not flapping after the restart")
            for row in snap.alerts:  # firing when a restart dropped its rule or service
                if row["state"] == "firing" and alert_id(row["rule_id"], row["service_id"]) not in (
                    self._alerts
                ):  # fmt: skip
                    self.log.retired(now, row["rule_id"], row["service_id"], row["severity"])
        resumed = self.dispatcher.restore(queued, moved) if self.dispatcher is not None else 0
        with self._lock:
            for alert in restored:  # judged by what this run saw of its service, if anything
                history = self._history[alert.service.id]
                if history.first_result is not None and alert.state in WAITING_OR_FIRING:
                    holds, value = evaluate(alert.rule.condition, history, alert.rule.threshold,
                                            alert.rule.window, now)  # fmt: skip
                    self._step(alert, holds, value, now)
            for alert in list(self._live.values()):
                self.teller.reconcile(alert, now)  # news never queued before the stop goes now
        log.info("alert state restored: %d alerts, %d silences, %d notices resumed",
                 len(restored), len(snap.silences), resumed)  # fmt: skip
        return len(restored)

    def _stored_notices(self, snap: Snapshot, now: datetime) -> list[tuple[Notice, DeliveryState]]:
        """Stored notices that may still matter (:func:`.restore.notices_since`)."""
        if self.dispatcher is None:
            return []
        deadline = self.dispatcher.policy.deadline_for(now) - now
        return self.log.notices(notices_since(snap, self._alerts, self._live.values(), now,
                                              deadline))  # fmt: skip

    def _put_back(self, snap: Snapshot) -> list[Alert]:
        """The stored state this run has not superseded (under the lock,
        :func:`.restore.put_back`); the alerts restored."""
        restored = put_back(snap, self._alerts, self._history, self.silences, self._book)
        self._reindex()
        return restored
