"""``lightbulb report`` and ``lightbulb maintenance``: print what a day held or will hold.

``report --date D`` builds one UTC day's report from stored history (nothing is
sent); ``maintenance [--from D] [--days N]`` lists the windows the config's
silences open. Both take UTC days, checked by :func:`_day` against the range
every table can hold.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta

from server.commands import EXIT_OK, EXIT_USAGE
from server.core.times import EARLIEST, LATEST
from server.storage import open_storage
from server.storage.version import require_supported
from server.validation import load_config


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
    """Build one day's report from stored history and print it (nothing is sent). A day
    that has not begun in ``report.timezone`` is refused (exit 2): it has no history, and
    "no checks recorded" would read as an outage of monitoring."""
    from server.analytics.report import build, day_bounds
    from server.periodic import report_zone

    day = _day(args.date, "--date", span=1)
    if day is None:
        return EXIT_USAGE
    config = load_config(args.config)
    zone, now = report_zone(config.report.timezone), datetime.now(UTC)
    if day_bounds(day, zone)[0] > now:
        today = now.astimezone(zone).date()
        print(f"error: --date: {day} has not begun yet (today is {today} in the report's "
              f"time zone, {zone}); give {today} or an earlier day", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    storage = open_storage(config.clickhouse)
    try:
        require_supported(storage)
        report = build(storage, config, day, now, zone)
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
