"""A damaged byte in the middle of a log segment: damage, not an unfinished write.

A real writer and the embedded engine: records stored and waiting, a kill -9, one
byte flipped, a restart. Counts: every record outside the damaged frame stored
exactly once, the damaged bytes set aside (quarantine/, counted, an ERROR).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.wal_format import BATCH, DATA, frame, read_frames, read_segment
from server.writer import Writer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
REQUESTS, ROWS = 40, 50  # 20 requests stored as one batch, 20 waiting


def row(n: int) -> tuple[Any, ...]:
    return ("svc", T0 + timedelta(milliseconds=n), 0, f"push {n}", "http", "web", "{}", n,
            None, None)  # fmt: skip


def numbers(store: EmbeddedStorage) -> list[int]:
    """``response_time_ms`` of every stored row, duplicates included."""
    return sorted(int(r["response_time_ms"]) for r in store.query(
        "SELECT response_time_ms FROM monitor.service_status"))  # fmt: skip


def open_writer(store: EmbeddedStorage, spool: Path) -> Writer:
    return Writer(store, Spool(spool, 10**9), columns=WRITTEN_TABLES)


def push(writer: Writer, request: int) -> None:
    writer.add_durable("service_status", [row(request * ROWS + i) for i in range(ROWS)])


@pytest.mark.parametrize(
    ("damaged", "lost"),
    [
        ("data:5", 0),  # a stored request's frame: its rows are in ClickHouse already
        ("data:30", ROWS),  # a waiting request's frame: only its rows are gone
        ("batch", 0),  # the stored batch's mark: its rows must not be inserted again
    ],
)
def test_a_flipped_byte_mid_segment_keeps_every_later_frame_and_stores_nothing_twice(
    store: EmbeddedStorage,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damaged: str,
    lost: int,
) -> None:
    apply_schema(store, Target("monitor"))
    spool = tmp_path / "spool"
    writer = open_writer(store, spool)
    for request in range(REQUESTS // 2):
        push(writer, request)
    writer.flush()  # one batch: BATCH, insert, DONE
    for request in range(REQUESTS // 2, REQUESTS):
        push(writer, request)
    os.close(writer.spool.wal._fd)  # kill -9: nothing closed
    segment = spool / "wal" / "000000000000.wal"
    data = bytearray(segment.read_bytes())
    frames, _ = read_frames(bytes(data))
    kind, at = (DATA, int(damaged[5:])) if damaged.startswith("data") else (BATCH, 0)
    offset, payload = [(o, p) for k, o, p in frames if k == kind][at]
    data[offset + len(payload) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR, logger="lightbulb.wal"):
        writer = open_writer(store, spool)
    writer.flush()

    everything = list(range(REQUESTS * ROWS))
    if damaged.startswith("data") and lost:
        first = int(damaged[5:]) * ROWS
        everything = [n for n in everything if not first <= n < first + ROWS]
    assert numbers(store) == everything  # none lost beyond the damage, none twice
    assert writer.spool.wal.damaged_bytes >= len(payload)
    assert [p.stat().st_size for p in (spool / "quarantine").iterdir()] == [
        writer.spool.wal.damaged_bytes
    ]
    said = [r.getMessage() for r in caplog.records
            if r.levelno == logging.ERROR and r.name.startswith("lightbulb")]  # fmt: skip
    assert len(said) == 1 and "damaged bytes" in said[0], said

    writer.stop()
    again = open_writer(store, spool)  # set aside once: the next start finds no damage
    assert again.spool.wal.damaged_bytes == 0
    again.flush()
    assert numbers(store) == everything
    again.stop()


def test_a_cut_short_last_frame_is_an_unfinished_write_and_a_bad_middle_one_is_damage() -> None:
    """The reader alone: what follows the bad bytes decides which they are."""
    frames = [frame(DATA, bytes([n]) * (100 + n)) for n in range(10)]
    whole = b"".join(frames)
    torn = read_segment(whole[: len(whole) - 50])
    assert (len(torn.frames), torn.end, torn.damaged) == (9, len(whole) - len(frames[9]), [])
    bad = bytearray(whole)
    start = sum(map(len, frames[:4]))
    bad[start + 30] ^= 0x01
    damaged = read_segment(bytes(bad))
    assert [p[0] for _, _, p in damaged.frames] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert damaged.damaged == [(start, start + len(frames[4]))]
    assert damaged.end == len(whole)
