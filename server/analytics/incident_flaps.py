"""Flapping periods as incident members: one incident per period, ongoing throughout.

A service that fails every other check makes a firing (or, without a rule, a run of
FAILED) a second; grouped only by their firings, its incident read resolved between
two of them and ongoing at the next, and the public summary listed each. So a
flapping period during which the service failed is a member of its own (key
``flap:<service>@<declared>``, from when flapping was declared to when it stopped,
None while it flaps): the firings and runs of the period join its incident, which is
ongoing while it flaps, and the page tells one stretch "flapping: N firings"
(:class:`server.analytics.incident_model.Spell`).

Where the periods come from: the alert engine's ``flapping``/``flapping_end`` rows,
which it writes for every service, watched by a rule or not, when it declares flapping,
with the thresholds in force then and the span of checks that made it flap
(:meth:`server.alerting.log_reads.AlertReads.flapping`); those from before it recorded
them for services without rules were replayed once (:mod:`server.analytics.flap_replay`).
Nothing here judges flapping: a later change of ``alerting.flapping`` (or of a service's
interval) moves no period, so no incident id, member or note. The member is made for
any service, watched or not: a rule with ``for: 3s`` on a service failing every other
1 s check never fires, and the service still fails.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime, timedelta

from server.alerting.catalog import flap_spans
from server.alerting.log import aware
from server.alerting.log_reads import AlertReads
from server.analytics.incident_model import FLAP_PREFIX, Flaps, Member, key_start
from server.config.models import Config
from server.core import status as statuses
from server.storage import Storage

_FAILED = int(statuses.Status.FAILED)
# service -> its periods (declared, stopped or None while it flaps, span), oldest first
Declared = dict[str, list[tuple[datetime, datetime | None, timedelta]]]


def declared(log: AlertReads, config: Config, since: datetime, end: datetime) -> Declared:
    """Each service that flapped in ``[since, end)`` -> its periods ``(declared, stopped or
    None, span)`` as recorded (:meth:`AlertReads.flapping`); a row from before the span
    was recorded takes ``config``'s (:func:`server.alerting.catalog.flap_spans`; the
    replay at the first start records it for rows it finds). Raises StorageError."""
    spans, zero = flap_spans(config), timedelta(0)
    return {sid: [(a, b, span if span is not None else spans.get(sid, zero))
                  for a, b, span in periods]
            for sid, periods in log.flapping(since, end).items()}  # fmt: skip


def reaches(found: Declared) -> Flaps:
    """``found``'s periods as :func:`server.analytics.incident_model.group` takes them:
    ``(from, to)``, from when it was declared less its span."""
    return {sid: [(a - span, b) for a, b, span in periods] for sid, periods in found.items()}


def members(storage: Storage, periods: Declared, since: datetime,
            end: datetime) -> list[Member]:  # fmt: skip
    """A member for each of ``periods`` (service -> ``(declared, stopped or None, span)``)
    in which the service failed: a move into FAILED from ``span`` (the checks that made
    it flap) before it was declared to its end. Its ``run_began`` is the first such
    move (its firings from then on are one stretch with it). Raises StorageError."""
    if not periods:
        return []
    rows = storage.query(
        "SELECT service_id, groupArray(timestamp) AS ats "
        f"FROM {storage.database}.service_transitions "
        "WHERE service_id IN {ids:Array(String)} AND to_status = {f:UInt8} "
        "AND timestamp >= {since:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')} "
        "GROUP BY service_id",
        {"ids": sorted(periods), "f": _FAILED, "since": since, "end": end},
    )
    failed = {r["service_id"]: sorted(aware(t) for t in r["ats"]) for r in rows}
    out = []
    for sid, found in periods.items():
        ats = failed.get(sid, [])
        for declared_at, stopped, span in found:
            first = bisect_left(ats, declared_at - span)
            if first == len(ats) or (stopped is not None and ats[first] > stopped):
                continue  # flapped between OK and DEGRADED, say: no outage
            began = min(ats[first], declared_at)
            out.append(Member(f"{FLAP_PREFIX}{sid}@{key_start(declared_at)}", "", sid,
                              "warning", declared_at, stopped, "flapping",
                              run_began=began))  # fmt: skip
    return out
