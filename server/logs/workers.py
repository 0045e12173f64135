"""Ingest worker processes: pushed records prepared beside the daemon, not under its GIL.

The daemon's Python is one core at most, and preparing a record (decode,
validate, mask, encode: :func:`server.logs.prepare.prepare`) is ~13 µs of it
(benchmarks/RESULTS.md, "ingest.py, round 3"), so a request of more than
:data:`INLINE_BELOW` bytes goes to a worker process; what comes back is the
Arrow IPC stream the write-ahead log stores as it is. Smaller ones are prepared
in the request's thread: for them the round trip costs more than the work.

- Workers are started with ``python -m server.logs.worker`` (a fresh
  interpreter, never a fork of this threaded process with its engine), each on
  its own socket. A worker learns the config and the exact secret values the
  daemon masks (:func:`server.core.redact.active`) before its first job and
  again after each reload, so masking is the daemon's own.
- At most ``logs.workers`` requests are prepared at once and ``logs.worker_queue``
  wait for a worker; one more is answered 429 with ``Retry-After`` (counted).
- A worker that dies or hangs (:data:`REPLY_TIMEOUT`) costs its request a 503
  with ``Retry-After``: nothing of it was written, so the retry is no
  duplicate. Another worker is started in the background. One found dead
  before a request was sent to it (it died while idle) costs nobody a 503: the
  request goes to another worker, or is prepared inline while none runs.
- A worker exits when its socket closes: at :meth:`IngestPool.stop`, or when
  the daemon dies, ``kill -9`` included (the kernel closes the daemon's end).
  Workers have a process group of their own: a signal to the daemon's (Ctrl-C,
  ``kill -- -PGID``; systemd's unit sets ``KillMode=mixed`` for its cgroup) is the
  daemon's to act on, not a worker's death mid-start.
- Workers start with the first request that needs one; while none is running
  (until then, or if none can be started) requests are prepared in the daemon,
  as with ``logs.workers: 0``.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from server.config.models import Config
from server.core import redact
from server.logs.pool_stats import PoolStats
from server.logs.prepare import Job, Prepared, Refused, Settings, prepare
from server.logs.worker_process import Worker, close, end, ended, spawn
from server.writer import Busy

log = logging.getLogger("lightbulb.ingest")
# Below this many body bytes a request is prepared in the daemon: the daemon's CPU for a
# round trip to a worker (~0.18 ms) is more than preparing one or two records inline
# (benchmarks/ingest_handoff.py: 1 NDJSON record of 183 B 0.16 ms inline, 0.18 by a
# worker; 3 records of 549 B 0.22 / 0.21; 1,000 records 7.0 / 0.63 ms).
INLINE_BELOW = 512
REPLY_TIMEOUT = 30.0  # s a worker may take over one request before it is taken for hung
#: the 503 for a reply the daemon has no memory to read (message, Retry-After s, status)
SHORT_OF_MEMORY = ("the daemon is short of memory reading this request's records; nothing "
                   "of it was stored; retry", 5, 503)  # fmt: skip
RESTART_PAUSE = 5.0  # s between attempts when a worker cannot be started


class WorkerFailed(Exception):
    """A worker raised preparing the request (a bug): answer 500; nothing was stored."""


@dataclass(eq=False)
class _Turn:
    """A request waiting for a worker; ``worker`` is set when one is handed to it."""

    worker: Worker | None = None


class IngestPool:
    """``workers`` worker processes and a queue of ``queue`` waiting requests."""

    def __init__(self, workers: int, queue: int, *, inline_below: int = INLINE_BELOW,
                 reply_timeout: float = REPLY_TIMEOUT,
                 stats: PoolStats | None = None) -> None:  # fmt: skip
        self.size = workers
        self.queue = queue
        self.inline_below = inline_below
        self.reply_timeout = reply_timeout
        self.stats = stats or PoolStats()
        self._cond = threading.Condition()
        self._running: list[Worker] = []
        self._idle: list[Worker] = []
        self._dead: list[Worker] = []
        self._waiters: deque[_Turn] = deque()  # oldest first
        self._stopping = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._settings_lock = threading.Lock()
        self._key: tuple[Any, ...] = ()
        self._settings: Settings | None = None
        self._message = b""
        self._generation = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers in the background (requests are prepared inline until then).

        Called by the first request that needs a worker: a daemon that is pushed no
        logs, or only small requests, runs none (each costs ~75 MB). Once: later
        calls do nothing."""
        with self._cond:
            if not self.size or self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._supervise, name="lightbulb-ingest",
                                            daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Close every worker's socket (each exits on EOF); kill any left after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake.set()
        if self._thread is not None:  # a worker it is starting now ends up in _dead
            self._thread.join(timeout)
        with self._cond:
            workers = [*self._running, *self._dead]
            self._running, self._idle, self._dead = [], [], []
        for worker in workers:
            close(worker)
        for worker in workers:
            end(worker, max(deadline - time.monotonic(), 0.0))

    def pids(self, *, busy: bool = False) -> list[int]:
        """Process ids of the running workers (``busy``: of those preparing a request)."""
        with self._cond:
            return [w.proc.pid for w in self._running if not busy or w not in self._idle]

    def busy(self) -> int:
        """Workers preparing a request now."""
        with self._cond:
            return len(self._running) - len(self._idle)

    # -- preparing -----------------------------------------------------------------------
    def prepare(self, job: Job, config: Config, schema: pa.Schema) -> Prepared:
        """``job`` prepared by a worker (or inline, see the module's docstring).

        Raises :class:`~server.logs.prepare.Refused` (the request's fault),
        :class:`~server.writer.Busy` (429: the queue is full; 503: the worker
        died, hung, or the daemon is stopping) and :class:`WorkerFailed`.
        Nothing is written here: whatever it raises, nothing of ``job`` is stored.
        """
        settings, generation, message = self._current(config, schema)
        if len(job.body) >= self.inline_below and self._thread is None:
            self.start()
        unread = 0
        while True:
            worker = self._acquire() if len(job.body) >= self.inline_below else None
            if worker is None:
                self.stats.inline += 1
                return prepare(job, settings)
            try:
                handed = self._handed(worker, job, generation, message)
            except BaseException:  # MemoryError pickling the job: it never reached the worker
                self._done(worker)
                raise
            if not handed:
                continue  # it died while idle: nothing of this request reached it
            try:
                if not worker.conn.poll(self.reply_timeout):
                    raise TimeoutError(f"no answer in {self.reply_timeout:.0f} s")
                data = worker.conn.recv_bytes()
            except MemoryError as exc:
                # its reply is left unread in the socket: the worker is of no further use
                self._lost(worker, exc)
                raise Busy(*SHORT_OF_MEMORY) from None
            except ConnectionResetError as exc:
                # a Unix socket's peer that closes with data unread resets it: the worker
                # was dying as we sent (its threads not all gone yet) and never read the
                # job, so another takes it; bounded, in case the cause is the request
                self._lost(worker, exc, answered=False)
                unread += 1
                if unread <= self.size:
                    continue
                raise Busy("ingest workers stopped before reading this request; nothing of "
                           "it was stored; retry", 1, 503) from None  # fmt: skip
            except (EOFError, OSError) as exc:
                self._lost(worker, exc)
                raise Busy("the ingest worker preparing this request stopped; nothing of it "
                           "was stored; retry", 1, 503) from None  # fmt: skip
            break
        # its reply is read whole: it is free for the next request, whatever the reply holds
        self._done(worker)
        self.stats.jobs += 1
        try:
            reply = pickle.loads(data)  # noqa: S301 - our own child
        except MemoryError:
            raise Busy(*SHORT_OF_MEMORY) from None
        except Exception as exc:  # a bug (ours or pickle's): the request's 500, not the pool's
            log.error(
                "ingest worker's reply could not be read: %s: %s",
                type(exc).__name__,
                redact.redact(str(exc)),
            )
            raise WorkerFailed(f"the worker's reply could not be read ({type(exc).__name__})"
                               ) from exc  # fmt: skip
        return _prepared(reply, settings.schema)

    def _handed(self, worker: Worker, job: Job, generation: int, message: bytes) -> bool:
        """Send ``job`` (and new settings) to ``worker``; False if it was found dead first.

        An idle worker never has anything to read: readable means its end closed (it died
        while idle), and a send that fails never reached it. Either way it is replaced
        and the request goes elsewhere, not answered 503.
        """
        try:
            if worker.proc.poll() is not None or worker.conn.poll(0):
                raise EOFError("it died while idle")
            if worker.generation != generation:
                worker.conn.send_bytes(message)
                worker.generation = generation
            worker.conn.send_bytes(pickle.dumps(("job", job), protocol=pickle.HIGHEST_PROTOCOL))
        except (EOFError, OSError) as exc:
            self._lost(worker, exc, answered=False)
            return False
        return True

    def _current(self, config: Config, schema: pa.Schema) -> tuple[Settings, int, bytes]:
        """The settings for ``config`` and the secrets masked now, and their generation."""
        # values and generation read together: a reload between two reads would send one
        # load's values under another's generation (and never resend them)
        masked = redact.masked()
        with self._settings_lock:
            kept = self._key
            if (
                self._settings is None
                or kept[0] is not config
                or kept[2] is not schema
                or kept[1] != masked.generation
            ):  # an int: equal, not the same object
                self._settings = Settings.of(config, schema)
                self._message = pickle.dumps(("settings", self._settings, masked.values))
                self._generation += 1
                self._key = (config, masked.generation, schema)
            return self._settings, self._generation, self._message

    def _acquire(self) -> Worker | None:
        """An idle worker, waiting for one if the queue has room; None: prepare inline.

        First come, first served: a freed worker is handed to the oldest waiter, never
        taken by a request that arrived later (that barging put a few requests behind
        many others: the tail of the latency).
        """
        with self._cond:
            if self._stopping:
                raise Busy("the daemon is stopping; retry", 1, 503)
            if not self._running:
                return None
            if self._idle and not self._waiters:
                return self._idle.pop()
            if len(self._waiters) >= self.queue:
                self.stats.queue_refusals += 1
                raise Busy(f"all {len(self._running)} ingest workers are busy and "
                           f"{len(self._waiters)} requests wait; retry later", 1, 429)  # fmt: skip
            turn = _Turn()
            self._waiters.append(turn)
            try:
                while turn.worker is None and self._running and not self._stopping:
                    self._cond.wait()
            except BaseException:  # MemoryError, KeyboardInterrupt: no worker handed to nobody
                if turn.worker is not None:
                    self._release(turn.worker)
                elif turn in self._waiters:
                    self._waiters.remove(turn)
                raise
            if turn.worker is None:
                self._waiters.remove(turn)
                if self._stopping:
                    raise Busy("the daemon is stopping; retry", 1, 503)
            return turn.worker

    def _release(self, worker: Worker) -> None:
        """``worker`` is free: to the oldest waiter, else idle (hold ``self._cond``)."""
        if self._waiters:
            self._waiters.popleft().worker = worker
            self._cond.notify_all()
        else:
            self._idle.append(worker)

    def _done(self, worker: Worker) -> None:
        with self._cond:
            if worker in self._running:
                self._release(worker)

    def _lost(self, worker: Worker, exc: BaseException, *, answered: bool = True) -> None:
        """``worker`` is gone or hung: killed, replaced in the background, and logged with
        why (``answered``: its request was answered 503; else it was found dead idle)."""
        code = worker.proc.poll()  # before our kill: how it ended, if it had
        if code is None and not isinstance(exc, TimeoutError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = worker.proc.wait(0.5)  # its end of the socket closed: it is exiting
        worker.proc.kill()  # hung, or half gone: it takes no further request either way
        with self._cond:
            if worker in self._running:
                self._running.remove(worker)
                if worker in self._idle:
                    self._idle.remove(worker)
                self._dead.append(worker)
                self.stats.worker_exits += 1
            self._cond.notify_all()
        if not self._stopping:
            log.warning("ingest worker %d lost (%s, %s); %s, starting another", worker.proc.pid,
                        str(exc) or type(exc).__name__, ended(code),
                        "its request was answered 503" if answered
                        else "no request had reached it")  # fmt: skip
        self._wake.set()

    # -- starting and replacing workers ----------------------------------------------------
    def _supervise(self) -> None:
        failing = False
        while not self._stopping:
            with self._cond:
                dead, self._dead = self._dead, []
            for worker in dead:
                close(worker)
                end(worker, 1.0)
            while len(self._running) < self.size and not self._stopping:
                try:
                    worker = spawn(lambda: self._stopping)
                except (OSError, RuntimeError) as exc:
                    if self._stopping:  # the pool's stop cut the start short: no failure
                        break
                    self.stats.start_failures += 1
                    if not failing:
                        log.error("cannot start an ingest worker (%s); pushed logs are prepared "
                                  "in the daemon until one starts", exc)  # fmt: skip
                    failing = True
                    break
                failing = False
                with self._cond:
                    if self._stopping:
                        self._dead.append(worker)
                        break
                    self._running.append(worker)
                    self._release(worker)
            # a failed start is tried again after RESTART_PAUSE; otherwise sleep until a
            # worker is lost or the pool stops
            self._wake.wait(RESTART_PAUSE if failing else None)
            self._wake.clear()


def _prepared(reply: tuple[Any, ...], schema: pa.Schema) -> Prepared:
    """A worker's reply as the handler takes it (or the exception it stands for)."""
    if reply[0] == "refused":
        raise Refused(reply[1], reply[2])
    if reply[0] != "ok":
        log.error("ingest worker failed on a request: %s", reply[1])
        raise WorkerFailed(reply[1])
    done: Prepared = reply[1]
    if not done.rows.schema.equals(schema):
        raise WorkerFailed("the worker's rows do not have the table's columns")
    return done
