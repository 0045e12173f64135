"""An ingest worker process: ``python -m server.logs.worker FD`` (started by :mod:`.workers`).

Reads messages from the daemon on the socket ``FD`` and answers each job;
every message is one pickled tuple (``Connection.send_bytes``):

- ``("settings", Settings, secrets)``: the config to prepare with and the exact
  secret values the daemon masks (:func:`server.core.redact.active`); no answer;
- ``("job", Job)``: answered ``("ok", Prepared)`` (its rows cross as the Arrow
  IPC stream the write-ahead log stores), ``("refused", status, message)`` (the
  request's own fault) or ``("failed", message)`` (ours; masked).

The daemon's end closing (it stopped, or was killed with ``kill -9``) is the
end of this process: it reads EOF and exits, so no worker outlives its daemon.
"""

from __future__ import annotations

import gc
import pickle
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from server.core import redact
from server.logs.prepare import Job, Refused, Settings, prepare

READY = ("ready",)


def answer(job: Job, settings: Settings) -> tuple[Any, ...]:
    """The reply to one job (never raises)."""
    try:
        done = prepare(job, settings)
    except Refused as exc:
        return ("refused", exc.status, exc.message)
    except Exception as exc:  # a bug must cost its request, never the worker
        return ("failed", redact.redact(f"{type(exc).__name__}: {exc}"))
    return ("ok", done.for_daemon())


def settle() -> None:
    """Move what importing left (modules, protobuf and Arrow types: ~45,000 objects) out of
    the collector's sight, as the daemon does at start.

    A request's records make thousands of short-lived containers, so full collections
    keep coming, and each walked every start-up object: ~19 ms in one request's
    middle (a 120 ms pause on a loaded machine), stalling the requests queued behind
    it. Frozen, a full collection walks only what is alive now (~0.2 ms).
    """
    gc.collect()
    gc.freeze()


def serve(conn: Connection) -> None:
    """Answer jobs until the daemon's end closes (start-up objects frozen first)."""
    settle()
    settings: Settings | None = None
    try:
        conn.send_bytes(pickle.dumps(READY))
    except OSError:
        return  # the daemon went away while we started
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())  # noqa: S301 - from our own daemon
        except (EOFError, OSError):
            return  # the daemon is gone (stopped or killed): so are we
        if message[0] == "settings":
            settings = message[1]
            redact.mask_exactly(message[2])
            continue
        if settings is None:
            reply: tuple[Any, ...] = ("failed", "the worker was sent a job before its settings")
        else:
            reply = answer(message[1], settings)
        try:
            conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the daemon handles it and
    # closes our socket when it is done with us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
