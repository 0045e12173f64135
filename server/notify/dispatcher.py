"""Delivery off the check path, as a pipeline of small stages per channel:

    hold back and group (:mod:`.grouping`) -> suppression recheck (the engine's)
    -> dedupe against what was told (:mod:`.ledger`) -> record in the durable
    outbox (:class:`DeliveryLog`) -> send with retry (:mod:`.retry`, :mod:`.outbox`)
    -> record the outcome -> fallback channels on a final failure

Each channel has one worker thread (:mod:`.worker`), so a hung or failing channel
delays only itself, and an attempt is never made while another to the same
channel is in flight. Every stage is a plain object the tests drive with a
pinned clock (:meth:`ChannelWorker.step`); the thread only calls ``step`` when
something is due.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from server.config.models import Config
from server.core.clock import Clock
from server.core.redact import redact_value
from server.core.repeats import Repeats
from server.notify import build_channel
from server.notify.base import AlertItem, ChannelError, Notice
from server.notify.ledger import DeliveryState, Ledger
from server.notify.retry import RetryPolicy
from server.notify.worker import ChannelWorker

log = logging.getLogger("lightbulb.notify")

# Called just before a notice is queued: returns it without the items that became
# silenced, inhibited or flapping meanwhile, or None when nothing is left.
Recheck = Callable[[Notice], Notice | None]


class DeliveryLog(Protocol):
    """Stage "record": where notices and outcomes are written (server.alerting.log)."""

    def queued(self, notice: Notice, state: DeliveryState) -> None:
        """Durable: returns once the notice is on disk; raises StorageError if it cannot be."""

    def outcome(self, notice: Notice, state: DeliveryState) -> None:
        """An attempt's result (``state.state``: retrying, delivered, failed or dropped)."""

    def dropped(self, channel: str, items: list[AlertItem], reason: str) -> None:
        """Alert news that will not be sent, and why."""


def policy_of(config: Config) -> RetryPolicy:
    a = config.alerting
    return RetryPolicy(
        a.retry_backoff.total_seconds(), a.retry_max_backoff.total_seconds(),
        a.delivery_deadline.total_seconds(), a.retries,
    )  # fmt: skip


