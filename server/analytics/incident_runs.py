"""Rule-less runs of FAILED checks, the other kind of incident member.

A service no enabled alert rule selected when a run began (:mod:`server.analytics.
rule_coverage`) has its runs of FAILED results (``service_transitions``) as incident
members (:mod:`server.analytics.incidents`). Split from there to keep each module on
one concern: this one knows the status tables, that one assembles incidents.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from server.alerting.log import aware
from server.alerting.log_reads import covering_page, to_ms
from server.analytics.incident_model import Member, key_start, page_from
from server.analytics.rule_coverage import Coverage
from server.core import status as statuses
from server.storage import Storage

_FAILED = int(statuses.Status.FAILED)
_OK = int(statuses.Status.OK)
FAR = datetime(9999, 12, 31, tzinfo=UTC)  # an open run's end, for a bound on its checks


def run_member(service_id: str, start: datetime, end: datetime | None, message: str,
               began: datetime | None = None) -> Member:  # fmt: skip
    """A rule-less run of FAILED as an incident member: key ``status:<service>@<start>``,
    severity critical, ``end`` None while open, ``message`` the check's; ``began``: for
    the rest of a run handed over from an alert, when the run itself began."""
    return Member(f"status:{service_id}@{key_start(start)}", "", service_id, "critical", start,
                  end, message, run_began=began)  # fmt: skip


def _run_start(moves: list[tuple[datetime, int, int]], at: datetime) -> datetime | None:
    """When the run the service was in at ``at`` began (:meth:`Runs.reaching`), from its
    status changes ``moves`` (``(at, from, to)``, oldest first); None when OK at ``at``
    or the run began before the first of them."""
    i = bisect_right(moves, (at, 255, 255)) - 1
    if i < 0 or moves[i][2] == _OK:
        return None
    if moves[i][2] == _FAILED:
        return moves[i][0]  # a change is into another status: the run of FAILED began here
    while moves[i][1] != _OK:  # back to the change out of OK
        i -= 1
        if i < 0:
            return None
    return moves[i][0]


def _check_message(transition: str) -> str:
    """The check's message in a transition's ``status changed A -> B: <check>``."""
    return transition.split(": ", 1)[-1]


class Runs:
    """The rule-less runs one read of incidents asks for (:meth:`failed`), keeping each
    service's oldest transition (and current status) for the read's length: the
    assembly asks again about services the first ask covered, and pays no statement
    for them. Made per read (``current``: each checked service's status code when the
    caller has read them, else read from ``service_current`` when needed); it notices
    no new rows, so it is not kept across reads."""

    def __init__(self, storage: Storage, current: Mapping[str, int] | None = None) -> None:
        self.storage = storage
        self._given = current is not None
        self._current: dict[str, int] = dict(current or {})
        self._firsts: dict[str, dict[str, Any] | None] = {}  # service -> oldest transition
        self._moves: dict[str, list[tuple[datetime, int, int]]] = {}  # (at, from, to)
        # (since, end, from when, rows, of which services) of the last covering read
        self._page: tuple[datetime, datetime, datetime, list[dict[str, Any]],
                          frozenset[str]] | None = None  # fmt: skip

    def failed(self, scope: Coverage, start: datetime, end: datetime, *, since: datetime,
               limit: int = 0, before: datetime | None = None,
               covering: bool = False, reach: datetime | None = None) -> list[Member]:  # fmt: skip
        """Runs of FAILED overlapping ``[start, end)`` that began after ``since`` (and
        before ``before``) while no rule watched their service (``scope``), paired in
        ClickHouse like the firing periods (at most ``limit`` of those, 0: all).
        ``covering`` (``scope`` all candidates, no ``before``): the same statement
        keeps what a later ask with no ``limit`` from a later ``start`` (any ``scope``
        narrower) would read, and that ask is answered from it. ``reach`` (no ``limit``
        nor ``before``): read from then instead (kept, the same way, for an ask from
        then on of services of ``scope``), those overlapping ``start`` answered.
        Raises StorageError."""
        ids = scope.candidates
        if not ids:
            return []
        counted, params = scope.sql()
        page = self._page
        if reach is not None and not limit and before is None:
            reach, cut = to_ms(reach), to_ms(start)  # to the ms, as the statement compares
            rows = _paired(self.storage, ids, reach, end, since=since, before=end, limit=0,
                           counted=counted, params=params)  # fmt: skip
            self._page = (since, end, reach, rows, frozenset(ids))
            rows = [r for r in rows if not r["ended"] or aware(r["ended"]) > cut]
        elif covering:
            rows = _paired(self.storage, ids, start, end, since=since, before=end, limit=limit,
                           counted=counted, params=params, covering=True)  # fmt: skip
            spans = [(aware(r["began"]), aware(r["ended"]) if r["ended"] else None) for r in rows]
            held = page_from(spans, limit, start)
            self._page = (since, end, held, rows, frozenset(ids)) if held is not None else None
            rows = rows[:limit] if limit else rows
        elif (page is not None and not limit and before is None and page[:2] == (since, end)
              and start >= page[2] and page[4].issuperset(ids)):  # fmt: skip
            wanted = set(ids)  # a run in the page counted by its service's coverage, as here
            rows = [r for r in page[3] if r["service_id"] in wanted
                    and (not r["ended"] or aware(r["ended"]) > start)]  # fmt: skip
        else:
            rows = _paired(self.storage, ids, start, end, since=since, before=before or end,
                           limit=limit, counted=counted, params=params)  # fmt: skip
        out = [run_member(r["service_id"], aware(r["began"]),
                          aware(r["ended"]) if r["ended"] else None, _check_message(r["message"]))
               for r in rows]  # fmt: skip
        firsts = []  # begun while a rule watched the service: maybe handed over since
        for member in self._first_runs(ids, start):
            if (member.end is None or member.end > start) and since <= member.start:
                if not scope.counted(member.service_id, member.start):
                    firsts.append(member)
                elif member.start < min(before or end, end):
                    out.append(member)
        return out + _handed_over(self.storage, scope, start, end, since=since,
                                  before=before or end, firsts=firsts)  # fmt: skip

    def reaching(self, members: list[Member], since: datetime) -> list[Member]:
        """``members`` with each firing that began during a run of its service (begun
        after ``since``, before the firing) given that run's start as ``run_began``, so
        it goes on in the incident of whatever member of the service was open since
        then: to the alert engine a renamed rule (or a service disabled and enabled
        again) is a new alert firing, to the service it is the same outage.

        Which run: the service's status when the firing began says. FAILED: its run of
        FAILED (a rule on FAILED, or any rule while the service fails). Another status
        but OK (a rule on DEGRADED, say): its run of checks not OK, since it was last
        OK, so DEGRADED -> FAILED -> DEGRADED is one run, as a rule firing on DEGRADED
        fired throughout. OK (a rule on a response time): none, the firing is its own.
        A run begun before ``since`` or at the service's first check (no transition
        into it) has no start to reach back to. Read once a service (its status
        changes since ``since``). Raises StorageError."""
        wanted = {m.service_id for m in members if m.rule_id and m.run_began is None}
        unknown = sorted(wanted - self._moves.keys())
        if unknown:
            rows = self.storage.query(
                "SELECT service_id, groupArray((timestamp, from_status, to_status)) AS moves "
                f"FROM (SELECT service_id, timestamp, from_status, to_status "
                f"FROM {self.storage.database}.service_transitions "
                "WHERE service_id IN {ids:Array(String)} "
                "AND timestamp >= {since:DateTime64(3, 'UTC')} ORDER BY timestamp) "
                "GROUP BY service_id",
                {"ids": unknown, "since": since},
            )
            found = {
                r["service_id"]: sorted((aware(t), int(a), int(b)) for t, a, b in r["moves"])
                for r in rows
            }
            self._moves |= {sid: found.get(sid, []) for sid in unknown}
        out = []
        for member in members:
            if member.service_id in wanted and member.run_began is None:
                began = _run_start(self._moves.get(member.service_id, []), member.start)
                if began is not None and began < member.start:
                    member = replace(member, run_began=began)  # noqa: PLW2901
            out.append(member)
        return out

    def _first_runs(self, ids: list[str], start: datetime) -> list[Member]:
        """Runs of FAILED with no transition into them: begun at a service's very first
        check (the recorder writes a transition only on a change), or recorded by a
        recorder that had not learnt the stored status yet (its first results before
        storage answered at a start, or before the last run's spooled rows landed).
        Found as the services whose oldest transition leaves FAILED (the run ended
        there) or that have none and are FAILED now (still open); the run's start, its
        first FAILED check after the last other check before its end (never an earlier
        OK stretch), is then read for those few services only, and only for runs that
        end after ``start`` (the others cannot touch the window: their checks are not
        read at all)."""
        db = self.storage.database
        unknown = [sid for sid in ids if sid not in self._firsts]
        if unknown:
            rows = self.storage.query(
                "SELECT service_id, min(timestamp) AS first_at, argMin(from_status, timestamp) "
                f"AS first_from FROM {db}.service_transitions "
                "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
                {"ids": unknown},
            )
            found = {r["service_id"]: r for r in rows}
            self._firsts |= {sid: found.get(sid) for sid in unknown}
            quiet = [sid for sid in unknown if sid not in found]
            if quiet and not self._given:  # read the codes of these ones only, once
                rows = self.storage.query(
                    f"SELECT service_id, argMaxMerge(status_code) AS code FROM {db}."
                    "service_current WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
                    {"ids": quiet},
                )  # fmt: skip
                self._current |= {r["service_id"]: int(r["code"]) for r in rows}
        current = self._current
        ended: dict[str, datetime | None] = {}
        for sid in ids:
            first = self._firsts[sid]
            if first is None:
                if current.get(sid) == _FAILED:
                    ended[sid] = None
            elif first["first_from"] == _FAILED and (at := aware(first["first_at"])) > start:
                ended[sid] = at
        if not ended:
            return []
        # the run's start: its first FAILED check after the last other one before its end
        # (not the service's first check: a recorder that never learnt the stored status,
        # its first results before storage answered, wrote no transition into the run)
        ids = sorted(ended)
        ends = [ended[sid] or FAR for sid in ids]
        rows_of = f"""
            FROM {db}.service_status
            WHERE service_id IN {{ids:Array(String)}}
              AND timestamp < arrayElement({{ends:Array(DateTime64(3, 'UTC'))}},
                                           indexOf({{ids:Array(String)}}, service_id))
              AND timestamp >= (SELECT min(hour) FROM {db}.service_status_hourly
                                WHERE service_id IN {{ids:Array(String)}})"""
        checks = self.storage.query(
            f"""
            SELECT service_id, min(timestamp) AS began, argMin(message, timestamp) AS message
            FROM (SELECT service_id, timestamp, message, status_code {rows_of}) AS s
            INNER JOIN (SELECT service_id, maxIf(timestamp, status_code != {{f:UInt8}}) AS other
                        {rows_of} GROUP BY service_id) AS o USING service_id
            WHERE status_code = {{f:UInt8}} AND timestamp > other
            GROUP BY service_id""",
            {"ids": ids, "ends": ends, "f": _FAILED},
        )  # fmt: skip
        return [run_member(r["service_id"], aware(r["began"]), ended[r["service_id"]],
                           r["message"]) for r in checks]  # fmt: skip


def _handed_over(storage: Storage, scope: Coverage, start: datetime, end: datetime, *,
                 since: datetime, before: datetime,
                 firsts: list[Member]) -> list[Member]:  # fmt: skip
    """Each run that began while a rule watched its service and went on after no rule
    did (the rule removed, disabled or no longer selecting it while the service
    failed), with ``firsts`` (such runs begun at the service's first check, which no
    transition marks). Without it the outage looked resolved when its alert was (*no
    longer in the configuration*), or was never an incident when the rule left
    before it fired, though the service still failed.

    A run an alert fired for between its start and the change goes on from the change
    to the run's end, carrying when the run began (``run_began``), so it joins the
    alert's incident whatever the order of the alert's end and the coverage row (the
    daemon writes them a few milliseconds apart, in either order: :func:`server.
    analytics.incident_model.group`). A run none fired for is an incident from its
    start, as a rule-less run is (key ``status:<service>@<start>``)."""
    flips = {sid: [at for (at, w), (_, was) in zip(points[1:], points, strict=False)
                   if not w and was] for sid, points in scope.points.items()}  # fmt: skip
    flips = {sid: ats for sid, ats in flips.items() if ats}
    if not flips:
        return []
    rows = _paired(storage, sorted(flips), start, end, since=since, before=before, limit=0,
                   counted="", params={})  # fmt: skip
    runs = [(r["service_id"], aware(r["began"]), aware(r["ended"]) if r["ended"] else None,
             _check_message(r["message"])) for r in rows]  # fmt: skip
    runs += [(m.service_id, m.start, m.end, m.message) for m in firsts if m.service_id in flips]
    handed = []
    for sid, began, ended, message in runs:
        if scope.counted(sid, began):
            continue  # a run of its own already
        at = next((t for t in flips[sid] if began < t and (ended is None or t < ended)), None)
        if at is not None:
            handed.append((sid, began, ended, message, at))
    fired = _fired(storage, [(sid, began, at) for sid, began, _, _, at in handed])
    out = []
    for sid, began, ended, message, at in handed:
        member = (run_member(sid, at, ended, message, began) if (sid, began) in fired
                  else run_member(sid, began, ended, message))  # fmt: skip
        if member.start < min(before, end) and (ended is None or ended > start):
            out.append(member)
    return out


def _fired(
    storage: Storage, spans: list[tuple[str, datetime, datetime]]
) -> set[tuple[str, datetime]]:
    """The ``(service, began)`` of ``spans`` (``(service, began, until)``) for which an
    alert of the service went firing in ``[began, until]`` (one statement)."""
    if not spans:
        return set()
    rows = storage.query(
        "SELECT service_id, groupArray(timestamp) AS ats "
        f"FROM {storage.database}.alert_events "
        "WHERE service_id IN {ids:Array(String)} AND event = 'transition' "
        "AND to_state = 'firing' AND timestamp >= {lo:DateTime64(3, 'UTC')} "
        "AND timestamp <= {hi:DateTime64(3, 'UTC')} GROUP BY service_id",
        {"ids": sorted({s[0] for s in spans}), "lo": min(s[1] for s in spans),
         "hi": max(s[2] for s in spans)},
    )  # fmt: skip
    ats = {r["service_id"]: [aware(t) for t in r["ats"]] for r in rows}
    return {(sid, began) for sid, began, until in spans
            if any(began <= t <= until for t in ats.get(sid, ()))}  # fmt: skip


def _paired(storage: Storage, ids: list[str], start: datetime, end: datetime, *,
            since: datetime, before: datetime, limit: int, counted: str,
            params: dict[str, Any], covering: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Runs of FAILED of ``ids`` paired with their ends in ClickHouse (``ended`` NULL
    while open) overlapping ``[start, end)``, begun in ``[since, before)``, open first,
    then newest first; ``counted``: an extra condition (``AND …``) with ``params``;
    ``covering``: the ``limit`` first, then the rest a later read from the ``limit``-th's
    start would find (:func:`server.alerting.log_reads.covering_page`)."""
    sql = f"""
        SELECT service_id, began, if(has_next, next_at, NULL) AS ended, message, has_next,
               next_at
        FROM (
            SELECT service_id, to_status, message, timestamp AS began,
                   leadInFrame(timestamp) OVER w AS next_at,
                   leadInFrame(toUInt8(1)) OVER w AS has_next
            FROM {storage.database}.service_transitions
            WHERE service_id IN {{ids:Array(String)}}
              AND (to_status = {{f:UInt8}} OR from_status = {{f:UInt8}})
              AND timestamp >= {{since:DateTime64(3, 'UTC')}}
              AND timestamp < {{end:DateTime64(3, 'UTC')}}
            WINDOW w AS (PARTITION BY service_id ORDER BY timestamp
                         ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
        )
        WHERE to_status = {{f:UInt8}} AND began < {{before:DateTime64(3, 'UTC')}}
          AND (NOT has_next OR next_at > {{start:DateTime64(3, 'UTC')}}){counted}"""
    order = "has_next, began DESC, service_id"
    rows = storage.query(
        covering_page(sql, order) if covering else f"{sql} ORDER BY {order} LIMIT {{limit:UInt32}}",
        {"ids": ids, "f": _FAILED, "since": since, "start": start, "end": end,
         "before": before, "limit": limit or 2**32 - 1, **params},
    )  # fmt: skip
    return rows
