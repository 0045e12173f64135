"""Incidents: ``/incidents``, ``/incidents/<id>`` and their JSON API.

Derivation lives in :mod:`server.analytics.incidents`; this module parses the
request, renders, and stores notes. Reads follow the dashboard's read rules;
setting a note needs a signed-in user and the form's CSRF token (pages) or a
principal and a JSON body (API), like acknowledging an alert.

- ``GET /api/v1/incidents?from=&to=&range=&service=&limit=``: open ones first,
  then newest first,
  overlapping the range (default the last 30 days), at most ``limit`` (1-1000,
  default 100).
- ``GET /api/v1/incidents/<id>``: one incident with its ``timeline``.
- ``POST`` or ``PUT /api/v1/incidents/<id>/note`` with ``{"note": "..."}``: set
  the note (at most 4,000 characters; ``""`` clears it); answers the incident.
"""

from __future__ import annotations

from copy import copy
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from server.analytics.incident_news import Candidates, candidates, noted_floor, ranked
from server.analytics.incident_timeline import timeline
from server.analytics.incidents import LOOKBACK, MAX_NOTE, Incident, Incidents
from server.core.humanize import duration
from server.core.text import escape
from server.storage import Storage
from server.storage.changes import Tokens
from server.web.api import _int_arg, _json_body
from server.web.auth import check_csrf, require_user
from server.web.charts import utc
from server.web.context import current as context
from server.web.errors import ApiError
from server.web.read_cache import Same
from server.web.timerange import PRESETS, TimeRange, time_range
from server.writer import Busy

incidents = Blueprint("incidents", __name__)
PAGE_LIMIT = 200  # rows on /incidents, newest first


def source() -> Incidents:
    ctx = context()
    return Incidents(ctx.storage, ctx.config, ctx.saved_notes)


def requested(now: datetime) -> TimeRange:
    """The request's window, its ends taken from ``now`` unless spelled (the instant the
    view answers for: the kept list's key holds a moving end as its offset from it)."""
    try:
        return time_range(now, range_=request.args.get("range"),
                          start=request.args.get("from"), end=request.args.get("to"),
                          default="30d")  # fmt: skip
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def found_or_404(incident_id: str) -> Incident:
    """The incident of this id (:meth:`Incidents.get`), kept while nothing it read changed
    (:mod:`server.web.read_cache`; derived without notes, so a note saved leaves it kept:
    :func:`with_notes`), a copy callers may set a note on; else a 404."""
    ctx = context()
    tokens = ctx.read_cache.tokens(ctx.storage)  # before anything the answer reads
    now = ctx.clock.now()
    # the edges that move: ``now`` and the window's end a second past it, and the acks'
    # day past that; the id's instant (the window's start) is in the key
    edges = [now, now + timedelta(seconds=1), now + timedelta(days=1, seconds=1)]
    found: Incident | None = ctx.read_cache.get(
        "incident", ctx.storage,
        lambda storage: Incidents(storage, ctx.config, ctx.saved_notes).get(
            incident_id[:64], now, notes=False),
        tokens=tokens, config=ctx.config, key=incident_id[:64], now=now, edges=edges,
    )  # fmt: skip
    if found is None:
        raise ApiError(404, f"no incident {incident_id[:64]!r}")
    (incident,) = with_notes("incident", [found], tokens, now, held=found)
    return incident


def with_notes(name: str, found: list[Incident], tokens: Tokens | None, now: datetime,
               held: object = None) -> list[Incident]:  # fmt: skip
    """Copies of ``found`` (an answer kept as ``name``, derived without notes) with their
    notes (:meth:`Incidents.noted`, one query), themselves kept while no note is saved
    and ``held`` (the kept answer ``found`` is, or holds: ``found`` itself by default)
    is the one kept (:class:`server.web.read_cache.Same`)."""
    ctx = context()
    return ctx.read_cache.get(
        f"{name}, notes", ctx.storage,
        lambda storage: Incidents(storage, ctx.config, ctx.saved_notes).noted(found),
        tokens=tokens, config=ctx.config,
        key=(Same(found if held is None else held), ctx.saved_notes.version), now=now, edges=(),
    )  # fmt: skip


# -- pages -------------------------------------------------------------------------------------
@incidents.get("/incidents")
def incident_list() -> str:
    ctx = context()
    now = ctx.clock.now()
    tr = requested(now)
    service = request.args.get("service", "")[:200]
    rows = listed("incidents page", tr, service, PAGE_LIMIT, now)
    return render_template(
        "incidents.html", rows=rows, table=table_rows(rows, now), tr=tr, presets=PRESETS,
        limit=PAGE_LIMIT,
        range_=request.args.get("range", "30d"), service=service,
        options=service_options(sorted(s.id for s in ctx.config.services), service), now=now,
    )  # fmt: skip


