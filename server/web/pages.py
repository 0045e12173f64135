"""Server-rendered pages (Jinja2 templates in ``templates/``), usable without JavaScript.

Reads are open; actions (acknowledge, silence, end a silence) are forms that
need a signed-in user and a CSRF token. Every page says which time range it
shows and that times are UTC.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from server.alerting.engine import AlertEngine
from server.analytics.slo import Counts, availability
from server.analytics.uptime import daily, days, utc_today
from server.config.types import parse_duration
from server.core import status as statuses
from server.core.measures import UNITS
from server.web import slo_view, status_view
from server.web.alerts_view import by_channel, current_alerts
from server.web.auth import check_csrf, check_password, principal, require_user, safe_next
from server.web.bars import day_bar
from server.web.charts import dependency_graph, line_chart, sparkline, status_strip
from server.web.context import WebContext
from server.web.context import current as context
from server.web.errors import ApiError
from server.web.queries import LOG_LEVELS, ServiceView
from server.web.ratelimit import LoginLimiter
from server.web.series import from_first_sample
from server.web.series import groups as chart_groups
from server.web.temporal_view import temporal_section
from server.web.tiles import tile
from server.web.timerange import PRESETS, TimeRange, time_range

pages = Blueprint("pages", __name__)
SILENCE_CHOICES = ("30m", "1h", "4h", "1d", "7d")
# Tiles per overview page, worst first: a glance shows what is broken; a page of
# 1,000 tiles is megabytes of HTML that nobody reads past the first screens.
PAGE_SIZE = 200


def _matches(view: ServiceView, stack: str, status: str, text: str) -> bool:
    if stack and view.stack != stack:
        return False
    if status.upper() == "STALE":
        if not view.stale:
            return False
    elif status and view.status != status.upper():
        return False
    needle = text.lower()
    return not needle or any(needle in f.lower() for f in (view.id, view.label, view.message))


@pages.get("/")
def overview() -> str:
    ctx = context()
    now = ctx.clock.now()
    views = ctx.reader.services(now, history=False)
    stack = request.args.get("stack", "")
    status = request.args.get("status", "")
    text = request.args.get("q", "")[:200]
    shown = [v for v in views if _matches(v, stack, status, text)]
    shown.sort(key=lambda v: (-statuses.severity(v.status_code), v.label))
    pages_total = max(1, -(-len(shown) // PAGE_SIZE))
    page = min(max(_page_arg(), 1), pages_total)
    on_page = shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    ctx.reader.add_history(on_page, now)  # uptime and strips only for the tiles drawn
    groups: dict[str, list[ServiceView]] = {}
    for view in sorted(on_page, key=lambda v: v.stack):
        groups.setdefault(view.stack, []).append(view)
    counts = Counter(v.status for v in views)
    counts["STALE"] = sum(1 for v in views if v.stale)
    return render_template(
        "overview.html",
        groups=groups,
        counts=counts,
        statuses=[s.name for s in statuses.WORST_FIRST],
        stacks=sorted({v.stack for v in views}),
        filters={"stack": stack, "status": status, "q": text},
        total=len(views),
        shown=len(shown),
        page=page,
        pages_total=pages_total,
        page_size=PAGE_SIZE,
        tile=tile,
        now=now,
    )


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else 1


@pages.get("/services/<service_id>")
def service(service_id: str) -> str:
    ctx = context()
    now = ctx.clock.now()
    views = ctx.reader.services(now, only=service_id)
    if not views:
        raise ApiError(404, ctx.reader.absent(service_id))
    view = views[0]
    try:
        tr = time_range(now, range_=request.args.get("range"), start=request.args.get("from"),
                        end=request.args.get("to"), default="24h")  # fmt: skip
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    # the daily summary's first check is exact for a service younger than the days
    # read; for an older one, ask only when the range reaches back beyond it
    first = view.first_check
    if first is not None and not view.first_check_exact:
        first = ctx.reader.first_check(service_id) if tr.start < first else None
    if not request.args.get("from"):
        tr = from_first_sample(tr, first)
    buckets = ctx.reader.status_buckets(service_id, tr)
    timeline = status_strip(fill_buckets(buckets, tr), width=760, height=18)
    groups = []
    for group in chart_groups(ctx.reader.series(service_id, tr, buckets)):
        charts = []
        for s in group.series:
            band = _band(ctx, service_id, s.name, s.points) if not s.tags else {}
            svg = line_chart(s.points, start=tr.start, end=tr.end, unit=s.unit, name=s.label,
                             band=band)  # fmt: skip
            charts.append({"name": s.label, "unit": s.unit, "svg": svg})
        groups.append({"title": group.title, "charts": charts})
    in_range = Counts(sum(int(b["up"]) for b in buckets), sum(int(b["checks"]) for b in buckets))
    shown_days = days(utc_today(now), status_view.DAYS)
    per_day = daily(ctx.storage, {service_id: [service_id]}, shown_days[0], shown_days[-1]).by_day
    levels = [lv for lv in request.args.getlist("level") if lv in LOG_LEVELS]
    text = request.args.get("q", "")[:200]
    fp = request.args.get("fp", "")
    logs = ctx.reader.logs(
        service_id,
        levels,
        text,
        100,
        int(fp) if fp.isascii() and fp.isdigit() and len(fp) < 21 else 0,
    )
    alerts = current_alerts(ctx, service_id)
    relations = ctx.config.relations
    return render_template(
        "service.html",
        view=view,
        tr=tr,
        presets=PRESETS,
        range_=request.args.get("range", "24h"),
        # a chosen period (from/to) stays chosen when the logs are filtered
        period=(request.args["from"], request.args.get("to", ""))
        if request.args.get("from")
        else None,
        source="hourly summary" if tr.hourly else "raw checks",
        timeline=timeline,
        checks=sum(int(b["checks"]) for b in buckets),
        temporal=temporal_section(ctx, service_id, tr),
        chart_groups=groups,
        chart_count=sum(len(g["charts"]) for g in groups),
        first_check=first,
        young=first is not None and tr.start <= first,
        in_range=in_range,
        in_range_pct=availability(in_range),
        day_bar=day_bar(shown_days, per_day.get(service_id, {}), view.label),
        slo=view.slo,
        slo_view=slo_view,
        logs=logs,
        levels=LOG_LEVELS,
        chosen_levels=levels,
        q=text,
        alerts=alerts,
        history=ctx.alert_log.history(service_id, 30),
        depends_on=[r.target for r in relations if r.source == service_id and r.enabled],
        dependents=[r.source for r in relations if r.target == service_id and r.enabled],
        now=now,
    )


def _band(
    ctx: WebContext, service_id: str, metric: str, points: list[dict[str, Any]]
) -> dict[datetime, tuple[float, float]]:
    """The learned normal band at each point's hour of the week (where there is one)."""
    if ctx.baselines is None:
        return {}
    band = {}
    for point in points:
        limits = ctx.baselines.band(service_id, metric, point["time"])
        if limits is not None:
            band[point["time"]] = limits
    return band


