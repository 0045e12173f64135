"""One channel's worker: the stages of :mod:`server.notify.dispatcher` for one channel,
run by one thread, so one attempt at a time and a hung receiver delays only itself.

Its counts (``/metrics``: delivered, failed, dropped, expired) move only after the
record of what they count has been handed to the delivery log: whoever sees a count
move (a test waiting on ``/metrics``, a scrape, a stop that follows) finds its record
written too, never a count ahead of its row.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from server.notify.base import Channel, ChannelError, Notice
from server.notify.grouping import Groups, carries
from server.notify.ledger import DeliveryState
from server.notify.outbox import Delivery, Outbox

if TYPE_CHECKING:
    from server.notify.dispatcher import Dispatcher

log = logging.getLogger("lightbulb.notify")
UNTOLD = "nothing new for this channel: it was not told of this firing, or already was"
UNHEARD = "not sent: its firing was never delivered to this channel"


class ChannelWorker:
    def __init__(
        self,
        channel: Channel[Any],
        dispatcher: Dispatcher,
        group_wait: float,
        capacity: int,
    ) -> None:
        self.channel = channel
        self.dispatcher = dispatcher
        self.groups = Groups(group_wait)
        self.outbox = Outbox(capacity)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.in_flight: Delivery | None = None
        self._handing: list[Notice] = []  # out of their group, not yet in the ledger
        self.counts = {
            "delivered": 0,
            "failed": 0,
            "dropped": 0,
            "attempts": 0,
            "backlogged": 0,
            "expired": 0,
        }

    @property
    def name(self) -> str:
        return self.channel.name

    # -- stage 1: hold back and group ------------------------------------------------
    def submit(self, notice: Notice) -> None:
        with self._lock:
            self.groups.add(notice, self.dispatcher.clock.monotonic())
        self._wake.set()

    def holds(self, alert_id: str, incident: str) -> bool:
        """Whether news of ``incident`` of ``alert_id`` is on its way to the ledger: waiting
        out group_wait, or being committed (recheck, dedupe, record) right now."""
        with self._lock:
            return self.groups.holds(alert_id, incident) or any(
                carries(n, alert_id, incident) for n in self._handing
            )

    def notice_ids(self) -> set[str]:
        """Ids of the notices in this channel's outbox (queued, retrying, in flight)."""
        with self._lock:
            return {d.state.notice_id for d in self.outbox.pending()}

    def _hand_over(self, notices: list[Notice]) -> None:
        """Commit ``notices`` (taken from their groups under the lock, listed in
        ``_handing`` meanwhile): no moment when neither the groups nor the ledger hold
        them, and no lock held while the engine's recheck runs."""
        try:
            for notice in notices:
                self.commit(notice)
        finally:
            with self._lock:
                self._handing = [n for n in self._handing if all(n is not m for m in notices)]

    # -- stages 2-4: recheck, dedupe, record ---------------------------------------------
    def commit(self, notice: Notice, *, recheck: bool = True) -> DeliveryState | None:
        """Queue ``notice`` durably, past suppression and dedupe; None if nothing was left."""
        d = self.dispatcher
        checked: Notice | None = notice
        if recheck and d.recheck is not None and notice.kind in ("alert", "repeat"):
            checked = d.recheck(notice)  # the engine records what it holds back
        if checked is None:
            return None
        candidates = list(checked.items)
        kept = d.ledger.dedupe(checked)
        gone = [i for i in candidates if kept is None or i not in kept.items]
        if gone:
            d.record(partial(d.log.dropped, self.name, gone, UNTOLD))
            self.counts["dropped"] += len(gone)  # counted once recorded (module docstring)
        if kept is None:
            return None
        now = d.clock.now()
        kept.id = kept.id or uuid.uuid4().hex
        deadline = d.policy.deadline_for(now)
        state = DeliveryState(kept.id, self.name, kept.kind, now, deadline, changed_at=now)
        try:
            d.log.queued(kept, state)  # before the first attempt: a kill -9 loses nothing
        except Exception as exc:  # storage down and no spool: still send
            log.error("notice %s to %s not saved before sending: %s", kept.id, self.name, exc)
        d.ledger.committed(kept, state)
        self._enqueue(Delivery(kept, state, d.clock.monotonic()))
        return state

    def expire(self, notice: Notice, state: DeliveryState, now: datetime) -> None:
        """A notice whose deadline passed while the daemon was down: recorded, not sent."""
        state.state, state.changed_at, state.retry_at = "expired", now, None
        state.error = f"delivery deadline {state.deadline.isoformat()} passed while stopped"
        log.warning("channel %s: notice %s expired while Lightbulb was stopped (deadline %s); "
                    "not sent", self.name, state.notice_id, state.deadline.isoformat())  # fmt: skip
        self.dispatcher.record(partial(self.dispatcher.log.outcome, notice, state))
        self.counts["expired"] += 1

    def resume(self, notice: Notice, state: DeliveryState) -> None:
        """A notice the outbox held across a restart: due now, same id, same deadline."""
        self._enqueue(Delivery(notice, state, self.dispatcher.clock.monotonic()))

    def _enqueue(self, delivery: Delivery) -> None:
        with self._lock:
            crossed = self.outbox.add(delivery)
            backlog = len(self.outbox)
        self._wake.set()
        if crossed:  # once per crossing: nothing is dropped, the backlog is on disk
            self.counts["backlogged"] += 1
            log.warning(
                "channel %s: %d notices not yet settled, above alerting.queue_size %d; "
                "none is dropped (all are in the durable outbox), the receiver is slower "
                "than the news", self.name, backlog, self.outbox.capacity,
            )  # fmt: skip

    # -- stage 5: send with retry --------------------------------------------------------
    def step(self) -> int:
        """Run every stage for what is due now; returns the number of send attempts."""
        d = self.dispatcher
        with self._lock:
            ready = self.groups.due(d.clock.monotonic())
            self._handing += ready
        self._hand_over(ready)
        attempts, tried = 0, set()
        while not (self._stop.is_set() and self._thread is not None):  # stopping: no new sends
            with self._lock:
                delivery = self.outbox.next_ready(d.clock.monotonic())
                self.in_flight = delivery
            if delivery is None or id(delivery) in tried:  # a zero jitter: next step
                break
            tried.add(id(delivery))
            try:
                self._attempt(delivery)
            finally:
                with self._lock:
                    self.in_flight = None
            attempts += 1
        return attempts

    def _attempt(self, delivery: Delivery) -> None:
        d, notice, state = self.dispatcher, delivery.notice, delivery.state
        if state.attempts == 0 and notice.kind == "alert":
            unheard = [i for i in notice.items if not d.ledger.may_attempt(self.name, i)]
            if unheard:
                d.record(partial(d.log.dropped, self.name, unheard, UNHEARD))
                self.counts["dropped"] += len(unheard)
                notice.items = [i for i in notice.items if i not in unheard]
            if not notice.items:
                self.settle(delivery, None, dropped=True)
                return
        state.attempts += 1
        self.counts["attempts"] += 1
        state.sending = True  # shown as in flight, not "queued"
        try:
            self.channel.send(notice)
        except ChannelError as exc:
            state.sending = False
            state.maybe_delivered = state.maybe_delivered or exc.maybe_delivered
            self._failed(delivery, exc)
            return
        except Exception as exc:  # a bug in one channel: say it, do not retry
            state.sending = False
            self._failed(delivery, ChannelError(f"{type(exc).__name__}: {exc}", permanent=True))
            return
        state.sending = False
        self.settle(delivery, None)

    def _failed(self, delivery: Delivery, error: ChannelError) -> None:
        d, state = self.dispatcher, delivery.state
        now = d.clock.now()
        wait = d.policy.next_try(error, state.attempts, now, state.deadline, d.rng)
        if wait is None:
            self.settle(delivery, error)
            return
        state.state, state.error, state.changed_at = "retrying", str(error), now
        state.retry_at = now + timedelta(seconds=wait)
        delivery.due = d.clock.monotonic() + wait
        log.warning(
            "channel %s: attempt %d of notice %s failed, next in %.1f s: %s",
            self.name, state.attempts, state.notice_id, wait, error,
        )  # fmt: skip
        d.record(partial(d.log.outcome, delivery.notice, state))

    def settle(
        self, delivery: Delivery, error: ChannelError | None, *, dropped: bool = False
    ) -> None:
        """Final outcome: delivered, failed (then the fallback channels) or dropped."""
        d, state = self.dispatcher, delivery.state
        with self._lock:
            if delivery in self.outbox.pending():
                self.outbox.remove(delivery)
        state.changed_at, state.retry_at = d.clock.now(), None
        if dropped:
            state.state = "dropped"
        elif error is None:
            state.state, state.error = "delivered", ""
        else:
            # an attempt that may have reached the receiver: its resolve must follow
            final = "unconfirmed" if state.maybe_delivered else "failed"
            state.state, state.error, state.permanent = final, str(error), error.permanent
            why = "permanently" if error.permanent else "past its deadline"
            maybe = " (an attempt may have been received)" if state.maybe_delivered else ""
            log.error(
                "channel %s: notice %s failed %s after %d attempt(s)%s: %s",
                self.name, state.notice_id, why, state.attempts, maybe, error,
            )  # fmt: skip
        d.record(partial(d.log.outcome, delivery.notice, state))
        if not dropped:  # dropped news is counted per alert where it is dropped
            self.counts["failed" if state.state == "unconfirmed" else state.state] += 1
        if state.state in ("failed", "unconfirmed"):
            d.fallback(delivery.notice, state)

    # -- thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"lightbulb-notify-{self.name}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        clock = self.dispatcher.clock
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a bug in one send must not end the channel's deliveries
                log.exception("channel %s: delivery loop error", self.name)
            with self._lock:
                dues = [t for t in (self.groups.next_due(), self.outbox.next_due()) if t]
            wait = min(dues, default=clock.monotonic() + 1.0) - clock.monotonic()
            self._wake.wait(min(max(wait, 0.0), 1.0))
            self._wake.clear()

    def halt(self) -> None:
        self._stop.set()
        self._wake.set()

    def stop(self, deadline: float) -> None:
        """Queue what waits out group_wait, then try queued notices once within ``deadline``.

        What is not delivered stays in the durable outbox and resumes after a
        restart. A send still in flight on the worker thread is left to finish:
        nothing here starts a second attempt beside it.
        """
        self.halt()
        end = time.monotonic() + deadline
        if self._thread is not None:
            self._thread.join(deadline)
        with self._lock:
            waiting = self.groups.release_all()
            self._handing += waiting
        self._hand_over(waiting)
        if self._thread is not None and self._thread.is_alive():
            return
        clock = self.dispatcher.clock
        with self._lock:
            first = [x for x in self.outbox.pending() if x.state.attempts == 0]
        for delivery in first:
            if time.monotonic() >= end:
                break
            with self._lock:
                ready = self.outbox.next_ready(clock.monotonic() + 1e9)
            if ready is not delivery:
                continue  # behind an earlier notice of its group: keeps its order
            self._attempt(delivery)

    def stats(self) -> dict[str, Any]:
        """The counts (each moved only once what it counts is recorded) and the backlog."""
        now = self.dispatcher.clock.now()
        with self._lock:
            pending = [x.state for x in self.outbox.pending()]
            grouping = len(self.groups)
        oldest = min((s.queued_at for s in pending), default=None)
        return {
            **self.counts,
            "queued": sum(1 for s in pending if s.shown == "queued") + grouping,
            "sending": sum(1 for s in pending if s.sending),
            "retrying": sum(1 for s in pending if s.state == "retrying"),
            "oldest_pending_seconds": (now - oldest).total_seconds() if oldest else 0.0,
        }
