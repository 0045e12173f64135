"""Flapping periods as incident members: one incident per period, ongoing throughout.

A service that fails every other check makes a firing (or, without a rule, a run of
FAILED) a second; grouped only by their firings, its incident read resolved between
two of them and ongoing at the next, and the public summary listed each. So a
flapping period during which the service failed is a member of its own (key
``flap:<service>@<declared>``, from when flapping was declared to when it stopped,
None while it flaps): the firings and runs of the period join its incident, which is
ongoing while it flaps, and the page tells one stretch "flapping: N firings"
(:class:`server.analytics.incident_model.Spell`).

Where the periods come from: the alert engine's ``flapping``/``flapping_end`` rows
for the services some rule watches (it keeps their checks), and for the others the
same detection over their stored status changes (:func:`detect`: the engine's
:func:`server.alerting.history.percent_state_change` over the last
``alerting.flapping.window`` checks, with its ``high`` and ``low`` thresholds). The
member is made for any service, watched or not: a rule with ``for: 3s`` on a
service failing every other 1 s check never fires, and the service still fails.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from server.alerting.history import percent_state_change
from server.alerting.log import aware
from server.analytics.incident_model import FLAP_PREFIX, Member, key_start
from server.config.models import Config
from server.core import status as statuses
from server.storage import Storage, changes

_FAILED = int(statuses.Status.FAILED)
Period = tuple[datetime, datetime | None]  # (declared, stopped or None while it flaps)
Periods = dict[str, list[Period]]  # service -> its periods, oldest first


def detect(moves: list[tuple[datetime, int, int]], interval: float, end: datetime, *,
           window: int, high: float, low: float) -> list[Period]:  # fmt: skip
    """Flapping periods ``(declared, stopped or None)`` of a service whose status changes
    are ``moves`` (``(at, from, to)``, oldest first), checked every ``interval`` seconds,
    up to ``end``: the checks between two changes are taken as one each ``interval``
    (at most ``window`` of them: by then the share is 0), the ones before the first
    change as its ``from``; a period starts at the check where the weighted share of
    changes over the last ``window`` checks goes above ``high`` and stops where it
    goes below ``low``, as the alert engine decides (:class:`server.alerting.history.
    History`)."""
    if not moves:
        return []
    checks: deque[int] = deque([moves[0][1]] * (window - 1), maxlen=window)
    out: list[Period] = []
    flapping = False
    step = timedelta(seconds=interval)
    for i, (at, _, to) in enumerate(moves):
        until = moves[i + 1][0] if i + 1 < len(moves) else end
        last = i + 1 == len(moves)
        count = int((until - at) / step) + 1 if last else round((until - at) / step)
        count = max(1, min(window, count))
        for k in range(count):
            checks.append(to)
            share = percent_state_change(list(checks))  # type: ignore[arg-type]
            if not flapping and share > high:
                flapping = True
                out.append((at + k * step, None))
            elif flapping and share < low:
                flapping = False
                out[-1] = (out[-1][0], at + k * step)
    return out


def status_periods(storage: Storage, config: Config, services: Collection[str],
                   since: datetime, end: datetime) -> Periods:  # fmt: skip
    """:func:`detect` over the status changes in ``[since, end)`` of ``services``, read
    only for those with enough changes to flap at all (one statement). Raises
    StorageError."""
    if not services:
        return {}
    flapping = config.alerting.flapping
    least = int(flapping.high * (flapping.window - 1) / 1.2) + 1  # each change weighs <= 1.2
    rows = storage.query(
        "SELECT service_id, groupArray((timestamp, from_status, to_status)) AS moves FROM ("
        "SELECT service_id, timestamp, from_status, to_status "
        f"FROM {storage.database}.service_transitions "
        "WHERE service_id IN {ids:Array(String)} AND timestamp >= {since:DateTime64(3, 'UTC')} "
        "AND timestamp < {end:DateTime64(3, 'UTC')}) "
        "GROUP BY service_id HAVING count() >= {least:UInt32}",
        {"ids": sorted(services), "since": since, "end": end, "least": least},
    )
    intervals = {s.id: s.interval.total_seconds() for s in config.services}
    out: Periods = {}
    for row in rows:
        moves = sorted((aware(at), int(a), int(b)) for at, a, b in row["moves"])
        interval = intervals.get(row["service_id"], 60.0)
        if not _close(moves, least, timedelta(seconds=interval * flapping.window)):
            continue  # its changes are never close enough to flap: no check-by-check replay
        found = detect(moves, interval, end, window=flapping.window, high=flapping.high,
                       low=flapping.low)  # fmt: skip
        if found:
            out[row["service_id"]] = found
        if found and found[-1][1] is None:  # flapping at ``end``: steady checks may stop it
            steady = moves[-1][0] + timedelta(seconds=interval * flapping.window)
            settled = detect(moves, interval, steady, window=flapping.window,
                             high=flapping.high, low=flapping.low)  # fmt: skip
            if settled[-1][1] is not None:  # with no change, it stops then: no row says so
                changes.holds_while(storage, end, settled[-1][1])
    return out


def members(storage: Storage, periods: Mapping[str, list[Period]],
            spans: Mapping[str, timedelta], since: datetime,
            end: datetime) -> list[Member]:  # fmt: skip
    """A member for each of ``periods`` (service -> ``(declared, stopped or None)``) in
    which the service failed: a move into FAILED from ``spans[service]`` (the checks
    that made it flap) before it was declared to its end. Its ``run_began`` is the
    first such move (its firings from then on are one stretch with it). Raises
    StorageError."""
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
        ats, span = failed.get(sid, []), spans.get(sid, timedelta(0))
        for declared, stopped in found:
            first = bisect_left(ats, declared - span)
            if first == len(ats) or (stopped is not None and ats[first] > stopped):
                continue  # flapped between OK and DEGRADED, say: no outage
            began = min(ats[first], declared)
            out.append(Member(f"{FLAP_PREFIX}{sid}@{key_start(declared)}", "", sid, "warning",
                              declared, stopped, "flapping", run_began=began))  # fmt: skip
    return out


def _close(moves: list[tuple[datetime, int, int]], least: int, span: timedelta) -> bool:
    """Whether ``least`` of ``moves`` (oldest first) fall within ``span`` of each other
    somewhere: the most changes the last ``window`` checks can hold (one a check).
    :func:`detect` replays every check (~20 us each); a service with 30 outages a month
    an hour apart pays this scan instead."""
    return any(moves[i + least - 1][0] - moves[i][0] <= span
               for i in range(len(moves) - least + 1))  # fmt: skip
