"""What every channel sends: a :class:`Notice` holding one or more alerts.

The webhook payload (:func:`payload`) is the documented, versioned wire format;
the other channels render the same notice their own way. A channel's
``send`` either returns or raises :class:`DeliveryError` with the exact reason,
which ends up in ``alert_events.delivery_error`` and in ``lightbulb notify test``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict

from server.config.types import Duration

PAYLOAD_VERSION = "1"
NoticeKind = Literal["alert", "repeat", "flapping", "test", "report"]
SEVERITY_COLOURS = {"critical": "#d62728", "warning": "#ff9f1c", "info": "#1f77b4"}
RESOLVED_COLOUR = "#2ca02c"


class DeliveryError(Exception):
    """The channel could not deliver; the message says exactly why."""


class ChannelSettings(BaseModel):
    """Settings every channel has; each channel adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str = ""
    timeout: Duration = timedelta(seconds=10)


@dataclass(frozen=True)
class AlertItem:
    """One alert of one service, as receivers see it."""

    alert_id: str
    rule_id: str
    rule_name: str
    service_id: str
    service_label: str
    stack: str
    state: str  # firing | resolved
    severity: str
    condition: str
    threshold: float
    value: float | None
    since: datetime
    message: str
    summary: str
    description: str = ""
    caused_by: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Notice:
    """What one channel is told at once: grouped alerts of one rule (or one flapping service)."""

    channel: str
    kind: NoticeKind
    group_key: str
    items: list[AlertItem]
    created: datetime
    dashboard_url: str = ""
    text: str = ""  # for flapping, test and report notices: the headline
    body: str = ""  # for report notices: the plain-text report

    @property
    def status(self) -> str:
        if self.kind in ("flapping", "test", "report"):
            return self.kind
        return "firing" if any(i.state == "firing" for i in self.items) else "resolved"

    @property
    def severity(self) -> str:
        order = ("critical", "warning", "info")
        present = {i.severity for i in self.items}
        return next((s for s in order if s in present), "info")

    @property
    def title(self) -> str:
        if self.text and not self.items:
            return self.text
        if self.kind in ("flapping", "report"):
            return self.text
        first = self.items[0]
        more = f" (+{len(self.items) - 1} more)" if len(self.items) > 1 else ""
        return f"[{self.status.upper()}] {first.summary}{more}"

    def service_link(self, service_id: str) -> str:
        return f"{self.dashboard_url}/services/{service_id}" if self.dashboard_url else ""

    def lines(self) -> list[str]:
        """One human line per alert, shared by the plain-text renderings."""
        out = []
        for item in self.items:
            cause = f" (caused by {item.caused_by})" if item.caused_by else ""
            value = "" if item.value is None else f" value={item.value:g}"
            out.append(
                f"{item.state.upper()} {item.severity} {item.rule_name} on "
                f"{item.service_label}: {item.message}{value}{cause}"
            )
        return out


def info_item(subject: str, text: str, at: datetime, message: str = "") -> AlertItem:
    """An alert-shaped item for notices that have no alert (test, flapping)."""
    return AlertItem(
        alert_id=f"info:{subject}",
        rule_id="info",
        rule_name="Lightbulb notice",
        service_id=subject,
        service_label=subject,
        stack="lightbulb",
        state="firing",
        severity="info",
        condition="",
        threshold=0,
        value=None,
        since=at,
        message=message or text,
        summary=text,
    )


def payload(notice: Notice) -> dict[str, Any]:
    """The webhook body, version ``PAYLOAD_VERSION`` (documented in the README)."""
    return {
        "version": PAYLOAD_VERSION,
        "kind": notice.kind,
        "status": notice.status,
        "channel": notice.channel,
        "group_key": notice.group_key,
        "title": notice.title,
        "body": notice.body,
        "sent_at": notice.created.isoformat(),
        "dashboard_url": notice.dashboard_url,
        "alerts": [
            {
                "id": item.alert_id,
                "status": item.state,
                "rule_id": item.rule_id,
                "rule_name": item.rule_name,
                "service_id": item.service_id,
                "service_label": item.service_label,
                "stack": item.stack,
                "severity": item.severity,
                "condition": item.condition,
                "threshold": item.threshold,
                "value": item.value,
                "since": item.since.isoformat(),
                "message": item.message,
                "summary": item.summary,
                "description": item.description,
                "caused_by": item.caused_by or None,
                "labels": item.labels,
                "annotations": item.annotations,
                "dashboard_url": notice.service_link(item.service_id),
            }
            for item in notice.items
        ],
    }


SettingsT = TypeVar("SettingsT", bound=ChannelSettings)


class Channel(Generic[SettingsT]):
    """A configured channel; ``send`` is called from the channel's own delivery thread."""

    Settings: ClassVar[type[ChannelSettings]] = ChannelSettings

    def __init__(self, name: str, settings: SettingsT) -> None:
        self.name = name
        self.settings = settings

    @property
    def timeout(self) -> float:
        return self.settings.timeout.total_seconds()

    def send(self, notice: Notice) -> None:
        raise NotImplementedError


def redact(url: str) -> str:
    """``https://hooks.slack.com/…``: where a secret URL points, without the secret part."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{'/…' if parts.path.strip('/') else ''}"


def post_json(
    url: str,
    body: bytes,
    timeout: float,
    headers: dict[str, str] | None = None,
    *,
    accept: tuple[int, ...] = (200, 201, 202, 204),
    shown: str | None = None,
) -> requests.Response:
    """POST and turn every failure into a DeliveryError naming what happened.

    ``shown`` replaces the URL in messages when the URL itself is a secret
    (Slack webhooks): errors end up in logs and alert_events.
    """
    where = shown or url
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=timeout,
        )
    except requests.Timeout:
        raise DeliveryError(f"no response from {where} within {timeout:g}s") from None
    except requests.ConnectionError:
        raise DeliveryError(f"cannot reach {where}: connection refused or failed") from None
    except requests.RequestException as exc:
        detail = str(exc).replace(url, where)
        raise DeliveryError(f"cannot reach {where}: {detail}") from None
    if response.status_code not in accept:
        snippet = response.text[:200].strip()
        raise DeliveryError(f"{where} answered HTTP {response.status_code}: {snippet}")
    return response
