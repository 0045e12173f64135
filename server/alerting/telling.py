"""Telling: handing an alert's news to the channels still lacking it.

The engine (:mod:`.engine`) moves the state machine; a :class:`Teller` turns
what it decided into notices for the delivery stages (:mod:`server.notify`) and
records what was queued in the alert log: the news of a transition, news a
channel still lacks (a hold ended, a restart), repeats and flapping notices. The
dispatcher's ledger is the one notion of "told", asked both here and for what
the API shows of each alert's delivery. The engine calls in under its lock;
nothing here calls back into the engine.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from server.alerting import notices
from server.alerting.history import History
from server.alerting.log import AlertLog
from server.alerting.state import Alert, AlertState, repeat_due
from server.alerting.suppression import Suppression
from server.notify.base import AlertItem, Notice, NoticeKind
from server.notify.dispatcher import Dispatcher

log = logging.getLogger("lightbulb.alerting")
RECENT_RESOLVED = timedelta(hours=24)
TELLS = (AlertState.FIRING, AlertState.RESOLVED)


class Teller:
    """Queues alert news on ``dispatcher`` (None: no channels, nothing is told) and
    records it in ``alert_log``. :meth:`configure` sets what a config reload changes."""

    def __init__(
        self, alert_log: AlertLog, dispatcher: Dispatcher | None, started: datetime
    ) -> None:
        self.log = alert_log
        self.dispatcher = dispatcher
        self.started = started  # the fallback start of an alert firing since before a restart
        self.suppression: Suppression | None = None
        self.dashboard_url = ""

    def configure(self, suppression: Suppression, dashboard_url: str) -> None:
        self.suppression = suppression
        self.dashboard_url = dashboard_url

    def tell(self, alert: Alert, now: datetime, kind: NoticeKind = "alert") -> str:
        """Hand the alert's news to the channels still lacking it; returns what happened
        to it (``queued``, ``silenced``/``inhibited``/``flapping``, ``none``, or '').

        A repeat goes as the firing (kind ``alert``) to a channel that never heard of
        the incident (a kill during group_wait, a firing that failed): a channel's first
        notice of an incident is the firing. When every channel got it so, ``first``."""
        if not alert.rule.channels or self.dispatcher is None:
            if kind == "alert" and self.suppression is not None:
                # nobody to tell, but the log still says what held the news (incidents
                # group an inhibited firing under its cause)
                alert.hold = self.suppression.hold(alert, now)
                return alert.hold.reason or "none"
            return "none"
        key = (alert.incident, "firing" if alert.state is AlertState.FIRING else "resolved")
        if kind == "alert" and alert.submitted == key:
            return ""  # the hot path: this news was handed over, or needs no telling
        news = notices.item(alert, self.started)
        if kind == "repeat":
            wanted = [c for c in alert.rule.channels if not self._repeat_waits(c, alert, now)]
        else:
            wanted = [c for c in alert.rule.channels if self._needs(c, alert, news)]
        if not wanted and kind == "repeat":
            return ""
        if not wanted:
            alert.submitted = key
            return ""
        assert self.suppression is not None, "configure() first"
        alert.hold = self.suppression.hold(alert, now)
        if alert.hold.reason:
            return alert.hold.reason
        news = replace(news, caused_by=alert.hold.cause)
        alert.submitted = key
        if news.state == "firing":
            alert.told_at = now
        ledger = self.dispatcher.ledger
        firsts = [
            c
            for c in wanted
            if kind == "repeat" and not ledger.told_of(c, alert.id, alert.incident)
        ]
        for channel in wanted:
            label: NoticeKind = "alert" if channel in firsts else kind
            self.dispatcher.submit(
                Notice(channel, label, alert.rule.id, [news], now, self.dashboard_url)
            )
        return "first" if firsts and len(firsts) == len(wanted) else "queued"

    def _needs(self, channel: str, alert: Alert, news: AlertItem) -> bool:
        assert self.dispatcher is not None
        if news.state == "resolved" and alert.submitted == (news.incident, "firing"):
            return True  # its firing is still waiting out group_wait: they meet there
        return self.dispatcher.ledger.needs(channel, news)

    def _repeat_waits(self, channel: str, alert: Alert, now: datetime) -> bool:
        """A repeat waits while the channel's last notice of this incident is undelivered
        (waiting out group_wait counts: it is in no ledger yet), and until
        ``repeat_interval`` after it was delivered."""
        d = self.dispatcher
        assert d is not None
        if d.holds_back(channel, alert.id, alert.incident):
            return True
        return d.ledger.repeat_waits(channel, alert.id, alert.incident, now - alert.rule.repeat)

    def reconcile(self, alert: Alert, now: datetime) -> None:
        """Repeats, and news a channel still lacks (held until now, or lost to a restart)."""
        if alert.state not in TELLS or alert.started is None:
            return
        if not alert.rule.channels or self.dispatcher is None:
            return  # nobody to tell; what held its news was logged at the transition
        if repeat_due(alert, now):
            told = self.tell(alert, now, "repeat")
            if told in ("queued", "first"):  # durable: it restarts the clock
                event = "repeat" if told == "queued" else "notify"  # "first": no repeat at all
                self.log.alert_event(now, event, alert, "firing", "firing", result="queued",
                                     durable=True)  # fmt: skip
            if told:
                return
            # every channel's notice is still undelivered (or was just delivered): no
            # repeat yet; the news a channel lacks is still told below
        if self.tell(alert, now) == "queued":
            state = alert.state.value
            self.log.alert_event(now, "notify", alert, state, state, result="queued", durable=True)

    def flapping(
        self, service_id: str, history: History, alerts: list[Alert], at: datetime, started: bool
    ) -> None:
        """A service started (or stopped) flapping: record it and notify the channels of
        its alerts; when it settles, tell what its alerts' channels lack now."""
        share = f"{history.flap_share:.0%}"
        if not started:
            log.info("%s stopped flapping (%s of recent checks changed)", service_id, share)
            self.settled(service_id, at, share)
            for alert in alerts:
                self.reconcile(alert, at)
            return
        channels = sorted({c for a in alerts for c in a.rule.channels})
        label = alerts[0].service.display_label if alerts else service_id
        text = notices.flapping_text(label, share, history.flap_window, bool(alerts))
        log.warning(text)
        # value: the span of checks that made it flap (seconds), as judged now, so an
        # incident never measures it by a later window or interval
        self.log.event(at, "flapping", service_id=service_id, after="flapping",
                       result="queued" if channels else "", message=text, channels=channels,
                       value=history.flap_span, durable=True)  # fmt: skip
        if self.dispatcher is not None:
            for channel in channels:
                self.dispatcher.submit(
                    notices.flapping_notice(channel, service_id, text, at, self.dashboard_url)
                )

    def settled(self, service_id: str, at: datetime, why: str) -> None:
        """Record that ``service_id`` stopped flapping ``at`` (``why``: the share of
        recent checks that changed, or why it is no longer judged)."""
        self.log.event(at, "flapping_end", service_id=service_id, before="flapping",
                       after="settled", message=why, durable=True)  # fmt: skip

    def delivery(self, alert: Alert) -> dict[str, Any]:
        """``notified`` (some channel got the current news) and ``delivery`` per channel."""
        if self.dispatcher is None or alert.state not in TELLS or not alert.incident:
            return {"notified": False, "delivery": []}
        ledger = self.dispatcher.ledger
        return {
            "notified": ledger.delivered(alert.id, alert.incident, alert.state.value),
            "delivery": [s.as_dict() for s in ledger.states(alert.id, alert.incident)],
        }
