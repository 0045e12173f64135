"""Insert what the write-ahead log holds, in large batches, exactly once.

Each round (every ``insert_interval``, sooner when ``batch_rows`` wait) takes
every table's waiting records as one batch: one ``BATCH`` frame naming them,
one insert with the batch id as ``insert_deduplication_token``, one ``DONE``.
After a crash a batch left open is checked against what the storage holds
(the embedded engine can know a token whose part a ``kill -9`` never let land):
only its rows not stored are inserted, under a new token (:func:`server.insert_faults.unstored`).

Reading a batch back from the spool fails by kind too (:mod:`server.batch_reads`): a
shortage (descriptors, memory) stops the round, an unreadable file makes its batch wait,
undecodable bytes go to ``quarantine/``. Nothing is dropped.

Failures, by kind (see :func:`server.storage.base.refusal`):

- unreachable, disk full (``DiskFull``), too many parts (``StorageUnavailable``): the batch
  stays open and is retried next round; logged once per change of state;
- a missing table (``StorageMissing``): the schema is applied again, then retry;
- the content refused (any other ``StorageError``): the batch is split in
  halves until the refused rows are found; the others are stored, the refused
  ones set aside in ``rejected/`` with the server's reason.
"""

from __future__ import annotations

import enum
import errno
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from server.batch_reads import BatchReads, Shortage
from server.core import descriptors
from server.core.oserrors import DESCRIPTORS, FIXES
from server.insert_faults import split_refused, unstored
from server.insert_loop import InsertLoop
from server.storage import Storage, StorageError, StorageUnavailable
from server.storage.arrow import BadRow, to_arrow
from server.storage.base import DescriptorsShort, StorageMissing
from server.storage_state import StorageState
from server.wal import OpenBatch, Record, WalFull

if TYPE_CHECKING:
    from server.spool import Spool
    from server.writer import Writer

log = logging.getLogger("lightbulb.writer")
# Past this share of spool_max_bytes everything waiting is inserted at once: well below
# the 90% where pushes get 503 (server.spool_state.HIGH), so an insert has time to land.
DRAIN_AT = 0.5
#: s an insert may stay in ClickHouse before it is called hung: a 1,000,000-row batch
#: takes ~2 s embedded; a remote server's own send/receive timeouts are 300 s, so an
#: engine call past this is one that met a fault it does not come back from (atk16: chDB
#: meeting EMFILE mid-query). Said by the self-monitoring (:mod:`server.self_monitor`)
HUNG = 120.0


class Outcome(enum.Enum):
    """What one batch's insert came to, for the round."""

    DONE = "done"  # stored, or set aside (quarantined, refused rows split out)
    WAITS = "waits"  # a file of it cannot be read now: it waits, the others go on
    STOP = "stop"  # storage or system not able now: the round stops, retried later


