"""One incident's timeline: what happened, in order, from the stored rows.

Entries are status transitions of the services affected (``service_transitions``),
alert transitions, acknowledgements, held and released news (``alert_events``),
each notice with its delivery outcome (``notifications``, matched by incident key)
and the silences that covered an affected alert: runtime ones (API) and configured
ones (``silences:``, each window of a recurring one). Each entry is
``{at, kind, service_id, text}`` with ``at`` an aware UTC time; ``kind`` is one
of :data:`KINDS`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from server.alerting.log import RETIRED, SPAN, aware
from server.alerting.silences import FAR_FUTURE, FAR_PAST, from_config
from server.analytics.incidents import Incident, Incidents
from server.core import status as statuses

KINDS = ("status", "alert", "ack", "notice", "silence", "held")
EVENTS = ("transition", "ack", "notify", "repeat", "recalled", "flapping", "flapping_end")


def timeline(source: Incidents, incident: Incident, now: datetime) -> list[dict[str, Any]]:
    """Entries of ``incident`` from its start to its end (or ``now``), oldest first."""
    start, end = incident.start, incident.end or now
    services = incident.services
    rules = {m.rule_id for m in incident.members if m.rule_id}
    out: list[dict[str, Any]] = []
    rows = source.storage.query(
        "SELECT service_id, timestamp, from_status, to_status, message "
        f"FROM {source.storage.database}.service_transitions "
        "WHERE service_id IN {ids:Array(String)} AND timestamp >= {start:DateTime64(3, 'UTC')} "
        "AND timestamp <= {end:DateTime64(3, 'UTC')} ORDER BY timestamp",
        {"ids": services, "start": start - timedelta(seconds=1), "end": end},
    )
    for row in rows:
        before, after = statuses.name(int(row["from_status"])), statuses.name(int(row["to_status"]))
        said = _said(row["message"].split(": ", 1)[-1])
        out.append(_entry(row["timestamp"], "status", row["service_id"],
                          f"{before} -> {after}{said}"))  # fmt: skip
    for row in source.log.events(start, end, EVENTS, services):
        if row["rule_id"] and row["rule_id"] not in rules:
            continue
        entry = _alert_row(row)
        if entry is not None:
            out.append(entry)
    for n in incident.notices:
        result = n["state"] + (f" after {n['attempts']} attempt(s)" if n["attempts"] else "")
        error = f"; last error: {n['error']}" if n["error"] else ""
        what = " ".join(part for part in (n["item_state"], "notice") if part)
        text = f"{what} to {n['channel']}: {result}{error}"
        out.append(_entry(n["queued_at"], "notice", n["service_id"], text)
                   | {"channel": n["channel"], "state": n["state"],
                      "changed_at": n["changed_at"]})  # fmt: skip
    out += _silences(source, incident, start, end)
    return sorted(out, key=lambda e: (e["at"], KINDS.index(e["kind"])))


def _silences(source: Incidents, incident: Incident, start: datetime,
              end: datetime) -> list[dict[str, Any]]:  # fmt: skip
    """Silences in force during ``[start, end]`` that cover a member's alert: the runtime
    ones (API) and the configured ones (``silences:``, each window of a recurring one)."""
    windows = [(s, s.start, s.end) for s in source.log.silences_between(start, end)]
    for index, cfg in enumerate(source.config.silences):
        silence = from_config(index, cfg)
        found = silence.windows(start, end)
        current = silence.window_at(start)
        if current is not None and current not in found:
            found.insert(0, current)
        windows += [(silence, opened, closed) for opened, closed in found]
    stacks = {s.id: s.stack for s in source.config.services}
    out = []
    for silence, opened, closed in windows:
        hit = [
            m.service_id
            for m in incident.members
            if silence.matches(m.rule_id, m.service_id, stacks.get(m.service_id, ""))
        ]
        if hit:
            until = "indefinitely" if closed == FAR_FUTURE else f"until {closed.isoformat()}"
            who = f" by {silence.author}" if silence.author else ""
            why = f": {silence.comment}" if silence.comment else ""
            where = f" (configured silence {silence.id})" if silence.source == "config" else ""
            at = start if opened == FAR_PAST else opened  # always on: shown from the start
            out.append(_entry(at, "silence", hit[0], f"silenced {until}{who}{where}{why}"))
    return out


def _alert_row(row: dict[str, Any]) -> dict[str, Any] | None:
    event, sid = row["event"], row["service_id"]
    if event == "ack":
        who = f" by {row['caused_by']}" if row["caused_by"] else ""
        return _entry(row["timestamp"], "ack", sid, f"acknowledged{who}{_said(row['message'])}")
    if event == "flapping" and row["message"] == SPAN:
        return None  # an older row's span, recorded by the replay: the same news again
    if event in ("flapping", "flapping_end"):
        word = "started" if event == "flapping" else "stopped"
        return _entry(row["timestamp"], "held", sid, f"flapping {word}{_aside(row['message'])}")
    if event == "recalled":
        held = _said(row["delivery_result"])
        return _entry(row["timestamp"], "held", sid, f"{row['rule_id']} news held back{held}")
    if event in ("notify", "repeat"):
        what = "repeated" if event == "repeat" else "told to channels that lacked it"
        return _entry(row["timestamp"], "alert", sid, f"{row['rule_id']} {what}")
    result = row["delivery_result"]
    told = {"queued": "queued for the channels", "none": "no channel configured", "": ""}.get(
        result, f"held back: {result}"
    )
    cause = f"caused by {row['caused_by']}" if row["caused_by"] else ""
    text = f"{row['rule_id']} {row['from_state']} -> {row['to_state']}{_aside(told, cause)}"
    if (row["to_state"] == "firing" and row["message"]) or row["message"] == RETIRED:
        text += f": {row['message']}"  # why it fired, or why it ended (its rule left)
    return _entry(row["timestamp"], "alert", sid, text)


def _aside(*parts: str) -> str:
    """`` (a, b)`` of the non-empty ``parts``, or '' when all are empty: never ``(, b)``."""
    said = ", ".join(part for part in parts if part)
    return f" ({said})" if said else ""


def _said(text: str) -> str:
    """``: text``, or '' for no text: never a colon with nothing after it."""
    return f": {text}" if text else ""


def _entry(at: datetime | str, kind: str, service_id: str, text: str) -> dict[str, Any]:
    return {"at": aware(at), "kind": kind, "service_id": service_id, "text": text}
