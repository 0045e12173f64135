"""``quarantine/``: every copy of damaged log bytes kept under its own name, the directory
bounded, and ``lightbulb spool list|drop`` showing and removing them.

A real log on disk: records appended and fsync'd, the process "killed" (the file
abandoned), one byte flipped mid-segment, a start. A clean stop with everything
stored deletes the segments, so the next run numbers them from 0 again: the same
segment and offset are damaged again and again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest

from server.wal import Wal
from server.wal_format import DATA, data_payload, frame
from server.wal_quarantine import Quarantine
from tests.conftest import run_cli
from tests.test_daemon import write_config

CAP = 2**20  # spool_max_bytes: the quarantine holds a quarter of it


def damaged_run(spool: Path, run: int, pad: int = 100) -> tuple[Wal, bytes]:
    """A log of 5 records whose third is damaged, started on, stored and stopped
    cleanly; returns the log and the damaged frame's bytes as they were found."""
    wal = Wal(spool / "wal", CAP)
    wal.recover()
    records = [wal.append("t", pa.table({"run": [run], "pad": ["x" * pad]})) for _ in range(5)]
    wal.sync()
    os.close(wal._fd)  # kill -9
    segment = spool / "wal" / f"{records[2].segment:012d}.wal"
    data = bytearray(segment.read_bytes())
    data[records[2].offset + 10] ^= 0xFF
    segment.write_bytes(bytes(data))
    start = records[2].offset - len(frame(DATA, data_payload(0, "t", b"")))  # its header
    damaged = bytes(data[start : records[2].offset + records[2].length])
    wal = Wal(spool / "wal", CAP)
    pending, uncertain = wal.recover()  # damage found: all of them uncertain
    assert not pending and len(uncertain) == 1 and wal.damage_found == 1
    wal.mark_done(uncertain[0].id, uncertain[0].records)  # stored
    wal.close()
    assert not list((spool / "wal").glob("*.wal"))  # all stored: numbering starts again
    return wal, damaged


def test_damage_found_at_the_same_segment_and_offset_twice_keeps_both_copies(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    copies = [damaged_run(spool, run)[1] for run in range(3)]
    files = Quarantine(spool / "quarantine", CAP // 4).entries()
    assert len({f.path.name for f in files}) == 3
    assert sorted(f.path.read_bytes() for f in files) == sorted(copies)
    assert len(set(copies)) == 3  # three different damages, none overwritten


def test_the_quarantine_stays_under_its_cap_removing_the_oldest_and_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    pad = 100_000  # ~100 KiB a damaged frame: three pass the cap of 256 KiB
    kept = []
    (spool / "quarantine").mkdir(parents=True)
    (spool / "quarantine" / "notes.txt").write_text("an operator's note\n")  # not ours: kept
    with caplog.at_level(logging.WARNING, logger="lightbulb.wal"):
        for run in range(5):
            wal, damaged = damaged_run(spool, run, pad)
            kept.append(damaged)
            files = wal.quarantine.entries()
            assert sum(f.size for f in files) <= CAP // 4
            assert wal.quarantine.removed_files == (1 if run >= 2 else 0)
    assert [f.path.read_bytes() for f in files] == kept[-2:]  # the newest two, oldest first
    assert (spool / "quarantine" / "notes.txt").read_text() == "an operator's note\n"
    removed = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
    assert len(removed) == 3 and all("quarantine" in m for m in removed)


def test_a_copy_larger_than_the_cap_keeps_its_first_bytes(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path / "quarantine", 1000)
    path, kept = quarantine.keep("000000000007", 42, bytes(range(256)) * 10)
    assert kept == 1000 and path.read_bytes() == (bytes(range(256)) * 10)[:1000]
    assert path.name.endswith("-000000000007-42.bad")


def test_spool_list_shows_quarantined_files_and_drop_removes_them(tmp_path: Path) -> None:
    config = write_config(tmp_path, "  []\n")
    spool = tmp_path / "spool"
    for run in range(3):
        damaged_run(spool, run)
    files = Quarantine(spool / "quarantine", CAP // 4).entries()
    listed = run_cli("-m", "server.cli", "spool", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert f"3 files in {spool / 'quarantine'}" in listed.stdout
    for f in files:
        assert f"  {f.path.name}  {f.size} bytes  " in listed.stdout
    one = run_cli("-m", "server.cli", "spool", "drop", files[0].path.name, "--config", str(config))
    assert one.returncode == 0, one.stderr
    assert f"{files[0].path.name}: dropped ({files[0].size} bytes" in one.stdout
    rest = run_cli("-m", "server.cli", "spool", "drop", "--quarantined", "--config", str(config))
    assert rest.returncode == 0 and rest.stdout.count(": dropped (") == 2, rest.stdout
    assert not list((spool / "quarantine").iterdir())
    again = run_cli("-m", "server.cli", "spool", "drop", "--quarantined", "--config", str(config))
    assert again.returncode == 0 and "nothing in" in again.stdout


def test_a_symlink_in_place_of_the_quarantine_is_never_written_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Damaged bytes were written wherever a link at ``quarantine/`` pointed, while the
    ERROR named a path inside the spool (atk17). The link is removed, its target left
    alone, and the bytes kept in a directory of the spool's own."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "spool" / "quarantine"
    home.parent.mkdir()
    home.symlink_to(elsewhere)
    for keep in (lambda q: q.keep("000000000003", 40, b"damaged"),
                 lambda q: q.keep("000000000003", 80, b"again")):  # fmt: skip
        path, _ = keep(Quarantine(home, 1 << 20))
        assert path.parent == home and not home.is_symlink() and home.is_dir()
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.read_bytes() for p in home.iterdir()) == [b"again", b"damaged"]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "symbolic link" in warned[0].getMessage()


def test_a_fifo_or_link_set_aside_in_the_quarantine_is_listed_and_dropped_as_itself(
    tmp_path: Path,
) -> None:
    """A FIFO found at a segment's name is set aside into the quarantine as it is: it was
    neither listed nor dropped (atk21: "nothing to do" while it stayed). A link there is
    dropped as a link, its target kept."""
    quarantine = Quarantine(tmp_path / "quarantine", CAP)
    quarantine.directory.mkdir()
    os.mkfifo(quarantine.directory / "20261202T000000.000Z-0000-000000000001.wal-0.bad")
    outside = tmp_path / "outside"
    outside.write_text("keep")
    os.symlink(outside, quarantine.directory / "20261202T000001.000Z-0001-linked-0.bad")
    (quarantine.directory / "notes.txt").write_text("an operator's")
    found = quarantine.entries()
    assert [e.size for e in found] == [0, 0]  # no bytes of the log (a link's is its target's name)
    for entry in found:
        quarantine.drop(entry)
    assert [p.name for p in quarantine.directory.iterdir()] == ["notes.txt"]
    assert outside.read_text() == "keep"
