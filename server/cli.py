"""``lightbulb`` command line: one sub-command per job, errors as messages, never tracebacks.

Exit codes: 0 success, 1 the job ran and found a problem (schema drift, a
storage failure), 2 the configuration or the command line is wrong.
``lightbulb check`` exits like a Nagios plugin instead (see
:data:`server.commands.check.NAGIOS_EXIT`).

Here: the parser, the dispatch with its mapping of errors to messages and exit
codes, and the small commands (``config check``, ``run``, ``dashboard``,
``notify test``); the larger families live in :mod:`server.commands`, and
``spool`` in :mod:`server.spool_command`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NoReturn

from server import __version__
from server.commands import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from server.commands.check import cmd_check
from server.commands.days import cmd_maintenance, cmd_report
from server.commands.storage import cmd_bootstrap, cmd_validate_schema
from server.config import DEFAULT_PATH, ConfigError
from server.config import warnings as config_warnings
from server.core.redact import RedactingStream
from server.storage import StorageError, open_storage
from server.storage.base import StorageMissing
from server.validation import load_config

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head -1`
Command = Callable[[argparse.Namespace], int]


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for warning in config_warnings(config):
        print(warning, file=sys.stderr)  # "file:line key: warning: ..."
    enabled = sum(1 for s in config.services if s.enabled)
    print(
        f"{args.config}: OK: {len(config.services)} services ({enabled} enabled), "
        f"{len(config.relations)} relations, {len(config.alert_rules)} alert rules, "
        f"{len(config.channels)} channels; storage: "
        + ("embedded chDB" if config.clickhouse.embedded else "ClickHouse cluster")
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from server.daemon import Daemon
    from server.process import configure_logging

    configure_logging(args.log_level)
    return Daemon(args.config).run()


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard and API on their own, reading a ClickHouse cluster.

    The embedded chDB belongs to the daemon, which serves the dashboard itself;
    this command is for a dashboard beside daemons that write to a cluster.
    """
    from server.core.clock import SystemClock
    from server.process import configure_logging, freeze_startup_objects
    from server.web import WebContext, WebServer, create_app
    from server.web.admission import Door
    from server.web.host import bind_error

    configure_logging("INFO")
    config = load_config(args.config)
    if config.clickhouse.embedded:
        print(
            "error: the embedded database is owned by `lightbulb run`, which serves the "
            f"dashboard itself on {config.dashboard.url}; `lightbulb dashboard` reads a "
            "cluster (set clickhouse.hosts)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    dashboard = config.dashboard.model_copy(update={"port": args.port or config.dashboard.port})
    storage = open_storage(config.clickhouse)
    context = WebContext(config, storage, SystemClock())
    try:
        door = Door(config.logs)
        server = WebServer(create_app(context), dashboard.bind, dashboard.port, door=door)
    except OSError as exc:
        storage.close()
        print(f"error: {bind_error(dashboard, exc)}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"Lightbulb dashboard on http://{dashboard.bind}:{server.port}/ (Ctrl-C stops)")
    freeze_startup_objects()
    try:
        server.serve_forever()
    finally:
        storage.close()
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    """Send a test notice through one channel, once, and report exactly what happened."""
    from server.notify import build_channel
    from server.notify.base import ChannelError, Notice, info_item

    config = load_config(args.config)
    channel_config = config.channels.get(args.channel)
    if channel_config is None:
        known = ", ".join(config.channels) or "none"
        print(
            f"error: no channel {args.channel!r} in {args.config} (known: {known})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    channel = build_channel(args.channel, channel_config.type, channel_config.model_dump())
    now = datetime.now(UTC)
    text = f"Test notification from Lightbulb to channel {args.channel} ({channel_config.type})"
    item = info_item("lightbulb", text, now, "If you can read this, the channel works.")
    notice = Notice(args.channel, "test", "test", [item], now, config.dashboard_url, text)
    try:
        channel.send(notice)
    except ChannelError as exc:
        print(f"{args.channel}: FAILED: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{args.channel}: sent ({channel_config.type})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightbulb", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"lightbulb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=DEFAULT_PATH, help=f"YAML file (default {DEFAULT_PATH})")
        p.set_defaults(func=func)
        return p

    config_parser = sub.add_parser("config", help="work with the configuration file")
    config_sub = config_parser.add_subparsers(
        dest="config_command", required=True, metavar="ACTION"
    )
    check = config_sub.add_parser("check", help="validate the file and report every problem")
    check.add_argument("--config", default=DEFAULT_PATH, help=f"YAML file (default {DEFAULT_PATH})")
    check.set_defaults(func=cmd_config_check)

    boot = add("bootstrap", cmd_bootstrap, "create the database, tables and views; sync config")
    boot.add_argument("--grants", action="store_true", help="also create the user and grants")
    boot.add_argument(
        "--admin-user",
        default="default",
        help="admin user for --grants (password from CLICKHOUSE_ADMIN_PASSWORD)",
    )
    boot.add_argument("--profile", default=None, help="settings profile to give the user")
    add("validate-schema", cmd_validate_schema, "compare the live database with sql/")
    run = add("run", cmd_run, "run the monitoring daemon in the foreground")
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    run.set_defaults(exit_at_once=True)  # after its own shutdown (see leave())
    board = add("dashboard", cmd_dashboard, "serve the dashboard and API against a cluster")
    board.add_argument("--port", type=int, default=None, help="override dashboard.port")
    report = add("report", cmd_report, "build and print the daily report for one day")
    report.add_argument("--date", required=True, help="YYYY-MM-DD (UTC day)")
    windows = add("maintenance", cmd_maintenance, "list the maintenance windows silences open")
    windows.add_argument("--from", dest="from_", default=None, help="YYYY-MM-DD (UTC; today)")
    windows.add_argument("--days", type=int, default=7, help="how many days to list (7)")
    check_one = add("check", cmd_check, "run one service's check now and print the result")
    check_one.set_defaults(exit_at_once=True)
    check_one.add_argument("service_id", metavar="SERVICE_ID")

    from server.spool_command import add_parser as add_spool

    add_spool(sub, DEFAULT_PATH)

    notify_parser = sub.add_parser("notify", help="work with notification channels")
    notify_sub = notify_parser.add_subparsers(
        dest="notify_command", required=True, metavar="ACTION"
    )
    test = notify_sub.add_parser("test", help="send a test message through one channel")
    test.add_argument("channel", metavar="CHANNEL")
    test.add_argument("--config", default=DEFAULT_PATH, help=f"YAML file (default {DEFAULT_PATH})")
    test.set_defaults(func=cmd_notify_test)
    return parser


def leave(code: int) -> NoReturn:
    """Flush what was printed and logged, then end the process with ``code`` at once.

    ``lightbulb check`` is a Nagios plugin and ``lightbulb run`` a service: their
    exit code must arrive. temporalio's Rust runtime (1.35, Python 3.11) sometimes
    aborts ("Fatal Python error: PyGILState_Release") or hangs forever while it is
    dropped at interpreter shutdown, so these commands skip that shutdown: by then
    everything they own has been closed (the daemon's storage and spool included).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``lightbulb`` command: its exit code (``check`` and ``run`` exit themselves)."""
    # Whatever a command prints (results, errors, logs) leaves with secrets masked.
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    args = build_parser().parse_args(argv)
    status = _run(args)
    if getattr(args, "exit_at_once", False):
        leave(status)
    return status


def _run(args: argparse.Namespace) -> int:
    try:
        status: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        # the reader went away (`lightbulb check x | head -1`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_USAGE
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, StorageMissing) or any(
            code in str(exc) for code in ("UNKNOWN_DATABASE", "UNKNOWN_TABLE")
        ):
            print(
                "hint: the database or its tables are not there yet; create them with "
                f"`lightbulb bootstrap --config {args.config}`",
                file=sys.stderr,
            )
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
