"""Server-side SVG: charts with axes and hover values, status strips, the dependency map.

No chart library: an SVG string is small, renders without JavaScript, and
every label is escaped here. Hover values are ``<title>`` elements (native
tooltips) plus ``data-label`` attributes the page's tiny script shows in a tooltip.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from markupsafe import Markup

from server.core.humanize import percent
from server.core.measures import Unit
from server.core.text import escape
from server.web.axes import time_ticks, value_axis
from server.web.queries import STATUS_NAMES

STATUS_COLOURS = {  # the stylesheet's --ok … --unknown: white text on each reads at 4.5:1
    0: "#1e7b1e",
    1: "#ff9f1c",
    2: "#d62728",
    3: "#1f77b4",
    4: "#666666",
    5: "#7e4fae",
    None: "#e3e3e3",
}


def colour(code: int | None) -> str:
    return STATUS_COLOURS.get(code, STATUS_COLOURS[None])


def line_chart(
    points: Sequence[dict[str, Any]],
    *,
    start: datetime,
    end: datetime,
    unit: Unit,
    name: str,
    width: int = 760,
    height: int = 220,
    band: dict[datetime, tuple[float, float]] | None = None,
) -> Markup:
    """avg as a line with hoverable points, max as a faint line; axes with units.

    The y axis has rounded ticks in the display unit that fits the data
    (:func:`server.web.axes.value_axis`), the unit written once above it, and a
    left margin as wide as its widest label; time labels stay inside the plot's
    width. ``band`` (bucket time -> learned lower/upper) is shaded behind the
    line, and points above it are marked as anomalies.
    """
    values = [p for p in points if p.get("avg") is not None]
    label = escape(name)
    if not values:
        return Markup(
            f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">'
            f"no {label} samples in this range</text></svg>"
        )
    band = band or {}
    high = max(
        [float(p["max"] if p.get("max") is not None else p["avg"]) for p in values]
        + [u for _, u in band.values()]
        + [0.0]
    )
    low = min([float(p["avg"]) for p in values] + [0.0])
    axis = value_axis(low, high, unit)
    left = round(axis.label_px) + 12
    right, top, bottom = 12, 22, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    span = (end - start).total_seconds() or 1.0

    def x(at: datetime) -> float:
        return left + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - axis.low) / ((axis.high - axis.low) or 1))

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}, {escape(unit.name or "no unit")}" data-series="{label}" '
        f'data-unit="{escape(unit.name)}">'
    ]
    if axis.title:
        parts.append(f'<text class="axis unit" x="4" y="12" text-anchor="start">'
                     f"{escape(axis.title)}</text>")  # fmt: skip
    for tick, text in zip(axis.ticks, axis.labels, strict=True):
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/><text class="axis tick" x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{text}</text>'
        )
    ticks = time_ticks(start, end)
    for i, (at, text) in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        parts.append(
            f'<text class="axis time" x="{x(at):.1f}" y="{height - 8}" '
            f'text-anchor="{anchor}">{text}</text>'
        )
    banded = [p for p in values if p["time"] in band]
    if banded:
        upper = [f"{x(p['time']):.1f},{y(band[p['time']][1]):.1f}" for p in banded]
        lower = [f"{x(p['time']):.1f},{y(max(band[p['time']][0], axis.low)):.1f}" for p in banded]
        parts.append(f'<polygon class="band" points="{" ".join(upper + lower[::-1])}"/>')

    def top_of(p: dict[str, Any]) -> float:
        return float(p["max"] if p.get("max") is not None else p["avg"])

    maxes = " ".join(f"{x(p['time']):.1f},{y(top_of(p)):.1f}" for p in values)
    avgs = " ".join(f"{x(p['time']):.1f},{y(float(p['avg'])):.1f}" for p in values)
    parts.append(f'<polyline class="max" points="{maxes}"/>')
    parts.append(f'<polyline class="avg" points="{avgs}"/>')
    for p in values:
        limits = band.get(p["time"])
        anomaly = limits is not None and float(p["avg"]) > limits[1]
        text = escape(
            f"{p['time']:%Y-%m-%d %H:%M} UTC: avg {unit.format(float(p['avg']))}"
            + (f", max {unit.format(float(p['max']))}" if p.get("max") is not None else "")
            + (f"; normal up to {unit.format(limits[1])}" if limits else "")
            + (" (anomaly)" if anomaly else "")
        )
        css = "point anomaly" if anomaly else "point"
        parts.append(
            f'<circle class="{css}" cx="{x(p["time"]):.1f}" cy="{y(float(p["avg"])):.1f}" r="3" '
            f'data-label="{text}"><title>{text}</title></circle>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(
    values: Sequence[float | None], what: str, unit: Unit, width: int = 120, height: int = 24
) -> Markup:
    """A small line of ``values`` (None: no data), captioned ``what: low to high`` in ``unit``.

    The caller says what the values are: the tiles' response times and the
    error page's hourly counts share this drawing, not a caption.
    """
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}"></svg>')
    high, low = max(known), min(known)
    scale = (height - 4) / ((high - low) or 1)
    base = height - 2
    # whole-pixel coordinates: a 120 x 24 line needs no decimals, and ints format fastest
    points = " ".join(
        f"{x},{int(base - (v - low) * scale)}"
        for x, v in zip(_xs(len(values), width), values, strict=True)
        if v is not None
    )
    title = escape(f"{what}: {unit.format(low)} to {unit.format(high)}")
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
        f'<title>{title}</title><polyline points="{points}"/></svg>'
    )


@functools.lru_cache(maxsize=64)
def _xs(count: int, width: int) -> tuple[int, ...]:
    step = width / max(count - 1, 1)
    return tuple(int(i * step) for i in range(count))


@functools.lru_cache(maxsize=256)
def badge(code: int | None, text: str | None = None) -> Markup:
    """A status pill; ``None`` is "no data" (a service never checked). The same few pills
    are drawn a thousand times a page: each is built once (Markup is immutable)."""
    css = "none" if code is None else str(code)
    label = text or (STATUS_NAMES.get(code, "UNKNOWN") if code is not None else "NO DATA")
    return Markup(f'<span class="badge s{css}">{escape(label)}</span>')


def pct(value: float | None) -> str:
    """An uptime as pages show it: ``99.95%``, two decimals, more where two would round
    onto 100 or 0 (one failed check in 25,000 is ``99.996%``, not ``100.00%``)."""
    return "-" if value is None else percent(value, 2)


def utc(at: datetime | None) -> str:
    """How every page shows a time (the ``t`` filter in templates)."""
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def status_strip(
    buckets: Sequence[tuple[datetime, int | None]], width: int = 240, height: int = 14
) -> Markup:
    """Coloured cells of the worst status per bucket; grey where there were no checks.

    Equal neighbours are drawn as one run (one ``<rect>`` with its time span as
    the hover text): a steady day is one element, not 24, which keeps a
    1,000-service overview small.
    """
    if not buckets:
        return Markup("")
    first = buckets[0][0]
    step = buckets[1][0] - first if len(buckets) > 1 else timedelta(hours=1)
    layout = _Layout.of(first, step, len(buckets), width, height)
    codes = tuple(code for _, code in buckets)
    # tiles share a few patterns (a steady day is one run); the timelines of service
    # pages are long and rarely repeat, so they are drawn, not kept
    draw = _kept_strip if len(codes) <= _STRIP_CACHED_CELLS else _strip
    return draw(layout, codes, width, height)


def _strip(layout: _Layout, codes: tuple[int | None, ...], width: int, height: int) -> Markup:
    parts = []
    start = 0
    for code, run in itertools.groupby(codes):
        length = sum(1 for _ in run)
        parts.append(layout.run(start, length, code))
        start += length
    return Markup(
        f'<svg class="strip" viewBox="0 0 {width} {height}" preserveAspectRatio="none">'
        f"{''.join(parts)}</svg>"
    )


# Whole tile strips, a pure function of their layout and codes: at most a few MB.
_kept_strip = functools.lru_cache(maxsize=2048)(_strip)
_STRIP_CACHED_CELLS = 48


class _Layout:
    """Strip geometry and labels for one set of bucket times, shared by every tile.

    The overview draws a strip per service over the same 24 hours; runs are
    cached by (start, length, status): plain ints, cheap to hash.
    """

    _cache: ClassVar[dict[tuple[datetime, timedelta, int, int, int], _Layout]] = {}

    def __init__(self, first: datetime, step: timedelta, count: int, width: int, height: int):
        self.cell = width / count
        self.height = height
        self.starts = [f"{first + step * i:%Y-%m-%d %H:%M}" for i in range(count)]
        self.ends = [f"{first + step * (i + 1):%Y-%m-%d %H:%M}" for i in range(count)]
        self.runs: dict[tuple[int, int, int | None], str] = {}

    @classmethod
    def of(cls, first: datetime, step: timedelta, count: int, width: int, height: int) -> _Layout:
        key = (first, step, count, width, height)
        layout = cls._cache.get(key)
        if layout is None:
            if len(cls._cache) > 64:
                cls._cache.clear()
            layout = cls._cache[key] = cls(first, step, count, width, height)
        return layout

    def run(self, start: int, length: int, code: int | None) -> str:
        key = (start, length, code)
        html = self.runs.get(key)
        if html is None:
            name = STATUS_NAMES.get(code, "no checks") if code is not None else "no checks"
            text = escape(f"{self.starts[start]} to {self.ends[start + length - 1]} UTC: {name}")
            x, w = start * self.cell, max(length * self.cell - 0.5, 0.5)
            html = self.runs[key] = (
                f'<rect x="{x:.1f}" width="{w:.1f}" height="{self.height}" '
                f'fill="{colour(code)}"><title>{text}</title></rect>'
            )
        return html


def dependency_graph(
    nodes: dict[str, tuple[str, int | None]], edges: Sequence[tuple[str, str]]
) -> Markup:
    """Layered left-to-right: upstream services on the left, dependents to their right.

    ``nodes`` maps id -> (label, status code); an edge (a, b) means a depends on b.
    Nodes link to their service page.
    """
    upstream: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target in edges:
        upstream.setdefault(source, []).append(target)
    depth: dict[str, int] = {}

    def level(node: str, seen: frozenset[str] = frozenset()) -> int:
        if node in depth:
            return depth[node]
        ups = [u for u in upstream.get(node, []) if u not in seen]
        depth[node] = 1 + max((level(u, seen | {node}) for u in ups), default=-1)
        return depth[node]

    for node in nodes:
        level(node)
    columns: dict[int, list[str]] = {}
    for node in sorted(nodes, key=lambda n: (depth[n], nodes[n][0])):
        columns.setdefault(depth[node], []).append(node)
    box_w, box_h, gap_x, gap_y = 170, 40, 70, 22
    width = max(len(columns), 1) * (box_w + gap_x) + 20
    height = max((len(c) for c in columns.values()), default=1) * (box_h + gap_y) + 20
    pos = {
        node: (10 + col * (box_w + gap_x), 10 + row * (box_h + gap_y))
        for col, members in columns.items()
        for row, node in enumerate(members)
    }
    parts = [
        f'<svg class="graph" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="service dependencies"><defs><marker id="arrow" viewBox="0 0 10 10" '
        f'refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>'
    ]
    for source, target in edges:
        if source in pos and target in pos:
            (sx, sy), (tx, ty) = pos[source], pos[target]
            parts.append(
                f'<line class="edge" x1="{sx}" y1="{sy + box_h / 2}" x2="{tx + box_w}" '
                f'y2="{ty + box_h / 2}" marker-end="url(#arrow)"/>'
            )
    for node, (x, y) in pos.items():
        label, code = nodes[node]
        name = STATUS_NAMES.get(code, "no checks") if code is not None else "no checks"
        text = escape(f"{label}: {name}")
        shade = code if code is not None and code in STATUS_COLOURS else "none"  # text colour
        parts.append(
            f'<a href="/services/{escape(node)}" class="node s{shade}" '
            f'data-service="{escape(node)}">'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" '
            f'fill="{colour(code)}"><title>{text}</title></rect>'
            f'<text x="{x + box_w / 2}" y="{y + 17}" text-anchor="middle">'
            f"{escape(label[:24])}</text>"
            f'<text class="state" x="{x + box_w / 2}" y="{y + 33}" text-anchor="middle">'
            f"{escape(name)}</text></a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
