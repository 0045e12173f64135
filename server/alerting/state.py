"""The alert state machine, as functions of (alert, holds, value, now).

Per (rule, service) an :class:`Alert` moves inactive -> pending -> firing ->
resolved (-> pending or firing again). Nothing here sends or writes: the engine
asks :func:`next_state` and records what :func:`enter` changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from server.core.humanize import moment, number
from server.notify.base import incident_key

if TYPE_CHECKING:
    from server.alerting.rules import Rule
    from server.config.models import ServiceConfig


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Hold:
    """What holds an alert's news back now: ``reason`` is '' (nothing), ``flapping``,
    ``silenced`` or ``inhibited``; ``cause`` the firing upstream service, if any."""

    reason: str = ""
    cause: str = ""
    silence_id: str = ""


NO_HOLD = Hold()


def alert_id(rule_id: str, service_id: str) -> str:
    """An alert's id, ``<rule>:<service>``: one rule's alert on one service."""
    return f"{rule_id}:{service_id}"


@dataclass(eq=False)  # an alert is itself: compared by identity, never field by field
class Alert:
    rule: Rule
    service: ServiceConfig
    state: AlertState = AlertState.INACTIVE
    since: datetime | None = None  # when it entered ``state``
    value: float | None = None
    holds: bool = False  # the condition held at the last evaluation
    message: str = ""
    started: datetime | None = None  # when the current (or last) incident began firing
    incident: str = ""  # names that firing period (incident_key); '' before the first
    told_at: datetime | None = None  # last firing or repeat news handed to the channels
    # (incident, state) of the news last handed over, or found needing no telling:
    # the hot path's one comparison (cleared when that news is held back instead)
    submitted: tuple[str, str] | None = None
    hold: Hold = NO_HOLD
    annotations: dict[str, str] | None = None
    acked_by: str = ""  # acknowledged: no repeats until it resolves

    @property
    def id(self) -> str:
        return alert_id(self.rule.id, self.service.id)

    def begin(self, started: datetime | None) -> None:
        """Set the current incident's start (and with it ``incident``)."""
        self.started = started
        self.incident = incident_key(self.id, started) if started else ""

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
            "value_text": number(self.value),
            "since": self.since.isoformat() if self.since else None,
            "since_text": moment(self.since),
            "started": self.started.isoformat() if self.started else None,
            "message": self.message,
            "suppressed": self.hold.reason or None,
            "caused_by": self.hold.cause or None,
            "silence_id": self.hold.silence_id or None,
            "acknowledged_by": self.acked_by or None,
            "annotations": self.annotations or {},
            "labels": self.rule.labels,
        }


def next_state(alert: Alert, holds: bool, now: datetime) -> AlertState | None:
    """The state ``alert`` moves to given whether its condition ``holds`` at ``now``;
    None when it stays. Pure."""
    state = alert.state
    if holds:
        if state in (AlertState.INACTIVE, AlertState.RESOLVED):
            return AlertState.PENDING if alert.rule.pending else AlertState.FIRING
        if state is AlertState.PENDING and alert.since is not None:
            return AlertState.FIRING if now - alert.since >= alert.rule.pending else None
        return None
    if state is AlertState.PENDING:
        return AlertState.INACTIVE
    if state is AlertState.FIRING:
        return AlertState.RESOLVED
    return None


def enter(alert: Alert, to: AlertState, now: datetime) -> AlertState:
    """Move ``alert`` to ``to`` at ``now``; returns the state it left."""
    before = alert.state
    alert.state, alert.since = to, now
    if to is AlertState.FIRING:
        alert.begin(now)
        alert.told_at = None
    else:
        alert.acked_by = ""
    return before


def restore_state(alert: Alert, row: dict[str, Any]) -> bool:
    """Put back what the alert log kept of ``alert`` (see AlertLog.restore); False if nothing."""
    if not row["state"]:
        return False
    alert.state = AlertState(row["state"])
    alert.since, alert.value, alert.message = _utc(row["since"]), row["value"], row["message"]
    alert.holds = alert.state in (AlertState.PENDING, AlertState.FIRING)
    started = _utc(row["started"])
    alert.begin(started if started.year > 1970 else None)  # 1970: never fired
    if alert.state is AlertState.FIRING and alert.started is not None:
        if _utc(row["acked_at"]) >= alert.started:
            alert.acked_by = row["acked_by"]
        told = _utc(row["told_at"])
        alert.told_at = told if told >= alert.started else None
    return True


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def repeat_due(alert: Alert, now: datetime) -> bool:
    """Firing, not acknowledged, and told longer than ``repeat_interval`` ago."""
    if alert.state is not AlertState.FIRING or alert.acked_by or alert.told_at is None:
        return False
    return now - alert.told_at >= alert.rule.repeat
