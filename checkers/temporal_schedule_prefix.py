"""``temporal_schedule`` with ``schedule_prefix``: every matching schedule, a few per check.

What the checker (:mod:`checkers.temporal_schedule`) needs to cover many
schedules: :func:`matching` pages ListSchedules to its end (or says the list was
cut), :class:`Rotation` picks the next ``max_describe`` ids to describe (a cursor
going round), and :func:`summary` turns the last verdict of every matching
schedule into one status and message, counting a schedule no check has
described yet as UNKNOWN, never as OK. Judging one schedule is the checker's.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from checkers.base import Metric, Status, worst
from checkers.temporal import TemporalSession, quote
from checkers.temporal_budget import BudgetExhausted
from server.core.text import shown

LIST_PAGE = 1000  # the server's default frontend.visibilityMaxPageSize
MAX_LIST_PAGES = 100  # 100,000 schedules listed at most, then the list is said to be cut


@dataclass
class Judged:
    """One schedule's verdict, as a check judged it (carried forward in prefix mode)."""

    schedule_id: str
    status: Status
    message: str
    metrics: list[Metric]
    details: dict[str, Any]


class Rotation:
    """Which ``size`` of a sorted id list the next check describes: a cursor going round.

    Each call takes the ``size`` ids after the last one taken (wrapping), so every id
    is taken once per ``ceil(len(ids) / size)`` calls, whatever is added or removed
    between calls.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.last: str | None = None

    def take(self, ids: list[str]) -> list[str]:
        """The next ids to describe from ``ids`` (sorted, unique)."""
        if len(ids) <= self.size:
            return list(ids)
        start = 0 if self.last is None else bisect.bisect_right(ids, self.last)
        taken = (ids[start:] + ids[:start])[: self.size]
        self.last = taken[-1]
        return taken


async def matching(session: TemporalSession, prefix: str) -> tuple[list[str], bool]:
    """Every schedule id starting with ``prefix``, sorted, and whether the list was cut.

    Pages through ListSchedules (asked with the prefix, checked here too) until
    its last page, ``MAX_LIST_PAGES`` or the check's deadline; each page is one
    visibility call from the budget. Raises ``BudgetExhausted`` if not even the
    first page could be read, and the server's ``RPCError`` otherwise.
    """
    query = f"ScheduleId STARTS_WITH {quote(prefix)}"
    ids: set[str] = set()
    token = b""
    for _ in range(MAX_LIST_PAGES):
        try:
            page = await session.list_schedules(query, LIST_PAGE, token)
        except BudgetExhausted:
            if not ids:
                raise
            return sorted(ids), True  # what was listed so far, said to be cut
        except RPCError as exc:
            if exc.status != RPCStatusCode.INVALID_ARGUMENT or not query:
                raise
            query, token = "", b""  # a server without schedule queries: filter here
            continue
        ids.update(e.schedule_id for e in page.schedules if e.schedule_id.startswith(prefix))
        token = page.next_page_token
        if not token:
            return sorted(ids), False
    return sorted(ids), True


def summary(ids: list[str], cut: bool, known: list[Judged], described: int) -> tuple[Status, str]:
    """(status, message) over every matching schedule: ``known`` holds the last verdict
    of those described so far (in ``ids`` order), ``described`` how many this check
    described. Schedules of ``ids`` not in ``known`` count as UNKNOWN."""
    unseen = len(ids) - len(known)
    status = worst([j.status for j in known] + ([Status.UNKNOWN] if unseen else []))
    total = f"{len(ids)}{'+' if cut else ''}"
    said = [j.message for j in known if j.status == status]
    if status == Status.OK and len(ids) > 1:
        message = f"{total} schedules OK: " + ", ".join(shown(j.schedule_id) for j in known[:5])
    elif said:
        more = f" and {len(said) - 3} more" if len(said) > 3 else ""
        message = "; ".join(said[:3]) + more
    else:
        message = f"{unseen} of {total} schedules not yet checked"
    if described < len(ids):
        message += f"; described {described} of {total} this check (max_describe), " + (
            f"{unseen} not yet checked" if unseen else "the rest as last checked"
        )
    if cut:
        message += "; the list was cut (ListSchedules pages or deadline)"
    return status, message
