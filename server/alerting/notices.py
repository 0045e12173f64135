"""Alerts as receivers see them: items, notices and annotation rendering.

Wording: a firing item's summary is its rule's ``summary`` annotation or
"<rule> on <service>: <message>"; a resolve says what recovered and after how
long ("db recovered after 2m 31s (Service down)"), never the firing's text.
"""

from __future__ import annotations

from datetime import datetime

from checkers.base import Status
from server.alerting.history import History
from server.alerting.state import Alert, AlertState
from server.core.humanize import duration
from server.notify.base import AlertItem, Notice


def item(alert: Alert, fallback_start: datetime) -> AlertItem:
    """``alert``'s news now: firing, or resolved (with how long it lasted)."""
    firing = alert.state is AlertState.FIRING
    since = alert.since or fallback_start
    started = alert.started or since
    annotations = alert.annotations or {}
    label = alert.service.display_label
    if firing:
        summary = annotations.get("summary") or (
            f"{alert.rule.name} on {label}" + (f": {alert.message}" if alert.message else "")
        )
        description = annotations.get("description", "")
    else:
        summary = f"{label} recovered after {duration(since - started)} ({alert.rule.name})"
        description = ""
    return AlertItem(
        alert_id=alert.id,
        rule_id=alert.rule.id,
        rule_name=alert.rule.name,
        service_id=alert.service.id,
        service_label=label,
        stack=alert.service.stack,
        state="firing" if firing else "resolved",
        severity=alert.rule.severity,
        condition=alert.rule.condition_text,
        threshold=alert.rule.threshold,
        value=alert.value,
        since=since,
        message=alert.message,
        summary=summary,
        description=description,
        caused_by=alert.hold.cause,
        labels=alert.rule.labels,
        annotations=annotations,
        started=started,
    )


def flapping_text(label: str, share: str, window: int, held: bool = True) -> str:
    """The news that ``label`` flaps; ``held``: it has alerts whose notices wait for it to
    settle (else no rule watches it: the news is only recorded, for its incidents)."""
    return f"{label} is flapping: its status changed in {share} of its last {window} checks; " + (
        "notifications are held until it settles" if held else "no rule watches it"
    )


def flapping_notice(
    channel: str, service_id: str, text: str, at: datetime, dashboard_url: str
) -> Notice:
    return Notice(channel, "flapping", f"flapping:{service_id}", [], at, dashboard_url, text)


def render_annotations(alert: Alert, history: History) -> dict[str, str]:
    """The rule's annotation templates over the service's last result."""
    if not alert.rule.annotations:
        return {}
    result = history.last_result
    service, rule = alert.service, alert.rule
    return rule.render(
        {
            "service": {
                "id": service.id,
                "label": service.display_label,
                "type": service.type,
                "stack": service.stack,
            },
            "rule": {
                "id": rule.id,
                "name": rule.name,
                "severity": rule.severity,
                "threshold": rule.threshold,
                "condition": rule.condition_text,
            },
            "value": alert.value,
            "status": result.status.name if result else "UNKNOWN",
            "status_code": int(result.status) if result else int(Status.UNKNOWN),
            "message": alert.message,
            "details": dict(result.details) if result else {},
            "labels": rule.labels,
        }
    )