def fill_buckets(buckets: list[dict[str, Any]], tr: TimeRange) -> list[tuple[datetime, int | None]]:
    """Every bucket of the range, grey (None) where there were no checks: gaps stay visible."""
    seen = {int(b["time"].timestamp()): int(b["worst"]) for b in buckets}
    first = int(tr.start.timestamp()) // tr.step * tr.step
    return [
        (datetime.fromtimestamp(t, UTC), seen.get(t))
        for t in range(first, int(tr.end.timestamp()), tr.step)
    ]


@pages.get("/alerts")
def alerts() -> str:
    ctx = context()
    items = current_alerts(ctx)
    sections: dict[str, list[dict[str, Any]]] = {
        "Firing": [], "Pending": [], "Silenced": [], "Inhibited": [], "Flapping": [],
        "Resolved (last 24 h)": [],
    }  # fmt: skip
    for item in items:
        held = item.get("suppressed")
        if item["state"] == "resolved":
            sections["Resolved (last 24 h)"].append(item)
        elif held:
            sections[held.capitalize()].append(item)
        else:
            sections[item["state"].capitalize()].append(item)
    silences = [s.as_dict() for s in ctx.alerts.silences.all()] if ctx.alerts else []
    return render_template(
        "alerts.html",
        sections=sections,
        channels=by_channel(items, list(ctx.config.channels)),
        silences=silences,
        choices=SILENCE_CHOICES,
        history=ctx.alert_log.history(None, 50),
        can_act=ctx.alerts is not None and ctx.config.dashboard.auth.type != "none",
        now=ctx.clock.now(),
    )


