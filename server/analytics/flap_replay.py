"""The one-time replay of flapping from before the daemon recorded it: table ``flap_replays``.

The alert engine declares every service's flapping as it happens, with the thresholds
in force then, as ``flapping``/``flapping_end`` rows of the alert log
(:meth:`server.alerting.telling.Teller.flapping`); incidents read only those rows
(:mod:`server.analytics.incident_flaps`), so changing ``alerting.flapping`` later
rewrites no past incident. Before this, the engine recorded it only for services some
rule watched, and incidents judged the others' flapping afresh on every read, by the
thresholds of the day: a SIGHUP with other thresholds turned 129 incidents into 883.

History from before the recording: at its first start on a store with no
``flap_replays`` row, the daemon (:func:`replay`, at its first alert tick once storage
is ready) judges the stored status changes in the :data:`REACH` before its start of the
services no rule watched (those that may have rule-less incidents,
:class:`server.analytics.rule_coverage.Coverage`) and have no flapping row of the
engine's, once, with the engine's own detection (:func:`detect`) and the thresholds
then in force; it writes the periods found as alert-log rows (message
:data:`REPLAYED`) and one ``flap_replays`` row. From then on those periods are records
like the engine's: a later start, with any thresholds, replays nothing (the row has
no TTL). The replay also records, for the engine's older ``flapping`` rows, the span
of checks that made the service flap (a row at the same instant carrying it), which
they lacked, so no later window or interval moves those periods' reach either.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta

from server.alerting.catalog import flap_spans
from server.alerting.history import percent_state_change
from server.alerting.log import SPAN, TABLES, aware, event_row, table_columns
from server.analytics.incidents import LOOKBACK
from server.analytics.rule_coverage import Coverage
from server.config.models import Config
from server.storage import Storage

log = logging.getLogger("lightbulb.alerting")
COLUMNS = table_columns("flap_replays")
REPLAYED = "replayed from stored status changes"  # the message of the periods it writes
UNCONFIGURED = 60.0  # s between checks taken for a service no longer in the config
Period = tuple[datetime, datetime | None]  # (declared, stopped or None while it flaps)
Periods = dict[str, list[Period]]  # service -> its periods, oldest first
# how far before the start status changes are replayed: what incidents read back, the
# incidents page's default range (30d, server/web/incidents_view.py) and the LOOKBACK
# before it for a still-open incident's start
REACH = timedelta(days=30) + LOOKBACK


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


def replayed(storage: Storage) -> bool:
    """Whether the replay was done on this store. Raises StorageError."""
    rows = storage.query(f"SELECT count() AS n FROM {storage.database}.flap_replays")
    return bool(int(rows[0]["n"]))


def replay(storage: Storage, config: Config, before: datetime, now: datetime) -> int | None:
    """Once per store: the flapping periods before ``before`` (the daemon's start) of the
    services no rule watched and no engine row declared flapping, judged on their stored
    status changes under ``config``'s thresholds, written as alert-log rows, then the
    ``flap_replays`` row (written last: a start cut short replays again, and the rows it
    rewrites read the same). Returns the periods written, or None when it was done
    before. Raises StorageError (nothing marked done)."""
    if replayed(storage):
        return None
    flapping = config.alerting.flapping
    db = storage.database
    recorded = storage.query(
        f"SELECT service_id, groupArray((timestamp, value)) AS declared FROM {db}.alert_events "
        "WHERE event = 'flapping' AND timestamp < {before:DateTime64(3, 'UTC')} "
        "GROUP BY service_id", {"before": before},
    )  # fmt: skip
    candidates = set(Coverage.read(storage, config).candidates)
    found = status_periods(storage, config, candidates - {r["service_id"] for r in recorded},
                           before)  # fmt: skip
    rows = []
    for sid, periods in found.items():
        span = span_of(config, sid)
        for declared, stopped in periods:
            rows.append(_row(declared, "flapping", sid, span, REPLAYED))
            if stopped is not None:
                rows.append(_row(stopped, "flapping_end", sid, None, REPLAYED))
    for row in recorded:  # the engine's older rows: the span they were declared with
        span = span_of(config, row["service_id"])
        rows += [_row(aware(at), "flapping", row["service_id"], span, SPAN)
                 for at, value in row["declared"] if value is None]  # fmt: skip
    if rows:
        storage.insert("alert_events", TABLES["alert_events"], rows)
    count = sum(len(p) for p in found.values())
    storage.insert("flap_replays", COLUMNS, [(now, before, flapping.window, flapping.high,
                                              flapping.low, len(found), count)])  # fmt: skip
    log.info("flapping before %s replayed once from stored status changes (window %d, high "
             "%.2f, low %.2f): %d periods of %d services; recorded as it happens from now on",
             before.isoformat(), flapping.window, flapping.high, flapping.low, count,
             len(found))  # fmt: skip
    return count


def _row(at: datetime, event: str, service_id: str, span: float | None,
         message: str) -> tuple[object, ...]:  # fmt: skip
    """An ``alert_events`` row of the replay (columns :data:`TABLES`)."""
    before, after = ("", "flapping") if event == "flapping" else ("flapping", "settled")
    return event_row(at, event, service_id=service_id, before=before, after=after, value=span,
                     message=message)  # fmt: skip


def status_periods(storage: Storage, config: Config, services: set[str],
                   before: datetime) -> Periods:  # fmt: skip
    """:func:`detect` over the status changes of ``services`` in the :data:`REACH` before
    ``before``, read only for those with enough changes to flap at all (one statement).
    Raises StorageError."""
    if not services:
        return {}
    flapping = config.alerting.flapping
    least = int(flapping.high * (flapping.window - 1) / 1.2) + 1  # each change weighs <= 1.2
    rows = storage.query(
        "SELECT service_id, groupArray((timestamp, from_status, to_status)) AS moves FROM ("
        "SELECT service_id, timestamp, from_status, to_status "
        f"FROM {storage.database}.service_transitions "
        "WHERE service_id IN {ids:Array(String)} AND timestamp >= {start:DateTime64(3, 'UTC')} "
        "AND timestamp < {end:DateTime64(3, 'UTC')}) "
        "GROUP BY service_id HAVING count() >= {least:UInt32}",
        {"ids": sorted(services), "start": before - REACH, "end": before, "least": least},
    )
    out: Periods = {}
    for row in rows:
        moves = sorted((aware(at), int(a), int(b)) for at, a, b in row["moves"])
        span = span_of(config, row["service_id"])
        interval = span / flapping.window
        if not _close(moves, least, timedelta(seconds=span)):
            continue  # its changes are never close enough to flap: no check-by-check replay
        found = detect(moves, interval, before, window=flapping.window, high=flapping.high,
                       low=flapping.low)  # fmt: skip
        if found:
            out[row["service_id"]] = found
    return out


def span_of(config: Config, service_id: str) -> float:
    """Seconds of checks that made ``service_id`` flap under ``config``
    (:func:`server.alerting.catalog.flap_spans`); a service no longer configured is
    taken as checked every :data:`UNCONFIGURED` seconds."""
    span = flap_spans(config).get(service_id)
    if span is None:
        return UNCONFIGURED * config.alerting.flapping.window
    return span.total_seconds()


def _close(moves: list[tuple[datetime, int, int]], least: int, span: timedelta) -> bool:
    """Whether ``least`` of ``moves`` (oldest first) fall within ``span`` of each other
    somewhere: the most changes the last ``window`` checks can hold (one a check).
    :func:`detect` replays every check (~20 us each); a service with 30 outages a month
    an hour apart pays this scan instead."""
    return any(moves[i + least - 1][0] - moves[i][0] <= span
               for i in range(len(moves) - least + 1))  # fmt: skip
