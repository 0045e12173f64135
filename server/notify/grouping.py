"""Stage "hold back and group": news of one rule to one channel within ``group_wait``
becomes one notice.

Later news of an incident replaces earlier news of the same incident in the
group (firing then resolved: resolved); an incident that resolves while the
alert's next one begins keeps both. Whether that resolve is then sent at all is
the dedupe stage's decision (:mod:`server.notify.ledger`): a channel never told
of the firing hears nothing, so an incident shorter than ``group_wait`` sends
nothing (it is still in the alert history).
"""

from __future__ import annotations

from dataclasses import dataclass

from server.notify.base import Notice


@dataclass
class Group:
    notice: Notice
    due: float  # monotonic seconds


class Groups:
    """Notices waiting out ``group_wait``; not thread-safe (the worker holds its lock)."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._groups: dict[tuple[str, str], Group] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, notice: Notice, now: float) -> None:
        """Hold ``notice`` back, merged into a waiting one of the same kind and group."""
        key = (notice.kind, notice.group_key)
        waiting = self._groups.get(key)
        if waiting is None:
            self._groups[key] = Group(notice, now + self.wait)
        elif notice.items:
            merge(waiting.notice, notice)
        else:  # info notices (flapping): the newest text wins
            waiting.notice = notice

    def holds(self, alert_id: str, incident: str) -> bool:
        """Whether news of ``incident`` of ``alert_id`` waits here (firing, resolve or repeat)."""
        return any(carries(g.notice, alert_id, incident) for g in self._groups.values())

    def due(self, now: float) -> list[Notice]:
        """Notices whose wait is over, oldest first; they leave this stage."""
        ready = [k for k, g in self._groups.items() if g.due <= now]
        return [self._groups.pop(k).notice for k in ready]

    def next_due(self) -> float | None:
        return min((g.due for g in self._groups.values()), default=None)

    def release_all(self) -> list[Notice]:
        """Everything now, whatever its wait (shutdown)."""
        out = [g.notice for g in self._groups.values()]
        self._groups.clear()
        return out


def merge(into: Notice, extra: Notice) -> None:
    """Later news of an incident replaces earlier news of it (firing then resolved:
    resolved); news of another alert, or of the alert's next incident, joins at the end."""
    by_key = {(item.alert_id, item.incident): item for item in into.items}
    for item in extra.items:
        by_key[(item.alert_id, item.incident)] = item
    into.items = list(by_key.values())
    into.created = max(into.created, extra.created)


def carries(notice: Notice, alert_id: str, incident: str) -> bool:
    """Whether ``notice`` holds news of ``incident`` of ``alert_id``."""
    return any(i.alert_id == alert_id and i.incident == incident for i in notice.items)
