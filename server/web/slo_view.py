"""How pages word an SLO report: the same sentences on the overview's tiles and the
service page, so "budget left" means one thing everywhere."""

from __future__ import annotations

from server.analytics.slo import SloReport
from server.config.types import format_duration


def objective(report: SloReport) -> str:
    """``99.9% over 30d``."""
    o = report.objective
    return f"{o.target:g}% over {format_duration(o.window)}"


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
    if left < 0:
        return (f"error budget of {_minutes(total, total)} overspent by "
                f"{_minutes(-minutes, total)} ({-100 * left:.0f}%)")  # fmt: skip
    spent = f"{_minutes(minutes, total)} of {_minutes(total, total)}"
    return f"{spent} ({100 * left:.0f}%) error budget left"


def burn(report: SloReport) -> str:
    """``burn rate 0.4x over 1 h, 1.2x over 6 h`` (1x spends the budget in exactly the window)."""
    return f"burn rate {_rate(report.burn_1h)} over 1 h, {_rate(report.burn_6h)} over 6 h"


def short(report: SloReport) -> str:
    """One line for a tile:
    ``SLO 99.9%: 99.95% met · 12.1 min (28%) budget left · burn 0.4x 1 h, 1.2x 6 h``."""
    value = report.availability
    left, minutes = report.budget_remaining, report.remaining_minutes
    head = f"SLO {report.objective.target:g}%: "
    if value is None or left is None or minutes is None:
        return head + "no checks yet"
    total = report.objective.budget_minutes
    return (
        f"{head}{value:.2f}% {verdict(report)} · "
        + (
            f"{_minutes(minutes, total)} ({100 * left:.0f}%) budget left · "
            if left >= 0
            else f"budget overspent by {_minutes(-minutes, total)} · "
        )
        + f"burn {_rate(report.burn_1h)} 1 h, {_rate(report.burn_6h)} 6 h"
    )


def _minutes(value: float, scale: float) -> str:
    """Minutes, or hours when the budget they belong to (``scale``) is ten hours or more."""
    return f"{value:,.1f} min" if abs(scale) < 600 else f"{value / 60:,.1f} h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}x" if value < 10 else f"{value:.0f}x"