class Dispatcher:
    """One worker per channel, the shared ledger, the retry policy and the fallbacks."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        delivery_log: DeliveryLog,
        recheck: Recheck | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.log = delivery_log
        self.recheck = recheck
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.ledger = Ledger()
        self.workers: dict[str, ChannelWorker] = {}
        self._started = False
        self._unwritten = Repeats(clock=clock)  # delivery records failing: said once a minute
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Build workers; on reload keep queued notices, swap changed channels' settings
        between attempts, and give up the notices of channels that were removed."""
        a = config.alerting
        self.policy = policy_of(config)
        self.fallback_channels = tuple(a.fallback_channels)
        if a.retries is not None:
            log.warning(
                "alerting.retries (%d) caps delivery retries; without it a notice is retried "
                "until alerting.delivery_deadline (%s)", a.retries, a.delivery_deadline,
            )  # fmt: skip
        wanted = {}
        for name, cfg in config.channels.items():
            wanted[name] = build_channel(name, cfg.type, cfg.model_dump())
        for name in [n for n in self.workers if n not in wanted]:
            gone = self.workers.pop(name)
            gone.halt()
            removed = ChannelError("channel removed from the config", permanent=True)
            for delivery in gone.outbox.pending():
                gone.settle(delivery, removed)
        for name, channel in wanted.items():
            worker = self.workers.get(name)
            if worker is None:
                worker = self.workers[name] = ChannelWorker(
                    channel, self, a.group_wait.total_seconds(), a.queue_size
                )
                if self._started:
                    worker.start()
                continue
            with worker._lock:
                worker.groups.wait = a.group_wait.total_seconds()
                worker.outbox.capacity = a.queue_size
                if worker.channel.settings != channel.settings:
                    worker.channel = channel  # the attempt in flight keeps the old object

    def record(self, write: Callable[[], None]) -> None:
        """Run a DeliveryLog write; storage trouble is logged, never raised into delivery.

        Logged as :class:`Repeats` says (the first failure as an error, then once a
        minute with a count, the recovery with how many records were not written),
        not once per notice: with storage down every delivery would otherwise log.
        """
        try:
            write()
        except Exception as exc:
            unlogged = self._unwritten.due()
            if unlogged == 0:
                log.error("delivery records are not being written (storage: %s); "
                          "deliveries go on, logged again when writes work", exc)  # fmt: skip
            elif unlogged is not None:
                log.error("delivery records are still not being written (storage: %s; %d more "
                          "since the last such line)", exc, unlogged)  # fmt: skip
            return
        failed = self._unwritten.ok()
        if failed:
            log.warning("delivery records are written again; %d were not written meanwhile",
                        failed)  # fmt: skip

    def submit(self, notice: Notice) -> None:
        notice = redact_value(notice)  # no secret reaches a channel or the outbox
        worker = self.workers.get(notice.channel)
        if worker is None:
            log.error("notice for unknown channel %s dropped", notice.channel)
            return
        worker.submit(notice)

    def holds_back(self, channel: str, alert_id: str, incident: str) -> bool:
        """Whether news of ``incident`` of ``alert_id`` for ``channel`` is still on its way
        to the ledger (waiting out group_wait): as pending as a queued notice."""
        worker = self.workers.get(channel)
        return worker is not None and worker.holds(alert_id, incident)

    def commit(self, notice: Notice) -> DeliveryState | None:
        """Queue ``notice`` durably now, without waiting out group_wait (reports, fallbacks)."""
        notice = redact_value(notice)  # no secret reaches a channel or the outbox
        worker = self.workers.get(notice.channel)
        if worker is None:
            log.error("notice for unknown channel %s dropped", notice.channel)
            return None
        return worker.commit(notice, recheck=False)

    def restore(
        self, records: list[tuple[Notice, DeliveryState]], moved: Mapping[str, str] | None = None
    ) -> int:
        """Rebuild the ledger from the outbox, oldest first; resume open notices.

        A notice whose delivery deadline passed while the daemon was down is not
        sent late: it is marked ``expired``, recorded, counted and logged with its
        id. Except a resolve whose firing the channel was (or may have been)
        delivered: the receiver would otherwise show the incident open forever, so
        it is sent with a fresh deadline. Notices this run already holds (queued since
        it started: a restore after storage came back late) are left as they are.
        ``moved`` (alert id -> its incident now) names alerts that fired again in this
        run before it could restore: an open notice telling only of older incidents'
        firings of those is stale, and is recorded ``dropped`` instead (a resolve is
        never stale: whoever heard its firing is owed it). Returns the number resumed.
        """
        resumed, now = 0, self.clock.now()
        known = self.ledger.notice_ids().union(*(w.notice_ids() for w in self.workers.values()))
        for notice, state in records:
            if state.notice_id in known:  # this run's own: read back by a late restore
                continue
            if moved and superseded(notice, state, moved):
                self.supersede(notice, state, SUPERSEDED)
                continue
            self.ledger.committed(notice, state)
            worker = self.workers.get(notice.channel)
            if not state.open:
                continue
            if worker is None:
                state.state, state.error = "failed", "channel no longer configured"
                state.permanent = True
                self.record(partial(self.log.outcome, notice, state))
                continue
            if state.deadline <= now:
                if not self._owed_resolve(notice):
                    worker.expire(notice, state, now)
                    continue
                state.deadline = self.policy.deadline_for(now)
            worker.resume(notice, state)
            resumed += 1
        return resumed

    def supersede(self, notice: Notice, state: DeliveryState, reason: str) -> None:
        """An open notice from before a restart that will not be sent (its news is stale):
        recorded as ``dropped`` with ``reason``, so no later restart resumes it."""
        state.state, state.error, state.retry_at = "dropped", reason, None
        state.changed_at = self.clock.now()
        log.info("notice %s to %s not resumed: %s", state.notice_id, notice.channel, reason)
        self.record(partial(self.log.outcome, notice, state))
        worker = self.workers.get(notice.channel)
        if worker is not None:  # counted once recorded (server.notify.worker)
            worker.counts["dropped"] += 1

    def _owed_resolve(self, notice: Notice) -> bool:
        """A notice of resolves only, each of a firing this channel heard (or may have)."""
        return (
            notice.kind == "alert"
            and bool(notice.items)
            and all(
                i.state == "resolved" and self.ledger.may_attempt(notice.channel, i)
                for i in notice.items
            )
        )

    def fallback(self, notice: Notice, state: DeliveryState) -> None:
        """Tell the fallback channels that ``notice`` could not be delivered."""
        if notice.kind == "fallback":
            return  # a fallback that fails is logged and recorded, not chained
        text = (
            f"Not delivered to {notice.channel} after {state.attempts} attempt(s): "
            f"{state.error}. It said: {notice.title}"
        )
        for name in self.fallback_channels:
            if name == notice.channel:
                continue
            self.commit(
                Notice(name, "fallback", f"fallback:{notice.id}", list(notice.items),
                       self.clock.now(), notice.dashboard_url, text)
            )  # fmt: skip

    def start(self) -> None:
        self._started = True
        for worker in self.workers.values():
            worker.start()

    def step(self) -> int:
        return sum(worker.step() for worker in list(self.workers.values()))

    def stop(self, deadline: float = 5.0) -> None:
        """Stop every worker; all share one ``deadline`` (a hung channel waits once)."""
        end = time.monotonic() + deadline
        for worker in self.workers.values():
            worker.halt()
        for worker in self.workers.values():
            worker.stop(max(end - time.monotonic(), 0.05))

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: worker.stats() for name, worker in sorted(self.workers.items())}


SUPERSEDED = "superseded: the alert fired again (a newer incident) before storage answered"


def superseded(notice: Notice, state: DeliveryState, moved: Mapping[str, str]) -> bool:
    """Whether open ``notice`` tells only of firings of incidents older than the one each
    alert of ``moved`` (alert id -> incident now) is in."""
    return (
        state.open
        and notice.kind in ("alert", "repeat")
        and bool(notice.items)
        and all(
            i.state == "firing" and i.alert_id in moved and i.incident != moved[i.alert_id]
            for i in notice.items
        )
    )