@pages.get("/errors")
def errors() -> str:
    """Top error patterns, fleet-wide or for one service, over a range."""
    ctx = context()
    now = ctx.clock.now()
    try:
        tr = time_range(now, range_=request.args.get("range"), default="24h")
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    service = request.args.get("service", "")[:200]
    hours = max(1, int((tr.end - tr.start).total_seconds() // 3600) + 1)
    rows = ctx.reader.top_errors(service or None, tr)
    for row in rows:
        counts: list[float | None] = [0.0] * hours
        for index, count in row["hourly"]:
            if 0 <= index < hours:
                counts[index] = float(count)
        row["spark"] = sparkline(counts, "errors per hour", UNITS["count"])
    return render_template(
        "errors.html", rows=rows, service=service, tr=tr, presets=PRESETS,
        range_=request.args.get("range", "24h"),
        services=sorted(s.id for s in ctx.config.services), now=now,
    )  # fmt: skip


@pages.get("/reports")
def reports() -> str:
    ctx = context()
    rows = ctx.reader.reports()
    for row in rows:
        summary = json.loads(row["summary"] or "{}")
        row["incidents"] = len(summary.get("incidents", []))
        row["mttr"] = summary.get("mttr_seconds")
    return render_template("reports.html", rows=rows, now=ctx.clock.now())


@pages.get("/reports/<day>")
def report(day: str) -> str:
    ctx = context()
    try:
        date.fromisoformat(day)
    except ValueError:
        raise ApiError(400, f"expected a day as YYYY-MM-DD, got {day[:20]!r}") from None
    html = ctx.reader.report_html(day)
    if html is None:
        raise ApiError(404, f"no report for {day}; `lightbulb report --date {day}` builds one")
    body = html.split("<body", 1)[-1].split(">", 1)[-1].rsplit("</body>", 1)[0]
    # our own template rendered it with autoescape; the stored HTML is trusted markup
    return render_template("report.html", day=day, body=Markup(body), now=ctx.clock.now())  # noqa: S704


@pages.get("/dependencies")
def dependencies() -> str:
    ctx = context()
    views = {v.id: v for v in ctx.reader.services(ctx.clock.now()) if v.id != "lightbulb"}
    edges = [
        (r.source, r.target)
        for r in ctx.config.relations
        if r.enabled and r.type == "depends_on" and {r.source, r.target} <= views.keys()
    ]
    nodes = {sid: (v.label, v.status_code if v.checked else None) for sid, v in views.items()}
    return render_template(
        "dependencies.html", graph=dependency_graph(nodes, edges), edges=edges,
        now=ctx.clock.now(),
    )  # fmt: skip


pages.add_url_rule("/status", "status_page", status_view.page)  # open: app.OPEN_ENDPOINTS


# -- sign-in and actions ---------------------------------------------------------------------
@pages.route("/login", methods=["GET", "POST"])
def login() -> str | WerkzeugResponse | tuple[str, int, dict[str, str]]:
    """Sign in; failed attempts are rate limited (:mod:`server.web.ratelimit`)."""
    ctx = context()
    auth = ctx.config.dashboard.auth
    error = ""
    if request.method == "POST":
        check_csrf()
        user, password = request.form.get("user", ""), request.form.get("password", "")
        address = request.remote_addr or ""
        limiter: LoginLimiter = current_app.extensions["login_limiter"]
        wait = limiter.retry_after(address, user)
        if wait:
            error = f"too many failed sign-ins; try again in {wait} seconds"
            page = render_template("login.html", error=error, auth=auth.type, now=ctx.clock.now())
            return page, 429, {"Retry-After": str(wait)}
        if auth.type == "basic" and check_password(auth, user, password):
            limiter.succeeded(address, user)
            session.clear()
            session["user"] = user
            return redirect(safe_next(request.args.get("next", "")) or url_for("pages.alerts"))
        if auth.type == "basic":
            limiter.failed(address, user)
        error = "wrong user or password" if auth.type == "basic" else "sign-in needs auth: basic"
    return render_template("login.html", error=error, auth=auth.type, now=ctx.clock.now())


@pages.post("/logout")
def logout() -> WerkzeugResponse:
    check_csrf()
    session.clear()
    return redirect(url_for("pages.overview"))


def _actor() -> tuple[AlertEngine, str]:
    """A signed-in user acting through a form from this dashboard, on the live engine."""
    ctx = context()
    check_csrf()
    who = require_user(ctx.config.dashboard.auth)
    return ctx.engine(), who


@pages.post("/alerts/<path:alert_id>/ack")
def ack(alert_id: str) -> WerkzeugResponse:
    engine, who = _actor()
    if engine.acknowledge(alert_id, who, request.form.get("comment", "")[:1000]) is None:
        raise ApiError(404, f"no firing alert {alert_id!r}")
    context().make_durable()
    return redirect(url_for("pages.alerts"))


@pages.post("/alerts/<path:alert_id>/silence")
def silence(alert_id: str) -> WerkzeugResponse:
    engine, who = _actor()
    alert = engine.alert(alert_id)
    if alert is None:
        raise ApiError(404, f"no alert {alert_id!r}")
    duration = request.form.get("duration", "1h")
    if duration not in SILENCE_CHOICES:
        raise ApiError(400, f"duration: one of {', '.join(SILENCE_CHOICES)}")
    now = engine.clock.now()
    engine.add_silence(
        service=alert.service.id, rule=alert.rule.id, start=now,
        end=now + parse_duration(duration),
        author=who, comment=request.form.get("comment", "")[:1000],
    )  # fmt: skip
    context().make_durable()
    return redirect(url_for("pages.alerts"))


@pages.post("/silences/<silence_id>/expire")
def expire(silence_id: str) -> WerkzeugResponse:
    engine, _ = _actor()
    if engine.expire_silence(silence_id) is None:
        raise ApiError(404, f"no active API silence {silence_id!r}")
    context().make_durable()
    return redirect(url_for("pages.alerts"))


def signed_in() -> str | None:
    """For templates: who is signed in (basic auth sessions)."""
    ctx = context()
    return (
        principal(ctx.config.dashboard.auth) if ctx.config.dashboard.auth.type == "basic" else None
    )
