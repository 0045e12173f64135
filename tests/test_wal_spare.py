"""The write-ahead log's files made ahead: a process out of descriptors (EMFILE) still
starts its next segment and marks its batches; the spool running out of inodes is in
test_full_disk and test_full_spool_daemon (a real tmpfs)."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest

from server.wal import MIN_SEGMENT_BYTES, Wal
from server.wal_spare import SPARE
from tests.test_wal_rotation import PAD, numbered, open_log


@contextmanager
def no_descriptor_left() -> Iterator[None]:
    """Every file descriptor this process may have is taken, until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    taken = []
    try:
        while True:  # the holes below the limit too
            try:
                taken.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        yield
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_process_out_of_descriptors_still_rotates_marks_and_frees_its_log(
    tmp_path: Path,
) -> None:
    wal = Wal(tmp_path / "wal", 10**9, segment_bytes=MIN_SEGMENT_BYTES)
    wal.recover()
    data = pa.table({"pad": pa.array(["x" * 1000] * 20)})  # ~20 KiB a record
    with no_descriptor_left():
        records = [wal.append("t", data) for _ in range(12)]  # past two segments' worth
        wal.sync()
        wal.mark_batch("b1", "t", records)
        wal.mark_done("b1", records)
        more = [wal.append("t", data) for _ in range(4)]
        wal.sync()
    # each new segment: the spare renamed (a rotation's closed file lets the next be made)
    used = sorted({r.segment for r in records if r.segment is not None})
    assert len(used) > 1 and used == list(range(len(used)))
    assert not wal.uncertain  # every mark written
    on_disk = [p.name for p in sorted((tmp_path / "wal").glob("*.wal"))]
    assert on_disk == [f"{more[-1].segment:012d}.wal"]  # the stored ones deleted
    wal.close()
    again = Wal(tmp_path / "wal", 10**9)
    pending, batches = again.recover()
    assert ([r.id for r in pending], batches) == ([r.id for r in more], [])
    again.close()


@pytest.mark.parametrize(("link", "said"), [
    ("hard", "had another name (a hard link) made to it"),
    ("symbolic", "was removed or replaced underneath"),
])  # fmt: skip
def test_a_spare_linked_or_replaced_before_its_rotation_is_not_used_and_said_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, link: str, said: str
) -> None:
    """The spare made ahead is taken at a rotation only if it is still the log's alone:
    a second name made to it, or its name replaced (a symbolic link there; atk21: said
    to be a hard link), leaves it unused, said with its own cause."""
    directory = tmp_path / "wal"
    outside = tmp_path / "outside.json"
    outside.write_text('{"keep": true}')
    wal = open_log(directory)
    wal.wait_spares()
    spare = directory / SPARE
    if link == "hard":
        os.link(spare, tmp_path / "second-name")
    else:
        os.unlink(spare)
        os.symlink(outside, spare)
    for _ in range(6):  # through a rotation: the spare is looked at as it is taken
        wal.append("t", PAD)
    wal.sync()
    assert numbered(directory, 1).exists() and outside.read_text() == '{"keep": true}'
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warned if "not written; the log rotates without it" in w] == [
        f"{spare} {said}: not written; the log rotates without it"
    ]
    wal.close()
