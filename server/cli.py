"""``lightbulb`` command line: one sub-command per job, errors as messages, never tracebacks.

Exit codes: 0 success, 1 the job ran and found a problem (schema drift, a
storage failure), 2 the configuration or the command line is wrong.
``lightbulb check`` exits like a Nagios plugin instead (see :data:`NAGIOS_EXIT`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NoReturn

from server import __version__
from server.config import DEFAULT_PATH, Config, ConfigError
from server.config import warnings as config_warnings
from server.core.redact import RedactingStream
from server.core.secret import Secret
from server.core.status import Status
from server.core.text import printable
from server.core.times import EARLIEST, LATEST
from server.schema import Target, apply_grants, apply_schema
from server.schema_check import check_schema
from server.storage import StorageError, open_storage
from server.storage.base import StorageMissing
from server.storage.version import require_supported
from server.sync import sync_config_tables
from server.validation import load_config

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head -1`
# `lightbulb check`: the Nagios plugin convention (Nagios Plugin Development
# Guidelines, "Plugin Return Codes"): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, so
# scripts and other monitors can use it as a plugin. STARTING, STOPPED, UNKNOWN and
# a check that could not run at all (bad config, no such service) are 3.
NAGIOS_EXIT = {Status.OK: 0, Status.DEGRADED: 1, Status.FAILED: 2}
NAGIOS_UNKNOWN = 3
Command = Callable[[argparse.Namespace], int]


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for warning in config_warnings(config):
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    enabled = sum(1 for s in config.services if s.enabled)
    print(
        f"{args.config}: OK: {len(config.services)} services ({enabled} enabled), "
        f"{len(config.relations)} relations, {len(config.alert_rules)} alert rules, "
        f"{len(config.channels)} channels; storage: "
        + ("embedded chDB" if config.clickhouse.embedded else "ClickHouse cluster")
    )
    return EXIT_OK


def cmd_bootstrap(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    target = Target.of(config.clickhouse)
    if args.grants:
        grant_status = _grants(args, config, target)
        if grant_status != EXIT_OK:
            return grant_status
    storage = open_storage(config.clickhouse)
    try:
        print(f"Using {storage.describe()}")
        for statement, created in apply_schema(storage, target):
            print(f"{'created' if created else 'found'} {statement.label}")
        for result in sync_config_tables(storage, config, datetime.now(UTC)):
            print(f"synced {result}")
    finally:
        storage.close()
    print("Schema ready.")
    return EXIT_OK


def _grants(args: argparse.Namespace, config: Config, target: Target) -> int:
    if config.clickhouse.embedded:
        print(
            "error: --grants needs a ClickHouse server (clickhouse.hosts); "
            "the embedded database has no users",
            file=sys.stderr,
        )
        return EXIT_USAGE
    admin = config.clickhouse.model_copy(
        update={
            "user": args.admin_user,
            "password": Secret(os.environ.get("CLICKHOUSE_ADMIN_PASSWORD", "")),
        }
    )
    storage = open_storage(admin)
    try:
        for sql in apply_grants(
            storage,
            target,
            config.clickhouse.user,
            config.clickhouse.password.reveal(),
            args.profile,
        ):
            print(f"applied {sql.split(' IDENTIFIED ')[0]}")
    finally:
        storage.close()
    return EXIT_OK


def cmd_validate_schema(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    target = Target.of(config.clickhouse)
    storage = open_storage(config.clickhouse)
    try:
        drift = check_schema(storage, target)
    finally:
        storage.close()
    if drift.ok:
        print(f"Schema of {target.database} matches sql/.")
        return EXIT_OK
    print(f"Schema of {target.database} differs from sql/:")
    for problem in drift.problems:
        print(f"  - {problem}")
    print(
        f"{len(drift.problems)} differences; run `python bootstrap.py` to create missing objects."
    )
    return EXIT_PROBLEM


def cmd_run(args: argparse.Namespace) -> int:
    from server.daemon import Daemon, configure_logging

    configure_logging(args.log_level)
    return Daemon(args.config).run()


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard and API on their own, reading a ClickHouse cluster.

    The embedded chDB belongs to the daemon, which serves the dashboard itself;
    this command is for a dashboard beside daemons that write to a cluster.
    """
    from server.core.clock import SystemClock
    from server.daemon import configure_logging, freeze_startup_objects
    from server.web import WebContext, WebServer, create_app
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
        server = WebServer(create_app(context), dashboard.bind, dashboard.port)
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


