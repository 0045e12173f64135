"""Chart axes: readable rounded ticks, one unit per axis, and room for the labels.

Ticks fall on 1, 2, 2.5 or 5 times a power of ten (the steps people read at a
glance, as in Heckbert's "Nice numbers for graph labels", Graphics Gems, 1990),
in the largest display unit that fits the data (``0 5 10 15`` MiB rather than
``0 5,242,880 …`` bytes). The unit is written once, as the axis title. The
left margin is sized from the widest label so no label is cut off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from server.core.humanize import times_ten_to
from server.core.measures import Unit, number

CHAR_PX = 7.0  # upper bound of a digit's advance at the axis font (11 px system-ui)
NICE = (1.0, 2.0, 2.5, 5.0, 10.0)
SMALL = 1e-4  # below this magnitude an axis counts in a power of ten (see value_axis)


@dataclass(frozen=True)
class Axis:
    """Ticks in the series' own unit, their labels in the display unit, and the title.

    ``low``/``high`` bound the plotted range (the first and last tick).
    """

    ticks: tuple[float, ...]
    labels: tuple[str, ...]
    title: str
    divisor: float

    @property
    def low(self) -> float:
        return self.ticks[0]

    @property
    def high(self) -> float:
        return self.ticks[-1]

    @property
    def label_px(self) -> float:
        """Estimated width of the widest tick label, in SVG px."""
        return CHAR_PX * max(len(label) for label in self.labels)

    def format(self, value: float) -> str:
        """A value in this axis' display unit, with the unit (for hover text)."""
        text = number(value / self.divisor)
        if not self.title:
            return text
        return f"{text}{self.title}" if self.title == "%" else f"{text} {self.title}"


def nice_step(span: float, count: int) -> float:
    """The smallest 1/2/2.5/5 x 10^n step that covers ``span`` in ``count`` intervals."""
    raw = span / max(count, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in NICE if m * power >= raw * (1 - 1e-9))


def _decimals(step: float) -> int:
    """Decimals that tell ticks ``step`` apart: 0.25 -> 2, 2.5 -> 1, 50 -> 0, 2e-8 -> 8
    (judged relative to the step, so a tiny step is never written with no decimals)."""
    places = 0
    while places < 20 and abs(step * 10**places - round(step * 10**places)) > 1e-6 * abs(
        step * 10**places
    ):
        places += 1
    return places


def _label(tick: float, places: int) -> str:
    """``1,500``, ``0.05``, ``2.5``: separated thousands, no trailing zeros, never ``-0``."""
    if abs(tick) < 0.5 * 10.0**-places:  # what rounds to zero is written 0, not -0
        return "0"
    text = f"{tick:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def value_axis(low: float, high: float, unit: Unit, count: int = 5) -> Axis:
    """An axis covering ``[low, high]`` (raw values) in about ``count`` nice steps.

    A flat series (``low == high``) gets a range of one display unit above it.
    Values under :data:`SMALL` in the display unit (a metric of 1e-15) are drawn
    in a power of 1,000 written once in the title (times 10 to the -15), so the ticks read
    ``0 0.5 1`` rather than six zeros or ``0.0000000000000005``.
    """
    divisor, symbol = unit.scale(max(abs(low), abs(high)))
    magnitude = max(abs(low), abs(high)) / divisor
    if 0 < magnitude < SMALL:
        power = 3 * math.floor(math.log10(magnitude) / 3)
        divisor *= 10.0**power
        symbol = f"{times_ten_to(power)} {symbol}".strip()
    lo, hi = low / divisor, high / divisor
    if hi <= lo:
        hi = lo + 1.0
    step = nice_step(hi - lo, count)
    if unit.whole and divisor == 1.0:
        step = max(step, 1.0)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    places = _decimals(step)
    labels = tuple(_label(t, places) for t in ticks)
    return Axis(tuple(t * divisor for t in ticks), labels, symbol, divisor)


# Time label formats, coarsest first: a chart takes the first whose labels all differ.
TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%m-%d %H:%M", "%m-%d %H:%M:%S")
DAY_SECONDS = 86400


def time_ticks(start: datetime, end: datetime, count: int = 5) -> list[tuple[datetime, str]]:
    """Up to ``count`` evenly spaced ``(time, label)`` pairs from ``start`` to ``end``, UTC.

    No two labels alike: a series minutes old reads ``14:32:00 14:32:15 …``, not
    ``14:32 14:32 14:32``, and a two-day span that would repeat a time of day gets
    dates. Spans up to two days start at ``%H:%M``, longer ones at ``%m-%d %H:%M``;
    when even seconds repeat (a span of a few seconds), fewer ticks are drawn, down to
    one when ``start`` and ``end`` read the same.
    """
    formats = TIME_FORMATS if (end - start).total_seconds() <= 2 * DAY_SECONDS else TIME_FORMATS[2:]
    for n in range(count, 1, -1):
        times = [start + (end - start) * (i / (n - 1)) for i in range(n)]
        for fmt in formats:
            labels = [f"{at:{fmt}}" for at in times]
            if len(set(labels)) == n:
                return list(zip(times, labels, strict=True))
    return [(start, f"{start:{formats[-1]}}")]
