"""A segment of the log that cannot be read at a start: moved aside, said once, the start
goes on, and every other record is stored exactly once.

In-process, as the tests run as root (who reads any mode), the unreadable file
is a directory in a segment's place (``EISDIR``, a real error of the file, not
the system); ``tests/test_wal_unreadable_daemon.py`` has a real ``chmod 000``
under a daemon without the capability to ignore it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from server.storage.embedded import EmbeddedStorage
from tests.test_wal_damage import ROWS, numbers, open_writer
from tests.test_wal_segment_damage import REQUESTS, W3, build, segment_files

CASES = {  # name: (the frame in the unreadable segment, rows lost with it)
    "a waiting record's segment": ("W3", W3),
    "the batch mark's segment": ("BATCH", set()),
    "the done mark's segment": ("DONE", set()),
    "the oldest segment": ("W0", set(range(ROWS))),
}


IN_ITS_PLACE = {  # name: (make it in the segment's place, how the quarantine holds it)
    "a directory": (lambda path: path.mkdir(), Path.is_dir),  # EISDIR
    # a FIFO or a link to /dev/zero was taken for an emptied segment and renumbered over
    "a FIFO": (os.mkfifo, lambda p: stat.S_ISFIFO(p.lstat().st_mode)),
    "a symlink to /dev/zero": (lambda path: path.symlink_to("/dev/zero"), Path.is_symlink),
}


@pytest.mark.parametrize("thing", IN_ITS_PLACE)
@pytest.mark.parametrize("case", CASES)
def test_a_segment_that_cannot_be_read_is_moved_aside_once_and_the_start_goes_on(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str,
    thing: str,
) -> None:  # fmt: skip
    spool = tmp_path / "spool"
    where, lost = CASES[case]
    make, kept = IN_ITS_PLACE[thing]
    path = build(store, spool)[where]
    path.unlink()
    make(path)

    with caplog.at_level(logging.ERROR, logger="lightbulb.wal"):
        writer = open_writer(store, spool)  # the start goes on
    wal = writer.spool.wal
    said = [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.name == "lightbulb.wal"]  # fmt: skip
    assert len(said) == 1 and path.name in said[0] and "cannot be read" in said[0], said
    assert "remove it" in said[0]  # the fix for something in the file's place
    assert wal.damage_found == 1 and wal.uncertain  # a mark may have been in it
    (moved,) = (spool / "quarantine").iterdir()
    assert kept(moved) and str(moved) in said[0]
    os.close(wal._fd)  # a crash before anything is inserted

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="lightbulb.wal"):
        again = open_writer(store, spool)  # closed up once: the next start finds nothing
    wal_said = [r for r in caplog.records if r.name == "lightbulb.wal"]
    assert (again.spool.wal.damage_found, wal_said) == (0, [])
    again.flush()
    assert numbers(store) == [n for n in range(REQUESTS * ROWS) if n not in lost]
    again.stop()
    assert not segment_files(spool)
