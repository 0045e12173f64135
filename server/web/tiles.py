"""The overview's service tile, rendered in Python.

The overview draws one tile per service, 1,000 and more; through Jinja each
tile cost ~0.1 ms of template machinery (the page's largest cost after the
queries). This is the same markup built with f-strings, every value escaped.
The page around the tiles stays a template.
"""

from __future__ import annotations

from urllib.parse import quote

from markupsafe import Markup

from server.core.measures import UNITS
from server.core.text import escape
from server.web import slo_view
from server.web.charts import badge, pct, sparkline, status_strip, utc
from server.web.queries import STALE_AFTER, ServiceView

MS = UNITS["ms"]


def tile(view: ServiceView) -> Markup:
    since = f"{view.status} since {utc(view.since)}" if view.checked else "no checks yet"
    uptime = " · ".join(pct(view.uptime.get(k)) for k in ("24h", "7d", "30d"))
    strip = status_strip(list(zip(view.strip_hours, view.strip_codes, strict=True)))
    spark = sparkline(view.strip_rt, "response time, last 24 h", MS)
    message = escape(view.message)
    stale, stale_attr, stale_badge = "", "", ""
    if view.stale:
        stale = (
            f'<p class="stale-note">stale: last result {escape(utc(view.last_check))}, '
            f"more than {STALE_AFTER} intervals ago</p>"
        )
        stale_attr, stale_badge = " data-stale", ' <span class="badge stale">STALE</span>'
    slo = ""
    if view.slo is not None:
        missed = " missed" if view.slo.met is False else ""
        slo = f'<p class="slo{missed}">{escape(slo_view.short(view.slo))}</p>'
    return Markup(  # noqa: S704 - every interpolated value is escaped or our own markup
        f'<article class="tile s{view.status_code}{" stale" if view.stale else ""}" '
        f'data-service="{escape(view.id)}" data-status="{view.status}"{stale_attr}>'
        f'<header><a href="/services/{quote(view.id)}">{escape(view.label)}</a> '
        f"<span>{badge(view.status_code if view.checked else None)}{stale_badge}</span></header>"
        f'<p class="since">{escape(since)}</p>{stale}'
        f'<p class="msg" title="{message}">{message}</p>'
        f'<p class="uptime">uptime {uptime}</p>{slo}{strip}{spark}</article>'
    )
