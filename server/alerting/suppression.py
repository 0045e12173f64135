"""What may hold an alert's news back: flapping, silences and inhibition.

:meth:`Suppression.hold` is the one answer, asked both when a transition
happens and again just before its notice is queued (after ``group_wait``),
which closes the race where a downstream check reports before its upstream's.

Order: flapping first (the service's own state is not trustworthy), then a
matching silence, then inhibition: while an upstream service (``depends_on``,
followed transitively) has a firing alert, *firing* news of the downstream
service is held (its resolve is not: the upstream's trouble says nothing about
it recovering).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from server.alerting.silences import Silences
from server.alerting.state import NO_HOLD, Alert, AlertState, Hold
from server.core.humanize import duration


class Suppression:
    def __init__(
        self,
        silences: Silences,
        upstream: dict[str, list[str]],
        firing: Callable[[str], bool],
        flapping: Callable[[str], bool],
    ) -> None:
        """``upstream``: service -> the services it depends on; ``firing(service)``:
        whether the service has a firing alert; ``flapping(service)``: whether it flaps."""
        self.silences = silences
        self.upstream = upstream
        self.firing = firing
        self.flapping = flapping

    def hold(self, alert: Alert, now: datetime) -> Hold:
        """Why ``alert``'s current news may not go out at ``now`` (NO_HOLD: it may)."""
        sid = alert.service.id
        cause = self.cause(sid) if alert.state is AlertState.FIRING else ""
        if self.flapping(sid):
            return Hold("flapping", cause)
        silence = self.silences.matching(alert.rule.id, sid, alert.service.stack, now)
        if silence is not None:
            return Hold("silenced", cause, silence.id)
        if cause:
            return Hold("inhibited", cause)
        return NO_HOLD

    def cause(self, service_id: str) -> str:
        """The firing upstream furthest up the depends_on chain, or ''."""
        cause, seen, frontier = "", {service_id}, [service_id]
        while frontier:
            upper = []
            for sid in frontier:
                for up in self.upstream.get(sid, ()):
                    if up not in seen:
                        seen.add(up)
                        upper.append(up)
                        if self.firing(up):
                            cause = up
            frontier = upper
        return cause


def said(alert: Alert, result: str, group_wait: timedelta) -> str:
    """What became of an alert's news, for the log: held and why (``alert.hold``), or
    where it goes and after how long; never "queued" for news that is held."""
    hold = alert.hold
    if result == "silenced":
        return f"held: silenced by {hold.silence_id or 'a silence'}"
    if result == "inhibited":
        return f"held: inhibited while {hold.cause or 'an upstream service'} is firing"
    if result == "flapping":
        return f"held: {alert.service.id} is flapping"
    if result != "queued":
        return "no channel to tell" if result == "none" else result
    channels = ", ".join(alert.rule.channels)
    if group_wait.total_seconds() > 0:
        return f"held {duration(group_wait)} for group_wait, then queued for {channels}"
    return f"queued for {channels}"
