"""An ingest worker process from the daemon's side: started and greeted, closed, ended
(the pool that hands them requests: :mod:`server.logs.workers`; the worker's own
side: :mod:`server.logs.worker`)."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from server.logs.worker import READY

START_TIMEOUT = 60.0  # s a new worker may take to import (a loaded machine is slow)
ROOT = Path(__file__).resolve().parents[2]  # holds the ``server`` package


@dataclass(eq=False)
class Worker:
    """A worker process as the daemon holds it: the process, its socket and the
    connection over it, and the generation of the settings it was last sent."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    conn: Connection
    generation: int = -1  # the settings it was last sent


def spawn(stopping: Callable[[], bool]) -> Worker:
    """A new worker process, started and greeted (ready for its settings and jobs).

    Raises RuntimeError (it ended, or was not ready in :data:`START_TIMEOUT` s, or
    ``stopping()`` turned true meanwhile) or OSError (it could not be started); whatever
    went wrong, it is closed and reaped first."""
    ours, theirs = socket.socketpair()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.logs.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
            process_group=0,  # not the daemon's: see server.logs.workers' docstring
        )  # fmt: skip
    finally:
        theirs.close()
    worker = Worker(proc, ours, Connection(os.dup(ours.fileno())))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not worker.conn.poll(0.2):
            if stopping():
                raise RuntimeError("the pool stopped while it started")
            if proc.poll() is not None:
                raise RuntimeError(f"it ended before it was ready: {ended(proc.returncode)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready in {START_TIMEOUT:.0f} s")
        try:
            hello = pickle.loads(worker.conn.recv_bytes())  # noqa: S301 - our own child
        except (EOFError, OSError) as exc:
            # its end closed: it is exiting ("exited with None" was read before the exit)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
            if proc.returncode is None:
                raise RuntimeError("it closed its socket before it was ready") from exc
            raise RuntimeError(f"it ended before it was ready: {ended(proc.returncode)}") from exc
        if hello != READY:
            raise RuntimeError(f"unexpected greeting {hello!r}")
    except BaseException:  # closed and reaped whatever went wrong, then told
        close(worker)
        end(worker, 1.0)
        raise
    return worker


def ended(code: int | None) -> str:
    """How a worker process ended, from its exit status (None: it had not, we killed it):
    ``exited with code 1``, ``killed by SIGTERM``."""
    if code is None:
        return "killed by us"
    if code >= 0:
        return f"exited with code {code}"
    return f"killed by {signal.Signals(-code).name if -code in signal.valid_signals() else -code}"


def close(worker: Worker) -> None:
    """Our end of the socket: shut down first, which wakes a thread blocked reading it."""
    with contextlib.suppress(OSError):
        worker.sock.shutdown(socket.SHUT_RDWR)
    worker.sock.close()
    worker.conn.close()


def end(worker: Worker, timeout: float) -> None:
    """Wait for the worker to exit (it does on EOF); kill it after ``timeout``."""
    try:
        worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait()
