"""Numbers, durations and times as people read them, on pages and in notices.

``2.4285714285714284`` reads ``2.43``; ``151 s`` reads ``2m 31s``; a time reads
``2026-11-22 12:00:05 UTC``, without microseconds. Nothing here writes scientific
notation (``4.32e-08``): a page reads ``0.0000000432``, and a figure is never
rounded onto a different boundary (99.68 % left is not "100%", a target of
99.99999999999999 is not "100").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def number(value: float | None) -> str:
    """Whole numbers as such, others to two decimals (three significant digits below 1)."""
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    if abs(value) >= 1:
        text = f"{value:,.2f}" if abs(value) >= 10_000 else f"{value:.2f}"
    else:
        return significant(value, 3)  # 0.0000123, not 1.23e-05
    return text.rstrip("0").rstrip(".") if "." in text else text


def duration(value: timedelta) -> str:
    """``2m 31s``, ``3h 5m``, ``2d 4h``: the two largest units, rounded to the second."""
    seconds = max(0, round(value.total_seconds()))
    if seconds == 0 and value.total_seconds() > 0:
        return f"{round(value.total_seconds() * 1000)}ms"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def moment(at: datetime | None) -> str:
    """``2026-11-22 12:00:05 UTC``; ``-`` for None."""
    if at is None:
        return "-"
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return f"{aware.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def exact(value: float) -> str:
    """Every digit the float was written with, positionally: ``99.99999999999999``,
    ``0.0000000001`` (not ``1e-10``), ``99.9`` (the shortest text that reads back as
    ``value``, so a configured figure is shown as configured)."""
    if not math.isfinite(value):
        return str(value)
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, positionally, thousands separated:
    ``0.0000000432``, ``0.0432``, ``12.3``, ``12,300``; trailing zeros dropped."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    text = format(Decimal(f"{value:.{digits}g}"), ",f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(value: float, places: int = 0) -> str:
    """``28%``: ``value`` (a percentage) to ``places`` decimals, with more where that
    rounding would land on 0 or 100 and the value is not: ``99.7%`` for 99.68,
    ``0.04%`` for 0.04, never ``100%`` or ``0%`` (or ``-0%``) unless it is."""
    if not math.isfinite(value):
        return f"{value}%"
    return clear_of(value, (0.0, 100.0), lambda v, d: f"{v:,.{d}f}", range(places, 17)) + "%"


def clear_of(
    value: float,
    bounds: Iterable[float],
    spell: Callable[[float, int], str],
    digits: Iterable[int],
) -> str:
    """``spell(value, d)`` for the first ``d`` of ``digits`` whose text reads as none of
    ``bounds`` spelled the same way, unless ``value`` is that bound: a share of 99.68 %
    is ``99.7%``, not ``100%``; 431.97 min of a 432-minute budget is not ``432.0``.
    (Texts are compared as numbers: ``-0`` reads as ``0``.) :func:`exact` when no ``d``
    tells them apart. The one rounding rule of shares and budgets on every page."""
    bounds = tuple(bounds)
    for d in digits:
        text = spell(value, d)
        shown = float(text.replace(",", ""))
        if all(
            value == bound or shown != float(spell(bound, d).replace(",", "")) for bound in bounds
        ):
            return text
    return exact(value)


def multiple(value: float, cap: float = 1000.0) -> str:
    """A rate as a multiple: ``0.41x``, ``14x``, ``1,000x``; past ``cap``, ``over 1,000x``
    (what a float's last bit adds to an exact 1,000 is not "over")."""
    if not math.isfinite(value) or value > cap * (1 + 1e-9):
        return f"over {cap:,.0f}x"
    if abs(value) < 10:
        return f"{significant(value, 2)}x"
    return f"{value:,.0f}x"


def times_ten_to(power: int) -> str:
    """A power of ten as a chart axis writes its multiplier: for -15, the multiplication
    sign, ``10`` and ``-15`` in superscript digits (not ``1e-15``)."""
    return f"\N{MULTIPLICATION SIGN} 10{str(power).translate(_SUPERSCRIPT)}"
