"""Give back the pages of chDB's library that only the engine's start used.

chDB is one 175 MB shared library (``_chdb.abi3.so``). Loading it reads all
10 MB of its relocations (``.rela.dyn``), and starting the engine runs ~1,400
static initialisers and registers every SQL function, format and system
table: after a session opens, ~90 MB of the library's file pages are resident
in our process. A monitor's steady work (inserts, merges, reads) touches ~45-55
MB of them again; the rest was read once (``benchmarks/rss.py``; measured with
chdb-core-lite 26.5.0 on Linux 6.18).

:func:`release_clean_pages` unmaps the pages of the library's read-only
mappings that hold nothing but the file's own pages (``MADV_DONTNEED``): they
stay in the kernel's page cache (clean, so reclaimable like any file read) and
the next touch maps the same page again, a minor fault. Contents cannot change,
since a clean page of a private file mapping is the file's page; a mapping with
any private copy (RELRO after relocation, ``.data``, ``.bss``, a page written
through ``mprotect``) is never touched; which mappings are clean is read from
``/proc/self/smaps`` once per library and process (the dynamic linker makes its
private copies at load, before we look). ``MADV_PAGEOUT`` would also free the
page cache, but skips pages another process maps (a second daemon, test
workers), so our RSS would depend on who else runs.

The same holds for every library the daemon loads: importing pyarrow maps ~26
MB of its libraries (registering its compute kernels and types), of which the
daemon's Arrow writes touch ~8 MB; pydantic-core, OpenSSL and the interpreter's
extension modules do their work mostly while the config is read. Once the daemon
has started, :func:`release_library_pages` gives back the clean pages of every
library (a file with an executable mapping): ~28 MB more at 1,000 services.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

log = logging.getLogger("lightbulb.storage")

MADV_DONTNEED = 4
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ \d+\s*(.*)$")


def clean_mappings(library: str) -> list[tuple[int, int, int]]:
    """``(start, end, resident kB)`` of each read-only private mapping of ``library``
    that holds no anonymous (privately copied) page, from ``/proc/self/smaps``.

    Reading smaps walks the page tables of every mapping of the process (~5 ms of
    CPU with chDB loaded, more in a big daemon): callers that only need the ranges
    again use :func:`release_clean_pages`, which reads it once per library."""
    return [(start, end, rss) for start, end, rss, _ in _clean(lambda path: path == library)]


def _clean(wanted: Callable[[str], bool]) -> list[tuple[int, int, int, str]]:
    """``(start, end, resident kB, path)`` of the clean read-only private file mappings
    whose path ``wanted`` accepts, from one read of ``/proc/self/smaps``."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return []
    maps: list[tuple[int, int, str]] = []
    fields: list[list[int]] = []  # Rss kB, Anonymous kB (-1: not read)
    inside = False
    for line in text.splitlines():
        head = _HEADER.match(line)
        if head:
            start, end, perms, path = head.groups()
            inside = _read_only_private(perms) and wanted(path)
            if inside:
                maps.append((int(start, 16), int(end, 16), path))
                fields.append([0, -1])
        elif inside and line.startswith("Rss:"):
            fields[-1][0] = int(line.split()[1])
        elif inside and line.startswith("Anonymous:"):
            fields[-1][1] = int(line.split()[1])
    return [(start, end, rss, path)
            for (start, end, path), (rss, anon) in zip(maps, fields, strict=True)
            if anon == 0]  # fmt: skip


def _read_only_private(perms: str) -> bool:
    return "w" not in perms and perms.endswith("p")


def release_library_pages() -> int:
    """Unmap the clean read-only pages of every library mapped in this process; kB freed.

    A library is a file with an executable mapping (shared objects, the interpreter);
    a deleted file's mappings are left alone. Reads ``/proc/self/smaps`` once (call it
    once, when start-up is over: the daemon after its first readiness). Returns the kB
    that were resident; 0 where ``madvise`` or ``/proc`` is unavailable."""
    madvise = _madvise()
    if madvise is None:
        return 0
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            heads = [_HEADER.match(line.rstrip("\n")) for line in maps]
    except OSError:
        return 0
    libraries = {head.group(4) for head in heads
                 if head and "x" in head.group(3) and head.group(4).startswith("/")
                 and not head.group(4).endswith(" (deleted)")}  # fmt: skip
    released = 0
    for start, end, resident, _path in _clean(libraries.__contains__):
        if madvise(start, end - start, MADV_DONTNEED) != 0:
            log.debug("madvise(MADV_DONTNEED) refused: errno %d", ctypes.get_errno())
            break
        released += resident
    return released


def _madvise() -> Callable[[int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return cast("Callable[[int, int, int], int]", madvise)


# library (real path) -> its clean ranges, read from smaps on the first release in
# this process: a loaded library's mappings and their private copies (made by the
# dynamic linker at load) do not change while it stays loaded
_CLEAN: dict[str, list[tuple[int, int]]] = {}
_LOCK = threading.Lock()


def release_clean_pages(library: str) -> int:
    """Unmap ``library``'s clean read-only pages; returns the kB of the ranges advised.

    Safe at any time (see the module docstring); costs a minor page fault per page
    the engine needs again. ``/proc/self/smaps`` is read on the first call for a
    library in a process; later calls advise the same ranges after checking in
    ``/proc/self/maps`` (no page-table walk) that each still maps ``library`` with
    the same permissions, and read smaps again if one does not. Does nothing
    (returns 0) where ``madvise`` or ``/proc`` is unavailable."""
    madvise = _madvise()
    if madvise is None:
        return 0
    path = os.path.realpath(library)
    with _LOCK:  # two stores opening at once read smaps once
        ranges = _CLEAN.get(path)
        # none kept (not loaded yet, or nothing clean): look again, as on a first call
        if not ranges or not _still_mapped(path, ranges):
            ranges = [(start, end) for start, end, _ in clean_mappings(path)]
            _CLEAN[path] = ranges
        advised = 0
        for start, end in ranges:
            if madvise(start, end - start, MADV_DONTNEED) != 0:
                log.debug("madvise(MADV_DONTNEED) on %s refused: errno %d", library,
                          ctypes.get_errno())  # fmt: skip
                break
            advised += (end - start) // 1024
        return advised


def _still_mapped(library: str, ranges: list[tuple[int, int]]) -> bool:
    """Is each of ``ranges`` still a whole read-only private mapping of ``library``?

    A range whose file was unmapped and reused (another library, Python's own
    memory) must never be advised: MADV_DONTNEED would zero anonymous pages."""
    wanted = set(ranges)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                head = _HEADER.match(line.rstrip("\n"))
                if head is None:
                    continue
                start, end, perms, path = head.groups()
                key = (int(start, 16), int(end, 16))
                if key in wanted and path == library and _read_only_private(perms):
                    wanted.discard(key)
    except OSError:
        return False
    return not wanted
