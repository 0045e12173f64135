"""Delivery off the check path: one worker thread and one bounded outbox per channel.

A hung or failing channel therefore delays only itself. Within a channel,
notices of the same rule arriving within ``group_wait`` become one message.
A failed send is retried with exponential backoff and full jitter up to
``retries`` times; the final outcome (sent or failed, with the exact error) is
reported through ``on_result`` and lands in ``alert_events``.

:class:`Outbox` is the pure part (grouping, due times, retries) and is driven
by a :class:`~server.core.clock.Clock`; tests call :meth:`ChannelWorker.step` with a
fake clock instead of starting threads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.config.models import Config
from server.core.clock import Clock
from server.notify import build_channel
from server.notify.base import Channel, DeliveryError, Notice

log = logging.getLogger("lightbulb.notify")

# (notice, error or None on success, attempts made)
ResultHook = Callable[[Notice, str | None, int], None]
# Called just before a send: returns the notice still to send (items may have been
# inhibited or silenced meanwhile), or None when nothing is left.
RecheckHook = Callable[[Notice], Notice | None]


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [backoff/2, backoff * 2^(attempt-1)], capped."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return rng.uniform(min(self.backoff / 2, ceiling), ceiling)


@dataclass
class Delivery:
    notice: Notice
    due: float
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


class Outbox:
    def __init__(
        self,
        group_wait: float,
        policy: RetryPolicy,
        capacity: int,
        rng: random.Random | None = None,
    ) -> None:
        self.group_wait = group_wait
        self.policy = policy
        self.capacity = capacity
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._waiting: list[Delivery] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, notice: Notice, now: float) -> Delivery | None:
        """Queue ``notice``, merging it into a not-yet-sent one of the same group.

        Returns a delivery dropped to keep within ``capacity`` (the oldest), if any.
        """
        key = (notice.kind, notice.group_key)
        for waiting in self._waiting:
            same = (waiting.notice.kind, waiting.notice.group_key) == key
            if same and waiting.attempts == 0 and waiting.due > now:
                merge(waiting.notice, notice)
                return None
        self._waiting.append(Delivery(notice, now + self.group_wait))
        if len(self._waiting) > self.capacity:
            return self._waiting.pop(0)
        return None

    def due(self, now: float) -> list[Delivery]:
        ready = [d for d in self._waiting if d.due <= now]
        self._waiting = [d for d in self._waiting if d.due > now]
        return ready

    def next_due(self) -> float | None:
        return min((d.due for d in self._waiting), default=None)

    def retry(self, delivery: Delivery, now: float) -> bool:
        """Schedule another attempt; False once ``retries`` are used up."""
        if delivery.attempts > self.policy.retries:
            return False
        delivery.due = now + self.policy.delay(delivery.attempts, self.rng)
        self._waiting.append(delivery)
        return True

    def release_all(self, now: float) -> None:
        for delivery in self._waiting:
            delivery.due = min(delivery.due, now)


def merge(into: Notice, extra: Notice) -> None:
    """Later news of the same alert replaces earlier (firing then resolved: resolved)."""
    by_id = {item.alert_id: item for item in into.items}
    for item in extra.items:
        by_id[item.alert_id] = item
    into.items = list(by_id.values())


class ChannelWorker:
    def __init__(
        self,
        channel: Channel[Any],
        outbox: Outbox,
        clock: Clock,
        on_result: ResultHook,
        recheck: RecheckHook | None = None,
    ) -> None:
        self.channel = channel
        self.outbox = outbox
        self.clock = clock
        self.on_result = on_result
        self.recheck = recheck
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def submit(self, notice: Notice) -> None:
        with self._lock:
            dropped = self.outbox.add(notice, self.clock.monotonic())
        if dropped is not None:
            self.dropped += 1
            error = f"outbox of channel {self.channel.name} full; oldest notice dropped"
            log.error(error)
            self.on_result(dropped.notice, error, dropped.attempts)
        self._wake.set()

    def step(self) -> int:
        """Send everything due now; returns the number of send attempts."""
        with self._lock:
            ready = self.outbox.due(self.clock.monotonic())
        for delivery in ready:
            self._attempt(delivery)
        return len(ready)

    def _attempt(self, delivery: Delivery) -> None:
        notice: Notice | None = delivery.notice
        if self.recheck is not None and delivery.attempts == 0:
            notice = self.recheck(delivery.notice)
            if notice is None:
                return
            delivery.notice = notice
        delivery.attempts += 1
        try:
            self.channel.send(delivery.notice)
        except Exception as exc:
            error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            delivery.errors.append(error)
            with self._lock:
                again = not self._stop.is_set() and self.outbox.retry(
                    delivery, self.clock.monotonic()
                )
            log.warning(
                "channel %s: attempt %d failed%s: %s",
                self.channel.name,
                delivery.attempts,
                ", will retry" if again else ", giving up",
                error,
            )
            if not again:
                self.on_result(delivery.notice, error, delivery.attempts)
            return
        self.on_result(delivery.notice, None, delivery.attempts)

    # -- thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"lightbulb-notify-{self.channel.name}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a bug in one send must not end the channel's deliveries
                log.exception("channel %s: delivery loop error", self.channel.name)
            with self._lock:
                next_due = self.outbox.next_due()
            wait = 1.0 if next_due is None else next_due - self.clock.monotonic()
            self._wake.wait(min(max(wait, 0.0), 1.0))
            self._wake.clear()

    def halt(self) -> None:
        self._stop.set()
        self._wake.set()

    def stop(self, deadline: float) -> None:
        """Send what is waiting (no more retries), within ``deadline`` seconds."""
        self.halt()
        if self._thread is not None:
            self._thread.join(deadline)
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                self.outbox.release_all(self.clock.monotonic())
            self.step()


class Dispatcher:
    def __init__(self, workers: dict[str, ChannelWorker]) -> None:
        self.workers = workers

    def submit(self, notice: Notice) -> None:
        worker = self.workers.get(notice.channel)
        if worker is None:
            log.error("notice for unknown channel %s dropped", notice.channel)
            return
        worker.submit(notice)

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def step(self) -> int:
        return sum(worker.step() for worker in self.workers.values())

    def stop(self, deadline: float = 5.0) -> None:
        """Stop every worker; all share one ``deadline`` (a hung channel waits once)."""
        end = time.monotonic() + deadline
        for worker in self.workers.values():
            worker.halt()
        for worker in self.workers.values():
            worker.stop(max(end - time.monotonic(), 0.05))


def build_dispatcher(
    config: Config, clock: Clock, on_result: ResultHook, recheck: RecheckHook | None
) -> Dispatcher:
    """One worker per configured channel, with the ``alerting`` section's policy."""
    settings = config.alerting
    policy = RetryPolicy(
        settings.retries,
        settings.retry_backoff.total_seconds(),
        settings.retry_max_backoff.total_seconds(),
    )
    workers = {}
    for name, channel in config.channels.items():
        outbox = Outbox(settings.group_wait.total_seconds(), policy, settings.queue_size)
        built = build_channel(name, channel.type, channel.model_dump())
        workers[name] = ChannelWorker(built, outbox, clock, on_result, recheck)
    return Dispatcher(workers)
