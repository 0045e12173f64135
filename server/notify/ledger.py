"""Stage "dedupe against what was told": per alert and channel, what the channel was
told of the alert's current incident, and how each of those deliveries stands.

The rules (each incident of an alert is one firing period):

- a firing item is news unless this incident's firing was already queued for
  the channel (queued, retrying, delivered or failed: a failed one is tried
  again only as a repeat, never in a loop);
- a resolved item is news only if the channel was queued this incident's
  firing, it has not failed, and no resolve is queued yet; and it is attempted
  only once that firing was *delivered* or *unconfirmed* (notices of one group
  go out in order, so by then the firing's fate is known). Nobody hears a
  resolve of a firing they never heard; whoever may have heard it (an attempt
  timed out or was cut off after the notice was sent) hears the resolve too;
- repeats and notices without alerts (flapping, reports, fallbacks) always pass.

The engine asks the same question (:meth:`Ledger.needs`) to decide when held
news (a silence ending, a flap settling) must go out, and the API reads the
delivery state (:meth:`Ledger.states`). Rebuilt from the ``notifications``
outbox after a restart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.notify.base import AlertItem, Notice

# queued: written to the outbox, no attempt yet; sending: its first attempt is in
# flight (shown, never stored: ``DeliveryState.sending`` over "queued"); retrying: an
# attempt failed, another is due (or in flight: ``in_flight`` says so); delivered;
# failed: permanently or past the deadline; unconfirmed: failed, but an attempt may
# have reached the receiver (it timed out, or the connection closed after the notice
# was sent); expired: its deadline passed while the daemon was down, never attempted
# since; dropped: not sent (a resolve whose firing was never delivered, an alert
# silenced before its turn)
STATES = ("queued", "sending", "retrying", "delivered", "failed", "unconfirmed", "expired",
          "dropped")  # fmt: skip
OPEN = ("queued", "retrying")
HEARD = ("delivered", "unconfirmed")  # the receiver has (or may have) the notice


@dataclass
class DeliveryState:
    """How one notice to one channel stands (one per notice, shared by its alerts)."""

    notice_id: str
    channel: str
    kind: str
    queued_at: datetime
    deadline: datetime
    state: str = "queued"
    changed_at: datetime | None = None
    attempts: int = 0
    error: str = ""
    retry_at: datetime | None = None
    permanent: bool = False  # failed: because of the answer (True) or the deadline (False)
    maybe_delivered: bool = False  # an attempt may have reached the receiver
    sending: bool = False  # an attempt is in flight now

    @property
    def open(self) -> bool:
        return self.state in OPEN

    @property
    def shown(self) -> str:
        """The state for people: a first attempt in flight is "sending", not "queued"."""
        return "sending" if self.sending and self.state == "queued" else self.state

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "notice_id": self.notice_id,
            "kind": self.kind,
            "state": self.shown,
            "in_flight": self.sending,
            "queued_at": self.queued_at.isoformat(),
            "changed_at": (self.changed_at or self.queued_at).isoformat(),
            "attempts": self.attempts,
            "error": self.error or None,
            "permanent": self.permanent if self.state == "failed" else None,
            "next_attempt_at": self.retry_at.isoformat() if self.retry_at else None,
            "deadline": self.deadline.isoformat(),
        }


@dataclass
class Told:
    """What one channel was told of one incident of one alert."""

    incident: str
    firing: DeliveryState | None = None  # the firing (or a repeat standing in for it)
    resolved: DeliveryState | None = None
    latest: DeliveryState | None = None  # the newest notice that carried this alert
    items: dict[str, str] = field(default_factory=dict)  # notice id -> item state


KEEP_INCIDENTS = 4  # per alert and channel: enough for an incident ending while the next begins


class Ledger:
    """Thread-safe: channel workers write it, the engine and the web read it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (alert id, channel) -> incident -> what was told, oldest incident first
        self._told: dict[tuple[str, str], dict[str, Told]] = {}

    def _get(self, alert_id: str, channel: str, incident: str) -> Told | None:
        return self._told.get((alert_id, channel), {}).get(incident)

    # -- the dedupe question -------------------------------------------------------
    def needs(self, channel: str, item: AlertItem) -> bool:
        """Whether ``item`` is news ``channel`` must still be told (see the module rules)."""
        with self._lock:
            return self._needs(channel, item)

    def _needs(self, channel: str, item: AlertItem) -> bool:
        told = self._get(item.alert_id, channel, item.incident)
        if item.state == "firing":
            return told is None or told.firing is None
        return (
            told is not None
            and told.firing is not None
            and told.firing.state not in ("failed", "expired")
            and told.resolved is None
        )

    def told_of(self, channel: str, alert_id: str, incident: str) -> bool:
        """Whether ``channel`` heard of ``incident`` (a notice of it delivered or
        unconfirmed) or a notice of it is on its way (queued, retrying). When not, its next
        notice of the incident is its first: the firing, not a repeat."""
        with self._lock:
            return self._told_of(channel, alert_id, incident)

    def _told_of(self, channel: str, alert_id: str, incident: str) -> bool:
        told = self._get(alert_id, channel, incident)
        return told is not None and any(
            s is not None and (s.open or s.state in HEARD) for s in (told.firing, told.latest)
        )

    def dedupe(self, notice: Notice) -> Notice | None:
        """The notice with only the items still news; None if nothing is left. A firing
        the channel never heard (its earlier one failed) is news again: it stands in for
        a repeat (:meth:`told_of`)."""
        if notice.kind != "alert" or not notice.items:
            return notice
        with self._lock:
            keep = [
                item
                for item in notice.items
                if self._needs(notice.channel, item)
                or (item.state == "firing" and not self._told_of(notice.channel, item.alert_id,
                                                                 item.incident))
            ]  # fmt: skip
        if not keep:
            return None
        notice.items = keep
        return notice

    def may_attempt(self, channel: str, item: AlertItem) -> bool:
        """A resolve goes out only after its firing was (or may have been) delivered."""
        if item.state != "resolved":
            return True
        with self._lock:
            told = self._get(item.alert_id, channel, item.incident)
            return told is not None and told.firing is not None and told.firing.state in HEARD

    def repeat_waits(self, channel: str, alert_id: str, incident: str, since: datetime) -> bool:
        """Whether a repeat of ``incident`` to ``channel`` must wait: a notice of it is
        still undelivered (queued or retrying: it already says the alert is firing, and a
        repeat queued behind it would go out in the same burst once the receiver is back),
        or one was delivered after ``since`` (a delivery restarts the repeat clock)."""
        with self._lock:
            told = self._get(alert_id, channel, incident)
            if told is None:
                return False
            for state in (told.firing, told.latest):
                if state is None:
                    continue
                if state.open:
                    return True
                if state.state == "delivered" and (state.changed_at or state.queued_at) > since:
                    return True
            return False

    # -- recording -------------------------------------------------------------------
    def committed(self, notice: Notice, state: DeliveryState) -> None:
        """``notice`` entered the outbox: its items are now told (or being told)."""
        if notice.kind not in ("alert", "repeat"):
            return
        with self._lock:
            for item in notice.items:
                incidents = self._told.setdefault((item.alert_id, notice.channel), {})
                told = incidents.get(item.incident)
                if told is None:
                    told = incidents[item.incident] = Told(item.incident)
                    while len(incidents) > KEEP_INCIDENTS:
                        del incidents[next(iter(incidents))]
                told.latest = state
                told.items[state.notice_id] = item.state
                if item.state == "resolved":
                    told.resolved = state
                elif told.firing is None or told.firing.state in ("failed", "expired", "dropped"):
                    told.firing = state

    def notice_ids(self) -> set[str]:
        """Ids of the alert and repeat notices recorded here."""
        with self._lock:
            return {nid for inc in self._told.values() for t in inc.values() for nid in t.items}

    def forget(self, alert_ids: set[str]) -> None:
        """Alerts that left the config (reload)."""
        with self._lock:
            for key in [k for k in self._told if k[0] in alert_ids]:
                del self._told[key]

    # -- reading ------------------------------------------------------------------------
    def _of(self, alert_id: str, incident: str) -> list[Told]:
        return [
            incidents[incident]
            for (aid, _), incidents in sorted(self._told.items())
            if aid == alert_id and incident in incidents
        ]

    def states(self, alert_id: str, incident: str) -> list[DeliveryState]:
        """The newest delivery per channel of ``incident`` of ``alert_id``."""
        with self._lock:
            return [t.latest for t in self._of(alert_id, incident) if t.latest is not None]

    def delivered(self, alert_id: str, incident: str, item_state: str) -> bool:
        """Whether some channel was delivered the ``item_state`` news of ``incident``."""
        with self._lock:
            for told in self._of(alert_id, incident):
                state = told.firing if item_state == "firing" else told.resolved
                if state is not None and state.state == "delivered":
                    return True
            return False
