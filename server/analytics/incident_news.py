"""The incidents that changed last: the status page's and its feed's list.

The status page shows the open incidents and the newest changed of the last 30
days, at most 50 (:func:`newest`). Deriving every incident of the window to keep
50 of them cost ~1.3 s of CPU at 1,000 services (15,000 incidents, 44,000 members,
their notes), paid after every write to the tables incidents read. An incident
that ended before a time ``T`` changed last before ``T`` (its last change is its
end, or a note saved later), so the newest changed are among those overlapping
``[T, end)`` once those number ``limit`` or more: :func:`newest` derives only
those, from a ``T`` close to ``now`` (:func:`_first_guess`), and widens to the
whole window when they are fewer. Each incident is assembled whole from the
whole window's reads all the same (:meth:`Incidents.between` with the window's
own ``since``), so the answer is the one the whole window gives, only cheaper.
Notes are read apart (:func:`candidates` reads none, :func:`ranked` adds them), so
a note saved costs the dashboard a query or two, not a derivation (~150 ms).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.alerting.log import aware
from server.analytics.incident_model import Incident, id_start, incident_id
from server.analytics.incidents import LOOKBACK, Incidents

GROWTH = 4  # how much wider each further try's stretch is
MIN_SPAN = timedelta(minutes=15)  # widened from at least this: a cut at ``end`` moves too
TRANSITIONS_PER_INCIDENT = 4  # a guess only: a firing and its resolve, twice (a dependant)


def last_change(incident: Incident) -> datetime:
    """When ``incident`` last changed: the newest start or end of a member, or its note's
    save (a clearing included: the feed says it too), whichever is later."""
    times = [t for m in incident.members for t in (m.start, m.end) if t is not None]
    if incident.note_saved_at is not None:
        times.append(incident.note_saved_at)
    return max(times)


def newest_changed(found: list[Incident], limit: int) -> list[Incident]:
    """The open ones of ``found`` first, then by :func:`last_change`, newest first, at
    most ``limit``: a resolution (or a note) is news however long ago its incident
    began, so many short incidents begun since never push it off the page or feed."""
    ranked = sorted(found, key=lambda i: (i.end is None, last_change(i), i.id), reverse=True)
    return ranked[:limit]


@dataclass(frozen=True, eq=False)
class Candidates:
    """What :func:`candidates` derived: ``found``, every incident overlapping ``[cut,
    end)`` (notes unread), and ``start``, the window's; ``cut`` is at or after it."""

    found: list[Incident]
    cut: datetime
    start: datetime


def candidates(incidents: Incidents, start: datetime, end: datetime, *,
               services: Collection[str], limit: int, now: datetime,
               current: Mapping[str, int] | None = None,
               floor: datetime | None = None) -> Candidates:  # fmt: skip
    """The incidents that can rank among :func:`newest`'s but for notes: those
    overlapping ``[T, end)`` for a ``T`` after ``start`` (at or before ``floor`` if
    given), read without notes (so a note saved leaves them kept), ``limit`` or more
    of them unless ``T`` is ``start``. Every incident left out ended at or before
    ``T``, so it changed last at or before ``T`` unless a note on it was saved after
    (:func:`noted_floor`). ``T`` starts at :func:`_first_guess` and moves back
    :data:`GROWTH` times as far until enough are found. Raises StorageError."""
    since = start - LOOKBACK  # the whole window's: each incident assembled from the same reads
    cut = _first_guess(incidents, since, end, limit)
    if floor is not None:
        cut = min(cut, floor)
    while True:
        cut = max(start, cut)
        found = incidents.between(cut, end, services=services, details=False, current=current,
                                  now=now, lookback=cut - since, notes=False)  # fmt: skip
        if cut <= start or len(found) >= limit:
            return Candidates(found, cut, start)
        cut = end - max(end - cut, MIN_SPAN) * GROWTH