class Inserter:
    def __init__(
        self,
        writer: Writer,
        storage: Storage,
        spool: Spool,
        before_first_write: Callable[[], None] | None,
    ) -> None:
        self.writer = writer
        self.storage = storage
        self.spool = spool
        self.wal = spool.wal
        self._before_first_write = before_first_write
        self._ready = before_first_write is None
        self.storage_state = StorageState(
            spool.wal.directory, lambda: self.pending_rows, writer.spool_state.clock
        )
        self.reads = BatchReads(spool.wal, self._quarantined, writer.spool_state.clock)
        self._said_unmarked = False
        self._stalled = False  # the spool could take neither a batch's mark nor the flag
        self._calling: float | None = None  # monotonic s the storage call under way began
        self._lock = threading.Lock()
        self._io = threading.Lock()  # one insert round at a time
        self._pending: dict[str, deque[Record]] = {}
        self._queued: dict[str, int] = {}  # rows in _pending, per table
        self._open: deque[OpenBatch] = deque()
        self.pending_rows = 0
        self._resident_rows = 0
        self.loop = InsertLoop(self)

    # -- what waits ------------------------------------------------------------------------
    def recover(self) -> None:
        """Take over what a previous run left in the log (and older releases' spool files)."""
        pending, open_batches = self.wal.recover()
        self._open.extend(open_batches)
        self.take(pending)
        for batch in open_batches:
            self.pending_rows += sum(r.rows for r in batch.records)
        self._adopt_legacy()
        waiting = self.pending_rows
        if waiting:
            log.info("%d rows from the spool wait for ClickHouse (%d open batches)",
                     waiting, len(self._open))  # fmt: skip

    def _adopt_legacy(self) -> None:
        for path, batch in self.spool.legacy_batches():
            schema = self.writer.schemas.get(batch.table)
            try:
                if schema is None:
                    raise BadRow(0, f"no table {batch.table!r} in sql/")
                data = to_arrow(pa.schema([schema.field(c) for c in batch.columns]), batch.rows)
            except (BadRow, KeyError) as exc:
                self.spool.set_aside(batch, f"spooled by an older release, unreadable: {exc}")
                path.unlink()
                continue
            record = self.wal.append(batch.table, data)
            self.wal.mark_batch(batch.id, batch.table, [record])  # the old id stays the token
            self._open.append(OpenBatch(batch.id, batch.table, [record], replayed=True))
            self.pending_rows += record.rows
            self.wal.sync()
            path.unlink()

    def take(self, records: list[Record]) -> None:
        """Committed records, to insert next round."""
        with self._lock:
            for record in records:
                self._pending.setdefault(record.table, deque()).append(record)
                self._queued[record.table] = self._queued.get(record.table, 0) + record.rows
                self.pending_rows += record.rows
                if record.data is not None:
                    self._resident_rows += record.rows
            self._evict()
            cap = self.writer.batch_rows
            due = any(self._queued[r.table] >= cap for r in records)
        if self.wal.size >= self.wal.max_bytes * DRAIN_AT:
            self.drain()
        elif due:
            self.loop.wake()

    def drain(self) -> None:
        """Insert everything waiting now, not at the next ``insert_interval``: the spool is
        past ``DRAIN_AT`` of ``spool_max_bytes`` (or its disk is full), and pushes get 503
        once it is near full. Not while ClickHouse is away (its retries keep their pace)."""
        if self.reachable:
            self.loop.wake(drain=True)

    def _evict(self) -> None:
        """Past ``max_queue_rows`` in memory, newest records are read back from disk later."""
        limit = self.writer.max_queue_rows
        if self._resident_rows <= limit:
            return
        for queue in self._pending.values():
            for record in reversed(queue):
                if self._resident_rows <= limit:
                    return
                if record.data is not None and record.segment is not None:
                    record.data = None
                    self._resident_rows -= record.rows

    def held_in_memory(self) -> list[Record]:
        """Records waiting in memory only (the spool's disk was full when they came)."""
        with self._lock:
            held = [r for queue in self._pending.values() for r in queue if r.segment is None]
        return held + [r for b in list(self._open) for r in b.records if r.segment is None]

    def forget(self, rows: int) -> None:
        """``rows`` waiting are lost (counted by the caller): no longer said to wait."""
        with self._lock:
            self.pending_rows -= rows

    @property
    def open_batches(self) -> int:
        """Batches marked for insert and not yet stored (retried while ClickHouse is away)."""
        return len(self._open)

    @property
    def reachable(self) -> bool:
        """Storage prepared and the last write went through: rows can be written."""
        return self._ready and self.storage_state.state == "ok"

    @property
    def state(self) -> str:
        """ClickHouse's: ``ok``, ``unreachable``, ``disk full`` or ``refused``
        (:mod:`server.storage_state`); ``ok`` before the first try."""
        return self.storage_state.state

    @property
    def answering(self) -> bool:
        """Whether ClickHouse answered the last attempt, even with a refusal."""
        return self.storage_state.answering and (self._ready or self.state != "ok")

    @property
    def stalled(self) -> bool:
        """Inserts wait because the spool can say neither what is being inserted nor that
        it cannot (a spool's trouble, not ClickHouse's: the storage state is untouched), or
        the daemon is short of file descriptors (the engine is not entered meanwhile)."""
        return self._stalled or self.state == "descriptors short"

    @property
    def call_seconds(self) -> float:
        """Seconds the insert under way has been in the storage (0.0: none is)."""
        since = self._calling
        return 0.0 if since is None else time.monotonic() - since

    @property
    def hung(self) -> bool:
        """An insert has been in the storage longer than :data:`HUNG` s."""
        return self.call_seconds > HUNG

    # -- the thread (server.insert_loop) ------------------------------------------------------
    def start(self) -> None:
        self.loop.start()

    def wake(self) -> None:
        """Start an insert round now (the first readiness attempt at start)."""
        self.loop.wake()

    def stop(self, timeout: float) -> None:
        """Insert what ``timeout`` s allow, then no more (:meth:`InsertLoop.stop`)."""
        self.loop.stop(timeout)

    # -- inserting ---------------------------------------------------------------------------
    def insert_due(self, *, full_only: bool = False) -> int:
        """Insert open batches, then what each table held when the round began.

        Returns the batches stored. Records committed during the round wait for
        the next one: a round that chased them would go on inserting whatever
        arrived during its last insert, a few thousand rows at a time, and each
        small insert is a part the engine merges again and again (at 20-50k
        rows/s that was 3-5k rows a part and half of the machine spent merging;
        benchmarks/RESULTS.md, "Ingest round 3"). ``full_only``: only batches
        of ``batch_rows`` (or as near as whole records come).
        """
        with self._io:
            if not self.ensure_ready():
                return 0
            stored = 0
            for held in list(self._open):
                if self.loop.out_of_time():
                    return stored
                done = self._insert(held)
                if done is Outcome.STOP:
                    return stored
                if done is Outcome.DONE:
                    self._open.remove(held)
                    stored += 1
            with self._lock:
                budget = {table: len(queue) for table, queue in self._pending.items()}
            for table, records in budget.items():
                left = records
                while left > 0 and not self.loop.out_of_time():
                    batch = self._next_batch(table, left, full_only=full_only)
                    if batch is None:
                        break
                    left -= len(batch.records)
                    done = self._insert(batch)
                    if done is Outcome.STOP:
                        return stored
                    if done is Outcome.DONE:  # WAITS: it waits in _open, retried next round
                        self._open.remove(batch)
                        stored += 1
            return stored

    def _next_batch(
        self, table: str, most: int | None = None, *, full_only: bool = False
    ) -> OpenBatch | None:
        """The next batch of ``table``: at most ``most`` records, at most ``batch_rows``
        rows (one record at least); with ``full_only`` None unless it is full."""
        cap = self.writer.batch_rows
        with self._lock:
            queue = self._pending.get(table)
            if not queue:
                return None
            most = len(queue) if most is None else most
            if full_only and self._queued.get(table, 0) < cap:
                return None
            members: list[Record] = []
            rows = 0
            while queue and len(members) < most and (not members or rows + queue[0].rows <= cap):
                record = queue.popleft()
                members.append(record)
                rows += record.rows
            if full_only and rows < cap and (not queue or len(members) >= most):
                queue.extendleft(reversed(members))  # not full within this round's records
                return None
            self._queued[table] -= rows
        batch = OpenBatch(uuid.uuid4().hex, table, members)
        try:
            self.wal.mark_batch(batch.id, table, members)
        except WalFull as exc:
            # Without the mark a replay could store these twice, unless they live in
            # memory only (no replay), or the log says that what waits must be checked
            # against the storage after a crash (the flag needs no room).
            if any(r.segment is not None for r in members) and not self._unmarked(exc):
                with self._lock:
                    self._pending[table].extendleft(reversed(members))
                    self._queued[table] += rows
                return None
        if self._stalled:
            self._stalled = False
            log.info("inserts go on; %d rows waiting", self.pending_rows)
        self._open.append(batch)
        return batch

    def _unmarked(self, exc: WalFull) -> bool:
        """Go on without marks (the ``unmarked`` flag set), or stall: False, said once."""
        if self.wal.flag_unmarked():
            if not self._said_unmarked:
                self._said_unmarked = True
                log.warning("cannot mark batches in the spool at %s (%s); inserting without "
                            "marks: after a crash, waiting rows are checked against ClickHouse "
                            "before they are inserted", self.wal.directory, exc)  # fmt: skip
            return True
        self.writer.stats.write_errors += 1
        self.writer.spool_state.failed(exc)
        if not self._stalled:
            self._stalled = True
            log.warning("inserts stall: the spool at %s cannot take the mark of a batch and "
                        "no file can be created there (%s); retrying",
                        self.wal.directory, exc)  # fmt: skip
        return False

    def _insert(self, batch: OpenBatch) -> Outcome:
        """Store one batch (splitting out refused rows): :class:`Outcome`."""
        self._yield_cpu()
        try:
            tables = self.reads.read(batch)
        except Shortage as exc:  # descriptors, memory...: every read would fail alike
            if getattr(exc.cause, "errno", None) in DESCRIPTORS:  # the engine's shortage too
                descriptors.ran_out()
                why = descriptors.short() or f"{exc}: {FIXES[errno.EMFILE]}"
                self._unavailable(DescriptorsShort(f"the spool not read: {why}"))
            return Outcome.STOP
        if tables is None:
            return Outcome.WAITS
        if not tables:  # all of it undecodable: in quarantine/, counted
            self._done(batch, stored=0)
            return Outcome.DONE
        data = pa.concat_tables(tables, promote_options="default")
        started = time.perf_counter()
        token = batch.id
        self._calling = time.monotonic()
        try:
            if batch.replayed:
                token, data = unstored(self.storage, batch, data)
            if data.num_rows:
                self.storage.insert_arrow(batch.table, data, dedup_token=token)
        except StorageMissing as exc:
            self._failed(exc, "refused")
            self._ready = self._before_first_write is None  # apply the schema again
            return Outcome.STOP
        except StorageUnavailable as exc:
            self._unavailable(exc)
            return Outcome.STOP
        except StorageError as exc:
            try:
                split_refused(self.storage, self.writer, batch, (token, data, exc))
            except StorageUnavailable as away:
                self._unavailable(away)
                return Outcome.STOP
            self._done(batch, stored=0)
            return Outcome.DONE
        finally:
            self._calling = None
        self.writer.stats.last_write_ms = (time.perf_counter() - started) * 1000
        self._done(batch, stored=data.num_rows)
        self.storage_state.is_("ok")
        return Outcome.DONE

    def _yield_cpu(self) -> None:
        """The engine's insert yields the CPU to the pushes while inserts keep up (two
        batches wait at most); behind that, or stopping (SIGTERM's grace is short), not:
        at load 12-17, always yielding left 32-50k rows to the next start."""
        keeping_up = self.pending_rows <= 2 * self.writer.batch_rows
        self.storage.yield_cpu(keeping_up and not self.loop.stopping.is_set())

    def _done(self, batch: OpenBatch, stored: int) -> None:
        self.wal.mark_done(batch.id, batch.records)
        self.reads.done(batch)
        rows = sum(r.rows for r in batch.records)
        with self._lock:
            self.pending_rows -= rows
            self._resident_rows -= sum(r.rows for r in batch.records if r.data is not None)
            for record in batch.records:
                record.data = None
        if stored:
            self.writer.stats.rows_written += stored
            self.writer.stats.batches_written += 1

    def _quarantined(self, rows: int) -> None:
        self.writer.stats.rows_quarantined += rows

    def _failed(self, exc: StorageError, state: str) -> None:
        """The storage did not take a batch (``state``: ``unreachable`` or ``refused``): a
        write error, except a :class:`DescriptorsShort` (the embedded engine not entered,
        an ``EMFILE`` inside it can wedge it for good): a round that waits, counted as
        such (``descriptor_waits``)."""
        if isinstance(exc, DescriptorsShort):
            self.writer.stats.descriptor_waits += 1
        else:
            self.writer.stats.write_errors += 1
        if self.state == "ok":
            self.writer.stats.rows_spooled += self.pending_rows
        self.storage_state.is_(state, exc)

    def _unavailable(self, exc: StorageUnavailable) -> None:
        self._failed(exc, "unreachable")

    # -- readiness ---------------------------------------------------------------------------

    def ensure_ready(self) -> bool:
        """Run the before-first-write hook if it has not succeeded yet; False if not now."""
        if self._ready:
            return True
        assert self._before_first_write is not None
        try:
            self._before_first_write()
        except StorageUnavailable as exc:
            self._unavailable(exc)
            return False
        except StorageError as exc:
            self._failed(exc, "refused")
            return False
        self._ready = True
        return True
