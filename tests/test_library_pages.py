"""chDB's library pages read only at start are given back; no page's contents ever change."""

from __future__ import annotations

import ctypes
import mmap
import subprocess
import sys
from pathlib import Path

from server.storage.library_pages import (
    clean_mappings,
    release_clean_pages,
    release_library_pages,
)

REPO = Path(__file__).resolve().parents[1]
PAGE = mmap.PAGESIZE

OPEN_WRITE_READ = """
import os, sys
from pathlib import Path
from chdb import _chdb
from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.storage.library_pages import clean_mappings
from server.tables import WRITTEN_TABLES
from server.writer import Writer
from tests.test_writer import row

root = Path(sys.argv[1])
store = EmbeddedStorage(root / "db", "monitor")
resident = sum(kb for _, _, kb in clean_mappings(os.path.realpath(_chdb.__file__)))
apply_schema(store, Target("monitor"))
writer = Writer(store, Spool(root / "spool", 10**8), columns=WRITTEN_TABLES)
for i in range(50):
    writer.add("service_status", row(i))
    writer.flush()
n = store.query("SELECT count() AS n FROM monitor.service_status")[0]["n"]
print(resident // 1024, n)
"""


# Two stores opened one after the other in one process (the test suite, `lightbulb`
# commands that open a store twice): smaps is read for the first only.
OPEN_TWICE = """
import sys
from pathlib import Path
from server.storage.embedded import EmbeddedStorage

opened = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]).endswith("/smaps")
                 and opened.append(args[0]))
root = Path(sys.argv[1])
for name in ("a", "b"):
    store = EmbeddedStorage(root / name, "monitor")
    store.query("SELECT 1 AS one")
    store.close()
print(len(opened))
"""


def resident_kb(path: Path) -> int:
    return sum(kb for _, _, kb in clean_mappings(str(path)))


def test_an_opened_store_holds_under_half_of_chdbs_startup_pages_and_still_writes(
    tmp_path: Path,
) -> None:
    # Without the release, an opened session holds ~70-80 MB of the library's read-only
    # pages (relocations, start-up code), with it ~25-35 MB; inserts, merges and reads
    # then map back what they use (~50 MB after 50 inserts; chdb-core-lite 26.5.0).
    out = subprocess.run(
        [sys.executable, "-c", OPEN_WRITE_READ, str(tmp_path)], cwd=REPO, check=False,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    resident_mb, stored = map(int, out.stdout.split())
    assert resident_mb < 45
    assert stored == 50


def test_a_second_store_in_one_process_does_not_read_smaps_again(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", OPEN_TWICE, str(tmp_path)], cwd=REPO, check=False,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1"]


def test_pages_touched_again_are_released_again_from_the_ranges_read_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lib.bin"
    data = bytes(range(256)) * (16 * PAGE // 256)
    path.write_bytes(data)
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), len(data), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        for _ in range(2):
            assert view[:] == data
            assert resident_kb(path) == 16 * PAGE // 1024
            assert release_clean_pages(str(path)) == 16 * PAGE // 1024
            assert resident_kb(path) == 0
    finally:
        view.close()


def test_a_library_released_before_it_was_mapped_is_released_once_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.bin"
    path.write_bytes(b"l" * 4 * PAGE)
    assert release_clean_pages(str(path)) == 0  # not mapped yet: nothing to keep
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 4 * PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        assert view[:] == b"l" * 4 * PAGE
        assert release_clean_pages(str(path)) == 4 * PAGE // 1024
        assert resident_kb(path) == 0
    finally:
        view.close()


def test_memory_mapped_where_a_released_library_was_is_never_zeroed(tmp_path: Path) -> None:
    # The ranges are kept after the first release: once the file is unmapped, the same
    # addresses can hold anonymous memory, which MADV_DONTNEED would turn into zeros.
    path = tmp_path / "gone.bin"
    path.write_bytes(b"g" * 8 * PAGE)
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 8 * PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    ((where, _, _),) = clean_mappings(str(path))
    assert release_clean_pages(str(path)) == 8 * PAGE // 1024
    view.close()
    anon = mmap.mmap(-1, 8 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        anon[:] = b"a" * 8 * PAGE
        first = ctypes.c_char.from_buffer(anon)
        assert ctypes.addressof(first) == where  # the kernel reused the range: the case
        del first
        assert release_clean_pages(str(path)) == 0
        assert anon[:] == b"a" * 8 * PAGE
    finally:
        anon.close()


def test_clean_file_pages_are_unmapped_and_read_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "lib.bin"
    data = bytes(range(256)) * (64 * PAGE // 256)
    path.write_bytes(data)
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), len(data), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        assert view[:] == data  # every page touched: resident
        assert resident_kb(path) == 64 * PAGE // 1024
        assert release_clean_pages(str(path)) == 64 * PAGE // 1024
        assert resident_kb(path) == 0
        assert view[:] == data
    finally:
        view.close()


def test_a_mapping_holding_a_private_copy_is_left_alone(tmp_path: Path) -> None:
    # RELRO after relocation: a private mapping written, then made read-only. Unmapping
    # its pages would bring back the file's bytes in place of ours.
    path = tmp_path / "relro.bin"
    path.write_bytes(b"f" * 4 * PAGE)
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 4 * PAGE, flags=mmap.MAP_PRIVATE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
    try:
        view[:PAGE] = b"r" * PAGE  # one page copied and changed, three the file's own
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert libc.mprotect(address, 4 * PAGE, mmap.PROT_READ) == 0
        assert clean_mappings(str(path)) == []
        release_clean_pages(str(path))
        assert view[:PAGE] == b"r" * PAGE
    finally:
        view.close()


def test_a_data_file_mapped_read_only_keeps_its_pages(tmp_path: Path) -> None:
    # Only libraries (files with an executable mapping) are released: a data file's
    # pages may be what its reader keeps resident on purpose.
    path = tmp_path / "data.bin"
    data = b"d" * 8 * PAGE
    path.write_bytes(data)
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), len(data), flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        assert view[:] == data
        release_library_pages()
        assert resident_kb(path) == 8 * PAGE // 1024
    finally:
        view.close()