def noted_floor(incidents: Incidents, held: Candidates) -> datetime | None:
    """None when ``held`` holds every incident that can rank among the newest: each note
    saved after its cut is on one of ``held``'s incidents (its id or a member's) or on
    one begun after the cut. Else the time to cut from instead (1 ms before the
    earliest start the id of such a note spells: the incident it is on ends at or
    after that start, so it overlaps from there on). One statement over the notes
    saved since the cut (none when the cut is the window's start). Raises
    StorageError."""
    if held.cut <= held.start:
        return None
    known = {i.id for i in held.found} | {incident_id(m) for i in held.found for m in i.members}
    floor = _noted_since(incidents, held.cut, known)
    return floor if floor < held.cut else None


def ranked(incidents: Incidents, held: Candidates, limit: int) -> list[Incident]:
    """``held``'s incidents with their notes (copies; one query), the open ones first,
    then newest changed, at most ``limit`` (:func:`newest_changed`)."""
    return newest_changed(incidents.noted(held.found), limit)


def newest(incidents: Incidents, start: datetime, end: datetime, *, services: Collection[str],
           limit: int, now: datetime,
           current: Mapping[str, int] | None = None) -> list[Incident]:  # fmt: skip
    """``newest_changed(incidents.between(start, end, services=services, details=False,
    current=current, now=now), limit)``, deriving only the incidents that can be in it:
    :func:`candidates`, cut again from :func:`noted_floor` when a note was saved after
    the cut on an incident begun before it (every incident ``[floor, end)`` leaves out
    changed last before the first cut, and ``limit`` that overlap it rank above them),
    then :func:`ranked`. The dashboard keeps each step's answer apart
    (:func:`server.web.incidents_view.recent`). Raises StorageError."""
    held = candidates(incidents, start, end, services=services, limit=limit, now=now,
                      current=current)  # fmt: skip
    floor = noted_floor(incidents, held)
    if floor is not None:
        held = candidates(incidents, start, end, services=services, limit=limit, now=now,
                          current=current, floor=floor)  # fmt: skip
    return ranked(incidents, held, limit)


def _first_guess(incidents: Incidents, since: datetime, end: datetime, limit: int) -> datetime:
    """A first cut: the time of the ``limit`` * :data:`TRANSITIONS_PER_INCIDENT`-th newest
    alert or status transition before ``end`` (``since`` when there are fewer).
    Only a guess (a run of many transitions may be one incident): :func:`newest`
    widens when it holds too few. One statement."""
    db = incidents.storage.database
    rows = incidents.storage.query(
        f"""SELECT min(at) AS cut, count() AS n FROM (
            SELECT at FROM (
                SELECT timestamp AS at FROM {db}.alert_events
                WHERE event = 'transition' AND timestamp >= {{since:DateTime64(3, 'UTC')}}
                  AND timestamp < {{end:DateTime64(3, 'UTC')}}
                UNION ALL
                SELECT timestamp AS at FROM {db}.service_transitions
                WHERE timestamp >= {{since:DateTime64(3, 'UTC')}}
                  AND timestamp < {{end:DateTime64(3, 'UTC')}})
            ORDER BY at DESC LIMIT {{k:UInt32}})""",
        {"since": since, "end": end, "k": limit * TRANSITIONS_PER_INCIDENT},
    )  # fmt: skip
    if not rows or int(rows[0]["n"]) < limit * TRANSITIONS_PER_INCIDENT:
        return since
    return aware(rows[0]["cut"])


def _noted_since(incidents: Incidents, cut: datetime,
                 known: Collection[str] = ()) -> datetime:  # fmt: skip
    """``cut``, or earlier: 1 ms before the earliest start spelled by the id of a note
    saved after ``cut`` (stored, or saved by this process and not yet stored; ids in
    ``known`` left out): the
    incident it is on ends at or after that start, so it overlaps from there on. One
    statement over the notes saved since ``cut``."""
    rows = incidents.storage.query(
        f"SELECT DISTINCT incident_id FROM {incidents.storage.database}.incident_notes "
        "WHERE updated_at > {cut:DateTime64(3, 'UTC')}",
        {"cut": cut},
    )
    ids = [r["incident_id"] for r in rows] + incidents.saved.saved_after(cut)
    ids = [i for i in ids if i not in known]
    starts = [s for s in map(id_start, ids) if s is not None]
    return min([cut, *(s - timedelta(milliseconds=1) for s in starts)])