def service_options(services: list[str], selected: str) -> Markup:
    """The service filter's ``<option>`` of each of ``services``, ``selected`` marked, as
    the template wrote them (escaped by the one rule, :func:`server.core.text.escape`, as
    the pages' finalize does): 1,000 through the template cost ~5,000 calls a request."""
    return Markup("".join(  # noqa: S704 - every service id is escaped
        f"<option {'selected' if s == selected else ''}>{escape(s)}</option>"
        for s in services
    ))  # fmt: skip


def listed(name: str, tr: TimeRange, service: str, limit: int, now: datetime) -> list[Incident]:
    """:meth:`Incidents.between` for the request's window, ``service`` ("" for all) and
    ``limit``, with notes, acks and notices; kept while nothing it read changed
    (:mod:`server.web.read_cache`; ``name``: the route's, each keeps its last answer), so
    many readers cost one derivation per insert; derived without notes, added apart
    (:func:`with_notes`), so a note saved costs one query. Callers must not change the
    incidents (they are the kept ones). Raises StorageError."""
    ctx = context()
    tokens = ctx.read_cache.tokens(ctx.storage)  # before anything the answer reads
    # the window's ends move with ``now`` unless the request spelled them (``to`` fixes
    # the end and, with ``range``, the start); the key holds a moving end as its offset
    # from ``now`` and a spelled one as itself, so equal keys ask the same question
    end_moves = not request.args.get("to")
    start_moves = end_moves and not request.args.get("from")
    # the edges rows are compared with: ``now`` (an ongoing incident lasts until it,
    # flapping is replayed up to it), and those of the window that move: its ends, how
    # far back a start is looked for (LOOKBACK) and the acks' day past the end
    edges = [now]
    if end_moves:
        edges += [tr.end, tr.end + timedelta(days=1)]
    if start_moves:
        edges += [tr.start, tr.start - LOOKBACK]
    key = (tr.start - now if start_moves else tr.start, tr.end - now if end_moves else tr.end,
           service, limit)  # fmt: skip
    found: list[Incident] = ctx.read_cache.get(
        name, ctx.storage,
        lambda storage: Incidents(storage, ctx.config, ctx.saved_notes).between(
            tr.start, tr.end, service_id=service or None, limit=limit, now=now, notes=False),
        tokens=tokens, config=ctx.config, key=key, now=now, edges=edges,
    )  # fmt: skip
    return with_notes(name, found, tokens, now)


def table_rows(rows: list[Incident], now: Any) -> Markup:
    """The list's rows, built in Python: 200 rows through Jinja (with url_for) took ~170 ms."""
    root = request.script_root
    out = []
    for i in rows:
        # each service once, by its last spell: one back up while the incident goes on
        # (its cause still fires) says so; one that left and is back in it does not
        last = {s.service_id: s for s in i.spells()}
        services = ", ".join(
            f'<a href="{root}/services/{escape(quote(s.service_id, safe=""))}">'
            f"{escape(s.service_id)}</a>"
            + (f' <span class="recovered">(recovered {escape(utc(s.end))})</span>'
               if s.end and not i.end else "")
            for s in last.values()
        )  # fmt: skip
        end = escape(utc(i.end)) if i.end else "<b>ongoing</b>"
        note = ' <em class="has-note">note</em>' if i.note else ""
        out.append(
            f'<tr data-incident="{escape(i.id)}" class="sev-{escape(i.severity)}'
            f'{"" if i.end else " open"}"><td><a href="{root}/incidents/{escape(i.id)}">'
            f"{escape(utc(i.start))}</a></td><td>{end}</td>"
            f"<td>{escape(duration(i.duration(now)))}</td>"
            f'<td class="cause">{escape(i.cause)}{note}</td><td>{services}</td>'
            f"<td>{escape(', '.join(i.acknowledged_by) or '-')}</td>"
            f'<td class="sent">{i.sent}</td></tr>'
        )
    return Markup("".join(out))  # noqa: S704 - every interpolated value is escaped or ours


@incidents.get("/incidents/<incident_id>")
def incident_page(incident_id: str) -> str:
    ctx = context()
    incident = found_or_404(incident_id)
    now = ctx.clock.now()
    return render_template(
        "incident.html", i=incident, entries=timeline(source(), incident, now),
        can_note=ctx.config.dashboard.auth.type != "none", max_note=MAX_NOTE, now=now,
    )  # fmt: skip


@incidents.post("/incidents/<incident_id>/note")
def note_form(incident_id: str) -> WerkzeugResponse:
    ctx = context()
    check_csrf()
    who = require_user(ctx.config.dashboard.auth)
    incident = found_or_404(incident_id)
    _save(incident, request.form.get("note", ""), who)
    return redirect(url_for("incidents.incident_page", incident_id=incident.id))


