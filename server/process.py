"""What a Lightbulb process sets up for itself: log lines, signal handlers, a frozen GC.

Shared by ``lightbulb run`` (:mod:`server.daemon`), ``lightbulb dashboard`` and the
benchmarks, none of which needs the daemon's wiring for it.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from server import early_stop
from server.core.redact import LoggingFilter

log = logging.getLogger("lightbulb.daemon")


def install_signals(stop: threading.Event, reload: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (logged), SIGHUP sets ``reload``; a SIGTERM that
    arrived during start-up (:mod:`server.early_stop`) sets ``stop`` at once."""

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        reload.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    early = early_stop.requested()
    if early is not None:  # arrived while we were starting: stop as if it came now
        log.info("received %s during start-up; stopping once started", signal.Signals(early).name)
        stop.set()


def within(call: Callable[[], object], seconds: float, name: str) -> bool:
    """Run ``call`` on a thread of its own (``name``) and wait for it ``seconds`` at most.

    True when it returned (its exception raised here, as if called directly); False
    when it is still running: left behind on a daemon thread, so a call wedged in
    native code (a chDB query that met EMFILE) cannot keep the process from exiting.
    """
    failed: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return False
    if failed:
        raise failed[0]
    return True


def freeze_startup_objects() -> None:
    """Move everything built at start (config, rules, alerts) out of the GC's sight.

    With 10,000 rules the full collections that the steady trickle of result
    objects triggers would walk every rule and alert each time: tens of ms of
    pause in the middle of an evaluation. Frozen objects are never collected,
    which is right for objects that live as long as the process (or until a
    reload, when we freeze again).
    """
    gc.collect()
    gc.freeze()


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level`` (a name; unknown names mean INFO), secrets masked."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:  # every line leaves with secrets masked
        handler.addFilter(LoggingFilter())
    # APScheduler logs every job run at INFO: thousands of lines a minute at scale.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # clickhouse-driver logs a traceback per failed connect; the writer says it once.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
