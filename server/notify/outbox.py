"""A channel's queue of notices written to the durable outbox and not yet settled.

Order: notices of one group (one rule) go out in the order they were queued,
so a resolve never overtakes its firing; different groups do not wait for one
another. One attempt at a time per channel: the channel worker is one thread
and takes the next delivery only after the last attempt returned.

Nothing here is ever evicted: every delivery was written to the durable outbox
before it was queued, so it was acknowledged and must be settled (delivered,
failed, expired or dropped by rule), never silently given up. ``capacity``
(``alerting.queue_size``) is the backlog at which the worker warns that the
receiver is slower than the news.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.notify.base import Notice
from server.notify.ledger import DeliveryState


@dataclass
class Delivery:
    notice: Notice
    state: DeliveryState
    due: float  # monotonic seconds of the next attempt


class Outbox:
    """Not thread-safe: the channel worker holds its lock around every call."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: list[Delivery] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, delivery: Delivery) -> bool:
        """Queue ``delivery``; True when this made the backlog pass ``capacity``."""
        self._items.append(delivery)
        return len(self._items) == self.capacity + 1

    def next_ready(self, now: float) -> Delivery | None:
        """The oldest due delivery that no earlier one of its group is still ahead of."""
        blocked: set[str] = set()
        for delivery in self._items:
            group = delivery.notice.group_key
            if group in blocked:
                continue
            if delivery.due <= now:
                return delivery
            blocked.add(group)
        return None

    def next_due(self) -> float | None:
        heads: dict[str, float] = {}
        for delivery in self._items:
            heads.setdefault(delivery.notice.group_key, delivery.due)
        return min(heads.values(), default=None)

    def remove(self, delivery: Delivery) -> None:
        self._items.remove(delivery)

    def pending(self) -> list[Delivery]:
        return list(self._items)