# -- API ---------------------------------------------------------------------------------------
@incidents.get("/api/v1/incidents")
def api_list() -> Response:
    ctx = context()
    now = ctx.clock.now()
    tr = requested(now)
    limit = _int_arg("limit", 100, 1, 1000)
    service = request.args.get("service", "")[:200]
    rows = listed("incidents api", tr, service, limit, now)
    return jsonify({
        "range": {"from": tr.start.isoformat(), "to": tr.end.isoformat()},
        "incidents": [i.as_dict(now) for i in rows],
    })  # fmt: skip


@incidents.get("/api/v1/incidents/<incident_id>")
def api_one(incident_id: str) -> Response:
    ctx = context()
    incident = found_or_404(incident_id)
    now = ctx.clock.now()
    return jsonify(_detail(incident, now))


@incidents.route("/api/v1/incidents/<incident_id>/note", methods=["POST", "PUT"])
def api_note(incident_id: str) -> Response:
    ctx = context()
    who = require_user(ctx.config.dashboard.auth)
    body = _json_body()
    note = body.get("note")
    if not isinstance(note, str):
        raise ApiError(400, 'note: expected a string ("" clears the note)')
    incident = found_or_404(incident_id)
    now = ctx.clock.now()
    saved = _save(incident, note, who)
    incident.note = saved if saved["note"] else None
    return jsonify(_detail(incident, now))


def _detail(incident: Incident, now: Any) -> dict[str, Any]:
    body = incident.as_dict(now)
    body["acks"] = [{**a, "at": a["at"].isoformat()} for a in incident.acks]
    body["timeline"] = [
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in e.items()}
        for e in timeline(source(), incident, now)
    ]
    return body


def _save(incident: Incident, note: str, who: str) -> dict[str, Any]:
    """The note on disk before the answer (the daemon's writer), or a 4xx/503 saying why;
    returns it as stored, ``{note, author, updated_at}``, which the next read shows
    (:class:`server.analytics.incidents.SavedNotes`) even before the writer inserts it."""
    ctx = context()
    note = note.replace("\r\n", "\n").strip()
    try:
        return source().save_note(incident.id, note, who, ctx.clock.now(), ctx.sink)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except Busy as exc:
        raise ApiError(exc.status, str(exc), {"Retry-After": str(exc.retry_after)}) from None


def recent(now: Any, services: set[str], current: dict[str, int] | None = None, *,
           tokens: Tokens | None, days: int = 30, limit: int = 50) -> list[Incident]:  # fmt: skip
    """Incidents of the last ``days`` days touching any of ``services`` (the status page's):
    the open ones and the newest, at most ``limit``, with their notes. ``current``: each
    checked service's status code when the caller has read them already. Read by those
    services, so incidents of others cannot crowd the page's own off it. ``tokens``: the
    request's part hashes (:meth:`server.web.read_cache.ReadCache.tokens`; None: worked
    out, not kept)."""
    ctx = context()
    start, end = now - timedelta(days=days), now + timedelta(seconds=1)
    # the answer is kept while nothing it read changed (server.web.read_cache); the edges
    # its rows are compared with: the window's ends, how far back a start is looked for
    # (LOOKBACK), and ``now``, up to which status changes are replayed for flapping
    edges = (start - LOOKBACK, start, now, end)
    name = f"recent incidents, current {current is not None}"

    def source(storage: Storage) -> Incidents:
        return Incidents(storage, ctx.config, ctx.saved_notes)

    def derived(floor: datetime | None) -> Candidates:  # without notes: kept past a note
        return ctx.read_cache.get(
            name if floor is None else f"{name}, widened", ctx.storage,
            lambda storage: candidates(source(storage), start, end, services=services,
                                       limit=limit, now=now, current=current, floor=floor),
            tokens=tokens, config=ctx.config,
            key=(frozenset(services), current, days, limit, floor), now=now, edges=edges,
        )  # fmt: skip

    def notes_on(held: Candidates, widened: bool) -> tuple[datetime | None, list[Incident]]:
        def work(storage: Storage) -> tuple[datetime | None, list[Incident]]:
            floor = None if widened else noted_floor(source(storage), held)
            return floor, [] if floor is not None else ranked(source(storage), held, limit)

        return ctx.read_cache.get(
            f"{name}{', widened' if widened else ''}, notes", ctx.storage, work,
            tokens=tokens, config=ctx.config, key=(Same(held), ctx.saved_notes.version),
            now=now, edges=(),
        )  # fmt: skip

    floor, found = notes_on(derived(None), False)
    if floor is not None:  # a note saved on an incident that may have ended before the cut
        _, found = notes_on(derived(floor), True)
    return [copy(i) for i in found]  # theirs: the kept ones are shared by later requests
