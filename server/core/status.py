"""Check statuses, their severity order, "up" and "worst", and the SQL that needs them.

The codes (0 OK, 1 DEGRADED, 2 FAILED, 3 STARTING, 4 STOPPED, 5 UNKNOWN) are what
``service_status.status_code`` stores; they are names, not a scale. Anything that
orders statuses (``status >= DEGRADED`` in a rule, "worst first" on a page, the
worst status of an hour in SQL) uses :data:`SEVERITY`:

    OK < STOPPED < STARTING < DEGRADED < UNKNOWN < FAILED

- STOPPED and STARTING are not failures: a process stopped on purpose
  (``expect: stopped``) or still inside its start-up grace must not page.
- UNKNOWN sits between DEGRADED and FAILED, as in Icinga Web 2's severity sort and
  Nagios' worst-state aggregation (OK < WARNING < UNKNOWN < CRITICAL): we have
  lost sight of the service, which is worse than a known mild problem, but it is
  not a confirmed failure, so ``status >= FAILED`` does not fire on it while
  ``status >= DEGRADED`` and ``status >= UNKNOWN`` do.

"Up" (for uptime and the ``lightbulb_service_up`` gauge) is OK or DEGRADED: the
service answers, perhaps slowly.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Status(IntEnum):
    """A check's verdict, as stored in ``service_status.status_code`` (UInt8)."""

    OK = 0
    DEGRADED = 1
    FAILED = 2
    STARTING = 3
    STOPPED = 4
    UNKNOWN = 5


# Least to most severe; the rank of a status is its index here.
SEVERITY: tuple[Status, ...] = (
    Status.OK,
    Status.STOPPED,
    Status.STARTING,
    Status.DEGRADED,
    Status.UNKNOWN,
    Status.FAILED,
)
_RANK: dict[int, int] = {int(s): rank for rank, s in enumerate(SEVERITY)}
WORST_FIRST: tuple[Status, ...] = tuple(reversed(SEVERITY))
UP: frozenset[Status] = frozenset({Status.OK, Status.DEGRADED})
NAMES: dict[int, str] = {int(s): s.name for s in Status}


def severity(status: int) -> int:
    """Rank of ``status`` in :data:`SEVERITY` (0 for OK … 5 for FAILED).

    Raises ``ValueError`` for a code that is not a status.
    """
    try:
        return _RANK[int(status)]
    except KeyError:
        raise ValueError(f"{status!r} is not a status code 0-5") from None


def worst(statuses: Iterable[int]) -> Status:
    """The most severe of ``statuses`` (OK when there are none)."""
    best_rank = 0
    for status in statuses:
        best_rank = max(best_rank, severity(status))
    return SEVERITY[best_rank]


def is_up(status: int) -> bool:
    """True for OK and DEGRADED: the service answers."""
    return int(status) in _UP_CODES


def name(status: int | None) -> str:
    """``"FAILED"`` for 2; ``"UNKNOWN"`` for anything that is not a status code."""
    return NAMES.get(int(status), "UNKNOWN") if status is not None else "UNKNOWN"


def parse(text: str) -> Status:
    """A status from its name (any case) or its code; raises ``ValueError`` otherwise."""
    raw = text.strip()
    if raw.upper() in Status.__members__:
        return Status[raw.upper()]
    if raw.isascii() and raw.isdigit() and int(raw) in NAMES:
        return Status(int(raw))
    raise ValueError(f"expected a status ({', '.join(Status.__members__)}), got {text!r}")


_UP_CODES = frozenset(int(s) for s in UP)


# -- SQL ------------------------------------------------------------------------------
# ClickHouse expressions generated from the order above, so SQL and Python cannot
# disagree. Arguments are column names or expressions of ours, never user input.


def sql_up(column: str = "status_code") -> str:
    """``status_code IN (0, 1)``: true for the statuses counted as up."""
    return f"{column} IN ({', '.join(str(c) for c in sorted(_UP_CODES))})"


def sql_severity(column: str = "status_code") -> str:
    """The severity rank of a status code column (``transform`` over the codes)."""
    codes = ", ".join(str(int(s)) for s in SEVERITY)
    ranks = ", ".join(str(r) for r in range(len(SEVERITY)))
    return f"transform(toUInt8({column}), [{codes}], [{ranks}], {_RANK[int(Status.UNKNOWN)]})"


def sql_status_of_rank(rank_expr: str) -> str:
    """The status code for a severity rank expression (inverse of :func:`sql_severity`)."""
    ranks = ", ".join(str(r) for r in range(len(SEVERITY)))
    codes = ", ".join(str(int(s)) for s in SEVERITY)
    return f"transform(toUInt8({rank_expr}), [{ranks}], [{codes}], {int(Status.UNKNOWN)})"


def sql_worst(column: str = "status_code") -> str:
    """Aggregate: the worst status code among the rows of a group."""
    return sql_status_of_rank(f"max({sql_severity(column)})")


def sql_worst_of_counts(counts: dict[Status, str]) -> str:
    """The worst status present, given an expression counting each status.

    ``counts`` maps a status to an expression such as ``sum(count_failed)``; the
    result is a ``multiIf`` that tests the most severe status first.
    """
    parts = [f"{counts[s]} > 0, {int(s)}" for s in WORST_FIRST if s in counts]
    return f"multiIf({', '.join(parts)}, {int(Status.OK)})"
