"""Per-request timings inside a daemon under ``benchmarks/ingest.py --trace DIR``.

Python imports this module at start in every process whose ``PYTHONPATH`` holds
this folder: the daemon (the benchmark puts it there) and its ingest workers
(they inherit it). With ``LB_TRACE`` set it wraps a few of the daemon's functions
by name once their modules are imported, and appends one line per event to
``$LB_TRACE/<pid>.log``; times are ``time.monotonic()`` (one clock for every
process), durations in ms:

- ``req <start> acq= prep= store= sync=``: one push in a web thread: waiting for a
  worker, the whole prepare (wait, send, worker, reply), the write-ahead log
  append and its group-committed fsync;
- ``exec <start> <ms>``: the web thread's whole task (from when a thread took it);
- ``work <start> <ms> <cpu ms>``: a worker preparing one request;
- ``insert <start> <ms> <rows>``: the inserter storing one batch in the engine;
- ``wal <start> <rotate|delete> <ms>``: the write-ahead log starting a segment or
  deleting one (both under the lock every append takes);
- ``gc <start> <generation> <ms>``: a collection of 2 ms or more, or any full one;
- ``hooked <names>``: what was wrapped (a function renamed since is missing here).

Nothing is wrapped without ``LB_TRACE``; this is a benchmark's tool, never imported
by Lightbulb itself.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("LB_TRACE")
_clock = time.monotonic
_local = threading.local()
_out: Any = None


def _emit(*parts: object) -> None:
    _out.write(" ".join(str(p) for p in parts) + "\n")


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _local.gc = _clock()
        return
    began = getattr(_local, "gc", None)
    if began is None:
        return
    took = _clock() - began
    if took >= 0.002 or info["generation"] == 2:
        _emit("gc", f"{began:.4f}", info["generation"], f"{took * 1e3:.2f}")


def _wrap_worker(module: Any) -> None:
    answer = module.answer

    def timed(job: Any, settings: Any) -> Any:
        began, cpu = _clock(), time.process_time()
        reply = answer(job, settings)
        _emit("work", f"{began:.4f}", f"{(_clock() - began) * 1e3:.2f}",
              f"{(time.process_time() - cpu) * 1e3:.2f}")  # fmt: skip
        return reply

    module.answer = timed


def _timed(name: str, method: Any) -> Any:
    """``method`` logging each call as ``wal <start> <name> <ms>``."""

    def wrapper(self: Any, *args: Any) -> Any:
        began = _clock()
        try:
            return method(self, *args)
        finally:
            _emit("wal", f"{began:.4f}", name, f"{(_clock() - began) * 1e3:.2f}")

    return wrapper


def _wrap_storage(wal: Any, inserter: Any) -> None:
    sync, append, insert = wal.sync, wal.append, inserter._insert

    def timed_sync(self: Any) -> None:
        began = _clock()
        try:
            sync(self)
        finally:
            _local.sync = _clock() - began

    def timed_append(self: Any, *args: Any, **kwargs: Any) -> Any:
        began = _clock()
        try:
            return append(self, *args, **kwargs)
        finally:
            _local.append = getattr(_local, "append", 0.0) + _clock() - began

    def timed_insert(self: Any, batch: Any) -> Any:
        began = _clock()
        try:
            return insert(self, batch)
        finally:
            _emit("insert", f"{began:.4f}", f"{(_clock() - began) * 1e3:.2f}",
                  sum(r.rows for r in batch.records))  # fmt: skip

    wal.sync, wal.append, inserter._insert = timed_sync, timed_append, timed_insert
    wal._rotate, wal._delete = _timed("rotate", wal._rotate), _timed("delete", wal._delete)


def _wrap_daemon(modules: dict[str, Any]) -> None:
    ingest, pool = modules["server.web.ingest"], modules["server.logs.workers"].IngestPool
    task = modules["server.web.waitress_door"]._Task
    prepare, store, acquire, execute = ingest._prepare, ingest._store, pool._acquire, task.execute
    _wrap_storage(modules["server.wal"].Wal, modules["server.inserter"].Inserter)

    def timed_prepare(*args: Any) -> Any:
        _local.p0 = _clock()
        _local.acq = _local.sync = _local.append = 0.0
        try:
            return prepare(*args)
        finally:
            _local.p1 = _clock()

    def timed_store(*args: Any) -> Any:
        began = _clock()
        store(*args)
        _emit("req", f"{_local.p0:.4f}", f"acq={_local.acq * 1e3:.2f}",
              f"prep={(_local.p1 - _local.p0) * 1e3:.2f}",
              f"store={(_clock() - began) * 1e3:.2f}", f"sync={_local.sync * 1e3:.2f}",
              f"append={_local.append * 1e3:.2f}")  # fmt: skip

    def timed_acquire(self: Any) -> Any:
        began = _clock()
        try:
            return acquire(self)
        finally:
            _local.acq = _clock() - began

    def timed_execute(self: Any) -> None:
        began = _clock()
        try:
            execute(self)
        finally:
            _emit("exec", f"{began:.4f}", f"{(_clock() - began) * 1e3:.2f}")

    ingest._prepare, ingest._store = timed_prepare, timed_store
    pool._acquire, task.execute = timed_acquire, timed_execute


DAEMON = ("server.web.ingest", "server.logs.workers", "server.wal", "server.inserter",
          "server.web.waitress_door")  # fmt: skip
NEEDS = ("_store", "IngestPool", "Wal", "Inserter", "_Task")  # defined last-ish in each


def _hook() -> None:
    """Wrap what is there to wrap as soon as its modules are imported (polled)."""
    for _ in range(1200):  # a minute at most
        time.sleep(0.05)
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name == "server.logs.worker" and hasattr(main, "answer"):
            _wrap_worker(main)
            _emit("hooked", "worker")
            return
        modules = {name: sys.modules.get(name) for name in DAEMON}
        if all(
            m is not None and hasattr(m, n) for m, n in zip(modules.values(), NEEDS, strict=True)
        ):
            _wrap_daemon(modules)
            _emit("hooked", "daemon")
            return
    _emit("hooked", "nothing (a wrapped function was renamed?)")


if _DIR:
    _out = open(os.path.join(_DIR, f"{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    gc.callbacks.append(_gc_callback)
    threading.Thread(target=_hook, name="lb-trace", daemon=True).start()
