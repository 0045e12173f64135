"""Reading a batch's records back from the spool, and what a failed read means, by kind.

A record evicted from memory (or left by a previous run) is read back from its
segment before its batch is inserted. A read fails for one of three kinds of
reason, and none of them loses a row:

- **the system is short of something** (:data:`server.core.oserrors.SHORTAGES`: descriptors, memory,
  ``EAGAIN``/``EINTR``, a full disk; or ``MemoryError``): nothing is wrong with
  the batch, and every other read would fail alike, so the round stops
  (:class:`Shortage`) and everything is retried next round;
- **this file cannot be read** (any other ``OSError``: permissions, ``EIO``, a
  directory in its place...): the batch waits and is retried every round, while
  the batches in other files go on; an operator can fix the file;
- **the bytes are read but do not decode** (an Arrow error, or the file is shorter
  than the record): no retry can help. The record's bytes are copied to
  ``quarantine/`` (``lightbulb spool list`` shows them), its rows counted
  (``rows_quarantined``) with one ERROR, and the batch's other records are
  inserted. If they cannot be copied (a full disk), it is a shortage: retried.

Each kind is logged once when it starts, then at most once a minute with a count,
and its end once (:class:`server.core.repeats.Repeats`), per file for file faults.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from server.core.clock import Clock
from server.core.oserrors import DESCRIPTORS, fix, is_shortage, why
from server.core.repeats import Repeats
from server.storage.arrow import from_ipc
from server.wal import OpenBatch, Record, Wal

log = logging.getLogger("lightbulb.writer")

RETRIED = "retried every round, the other batches go on"


class Shortage(Exception):
    """The system is short of something (``cause``): the insert round waits for the next."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class BatchReads:
    """Reads batches' records from ``wal``; ``quarantined(rows)`` counts rows set aside.

    Thread-safe for one reader (the insert thread); ``clock`` paces the log lines.
    """

    def __init__(self, wal: Wal, quarantined: Callable[[int], None], clock: Clock) -> None:
        self.wal = wal
        self._quarantined = quarantined
        self.clock = clock
        self._lock = threading.Lock()
        self._repeats: dict[str, Repeats] = {}  # "" for shortages, else the file's path
        self.failures = 0  # reads that failed and will be retried, ever
        self._set_aside: set[int] = set()  # records quarantined, their batch not yet done

    def read(self, batch: OpenBatch) -> list[pa.Table] | None:
        """The batch's rows, a table per record that decodes (undecodable ones quarantined).

        None: a file of the batch cannot be read now (logged; retry it later).
        Raises :class:`Shortage` when the system is short of something.
        """
        tables: list[pa.Table] = []
        for record in batch.records:
            if record.data is not None:
                tables.append(record.data)
                continue
            if record.id in self._set_aside:  # its insert was retried: quarantined once
                continue
            assert record.segment is not None  # a record not in memory is on disk
            path = self.wal.segment_path(record.segment)
            try:
                raw = self.wal.record_bytes(record)
            except (OSError, MemoryError) as exc:
                if is_shortage(exc):
                    raise self._short(exc) from exc
                assert isinstance(exc, OSError)
                self._unreadable(batch, path, exc)
                return None
            try:
                if len(raw) < record.length:
                    raise ValueError(f"the file holds {len(raw)} of its {record.length} bytes")
                tables.append(from_ipc(raw))
            except MemoryError as exc:
                raise self._short(exc) from exc
            except Exception as exc:  # bytes in memory: any error is theirs (Arrow raises
                # OSError for "Invalid IPC message", ArrowInvalid for others)
                self._quarantine(batch, record, path, raw, exc)
            self._ok(str(path))
        self._ok("")
        return tables

    def done(self, batch: OpenBatch) -> None:
        """The batch is stored (or set aside): its records are read no more."""
        self._set_aside.difference_update(r.id for r in batch.records)

    # -- the kinds -------------------------------------------------------------------------
    def _short(self, exc: BaseException) -> Shortage:
        if getattr(exc, "errno", None) in DESCRIPTORS:  # the inserter's "descriptors short"
            return Shortage(exc)  # state says it, once, and counts the round's wait
        self.failures += 1
        unlogged = self._due("")
        if unlogged == 0:
            log.error("cannot read waiting rows back from the spool at %s: %s; inserts wait "
                      "and are retried every round, nothing is lost: %s",
                      self.wal.directory, why(exc), fix(exc))  # fmt: skip
        elif unlogged is not None:
            log.warning("still cannot read waiting rows back from the spool: %s (%d more "
                        "failed reads since the last such line): %s",
                        why(exc), unlogged, fix(exc))  # fmt: skip
        return Shortage(exc)

    def _unreadable(self, batch: OpenBatch, path: Path, exc: OSError) -> None:
        self.failures += 1
        unlogged = self._due(str(path))
        rows = sum(r.rows for r in batch.records)
        if unlogged == 0:
            log.error("cannot read %s (batch %s, %d %s rows): %s; %s: %s", path, batch.id,
                      rows, batch.table, why(exc), RETRIED, fix(exc))  # fmt: skip
        elif unlogged is not None:
            log.warning("still cannot read %s: %s (%d more failed reads since the last such "
                        "line): %s", path, why(exc), unlogged, fix(exc))  # fmt: skip

    def _quarantine(
        self, batch: OpenBatch, record: Record, path: Path, raw: bytes, exc: Exception
    ) -> None:
        try:
            where, _ = self.wal.quarantine.keep(path.stem, record.offset, raw)
        except (MemoryError, OSError) as failed:  # kept in the spool: tried again next round
            raise self._short(failed) from failed
        self._quarantined(record.rows)
        log.error("%d %s rows of batch %s cannot be decoded from %s at offset %d (%s): their "
                  "bytes are set aside in %s (lightbulb spool list); the batch's other rows "
                  "are inserted", record.rows, batch.table, batch.id, path, record.offset,
                  exc, where)  # fmt: skip
        self._set_aside.add(record.id)  # read no more: done with its batch

    def _due(self, key: str) -> int | None:
        with self._lock:
            repeats = self._repeats.setdefault(key, Repeats(clock=self.clock))
        return repeats.due()

    def _ok(self, key: str) -> None:
        with self._lock:
            repeats = self._repeats.get(key)
        if repeats is None:
            return
        failures = repeats.ok()
        if failures is not None:
            with self._lock:
                self._repeats.pop(key, None)
            what = key or f"the spool at {self.wal.directory}"
            log.info("%s reads again (%d reads failed meanwhile)", what, failures)