def _day(text: str, option: str, span: int) -> date | None:
    """``text`` as a UTC day whose ``span`` days all lie in the range every table holds
    (:mod:`server.core.times`); None, after printing why, when it is not one."""
    first, last = EARLIEST.date(), LATEST.date() - timedelta(days=span - 1)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        print(f"error: {option}: expected YYYY-MM-DD, got {text!r}", file=sys.stderr)
        return None
    if not first <= day <= last:
        print(f"error: {option}: expected a day from {first} to {last}, got {day}", file=sys.stderr)
        return None
    return day


def cmd_report(args: argparse.Namespace) -> int:
    """Build one day's report from stored history and print it (nothing is sent)."""
    from server.analytics.report import build
    from server.periodic import report_zone

    day = _day(args.date, "--date", span=1)
    if day is None:
        return EXIT_USAGE
    config = load_config(args.config)
    storage = open_storage(config.clickhouse)
    try:
        require_supported(storage)
        report = build(storage, config, day, datetime.now(UTC), report_zone(config.report.timezone))
    finally:
        storage.close()
    print(report.render()[1].rstrip())
    return EXIT_OK


def cmd_maintenance(args: argparse.Namespace) -> int:
    """Print each maintenance window of the config's silences (see server/alerting/maintenance)."""
    from datetime import time

    from server.alerting.maintenance import windows

    if not 1 <= args.days <= 3660:
        print(f"error: --days: expected 1 to 3660, got {args.days}", file=sys.stderr)
        return EXIT_USAGE
    start = _day(args.from_, "--from", span=args.days) if args.from_ else datetime.now(UTC).date()
    if start is None:
        return EXIT_USAGE
    config = load_config(args.config)
    found = windows(config, datetime.combine(start, time(), UTC), args.days)
    for _, text in found:
        print(text)
    if not found:
        print(f"no maintenance windows in the {args.days} days from {start}", file=sys.stderr)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Run one service's check now and print the result; nothing is written.

    Exits 0 OK, 1 DEGRADED, 2 FAILED, 3 anything else, including a check that
    could not run (:data:`NAGIOS_EXIT`).
    """
    try:
        return _check(args)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
    except BrokenPipeError:
        raise  # the reader went away: main() stops quietly
    except Exception as exc:
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
    return NAGIOS_UNKNOWN


def _check(args: argparse.Namespace) -> int:
    import checkers
    from checkers import temporal_budget
    from checkers.base import CheckContext
    from server.runner import run_check

    config = load_config(args.config)
    service = next((s for s in config.services if s.id == args.service_id), None)
    if service is None:
        known = ", ".join(s.id for s in config.services) or "none"
        print(
            f"error: no service {args.service_id!r} in {args.config} (known: {known})",
            file=sys.stderr,
        )
        return NAGIOS_UNKNOWN
    temporal_budget.configure(config.temporal.max_visibility_rps)
    checker = checkers.build_checker(service.type, service.block())
    try:
        ctx = CheckContext(service.id, datetime.now(UTC), service.timeout.total_seconds())
        result = run_check(checker, ctx)
    finally:
        checker.close()
    print(f"{service.id}: {result.status.name} ({int(result.status)}) {result.message}")
    if result.response_time_ms is not None:
        print(f"  response_time_ms: {result.response_time_ms}")
    # Each line printable: what a check read from outside cannot forge a line of its own.
    for key, value in result.details.items():
        print(printable(f"  {key}: {value}"))
    for metric in result.metrics:
        tags = ",".join(f"{k}={v}" for k, v in metric.tags.items())
        name = f"{metric.name}{{{tags}}}" if tags else metric.name
        print(printable(f"  metric {name} = {metric.value:g} {metric.unit}".rstrip()))
    for entry in result.logs:
        print(printable(f"  log {entry.level}: {entry.message}"))
    return NAGIOS_EXIT.get(result.status, NAGIOS_UNKNOWN)


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
