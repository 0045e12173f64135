"""What every channel sends: a :class:`Notice` holding one or more alerts.

The webhook payload (:func:`payload`) is the documented, versioned wire format;
the other channels render the same notice their own way. A channel's ``send``
either returns (delivered) or raises :class:`ChannelError` saying exactly why and
whether trying again could help (``permanent``), as healthchecks.io's
transports do. The error ends up in ``alert_events.delivery_error``, in the
``notifications`` outbox and in ``lightbulb notify test``.

Every notice has an ``id`` once it enters the outbox: the idempotency key the
channels pass on (webhook header and payload field, e-mail Message-ID), the
same on every attempt and after a restart, so a receiver can drop a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from server.core.humanize import duration, number
from server.core.strict import StrictModel
from server.core.units import Duration, DurationRange

PAYLOAD_VERSION = "1"
# alert: a state change; repeat: repeat_interval; flapping: a service started flapping;
# fallback: a notice another channel could not deliver; test: `lightbulb notify test`;
# report: the daily report
NoticeKind = Literal["alert", "repeat", "flapping", "fallback", "test", "report"]
INFO_KINDS = ("flapping", "test", "report")
SEVERITY_COLOURS = {"critical": "#d62728", "warning": "#ff9f1c", "info": "#1f77b4"}
RESOLVED_COLOUR = "#2ca02c"


class ChannelError(Exception):
    """The channel could not deliver; the message says exactly why.

    ``permanent``: trying again cannot help (a 4xx answer, a refused login, an
    address the receiver rejects); otherwise the delivery stage retries until the
    notice's deadline. ``retry_after``: seconds the receiver asked us to wait
    (HTTP ``Retry-After``), or None. ``maybe_delivered``: the notice was sent
    and the answer never came (a timeout, a connection closed mid-response), so
    the receiver may have it; a resolve then still follows the firing.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered


class ChannelSettings(StrictModel):
    """Settings every channel has; each channel adds its own (strictly typed:
    :mod:`server.core.strict`)."""

    type: str = ""
    timeout: Annotated[Duration, DurationRange("1s", "5m")] = timedelta(seconds=10)  # to connect
    # To wait for the answer once the notice is sent. An attempt that is still
    # being answered is never repeated alongside: a slow receiver gets one copy.
    response_timeout: Annotated[Duration, DurationRange("1s", "1h")] = timedelta(minutes=2)


def incident_key(alert_id: str, started: datetime) -> str:
    """``<alert id>@<start>``, the start to the millisecond (what storage keeps), so the
    key is the same before and after a restart."""
    return f"{alert_id}@{started.isoformat(timespec='milliseconds')}"


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
    since: datetime  # when the alert entered ``state``
    message: str
    summary: str
    description: str = ""
    caused_by: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    started: datetime | None = None  # when the incident began firing (resolves: how long)

    @property
    def incident(self) -> str:
        """Names one firing period of one alert: what 'told' is tracked against."""
        return incident_key(self.alert_id, self.started or self.since)

    @property
    def lasted(self) -> timedelta | None:
        """How long the incident lasted, for a resolved item."""
        if self.state != "resolved" or self.started is None:
            return None
        return self.since - self.started


@dataclass
class Notice:
    """What one channel is told at once: grouped alerts of one rule (or one flapping service)."""

    channel: str
    kind: NoticeKind
    group_key: str
    items: list[AlertItem]
    created: datetime
    dashboard_url: str = ""
    text: str = ""  # for flapping, fallback, test and report notices: the headline
    body: str = ""  # for report notices: the plain-text report
    id: str = ""  # the idempotency key, given when the notice enters the outbox

    @property
    def status(self) -> str:
        if self.kind in INFO_KINDS:
            return self.kind
        return "firing" if any(i.state == "firing" for i in self.items) else "resolved"

    @property
    def severity(self) -> str:
        order = ("critical", "warning", "info")
        present = {i.severity for i in self.items}
        return next((s for s in order if s in present), "info")

    @property
    def title(self) -> str:
        """``[FIRING] Service down on DB (+1 more firing, 1 resolved)``: led by an alert
        in the notice's own status, so a grouped notice never reads "[FIRING] … recovered"."""
        if self.kind in ("flapping", "report", "fallback") or (self.text and not self.items):
            return self.text
        status = self.status
        first = next((i for i in self.items if i.state == status), self.items[0])
        same = sum(1 for i in self.items if i.state == first.state) - 1
        other = len(self.items) - 1 - same
        parts = [f"+{same} more {first.state}" if same else ""]
        parts.append(
            f"{other} {'resolved' if first.state == 'firing' else 'firing'}" if other else ""
        )
        more = ", ".join(p for p in parts if p)
        return f"[{status.upper()}] {first.summary}" + (f" ({more})" if more else "")

    def service_link(self, service_id: str) -> str:
        return f"{self.dashboard_url}/services/{service_id}" if self.dashboard_url else ""

    def lines(self) -> list[str]:
        """One human line per alert, shared by the plain-text renderings."""
        return [line(item) for item in self.items]


def line(item: AlertItem) -> str:
    """``FIRING critical Service down on db: connection refused``, one line per alert."""
    return f"{item.state.upper()} {item.severity} {item.rule_name} on {item.service_label}: " + (
        what(item)
    )


def what(item: AlertItem) -> str:
    """What happened, for people: the check's message (value, cause) while firing; for a
    resolve, what recovered after how long (the incident's duration)."""
    lasted = item.lasted
    if lasted is not None:
        now = f"; now: {item.message}" if item.message else ""
        return f"recovered after {duration(lasted)}{now}"
    value = "" if item.value is None else f" (value {number(item.value)})"
    cause = f" (caused by {item.caused_by})" if item.caused_by else ""
    return f"{item.message}{value}{cause}"


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
    """The webhook body, version ``PAYLOAD_VERSION`` (documented in the README).

    Text fields are passed as they are (JSON-encoded): a receiver that renders
    them into markup escapes them for that markup.
    """
    return {
        "version": PAYLOAD_VERSION,
        "idempotency_key": notice.id,
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
                "started_at": (item.started or item.since).isoformat(),
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
        """Seconds to connect."""
        return self.settings.timeout.total_seconds()

    @property
    def response_timeout(self) -> float:
        """Seconds to wait for the answer to a notice sent."""
        return self.settings.response_timeout.total_seconds()

    @property
    def attempt_limit(self) -> float:
        """Seconds one attempt may take in all, however the receiver trickles:
        ``timeout`` + ``response_timeout`` (see :mod:`server.notify.deadline`)."""
        return self.timeout + self.response_timeout

    def send(self, notice: Notice) -> None:
        """Deliver ``notice`` or raise :class:`ChannelError`."""
        raise NotImplementedError
