"""``temporal_schedule`` with ``schedule_prefix``: every matching schedule, a few per check.

What the checker (:mod:`checkers.temporal_schedule`) needs to cover many
schedules: :func:`matching` pages ListSchedules to its end (or says the list was
cut), :class:`Rotation` picks the next ``max_describe`` ids to describe (a cursor
going round), and :func:`summary` turns the last verdict of every matching
schedule into one status and message, counting a schedule no check has
described yet as UNKNOWN, never as OK. Judging one schedule is the checker's.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from checkers.base import LogEntry, Metric, Status, worst
from checkers.temporal import TemporalSession, quote
from checkers.temporal_budget import BudgetExhausted
from server.core.text import shown

LIST_PAGE = 1000  # the server's default frontend.visibilityMaxPageSize
MAX_LIST_PAGES = 100  # 100,000 schedules listed at most, then the list is said to be cut
DESCRIBE_CONCURRENCY = 5  # describes in flight per check: bounded so one check cannot flood


@dataclass
class Judged:
    """One schedule's verdict, as a check judged it (carried forward in prefix mode)."""

    schedule_id: str
    status: Status
    message: str
    metrics: list[Metric]
    details: dict[str, Any]
    logs: list[LogEntry] = field(default_factory=list)  # rows of this check only


class Rotation:
    """Which ``size`` of a sorted id list the next check describes: a cursor going round.

    Each call takes the ``size`` ids after the last one described (wrapping); after
    the describes, :meth:`described` moves the cursor past those done in order, so a
    check cut by its deadline is continued where it stopped, and every id is taken
    once per ``ceil(len(ids) / size)`` uncut calls, whatever is added or removed
    between calls.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.last: str | None = None
        self._taken: list[str] = []

    def take(self, ids: list[str]) -> list[str]:
        """The next ids to describe from ``ids`` (sorted, unique)."""
        start = 0 if self.last is None else bisect.bisect_right(ids, self.last)
        self._taken = (ids[start:] + ids[:start])[: self.size]
        return list(self._taken)

    def described(self, done: set[str]) -> None:
        """Move the cursor past the taken ids described, up to the first one that was not."""
        for sid in self._taken:
            if sid not in done:
                break
            self.last = sid


async def describe_until(
    ids: list[str], describe: Callable[[str], Awaitable[Judged]], stop: float
) -> tuple[list[Judged], bool]:
    """Describe ``ids`` (``DESCRIBE_CONCURRENCY`` at a time) until loop time ``stop``.

    Returns the verdicts finished, in ``ids`` order, and whether describes were
    dropped at ``stop`` (those still waiting or in flight are cancelled: the check
    keeps and reports what it saw instead of timing out with nothing). An error of
    a finished describe is raised.
    """
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def one(sid: str) -> Judged:
        async with gate:
            return await describe(sid)

    if not ids:
        return [], False
    loop = asyncio.get_running_loop()
    tasks = {sid: asyncio.ensure_future(one(sid)) for sid in ids}
    _, pending = await asyncio.wait(tasks.values(), timeout=max(0.0, stop - loop.time()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [t.result() for t in tasks.values() if t not in pending], bool(pending)


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


def summary(
    ids: list[str], cut: bool, known: list[Judged], described: int, timed_out: str = ""
) -> tuple[Status, str]:
    """(status, message) over every matching schedule: ``known`` holds the last verdict
    of those described so far (in ``ids`` order), ``described`` how many this check
    described, ``timed_out`` why describes stopped early (empty: they did not).
    Schedules of ``ids`` not in ``known`` count as UNKNOWN."""
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
    if described < len(ids) or timed_out:
        why = timed_out or "max_describe"
        message += f"; described {described} of {total} this check ({why}), " + (
            f"{unseen} not yet checked" if unseen else "the rest as last checked"
        )
    if cut:
        message += "; the list was cut (ListSchedules pages or deadline)"
    return status, message
