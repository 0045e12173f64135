"""Keep pyarrow from importing numpy, which nothing of Lightbulb uses, and from
mapping a mimalloc arena (see :func:`arrow_buffers_from_malloc`); keep chDB's
allocator's per-thread caches small (see :func:`small_engine_thread_caches`).

pyarrow imports numpy while it initialises whenever numpy is installed (for
conversions we never make: our rows are tuples, our batches Arrow IPC), and chDB
imports pyarrow. That costs 10-15 MB of RSS per process (`import pyarrow`: 42 MB
with numpy, 29 MB without; a chDB session 157 against 147 MB, measured with
chdb-core-lite 26.5.0 and pyarrow 26.0.1). pyarrow and chDB work without it
(``tests/test_lean_imports.py``).

Only pyarrow's own initialisation is refused numpy: code that imports numpy
itself, before or after, gets it, and pyarrow then keeps working without it.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import Any

REFUSED = "numpy"


class _NoNumpyForPyarrow(importlib.abc.MetaPathFinder):
    """A finder that fails ``import numpy`` while the ``pyarrow`` package initialises."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == REFUSED or name.startswith(REFUSED + "."):
            module = sys.modules.get("pyarrow")
            spec = getattr(module, "__spec__", None)
            if module is not None and getattr(spec, "_initializing", False):
                raise ImportError("numpy is not loaded for pyarrow by lightbulb (unused)")


def refuse_numpy_for_pyarrow() -> None:
    """Install the finder once, before anything imports pyarrow (``server/__init__.py``)."""
    if not any(isinstance(f, _NoNumpyForPyarrow) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoNumpyForPyarrow())


def arrow_buffers_from_malloc() -> None:
    """Make malloc Arrow's default memory pool, unless ``ARROW_DEFAULT_MEMORY_POOL`` is set.

    Arrow's C++ side (IPC writing and reading, not only ``pyarrow``'s Python calls)
    takes its default pool from that variable when first asked, and by default uses
    mimalloc, which maps a 1 GiB arena and kept ~7.5 MB of it resident in a daemon at
    1,000 services whose Arrow buffers peak at ~0.2 MB (``benchmarks/rss.py``; the
    CPU per check did not change). Called before anything imports pyarrow; child
    processes (the ingest workers) inherit the choice.
    """
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


#: chDB's jemalloc settings (it reads ``JE_MALLOC_CONF`` when its library loads):
#: per-thread caches for sizes up to 4 KiB only (default 32 KiB) and an eighth of the
#: default slots per size class.
ENGINE_MALLOC_CONF = "tcache_max:4096,lg_tcache_nslots_mul:-3"


def small_engine_thread_caches() -> None:
    """Set ``JE_MALLOC_CONF`` for chDB's jemalloc, unless the user set it.

    Each of the embedded engine's ~20 threads keeps freed blocks in its own cache;
    at 1,000 services they held ~10 MB (jemalloc's allocated 47 -> 36 MB, the
    daemon's RSS 163 -> 152-153 MB; ``benchmarks/RESULTS.md``, rss10b, exploratory).
    CPU per 200-row insert and per dashboard-like read moved within the noise;
    turning the caches off (``tcache:false``) saved ~2 MB more but cost 16-39% more
    CPU per insert. Called before anything imports chDB (``server/__init__.py``).
    """
    os.environ.setdefault("JE_MALLOC_CONF", ENGINE_MALLOC_CONF)
