"""Insert what the write-ahead log holds, in large batches, exactly once.

Each round (every ``insert_interval``, sooner when ``batch_rows`` wait) takes
every table's waiting records as one batch: one ``BATCH`` frame naming them,
one insert with the batch id as ``insert_deduplication_token``, one ``DONE``.
After a crash a batch left open is checked against what the storage holds
(the embedded engine can know a token whose part a ``kill -9`` never let land):
only its rows not stored are inserted, under a new token (:meth:`Inserter._unstored`).

Failures, by kind (see :func:`server.storage.base.refusal`):

- unreachable, disk full (``DiskFull``), too many parts (``StorageUnavailable``): the batch
  stays open and is retried next round; logged once per change of state;
- a missing table (``StorageMissing``): the schema is applied again, then retry;
- the content refused (any other ``StorageError``): the batch is split in
  halves until the refused rows are found; the others are stored, the refused
  ones set aside in ``rejected/`` with the server's reason.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from server.storage import Storage, StorageError, StorageUnavailable
from server.storage.arrow import BadRow, to_arrow, to_rows
from server.storage.base import DiskFull, StorageMissing
from server.wal import OpenBatch, Record, WalFull

if TYPE_CHECKING:
    from server.spool import Spool
    from server.writer import Writer

log = logging.getLogger("lightbulb.writer")
MAX_SPLITS = 64  # inserts spent finding refused rows in one batch before setting the rest aside


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
        # ok | unreachable | disk full | refused | spool full: logged on change only
        self._state = "ok"
        self._said_unmarked = False
        self._lock = threading.Lock()
        self._io = threading.Lock()  # one insert round at a time
        self._pending: dict[str, deque[Record]] = {}
        self._queued: dict[str, int] = {}  # rows in _pending, per table
        self._open: deque[OpenBatch] = deque()
        self.pending_rows = 0
        self._resident_rows = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

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
        if due:
            self._wake.set()

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
        return self._ready and self._state == "ok"

    @property
    def state(self) -> str:
        """``ok``, ``unreachable``, ``disk full``, ``refused`` (reachable, but it refused
        to prepare storage: an old version, a missing right) or ``spool full`` (inserts
        wait: the spool cannot take a batch's mark); ``ok`` before the first try."""
        return self._state

    @property
    def answering(self) -> bool:
        """Whether ClickHouse answered the last attempt, even with a refusal: a server that
        refuses our statements is there (``refused``), not down."""
        return self._state in ("refused", "disk full") or self.reachable

    @property
    def stalled(self) -> bool:
        """Inserts wait because the spool cannot even say what is being inserted."""
        return self._state == "spool full"

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lightbulb-writer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Start an insert round now (the first readiness attempt at start)."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("ClickHouse did not take everything in %.0f s; %d rows stay in the "
                            "spool for the next start", timeout, self.pending_rows)  # fmt: skip
                return
        else:
            self.insert_due()

    def _loop(self) -> None:
        # Everything waiting goes in every insert_interval; in between, a table that
        # has a full batch (batch_rows) is inserted at once, but only full batches.
        every = self.writer.insert_interval
        next_all = time.monotonic() + every
        while not self._stop.is_set():
            self._wake.wait(max(next_all - time.monotonic(), 0.0))
            self._wake.clear()
            if time.monotonic() >= next_all:
                next_all = time.monotonic() + every
                self._round(full_only=False)
            else:
                self._round(full_only=True)
        self.writer.commit()
        self._round(full_only=False)

    def _round(self, full_only: bool) -> None:
        try:
            self.insert_due(full_only=full_only)
        except Exception:  # the writer must outlive any single failure
            log.exception("insert round failed")

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
            while self._open:
                if not self._insert(self._open[0]):
                    return stored
                self._open.popleft()
                stored += 1
            with self._lock:
                budget = {table: len(queue) for table, queue in self._pending.items()}
            for table, records in budget.items():
                left = records
                while left > 0:
                    batch = self._next_batch(table, left, full_only=full_only)
                    if batch is None:
                        break
                    left -= len(batch.records)
                    if not self._insert(batch):
                        return stored
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
        self._state_is("spool full", exc)
        return False

    def _insert(self, batch: OpenBatch) -> bool:
        """Store one batch (splitting out refused rows); False: retry later."""
        self._yield_cpu()
        try:
            data = pa.concat_tables([self.wal.load(r) for r in batch.records])
        except (OSError, pa.ArrowException) as exc:
            log.error("spooled batch %s unreadable, dropped: %s", batch.id, exc)
            self._done(batch, stored=0)
            return True
        started = time.perf_counter()
        token = batch.id
        try:
            if batch.replayed:
                token, data = self._unstored(batch, data)
            if data.num_rows:
                self.storage.insert_arrow(batch.table, data, dedup_token=token)
        except StorageMissing as exc:
            self._failed(batch, exc, "refused")
            self._ready = self._before_first_write is None  # apply the schema again
            return False
        except StorageUnavailable as exc:
            self._failed(batch, exc, "unreachable")
            return False
        except StorageError as exc:
            try:
                self._split(batch, token, data, exc)
            except StorageUnavailable as away:
                self._failed(batch, away, "unreachable")
                return False
            self._done(batch, stored=0)
            return True
        self.writer.stats.last_write_ms = (time.perf_counter() - started) * 1000
        self._done(batch, stored=data.num_rows)
        self._state_is("ok", None)
        return True

    def _yield_cpu(self) -> None:
        """The engine's insert yields the CPU to the pushes while inserts keep up (two
        batches wait at most); behind that, or stopping (SIGTERM's grace is short), not:
        at load 12-17, always yielding left 32-50k rows to the next start."""
        yield_cpu = getattr(self.storage, "yield_cpu", None)  # the embedded engine's
        if yield_cpu is not None:
            keeping_up = self.pending_rows <= 2 * self.writer.batch_rows
            yield_cpu(keeping_up and not self._stop.is_set())

    def _unstored(self, batch: OpenBatch, data: pa.Table) -> tuple[str, pa.Table]:
        """A batch from a previous run: the token to insert it under, and its rows not stored.

        Its token cannot be trusted: with the embedded engine a ``kill -9`` between
        the engine's deduplication log entry and the rename of the part leaves the
        token naming a part that was never stored, and a replay under it would be
        dropped as a duplicate (acknowledged records lost). So the storage is asked
        which rows it holds; the others go under a new token, which nothing can
        have used. Asked again on each attempt, so a retry never stores a row twice.
        Storage that cannot tell (None) keeps the token.
        """
        try:
            mask = self.storage.stored_mask(batch.table, data)
        except (StorageUnavailable, StorageMissing):
            raise  # retried next round
        except StorageError as exc:  # the question refused: the token is all there is
            log.warning("cannot tell which rows of batch %s are stored, trusting its token: %s",
                        batch.id, exc)  # fmt: skip
            mask = None
        if mask is None:
            if batch.uncertain:
                log.warning("%d %s rows whose mark the spool lost cannot be checked against "
                            "this storage; inserting them (some may be stored twice)",
                            data.num_rows, batch.table)  # fmt: skip
                batch.uncertain = False  # said once, not at every retry
            return batch.id, data
        missing = data.filter(pa.array([not stored for stored in mask], pa.bool_()))
        if missing.num_rows:
            log.info("batch %s from the previous run: %d of its %d rows were not stored, "
                     "inserting them", batch.id, missing.num_rows, data.num_rows)  # fmt: skip
        return uuid.uuid4().hex, missing

    def _split(self, batch: OpenBatch, token: str, data: pa.Table, refused: StorageError) -> None:
        """Halve a refused batch until the refused rows are found; store the rest.

        Pieces carry tokens derived from the batch id, so a split redone after a
        crash stores each piece once. Raises StorageUnavailable if the server goes away.
        """
        stack = [(token, data, refused)]
        attempts = 0
        while stack:
            token, piece, reason = stack.pop()
            if piece.num_rows == 1 or attempts >= MAX_SPLITS:
                self.writer.set_aside(batch.table, to_rows(piece), str(reason))
                continue
            half = piece.num_rows // 2
            for i, part in enumerate((piece.slice(0, half), piece.slice(half))):
                attempts += 1
                try:
                    self.storage.insert_arrow(batch.table, part, dedup_token=f"{token}-{i}")
                    self.writer.stats.rows_written += part.num_rows
                except StorageUnavailable:
                    raise
                except StorageError as exc:
                    stack.append((f"{token}-{i}", part, exc))

    def _done(self, batch: OpenBatch, stored: int) -> None:
        self.wal.mark_done(batch.id, batch.records)
        rows = sum(r.rows for r in batch.records)
        with self._lock:
            self.pending_rows -= rows
            self._resident_rows -= sum(r.rows for r in batch.records if r.data is not None)
            for record in batch.records:
                record.data = None
        if stored:
            self.writer.stats.rows_written += stored
            self.writer.stats.batches_written += 1

    def _failed(self, batch: OpenBatch, exc: StorageError, state: str) -> None:
        self.writer.stats.write_errors += 1
        if self._state == "ok":
            self.writer.stats.rows_spooled += self.pending_rows
        self._state_is(state, exc)

    # -- readiness ---------------------------------------------------------------------------
    def ensure_ready(self) -> bool:
        """Run the before-first-write hook if it has not succeeded yet; False if not now."""
        if self._ready:
            return True
        assert self._before_first_write is not None
        try:
            self._before_first_write()
        except StorageUnavailable as exc:
            self.writer.stats.write_errors += 1
            self._state_is("unreachable", exc)
            return False
        except StorageError as exc:
            self.writer.stats.write_errors += 1
            self._state_is("refused", exc)
            return False
        self._ready = True
        return True

    def _state_is(self, state: str, exc: Exception | None) -> None:
        """Log a change of state once: an outage is one warning, not one per second.

        A full disk is its own state, named as such: "unavailable" sent operators
        looking for a server that was there all along.
        """
        if state == "unreachable" and isinstance(exc, DiskFull):
            state = "disk full"
        if state == self._state:
            return
        previous, self._state = self._state, state
        where = self.spool.wal.directory
        if state == "disk full":
            log.warning("ClickHouse's disk is full; keeping rows in the spool at %s and "
                        "retrying: %s", where, exc)  # fmt: skip
        elif state == "unreachable":
            log.warning("ClickHouse unavailable, keeping rows in the spool at %s: %s", where, exc)
        elif state == "refused":
            log.error("ClickHouse is reachable but refused to prepare storage: %s", exc)
        elif state == "spool full":
            log.error("inserts stall: the spool at %s cannot take the mark of a batch and "
                      "no file can be created there (%s); retrying", where, exc)  # fmt: skip
        elif previous == "spool full":
            log.info("inserts go on; %d rows waiting", self.pending_rows)
        elif previous != "ok":
            log.info("ClickHouse takes writes again; %d rows waiting", self.pending_rows)
