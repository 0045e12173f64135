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
through ``mprotect``) is never touched. ``MADV_PAGEOUT`` would also free the
page cache, but skips pages another process maps (a second daemon, test
workers), so our RSS would depend on who else runs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("lightbulb.storage")

MADV_DONTNEED = 4
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ \d+\s*(.*)$")


def clean_mappings(library: str) -> list[tuple[int, int, int]]:
    """``(start, end, resident kB)`` of each read-only private mapping of ``library``
    that holds no anonymous (privately copied) page, from ``/proc/self/smaps``."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return []
    maps: list[list[int]] = []  # start, end, Rss kB, Anonymous kB (-1: not read)
    inside = False
    for line in text.splitlines():
        head = _HEADER.match(line)
        if head:
            start, end, perms, path = head.groups()
            inside = path == library and "w" not in perms and perms.endswith("p")
            if inside:
                maps.append([int(start, 16), int(end, 16), 0, -1])
        elif inside and line.startswith("Rss:"):
            maps[-1][2] = int(line.split()[1])
        elif inside and line.startswith("Anonymous:"):
            maps[-1][3] = int(line.split()[1])
    return [(start, end, rss) for start, end, rss, anon in maps if anon == 0]


def release_clean_pages(library: str) -> int:
    """Unmap ``library``'s clean read-only pages; returns the kB that were resident.

    Safe at any time (see the module docstring); costs a minor page fault per page
    the engine needs again. Does nothing (returns 0) where ``madvise`` is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for start, end, resident in clean_mappings(os.path.realpath(library)):
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += resident
        else:
            log.debug("madvise(MADV_DONTNEED) on %s refused: errno %d", library, ctypes.get_errno())
            return released
    return released
