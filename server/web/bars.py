"""Day bars: one cell per UTC day coloured by that day's uptime, as status pages draw them.

Each cell's hover text gives the day, the uptime and the checks behind it; the
bar's caption states the period's uptime in words, so nothing depends on
telling colours apart. Classes (not inline colours) pick the fill, so the dark
theme can restyle them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import lru_cache

from markupsafe import Markup

from server.analytics.slo import Counts, availability
from server.core.humanize import percent
from server.core.text import escape

CELL = 4  # width of a day, in the bar's own units
# (lowest uptime %, class, words), best first; the first that the day reaches is used
BANDS: tuple[tuple[float, str, str], ...] = (
    (100.0, "u-full", "no failed checks"),
    (99.9, "u-high", "at least 99.9% up"),
    (99.0, "u-mid", "at least 99% up"),
    (95.0, "u-low", "at least 95% up"),
    (0.0, "u-down", "below 95% up"),
)


def band(uptime: float | None) -> tuple[str, str]:
    """``(css class, words)`` for an uptime percentage; ``None`` is a day without checks."""
    if uptime is None:
        return "u-none", "no checks"
    return next((css, words) for low, css, words in BANDS if uptime >= low)


def total(days: Mapping[date, Counts]) -> Counts:
    found = Counts(0, 0)
    for counts in days.values():
        found = found + counts
    return found


def day_bar(
    days: Sequence[date], counts: Mapping[date, Counts], label: str, height: int = 28
) -> Markup:
    """An SVG bar of ``days`` (oldest first) with the uptime of the whole period as text.

    ``label`` names what the bar is for (a service or a group) in its accessible name.
    """
    width = len(days) * CELL
    overall = availability(total({d: counts[d] for d in days if d in counts}))
    words = "no checks" if overall is None else f"{percent(overall, 2)} up"
    summary = f"{len(days)} days: {words}"
    parts = [
        f'<figure class="days"><svg class="daybar" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(label)}, {summary}">'
    ]
    parts += [_cell(index, day, height, counts.get(day)) for index, day in enumerate(days)]
    first, last = days[0].isoformat(), days[-1].isoformat()
    parts.append(
        f'</svg><figcaption><span>{first}</span><span class="overall">{escape(summary)}</span>'
        f"<span>{last}</span></figcaption></figure>"
    )
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped or ours


# a pure function of its arguments; at most a few MB
@lru_cache(maxsize=20_000)
def _cell(index: int, day: date, height: int, found: Counts | None) -> str:
    """One day's ``<rect>``: the same few thousand are drawn on every /status request
    (10 groups x 90 days, past days unchanged), so each is built once."""
    uptime = availability(found) if found else None
    css, meaning = band(uptime)
    if found is None or uptime is None:
        text = f"{day.isoformat()}: no checks"
    else:
        down = found.total - found.good
        text = (f"{day.isoformat()}: {percent(uptime, 2)} up, {down:,} of {found.total:,} checks "
                f"down ({meaning})")  # fmt: skip
    return (
        f'<rect class="{css}" x="{index * CELL}" width="{CELL - 1}" height="{height}" '
        f'data-day="{day.isoformat()}"><title>{escape(text)}</title></rect>'
    )
