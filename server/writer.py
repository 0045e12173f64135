"""Batch rows per table and write them; spool to disk while ClickHouse is away.

Rows are buffered per table and flushed when ``batch_rows`` are waiting or
``flush_interval`` has passed, which keeps ClickHouse's part count low. Every
batch gets an id used as ``insert_deduplication_token``. While anything is
spooled, new batches join the spool behind it, so replay preserves order;
replay deletes a batch file only after its insert succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.recorder import TABLE_COLUMNS
from server.spool import Batch, Spool
from server.storage import Storage, StorageError, StorageUnavailable

log = logging.getLogger("lightbulb.writer")
MAX_REJECTS = 5  # a batch the server refuses this often is set aside, not retried forever


@dataclass
class WriterStats:
    rows_written: int = 0
    batches_written: int = 0
    write_errors: int = 0
    last_write_ms: float = 0.0
    rows_spooled: int = 0


class Writer:
    def __init__(
        self,
        storage: Storage,
        spool: Spool,
        *,
        batch_rows: int = 1000,
        flush_interval: float = 1.0,
        columns: dict[str, tuple[str, ...]] | None = None,
        before_first_write: Callable[[], None] | None = None,
    ) -> None:
        self.storage = storage
        self.spool = spool
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.columns = dict(columns or TABLE_COLUMNS)
        self.stats = WriterStats()
        self._before_first_write = before_first_write
        self._ready = before_first_write is None
        self._buffers: dict[str, list[tuple[Any, ...]]] = {t: [] for t in self.columns}
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()  # one flush at a time keeps batches in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rejects: dict[str, int] = {}
        self._reachable = True  # logged on change only: an outage is one warning, not thousands

    # -- producers ---------------------------------------------------------------
    def add(self, table: str, row: tuple[Any, ...]) -> None:
        with self._lock:
            buffer = self._buffers[table]
            buffer.append(row)
            full = len(buffer) >= self.batch_rows
        if full:
            self._wake.set()

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Append ``rows`` and return only once they are on disk.

        For records acknowledged to a client (pushed logs, silences, acks) and for
        notices about to be sent (the alert outbox): after this returns, a
        ``kill -9`` loses none of them. Raises :class:`StorageError` when they
        could be put neither in ClickHouse nor in the spool.
        """
        with self._lock:
            self._buffers[table].extend(rows)
        self.flush()

    @property
    def reachable(self) -> bool:
        """Storage prepared and the last write went through."""
        return self._ready and self._reachable

    def pending_rows(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._buffers.values())

    # -- background loop ---------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lightbulb-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and write (or spool) everything still buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the writer must outlive any single failure
                log.exception("flush failed")

    # -- writing -------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            taken = {t: rows for t, rows in self._buffers.items() if rows}
            for table in taken:
                self._buffers[table] = []
        with self._io_lock:
            for table, rows in taken.items():
                for start in range(0, len(rows), max(self.batch_rows, 1)):
                    chunk = rows[start : start + self.batch_rows]
                    batch = Batch(uuid.uuid4().hex, table, self.columns[table], chunk)
                    if len(self.spool) or not self._insert(batch):
                        self.spool.append(batch)
                        self.stats.rows_spooled += len(chunk)
            self.replay()

    def replay(self) -> int:
        """Write spooled batches oldest first; stop at the first that cannot be written."""
        written = 0
        for path in self.spool.pending():
            batch = self.spool.load(path)
            if not self._insert(batch, spooled=True):
                if self._rejects.get(batch.id, 0) >= MAX_REJECTS:
                    moved = self.spool.set_aside(path)
                    log.error(
                        "batch %s refused %d times; moved to %s", batch.id, MAX_REJECTS, moved
                    )
                    continue
                break
            self.spool.remove(path)
            written += 1
        if written:
            log.info("replayed %d spooled batches; %d left", written, len(self.spool))
        return written

    def ensure_ready(self) -> bool:
        """Run the before-first-write hook if it has not succeeded yet; False if storage is away."""
        if self._ready:
            return True
        try:
            assert self._before_first_write is not None
            self._before_first_write()
        except StorageError as exc:
            self._unreachable(exc)
            return False
        self._ready = True
        return True

    def _unreachable(self, exc: Exception) -> None:
        if self._reachable:
            log.warning("ClickHouse unavailable, spooling to %s: %s", self.spool.directory, exc)
        self._reachable = False

    def _insert(self, batch: Batch, spooled: bool = False) -> bool:
        if not self.ensure_ready():
            self.stats.write_errors += 1
            return False
        try:
            started = time.perf_counter()
            self.storage.insert(batch.table, batch.columns, batch.rows, dedup_token=batch.id)
        except StorageUnavailable as exc:
            self.stats.write_errors += 1
            self._unreachable(exc)
            return False
        except StorageError as exc:
            self.stats.write_errors += 1
            if spooled:
                self._rejects[batch.id] = self._rejects.get(batch.id, 0) + 1
            log.error("insert into %s refused: %s", batch.table, exc)
            return False
        if not self._reachable:
            log.info("ClickHouse reachable again; %d batches spooled", len(self.spool))
            self._reachable = True
        self.stats.last_write_ms = (time.perf_counter() - started) * 1000
        self.stats.rows_written += len(batch.rows)
        self.stats.batches_written += 1
        return True
