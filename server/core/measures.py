"""Units of measured values: the one place that says what a number is measured in.

Every chart, tooltip and API answer takes a series' unit from :func:`unit_of`:

- the three value columns of ``service_status`` have fixed units
  (:data:`COLUMN_UNITS`); ``memory_usage`` is the *percent* of the machine's
  memory the process holds (``python_process`` fills it with RSS / total x 100),
  not megabytes;
- a checker metric carries its own unit in ``service_metrics.metric_unit``;
  spellings are folded to one canonical name (``"%"`` -> ``percent``,
  ``"s"`` -> ``seconds``), and a name we do not know is kept as written.

A :class:`Unit` also knows how to show a value: bytes in KiB/MiB/GiB, milliseconds
as seconds past 10 s, large counts in thousands or millions. A chart picks one
scale for its whole axis (:meth:`Unit.scale`) and writes the unit once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.core.humanize import significant

# (divisor, symbol), largest first; the first divisor <= the magnitude is used.
Scales = tuple[tuple[float, str], ...]
_BINARY: Scales = ((2.0**40, "TiB"), (2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"))
_THOUSANDS: Scales = ((1e9, "billion"), (1e6, "million"), (1e3, "thousand"))


@dataclass(frozen=True)
class Unit:
    """A canonical unit: ``name`` as the API answers it, ``symbol`` as a page shows it.

    ``scales`` are larger display units for big magnitudes; ``spaced`` says
    whether a value and its symbol take a space between them (``45 ms`` but
    ``12.5%``).
    """

    name: str
    symbol: str
    scales: Scales = ()
    spaced: bool = True
    prefix_scale: bool = False  # "thousand rows": the scale word goes before the symbol
    switch: float = 1.0  # use a scale from ``switch`` x its divisor on (ms: seconds past 10 s)
    whole: bool = False  # counted things: no axis step below one

    def scale(self, magnitude: float) -> tuple[float, str]:
        """``(divisor, symbol)`` to show values around ``magnitude`` (largest fitting scale).

        >>> UNITS["bytes"].scale(23_000_000)
        (1048576.0, 'MiB')
        """
        for divisor, symbol in self.scales:
            if abs(magnitude) >= divisor * self.switch:
                if self.prefix_scale:
                    return divisor, f"{symbol} {self.symbol}".strip()
                return divisor, symbol
        return 1.0, self.symbol

    def format(self, value: float) -> str:
        """One value with its unit, e.g. ``22.9 MiB``, ``45 ms``, ``0.09%``, ``1.2 thousand``."""
        divisor, symbol = self.scale(value)
        text = number(value / divisor)
        if not symbol:
            return text
        return f"{text} {symbol}" if self.spaced else f"{text}{symbol}"


UNITS: dict[str, Unit] = {
    "ms": Unit("ms", "ms", ((1000.0, "s"),), switch=10.0),
    "seconds": Unit("seconds", "s", ((86400.0, "d"), (3600.0, "h"), (60.0, "min"))),
    "percent": Unit("percent", "%", spaced=False),
    "ratio": Unit("ratio", ""),
    "bytes": Unit("bytes", "B", _BINARY),
    "count": Unit("count", "", _THOUSANDS, whole=True),
    "rows": Unit("rows", "rows", _THOUSANDS, prefix_scale=True, whole=True),
    "days": Unit("days", "days"),
    "": Unit("", "", _THOUSANDS),
}

ALIASES: dict[str, str] = {
    "%": "percent",
    "pct": "percent",
    "percentage": "percent",
    "s": "seconds",
    "sec": "seconds",
    "second": "seconds",
    "milliseconds": "ms",
    "millisecond": "ms",
    "b": "bytes",
    "byte": "bytes",
    "day": "days",
    "row": "rows",
}

# The magnitudes a measured value may have to be stored: 0, or 1e-15 to 1e15 either
# sign. A float64 holds ~15 significant digits, so a chart cannot show a value past
# this beside an ordinary one; ClickHouse's text output misprints three-digit
# exponents (1e300 reads back as "1e30"); the Float32 and UInt32 columns overflow
# long before 1e300; and alert thresholds stop at 1e15 too. One place says so:
# :func:`storable`, applied to every check result (server.runner.validated).
LARGEST = 1e15
SMALLEST = 1e-15
# why a finite value past LARGEST is no metric, in a check's ``metrics_refused``
# (the runner's, and a plugin's perfdata that no float holds: ``x=1e999``)
BEYOND_LARGEST = f"beyond ±{LARGEST:g}"


def storable(value: float) -> bool:
    """Whether ``value`` is finite and at most 1e15 in magnitude (see :func:`stored`)."""
    return math.isfinite(value) and abs(value) <= LARGEST


def stored(value: float) -> float:
    """``value`` as it is stored: under 1e-15 in magnitude it is 0 (a float's rounding
    noise, such as 0.1 + 0.2 - 0.3, is no measurement); a value past :func:`storable`
    is the caller's to refuse."""
    return 0.0 if abs(value) < SMALLEST else value


# The value columns of service_status and what they hold (see the module docstring).
COLUMN_UNITS: dict[str, str] = {
    "response_time_ms": "ms",
    "cpu_usage": "percent",
    "memory_usage": "percent",
}


def normalise(raw: str) -> str:
    """The canonical unit name for a stored spelling (unknown names are kept, trimmed)."""
    text = (raw or "").strip()
    lowered = text.lower()
    if lowered in UNITS:
        return lowered
    return ALIASES.get(lowered, text)


def unit(raw: str) -> Unit:
    """The :class:`Unit` for a stored spelling; an unknown one shows as written, unscaled."""
    name = normalise(raw)
    return UNITS.get(name) or Unit(name, name)


def unit_of(series: str, stored: str = "") -> Unit:
    """The unit of a series: a ``service_status`` column's fixed unit, else the stored one.

    A checker metric that reuses a column's name (HTTP's ``response_time_ms``)
    is the same quantity, so the column's unit wins.
    """
    return unit(COLUMN_UNITS.get(series, stored))


def number(value: float) -> str:
    """A plain number for people: thousands separated, at most three significant decimals."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
        if "e" in text:  # under 0.0001: written out, never 1e-15 on a page
            return significant(value, 3)
    return text.rstrip("0").rstrip(".") if "." in text else text
