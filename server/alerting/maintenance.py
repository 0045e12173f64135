"""``lightbulb maintenance``: the maintenance windows a config opens, one line each.

So users can check a schedule before trusting it, around DST changes in
particular. Each line is the silence's service selector (``*`` for any), the
window's start and end as ISO 8601 UTC times, then the same two instants in the
window's time zone; a rule matcher follows as ``rule=<id>`` (fields split by two
spaces; here wrapped)::

    db  2026-03-08T07:00:00Z  2026-03-08T08:00:00Z
        2026-03-08T03:00:00-04:00  2026-03-08T04:00:00-04:00
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.alerting.silences import Silence, from_config
from server.config.models import Config


def windows(config: Config, start: datetime, days: int) -> list[tuple[datetime, str]]:
    """``(opening, line)`` for every window opening in ``[start, start + days)``, by time."""
    end = start + timedelta(days=days)
    out = []
    for index, cfg in enumerate(config.silences):
        silence = from_config(index, cfg)
        for opened, closed in silence.windows(start, end):
            out.append((opened, line(silence, opened, closed)))
    out.sort(key=lambda pair: pair[0])
    return out


def line(silence: Silence, opened: datetime, closed: datetime) -> str:
    zone = silence.zone
    fields = [
        silence.service or "*",
        _utc(opened),
        _utc(closed),
        opened.astimezone(zone).isoformat(),
        closed.astimezone(zone).isoformat(),
    ]
    if silence.rule:
        fields.append(f"rule={silence.rule}")
    return "  ".join(fields)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
