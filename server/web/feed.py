"""The incidents feed: ``GET /status/feed.atom``, Atom 1.0 (RFC 4287).

As public as ``/status`` and carrying the same: for each incident of the last
30 days touching a service on the status page, the page's services affected
(labels), each with its own start, end or "ongoing" and duration, and the operator's
note (links: :func:`site_base`); nothing of services the page hides
(:mod:`server.web.status_incidents`).
Check output and alert messages stay on the (possibly private) ``/incidents`` pages:
a public feed should say what the operators chose to say.

Built with ElementTree, so every text is escaped by the XML writer; characters
XML 1.0 cannot hold (NUL and most C0 controls, lone surrogates) become U+FFFD,
and everything passes :func:`server.core.redact.redact` first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, request

from server.core.humanize import duration
from server.core.redact import redact
from server.core.text import displayable
from server.web import status_view
from server.web.context import current as context
from server.web.status_incidents import Shown, burn_rules, news
from server.web.status_incidents import shown as public

feed = Blueprint("feed", __name__)
ATOM = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml; charset=utf-8"


def clean(text: str) -> str:
    """Text an XML 1.0 document can carry, with secrets masked."""
    return displayable(redact(text))


@feed.get("/status/feed.atom")
def atom() -> Response:
    ctx = context()
    now = ctx.clock.now()
    tokens = ctx.read_cache.tokens(ctx.storage)  # before anything the feed reads
    views = ctx.reader.services(now, brief=True)  # as the page reads them: one answer for both
    shown = {v.id: v.label for g in status_view.groups(ctx.config, views) for v in g.members}
    # a note cleared is a save like any other: its time moves the entry's ``updated``
    # (``note_saved_at``), and the page's order alike
    found = status_view.incidents_of(views, set(shown), now, tokens)
    rows = public(found, shown, burn_rules(ctx.config), status_view.listed(ctx.config))
    base = site_base(ctx.config.alerting.dashboard_url)
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    _text(root, "title", f"{ctx.config.status_page.title}: incidents")
    _text(root, "id", _urn("status-feed"))
    ET.SubElement(root, f"{{{ATOM}}}link", rel="self", href=f"{base}/status/feed.atom")
    ET.SubElement(root, f"{{{ATOM}}}link", rel="alternate", href=f"{base}/status")
    newest = max((updated(i) for i in rows), default=now)
    _text(root, "updated", _stamp(newest))
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    _text(author, "name", ctx.config.status_page.title)
    for incident in rows:
        root.append(_entry(incident, shown, base, now))
    body = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return Response('<?xml version="1.0" encoding="utf-8"?>\n' + body, content_type=CONTENT_TYPE)


def site_base(configured: str) -> str:
    """What the feed's links start with: the configured ``alerting.dashboard_url`` (the
    dashboard's address as readers know it), else this app's own path prefix, so links
    are relative to the feed. Never the request's Host or X-Forwarded-Host: anyone can
    send those, and a cache in front would hand their links to every reader."""
    return configured.rstrip("/") if configured else request.script_root


def _entry(incident: Shown, labels: dict[str, str], base: str, now: datetime) -> ET.Element:
    names = ", ".join(labels[sid] for sid in dict.fromkeys(s.service_id for s in incident.affected))
    state = "Resolved" if incident.end else "Ongoing"
    entry = ET.Element(f"{{{ATOM}}}entry")
    _text(entry, "title", f"{state}: {names}")
    _text(entry, "id", _urn(f"incident:{incident.id}"))
    ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate",
                  href=f"{base}/status#incident-{incident.id}")  # fmt: skip
    _text(entry, "published", _stamp(incident.start))
    _text(entry, "updated", _stamp(updated(incident)))
    if len(incident.spells) == 1:
        summary = _told(names, incident.start, incident.end, incident.duration(now),
                        incident.spells[0].aside)  # fmt: skip
    else:  # each service with its own times: one may be back while another is not
        summary = " ".join(_told(labels[s.service_id], s.start, s.end, s.duration(now), s.aside)
                           for s in incident.spells)  # fmt: skip
    if incident.note:
        summary += f"\n\n{incident.note['note']}"
    _text(entry, "summary", summary)
    return entry


def _told(names: str, start: datetime, end: datetime | None, lasted: timedelta,
          aside: str = "") -> str:  # fmt: skip
    """``Web: from … to … (3m 10s).``, with ``aside`` (a flapping stretch's count of
    firings) inside the parentheses when there is one."""
    until = f"to {_stamp(end)}" if end else "ongoing"
    said = "; ".join(part for part in (duration(lasted), aside) if part)
    return f"{names}: from {_stamp(start)} {until} ({said})."


def updated(incident: Shown) -> datetime:
    """An entry's ``updated``: its newest change (a shown member starting or ending, or
    the note saved, clearing it included: :func:`news`), so it only ever moves forward,
    also when a resolved one reopens."""
    return news(incident)


def _urn(name: str) -> str:
    """A permanent Atom id (RFC 4287 4.2.6): the same whichever host name served the feed."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"lightbulb:{name}").urn


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}")
    element.text = clean(text)
    return element
