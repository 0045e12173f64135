"""A batch that cannot simply be inserted, and what is done with it.

- One from a previous run (:func:`unstored`): its token cannot be trusted, so
  the storage is asked which of its rows it holds.
- One whose content ClickHouse refuses (:func:`split_refused`): halved until
  the refused rows are found; the others are stored, the refused ones set aside.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import pyarrow as pa

from server.storage import Storage, StorageError, StorageUnavailable
from server.storage.arrow import to_rows
from server.storage.base import StorageMissing
from server.wal import OpenBatch

if TYPE_CHECKING:
    from server.writer import Writer

log = logging.getLogger("lightbulb.writer")
MAX_SPLITS = 64  # inserts spent finding refused rows in one batch before setting the rest aside


def unstored(storage: Storage, batch: OpenBatch, data: pa.Table) -> tuple[str, pa.Table]:
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
        mask = storage.stored_mask(batch.table, data)
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


def split_refused(
    storage: Storage, writer: Writer, batch: OpenBatch, refused: tuple[str, pa.Table, StorageError]
) -> None:
    """Halve a refused batch until the refused rows are found; store the rest.

    ``refused``: the token it was inserted under, its rows, and the refusal.

    Pieces carry tokens derived from the batch id, so a split redone after a
    crash stores each piece once. Raises StorageUnavailable if the server goes away.
    """
    stack = [refused]
    attempts = 0
    while stack:
        token, piece, reason = stack.pop()
        if piece.num_rows == 1 or attempts >= MAX_SPLITS:
            writer.set_aside(batch.table, to_rows(piece), str(reason))
            continue
        half = piece.num_rows // 2
        for i, part in enumerate((piece.slice(0, half), piece.slice(half))):
            attempts += 1
            try:
                storage.insert_arrow(batch.table, part, dedup_token=f"{token}-{i}")
                writer.stats.rows_written += part.num_rows
            except StorageUnavailable:
                raise
            except StorageError as exc:
                stack.append((f"{token}-{i}", part, exc))
