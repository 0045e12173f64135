"""How pages word an SLO report: the same sentences on the overview's tiles, the
service page and the README badge, so "budget left" means one thing everywhere.

Figures stay readable at the extremes, and their numbers come from
:mod:`server.core.humanize`: a target keeps all its digits (99.99999999999999 % is
not "100%", 0.0000000001 % is not "1e-10%"), availability is cut (never rounded
up) to the target's decimals, so a miss never reads as the target; the share of
budget left is never rounded onto 100 % or 0 %; minutes keep three significant
digits below 1, positionally (0.0000000432 min); burn rates and overspent shares
past 1,000x are written "over 1,000x" (the workbook's fastest page is 14.4x:
beyond 1,000x the exact figure says nothing more), exactly 1,000x as "1,000x".
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal, localcontext

from server.analytics.slo import SloReport, decimals
from server.config.types import format_duration
from server.core.humanize import clear_of, duration, exact, multiple, percent, significant

CAP = 1000.0  # burn rates and overspent multiples above this are written "over 1,000x"


def target(report: SloReport) -> str:
    """``99.9%``, ``99.99999999999999%``, ``0.0000000001%``: the target with every
    digit it was written with, never rounded, never in scientific notation."""
    return f"{exact(report.objective.target)}%"


def objective(report: SloReport) -> str:
    """``99.9% over 30d``."""
    return f"{target(report)} over {format_duration(report.objective.window)}"


def availability(report: SloReport) -> str:
    """``99.95%``: cut to the target's decimals (at least 2), every one of them shown,
    zeros too (``0.0000000000%`` beside a target of ``0.0000000001%``), so a miss
    never reads as the target; ``-`` without checks."""
    value = report.availability
    if value is None:
        return "-"
    # cut in decimal: a value below the target, cut to the target's decimals, stays below it
    exact = Decimal(repr(value))
    places = max(2, decimals(report.objective.target))
    with localcontext() as digits:  # room for every place: 28 digits cannot hold 100 to 1e-26
        digits.prec = places + 10
        cut = exact.quantize(Decimal(1).scaleb(-places), ROUND_FLOOR)
    return f"{cut:.{places}f}%"


def verdict(report: SloReport) -> str:
    """``met``, ``missed`` or ``no checks``: the word beside the colour."""
    met = report.met
    return "no checks" if met is None else "met" if met else "missed"


def budget(report: SloReport) -> str:
    """``12.3 of 43.2 min (28%) error budget left``, or how far it is overspent."""
    left, minutes = report.budget_remaining, report.remaining_minutes
    total = report.objective.budget_minutes
    if left is None or minutes is None:
        return f"{_minutes(total, total)} error budget, no checks yet"
    young = _young(report)
    if left < 0:
        return (f"error budget of {_minutes(total, total)} overspent by "
                f"{_minutes(-minutes, total)} ({_over(left)}){young}")  # fmt: skip
    spent = f"{_minutes(minutes, total)} of {_minutes(total, total)}"
    return f"{spent} ({percent(100 * left)}) error budget left{young}"


def burn(report: SloReport) -> str:
    """``burn rate 0.4x over 1 h, 1.2x over 6 h`` (1x spends the budget in exactly the window)."""
    return f"burn rate {_rate(report.burn_1h)} over 1 h, {_rate(report.burn_6h)} over 6 h"


def short(report: SloReport) -> str:
    """One line for a tile:
    ``SLO 99.9%: 99.95% met · 12.1 min (28%) budget left · burn 0.4x 1 h, 1.2x 6 h``."""
    left, minutes = report.budget_remaining, report.remaining_minutes
    head = f"SLO {target(report)}: "
    if report.availability is None or left is None or minutes is None:
        return head + "no checks yet"
    total = report.objective.budget_minutes
    return (
        f"{head}{availability(report)} {verdict(report)} · "
        + (
            f"{_minutes(minutes, total)} ({percent(100 * left)}) budget left · "
            if left >= 0
            else f"budget overspent by {_minutes(-minutes, total)} · "
        )
        + f"burn {_rate(report.burn_1h)} 1 h, {_rate(report.burn_6h)} 6 h"
    )


def _young(report: SloReport) -> str:
    """Says when the checks cover less than the window (a service younger than it)."""
    covered = report.covered_minutes
    if covered >= report.objective.window.total_seconds() / 60.0 - 0.5:
        return ""
    return f"; downtime counted over the {duration(timedelta(minutes=covered))} checked so far"


def badge(report: SloReport) -> tuple[str, str]:
    """The README badge's ``(message, colour)``: ``("99.95% met, 28% budget left",
    "brightgreen")``. Red whenever the objective is missed or the budget overspent (a
    young service down since its first check has most of its budget left in minutes,
    yet misses: it is red, not green); yellow when met with under a quarter left; grey
    without checks. The share left is the API's ``error_budget_remaining_percent``."""
    left = report.budget_remaining
    if report.availability is None or left is None:
        return "no data", "lightgrey"
    spent = "budget overspent" if left < 0 else f"{percent(100 * left)} budget left"
    message = f"{availability(report)} {verdict(report)}, {spent}"
    if report.met is False or left < 0:
        return message, "red"
    return message, "yellow" if left < 0.25 else "brightgreen"


def _minutes(value: float, scale: float) -> str:
    """Minutes, or hours when the budget they belong to (``scale``) is ten hours or more;
    three significant digits under one, positionally (0.0432 min, 0.00000000009 min).

    One decimal, with more where that rounding would land on the whole budget or on 0
    and the value is not (``431.97 min`` of ``432.0 min``, not ``432.0 min``): the rule
    :func:`server.core.humanize.clear_of` keeps for shares too."""
    amount, unit = (value / 60, "h") if abs(scale) >= 600 else (value, "min")
    whole = scale / 60 if unit == "h" else scale
    small = amount != 0 and abs(amount) < 1

    def spell(number: float, more: int) -> str:
        return significant(number, 3 + more) if small else f"{number:,.{1 + more}f}"

    return f"{clear_of(amount, (0.0, whole), spell, range(16))} {unit}"


def _over(left: float) -> str:
    """How far past the budget, as a multiple: ``250%`` or ``over 1,000x the budget``."""
    spent = 1.0 - left  # spent / allowed
    if not math.isfinite(spent) or spent > CAP * (1 + 1e-9):
        return f"over {CAP:,.0f}x the budget"
    return percent(100 * (spent - 1))


def _rate(value: float | None) -> str:
    return "-" if value is None else multiple(value, CAP)
