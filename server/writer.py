"""Take rows from the daemon, make them durable, and insert them in large batches.

Every row passes through the write-ahead log (:mod:`server.wal`) before it is
inserted:

- ``add(table, row)`` (check results, alert events) buffers in memory; every
  ``flush_interval`` the buffers go to the log in one write and one ``fsync``.
  A ``kill -9`` loses at most that interval; SIGTERM loses nothing.
- ``add_durable(table, rows)`` and ``sync()`` (pushed logs, silences, acks, the
  alert outbox) return only once the rows are on disk: callers that arrive
  together share one ``fsync`` (group commit).

The inserter (:mod:`server.inserter`) then stores what the log holds in one
insert per table per ``insert_interval`` (sooner past ``batch_rows``), each
batch under a token the server deduplicates by, so a replay stores it once.
ClickHouse away or its disk full: the rows wait in the log and are retried.
ClickHouse refusing a batch's content: the refused rows, and only those, are
set aside in ``rejected/`` with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from server.core.clock import Clock
from server.inserter import Inserter
from server.recorder import TABLE_COLUMNS
from server.row_encoding import Encoder
from server.spool import Batch, Spool
from server.spool_state import SpoolState
from server.storage import Storage
from server.wal import Record, WalFull

log = logging.getLogger("lightbulb.writer")
DISK_RETRY = 5  # Retry-After (s) of a 503 for a full spool disk, refused while it has no room


@dataclass
class WriterStats:
    rows_written: int = 0
    batches_written: int = 0
    write_errors: int = 0
    last_write_ms: float = 0.0
    rows_spooled: int = 0  # rows that waited in the log because ClickHouse was away
    rows_set_aside: int = 0  # refused by ClickHouse for their content (rejected/)
    rows_dropped: int = 0  # lost: the disk was full and memory too
    rows_quarantined: int = 0  # read back from the spool undecodable (quarantine/)
    busy_refusals: int = 0  # pushes answered 429/503 (counted by the web layer)
    pushes_abandoned: int = 0  # pushes whose client left before they were stored (web layer)
    descriptor_waits: int = 0  # insert rounds not begun: file descriptors short (inserter)


class Busy(Exception):
    """The writer cannot take more now; answer 429/503 with ``Retry-After: retry_after``."""

    def __init__(self, message: str, retry_after: int, status: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class Writer:
    def __init__(
        self,
        storage: Storage,
        spool: Spool,
        *,
        batch_rows: int = 100_000,
        flush_interval: float = 1.0,
        insert_interval: float | None = None,
        columns: dict[str, tuple[str, ...]] | None = None,
        before_first_write: Callable[[], None] | None = None,
        max_queue_rows: int = 500_000,
        clock: Clock | None = None,
    ) -> None:
        self.storage = storage
        self.spool = spool
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        # Durability (the fsync every flush_interval) and insert cadence are separate:
        # the log covers a crash, and each insert costs the engine a fixed amount of
        # CPU (a new part, its materialized views, merges), so fewer, larger inserts.
        self.insert_interval = max(insert_interval or flush_interval, flush_interval)
        self.max_queue_rows = max_queue_rows
        self.columns = dict(columns or TABLE_COLUMNS)
        self.encoder = Encoder(self.columns)
        self.schemas = self.encoder.schemas  # table -> Arrow schema (ingest, inserter read it)
        self.stats = WriterStats()
        self._buffers: dict[str, list[tuple[Any, ...]]] = {t: [] for t in self.columns}
        self._buffered = 0
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()  # one commit of the buffers at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.spool_state = SpoolState(spool.wal.directory, clock)
        self._write_off_said = False  # a refused push not written off was said (episode)
        self.inserter = Inserter(self, storage, spool, before_first_write)
        self.inserter.recover()
        if spool.wal.open_error is not None:  # a start on a full disk: said now, not at a push
            self.spool_state.failed(spool.wal.open_error)

    # -- producers ---------------------------------------------------------------------
    def add(self, table: str, row: tuple[Any, ...]) -> None:
        """Buffer one row; on disk within ``flush_interval``, in ClickHouse soon after."""
        with self._lock:
            self._buffers[table].append(row)
            self._buffered += 1
            full = self._buffered >= self.batch_rows
        if full:
            self._wake.set()

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Append ``rows`` and return only once they are on disk (fsync'd).

        For records acknowledged to a client (pushed logs, silences, acks) and for
        notices about to be sent (the alert outbox): after this returns, a
        ``kill -9`` loses none of them. Raises :class:`BadRow` (nothing written)
        when a row cannot be encoded, naming it, and :class:`Busy` when the disk
        is full or the log is at ``scheduler.spool_max_bytes``.
        """
        self.durable({table: rows})

    def durable(
        self,
        tables: Mapping[str, list[tuple[Any, ...]] | pa.Table],
        ipc: Mapping[str, bytes] | None = None,
    ) -> None:
        """:meth:`add_durable` for several tables at once, with one ``fsync``.

        A table's rows may come encoded already (an Arrow table of its schema, and
        its IPC stream in ``ipc``, from an ingest worker: stored as they are).
        All or nothing: every row is encoded before any is written; a
        :class:`BadRow` carries ``table`` and ``index`` of the first bad row.
        """
        encoded = self.encoder.all_or_nothing(tables)
        # What the client is told is what happens: on any failure below, the
        # records appended so far are written off (never inserted) before the 503.
        self.commit()  # rows added before these go first (their own disk trouble is theirs)
        records: list[Record] = []
        try:
            for table, data in encoded:
                stream = ipc.get(table) if ipc else None
                records.append(self.spool.wal.append(table, data, ipc=stream))
            self.spool.wal.sync()
        except OSError as exc:  # WalFull: the disk, the cap, or shutting down
            self.spool_state.failed(exc)
            self.inserter.drain()  # what is stored frees its segments
            self._discard(records)
            raise Busy(f"not stored: {exc.strerror or exc}", DISK_RETRY, 503) from None
        self.spool_state.ok()
        self._write_off_said = False
        self.inserter.take(records)

    def _discard(self, records: list[Record]) -> None:
        wal = self.spool.wal
        for record in records:
            token = uuid.uuid4().hex
            try:
                wal.mark_batch(token, record.table, [record])
            except WalFull:  # a crash before the disk frees up would store them after all
                if not self._write_off_said:  # once until a push is stored: not each one
                    self._write_off_said = True
                    log.warning("could not write off %d %s rows of a refused request (said "
                                "once until a push is stored again)", record.rows,
                                record.table)  # fmt: skip
            wal.mark_done(token, [record])

    def sync(self) -> None:
        """Every row added so far is on disk when this returns (buffers included).

        Raises :class:`Busy` if the disk is full.
        """
        if not self.commit():
            raise Busy("not stored: the spool's disk is full", DISK_RETRY, 503)
        try:
            self.spool.wal.sync()
        except OSError as exc:
            self.spool_state.failed(exc)
            raise Busy(f"not stored: {exc.strerror or exc}", DISK_RETRY, 503) from None

    def busy(self) -> Busy | None:
        """Why a push should be refused now (backpressure), or None to accept it.

        429 when more than ``max_queue_rows`` wait for ClickHouse (the writer is
        behind), 503 when the spool cannot take it (:meth:`spool_refuses`).
        """
        refused = self.spool_refuses()
        if refused is not None:
            return refused
        waiting = self.inserter.pending_rows + self._buffered
        if waiting > self.max_queue_rows:
            seconds = 1 if self.inserter.reachable else 10
            return Busy(f"{waiting} rows are waiting to be stored; retry later", seconds, 429)
        return None

    def spool_refuses(self) -> Busy | None:
        """Why the spool cannot take an acknowledged push now (a 503), or None.

        A write failed lately and its filesystem is still full (``statvfs``: the
        next push tries again as soon as there is room), or the log is near
        ``scheduler.spool_max_bytes`` (:meth:`SpoolState.near_full`, a band, not a
        line). ``/readyz`` is not ready while this says so.
        """
        wal = self.spool.wal
        if not self.spool_state.writable and not wal.has_room():
            where = wal.directory
            return Busy(f"the spool at {where} cannot be written; retry later", DISK_RETRY, 503)
        if self.spool_state.near_full(wal.size, wal.max_bytes):
            return Busy("the spool is nearly at scheduler.spool_max_bytes; retry later", 10, 503)
        return None

    @property
    def spool_writable(self) -> bool:
        """The spool takes acknowledged pushes: :attr:`SpoolState.writable` (no failed write,
        or successes alone for ``SETTLE`` s since), inserts do not stall on it, and
        :meth:`spool_refuses` has no reason to refuse."""
        return not self.spool_problem()

    def spool_problem(self) -> str:
        """Why the spool does not take acknowledged pushes now, with the fix ("" if it does)."""
        refused = self.spool_refuses()
        if self.inserter.stalled:
            return f"inserts stall: the spool at {self.spool.wal.directory} cannot be written"
        return self.spool_state.problem() or (str(refused) if refused else "")

    def rejected_batches(self) -> int:
        """Set-aside batches in ``rejected/`` (a directory listing: for scrapes, not loops)."""
        return len(self.spool.rejected())

    @property
    def reachable(self) -> bool:
        """Storage prepared and the last write went through."""
        return self.inserter.reachable

    @property
    def answering(self) -> bool:
        """ClickHouse answered the last attempt, even if only to refuse it."""
        return self.inserter.answering

    def pending_rows(self) -> int:
        """Rows not yet in ClickHouse: buffered, or in the log waiting for an insert."""
        return self._buffered + self.inserter.pending_rows

    def ensure_ready(self) -> bool:
        """Run the before-first-write hook if it has not succeeded yet; False if not now."""
        return self.inserter.ensure_ready()

    # -- background --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lightbulb-wal", daemon=True)
        self._thread.start()
        self.inserter.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Put everything buffered on disk, then insert what ``timeout`` seconds allow.

        Whatever ClickHouse has not taken by then stays in the log and is
        inserted at the next start.
        """
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self.commit()
        try:
            self.spool.wal.sync()
        except OSError as exc:
            log.error("could not sync the spool at shutdown: %s", exc)
        self.inserter.stop(max(deadline - time.monotonic(), 0.1))
        self._keep_held()
        self.spool.wal.close()

    def _keep_held(self) -> None:
        """Write rows held in memory (the disk was full) to the log, or count them lost.

        At a stop, so that what is said to be kept for the next start is on disk:
        rows that cannot be written are counted in ``rows_dropped`` and no longer
        in :meth:`pending_rows`, and an ERROR says how many.
        """
        lost: dict[str, int] = {}
        wal = self.spool.wal
        for record in self.inserter.held_in_memory():
            if record.data is not None:
                try:
                    wal.append(record.table, record.data)
                    continue
                except WalFull:
                    pass
            lost[record.table] = lost.get(record.table, 0) + record.rows
        with contextlib.suppress(OSError):
            wal.sync()
        if lost:
            rows = sum(lost.values())
            self.stats.rows_dropped += rows
            self.inserter.forget(rows)
            log.error("%d rows held in memory could not be written to the spool at %s (its "
                      "disk is full) and are lost: %s", rows, wal.directory,
                      ", ".join(f"{n} {t}" for t, n in sorted(lost.items())))  # fmt: skip

    def flush(self) -> None:
        """Commit the buffers and insert everything waiting now (tests, shutdown)."""
        self.commit()
        self.inserter.insert_due()

    def replay(self) -> int:
        """Insert what the log holds now; returns the batches stored."""
        return self.inserter.insert_due()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.commit()
                self.spool.wal.sync()
                self._watch()
            except OSError as exc:  # a file that cannot be put back (a directory at its
                self.spool_state.failed(exc)  # name): said once per episode (atk21)
            except Exception:  # the writer must outlive any single failure
                log.exception("committing rows to the spool failed")

    def _watch(self) -> None:
        """The log's files still its own (:meth:`server.wal.Wal.watch`); records left in
        memory only are inserted now; a file that cannot be put back is the spool's
        failure, said once per episode (it was a traceback a second, atk18)."""
        try:
            left = self.spool.wal.watch()
        except OSError as exc:
            self.spool_state.failed(exc)
            return
        if left:
            self.inserter.loop.wake(drain=True)

    # -- committing the buffers --------------------------------------------------------
    def commit(self) -> bool:
        """Move buffered rows into the log (one record per table), unsynced.

        Returns False if some could only be held in memory (the disk is full).
        """
        with self._commit_lock:
            with self._lock:
                taken = {t: rows for t, rows in self._buffers.items() if rows}
                for table in taken:
                    self._buffers[table] = []
                self._buffered = 0
            records: list[Record] = []
            for table, rows in taken.items():
                for data in self._encode(table, rows):
                    records.append(self._append(table, data))
            if records:
                self.inserter.take(records)
            return all(r.segment is not None for r in records)

    def _encode(self, table: str, rows: list[tuple[Any, ...]]) -> list[pa.Table]:
        """Rows -> Arrow; a row that cannot be encoded is set aside, the others kept."""
        encoded, bad_rows = self.encoder.keeping_good(table, rows)
        for row, reason in bad_rows:
            self.set_aside(table, [row], f"cannot encode: {reason}")
        return encoded

    def _append(self, table: str, data: pa.Table) -> Record:
        wal = self.spool.wal
        try:
            record = wal.append(table, data)
        except WalFull as exc:
            self.spool_state.failed(exc)
            self.inserter.drain()  # held in memory until stored: store it soon
            return wal.append(table, data, memory_only=True)
        self.spool_state.ok()
        return record

    def set_aside(self, table: str, rows: list[tuple[Any, ...]], reason: str) -> None:
        """Keep refused rows in ``rejected/`` with the reason, counted; never silently lost."""
        batch = Batch(f"{table}-{uuid.uuid4().hex}", table, self.columns[table], rows)
        try:
            path = self.spool.set_aside(batch, reason)
        except OSError as exc:
            self.stats.rows_dropped += len(rows)
            log.error("%d %s rows refused (%s) and not set aside: %s", len(rows), table,
                      reason, exc)  # fmt: skip
            return
        self.stats.rows_set_aside += len(rows)
        log.error("%d %s rows set aside in %s: %s", len(rows), table, path, reason)
