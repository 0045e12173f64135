"""Incident notes: the operators' free text about an incident, one version per save.

Notes live in ``incident_notes`` (sql/180_incident_notes.sql), one version per
save, written through the daemon writer's durable path before the client hears
back (or, on a standalone dashboard over a cluster, one acknowledged insert).
Split from :mod:`server.analytics.incidents` (which re-exports these names): the
incidents are derived, the notes are the one thing about them that is stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from copy import copy
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.alerting.log import aware, table_columns
from server.analytics.incident_model import Incident, incident_id
from server.storage import Storage

NOTE_COLUMNS = table_columns("incident_notes")
MAX_NOTE = 4000  # characters


class NoteSink(Protocol):
    """The daemon's writer (``Writer.add_durable``) or a test's stand-in."""

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...


class SavedNotes:
    """The newest note this process saved per incident: read-your-writes.

    A save through the daemon's writer is on disk when answered but reaches
    ``incident_notes`` only at the writer's next insert (``insert_interval``, 5 s by
    default); until then a read would show the previous note. Reads merge these
    with the stored ones, the newer ``updated_at`` winning (ours on a tie), so the
    answer after a 200 is what was saved. Saves of one incident get strictly rising
    times (1 ms apart at least), so storage orders them as they were made even when
    the clock has not moved. Holds at most :data:`KEEP` incidents (oldest dropped),
    thread-safe: one per web app (``WebContext.saved_notes``).
    """

    KEEP = 4096

    def __init__(self) -> None:
        self._notes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._stamps: OrderedDict[str, datetime] = OrderedDict()  # last time handed out
        self._lock = threading.Lock()
        self.version = 0  # counts notes kept: an answer holding notes is stale once it moves

    def stamp(self, incident_id_: str, now: datetime) -> datetime:
        """The time to store a save of ``incident_id_`` made at ``now`` under: ``now`` to
        the ms (what ``incident_notes`` keeps: a time read back from this process and
        from storage, or after a restart, is the same; atk20), or 1 ms after the last
        time handed out for it if that is not earlier."""
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stored to the ms
        with self._lock:
            last = self._stamps.get(incident_id_)
            at = last + timedelta(milliseconds=1) if last is not None and last >= now else now
            self._bounded(self._stamps, incident_id_, at)
        return at

    def keep(self, incident_id_: str, note: dict[str, Any]) -> None:
        """Remember ``note`` (``{note, author, updated_at}``; note '' for cleared) once it
        is saved, unless a later save of the incident was remembered first."""
        with self._lock:
            held = self._notes.get(incident_id_)
            if held is None or held["updated_at"] <= note["updated_at"]:
                self._bounded(self._notes, incident_id_, note)
                self.version += 1

    def _bounded(self, kept: OrderedDict[str, Any], key: str, value: Any) -> None:
        kept[key] = value
        kept.move_to_end(key)
        while len(kept) > self.KEEP:
            kept.popitem(last=False)

    def saved_after(self, at: datetime) -> list[str]:
        """The ids of the incidents whose note this process saved last after ``at``."""
        with self._lock:
            return [i for i, note in self._notes.items() if note["updated_at"] > at]

    def newest(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """What this process saved last for each of ``ids`` it saved."""
        with self._lock:
            return {i: self._notes[i] for i in ids if i in self._notes}


class Notes:
    """Reads and saves of notes in ``storage``, over the saves of this process (``saved``)."""

    def __init__(self, storage: Storage, saved: SavedNotes | None = None) -> None:
        self.storage = storage
        self.saved = saved if saved is not None else SavedNotes()

    def notes(self, ids: list[str], cleared: bool = False) -> dict[str, dict[str, Any]]:
        """The newest note (``{note, author, updated_at}``) of each id that has a non-empty
        one: stored, or saved by this process and not yet stored (:class:`SavedNotes`).
        With ``cleared``, also the ids whose newest save cleared the note (``note`` ''):
        clearing is a change too, with its author and time (the feed's ``updated``)."""
        if not ids:
            return {}
        rows = self.storage.query(
            "SELECT incident_id, argMax(note, updated_at) AS text, "
            "argMax(author, updated_at) AS by, max(updated_at) AS at "
            f"FROM {self.storage.database}.incident_notes "
            "WHERE incident_id IN {ids:Array(String)} GROUP BY incident_id",
            {"ids": ids},
        )
        found = {
            r["incident_id"]: {"note": r["text"], "author": r["by"], "updated_at": aware(r["at"])}
            for r in rows
        }
        for iid, mine in self.saved.newest(ids).items():
            if iid not in found or mine["updated_at"] >= found[iid]["updated_at"]:
                found[iid] = mine
        return {iid: note for iid, note in found.items() if note["note"] or cleared}

    def save_note(self, incident_id_: str, note: str, author: str, now: datetime,
                  sink: NoteSink | None) -> dict[str, Any]:  # fmt: skip
        """Store ``note`` (at most :data:`MAX_NOTE` characters; '' clears it); returns it as
        saved, ``{note, author, updated_at}`` (``updated_at`` may be ``now`` + a few ms:
        :meth:`SavedNotes.stamp`).

        On disk when this returns: through ``sink.add_durable`` (the daemon's
        writer), or without one as an acknowledged insert; read back at once either way
        (:class:`SavedNotes`). Raises ValueError for a note too long, and what the sink
        or storage raise (Busy, StorageError).
        """
        if len(note) > MAX_NOTE:
            raise ValueError(f"note: at most {MAX_NOTE} characters, got {len(note)}")
        at = self.saved.stamp(incident_id_, now)
        row = (incident_id_, note, author, at)
        if sink is not None:
            sink.add_durable("incident_notes", [row])
        else:
            self.storage.insert("incident_notes", NOTE_COLUMNS, [row])
        saved = {"note": note, "author": author, "updated_at": at}
        self.saved.keep(incident_id_, saved)
        return saved


def notes_of(notes: Notes, found: list[Incident], cleared: bool = False,
             earlier: dict[str, list[dict[str, Any]]] | None = None,
             ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each of ``found``'s id -> its note (``{note, author, updated_at}``; one query of
    ``notes``): the newest saved under its id or under the id of any of its members. A
    later re-grouping (a flapping period, a cause found, a rule added) can make an
    incident someone noted a member of another; the note goes with it, and the newest
    of several wins (clearing counts: ``note`` '', left out unless ``cleared``, as
    :meth:`Notes.notes`). ``earlier``, if given, gets each id -> the non-empty notes
    saved under its other ids, newest first: never hidden by a merge (atk14e).
    Raises StorageError."""
    ids = {i.id: {i.id, *(incident_id(m) for m in i.members)} for i in found}
    saved = notes.notes(sorted(set().union(*ids.values())), cleared=True) if ids else {}
    out = {}
    for iid, own in ids.items():
        held = sorted(((saved[k], k) for k in own if k in saved),
                      key=lambda n: n[0]["updated_at"], reverse=True)  # fmt: skip
        if held and (held[0][0]["note"] or cleared):
            out[iid] = held[0][0]
        if held and earlier is not None:
            earlier[iid] = [n for n, k in held[1:] if n["note"] and k != held[0][1]]
    return out


def noted(notes: Notes, found: list[Incident]) -> list[Incident]:
    """Copies of ``found`` (same order) with their notes set (:func:`attach`). ``found``
    itself is left as it is: it may be an answer kept for other requests
    (:mod:`server.web.read_cache`), derived without notes so that a note saved never
    makes it worked out again. One query. Raises StorageError."""
    out = [copy(incident) for incident in found]
    attach(notes, out)
    return out


def attach(notes: Notes, found: list[Incident]) -> None:
    """Set each of ``found``'s ``note`` (:func:`notes_of`; None when cleared),
    ``note_saved_at`` (its newest save, a clearing included) and ``earlier_notes``
    (the notes under its other ids). One query. Raises StorageError."""
    earlier: dict[str, list[dict[str, Any]]] = {}
    saved = notes_of(notes, found, cleared=True, earlier=earlier)
    for incident in found:
        newest = saved.get(incident.id)
        incident.note = newest if newest and newest["note"] else None
        incident.note_saved_at = newest["updated_at"] if newest else None
        incident.earlier_notes = earlier.get(incident.id, [])
