"""``lightbulb check SERVICE_ID``: run one service's check now, exit as a Nagios plugin.

Nothing is written. The exit code follows the Nagios Plugin Development
Guidelines (:data:`NAGIOS_EXIT`), so scripts and other monitors can use the
command as a plugin; each printed line is made printable, so what a check read
from outside cannot forge a line of its own.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from server.config import ConfigError
from server.core.humanize import exact
from server.core.status import Status
from server.core.text import printable
from server.validation import load_config

# `lightbulb check`: the Nagios plugin convention (Nagios Plugin Development
# Guidelines, "Plugin Return Codes"): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, so
# scripts and other monitors can use it as a plugin. STARTING, STOPPED, UNKNOWN and
# a check that could not run at all (bad config, no such service) are 3.
NAGIOS_EXIT = {Status.OK: 0, Status.DEGRADED: 1, Status.FAILED: 2}
NAGIOS_UNKNOWN = 3


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
        value = exact(float(metric.value))  # as stored: 123456789.123, not 1.23457e+08
        print(printable(f"  metric {name} = {value} {metric.unit}".rstrip()))
    for entry in result.logs:
        print(printable(f"  log {entry.level}: {entry.message}"))
    return NAGIOS_EXIT.get(result.status, NAGIOS_UNKNOWN)
