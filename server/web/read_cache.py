"""Answers worked out from storage, kept while nothing they depend on changed.

The status page and its feed derive the last 30 days of incidents from the alert
log on every request (~120 ms of CPU at 1,000 services), though the log changes
only when an alert or a service changes state. :class:`ReadCache` keeps the last
answer of each kind and hands it out again while all of these hold:

- the caller's ``key`` is equal and the configuration is the same object (a reload
  replaces it), so what the request asks and the rules it is judged by are equal;
- every table the answer read has the same active parts
  (:func:`server.storage.changes.part_tokens`, read *before* the answer is worked
  out): a new firing, transition or note, a merge or a TTL deletion is a new answer;
- time has not moved a window's edge past a stored row. An answer depends on
  ``now`` only through edges ``now + c`` (the caller's ``edges``) compared with the
  rows' times, so it stands for ``now`` from when it was worked out until the first
  edge reaches the next row at or after it (:func:`valid_until`, one statement);
- nor may an answer depend on time in any other way: a flapping period that ends
  once enough steady checks follow its last change is recorded as a row
  (``flapping_end``) when the engine declares it, never worked out on a read (that
  kept "ongoing" on /status after the feed and the API said "resolved").

The part hashes are read by the caller (:meth:`ReadCache.tokens`) once a request,
before any answer, and handed to each :meth:`ReadCache.get`: this module knows no
request (it is tested without Flask), and the answers of one page vouch for one
instant.

A table the answer read that is in neither :data:`ROW_TIME` nor :data:`TIMELESS`
makes the answer not kept (worked out again at every request): a new read must be
classed before it can be cached. When the parts cannot be read (a cluster user
whose grants do not allow ``clusterAllReplicas``; ClickHouse may ask for the
``REMOTE`` source grant), nothing is kept: each answer is worked out, as before,
and the reason is logged once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from server.alerting.log import aware
from server.storage import Storage, StorageError, changes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Tables whose rows carry a time a window's edge is compared with -> that column.
ROW_TIME = {
    "alert_events": "timestamp",
    "service_transitions": "timestamp",
    "service_status": "timestamp",
    "rule_coverage": "since",
    "notifications": "queued_at",
}
# Tables read for what no edge is compared with: notes by id, current statuses, the
# hourly summary's first hour (a bound that only narrows the scan of service_status),
# and the daily summary, read by UTC days its callers key their answers by.
TIMELESS = frozenset(
    {"incident_notes", "service_current", "service_status_hourly", "service_status_daily"}
)
CLASSED = sorted(ROW_TIME.keys() | TIMELESS)  # the tables whose parts are hashed
FOREVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Held:
    config: object
    key: Any
    parts: dict[str, int | None]  # table -> hash of its parts when the answer was read
    at: datetime  # the ``now`` it was worked out for
    until: datetime  # it stands for ``now`` in [at, until) (and at ``at`` itself)
    value: Any


class Same:
    """A key part equal only to itself: an answer worked out from another kept answer
    (notes added to kept incidents) is keyed by that answer's identity, so it is kept
    exactly as long as that one is (and is not compared item by item)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


class ReadCache:
    """The last answer of each kind (``name``), thread-safe; one per web app.

    ``computed`` and ``reused`` count answers worked out and handed out again, by name."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._warned = False
        self.computed: Counter[str] = Counter()
        self.reused: Counter[str] = Counter()

    def tokens(self, storage: Storage) -> changes.Tokens | None:
        """The classed tables' part hashes (:func:`server.storage.changes.part_tokens`), to
        read once a request, *before* any answer of it is worked out, and hand to each
        :meth:`get` of that request (two answers on one page then vouch for the same
        instant). None when the parts cannot be read: then nothing is kept (the reason
        is logged once)."""
        try:
            return changes.part_tokens(storage, CLASSED)
        except StorageError as exc:
            if not self._warned:
                self._warned = True
                log.warning("answers are not cached: cannot read the tables' parts (%s)", exc)
            return None

    def get(self, name: str, storage: Storage, compute: Callable[[Storage], T], *,
            tokens: changes.Tokens | None, config: object, key: Any, now: datetime,
            edges: Sequence[datetime]) -> T:  # fmt: skip
        """``compute(storage)``, or the answer it gave before for equal ``config``
        (identity), ``key`` and unchanged tables, while ``now`` is within its validity
        (see the module's docstring). ``tokens``: :meth:`tokens`, read before this (None:
        worked out, not kept). ``edges``: the times the answer compares rows with, each
        ``now`` plus a constant. ``compute`` must read through the storage it is given,
        its answer must depend on time only through ``edges``, and callers must not
        change it (they get the same object). Raises what ``compute`` raises."""
        if tokens is None:
            self._count(name, False)
            return compute(storage)
        held = self._held.get(name)
        if (
            held is not None
            and held.config is config
            and held.key == key
            and (held.at <= now < held.until or now == held.at)
            and changes.same(held.parts, tokens)
        ):
            self._count(name, True)
            return held.value  # type: ignore[no-any-return]
        recording = changes.Recording(storage)
        value = compute(recording)
        self._count(name, False)
        read = recording.tables
        if read <= ROW_TIME.keys() | TIMELESS:
            until = valid_until(storage, read & ROW_TIME.keys(), edges, now)
            kept = _Held(config, key, changes.of(tokens, read), now, until, value)
            with self._lock:
                self._held[name] = kept
        return value

    def _count(self, name: str, reused: bool) -> None:
        with self._lock:
            (self.reused if reused else self.computed)[name] += 1


def valid_until(storage: Storage, tables: Collection[str], edges: Sequence[datetime],
                now: datetime) -> datetime:  # fmt: skip
    """The first time after ``now`` at which an edge (``edges``: ``now`` plus constants)
    reaches a row of ``tables`` at or after it (by the :data:`ROW_TIME` column): until
    then no edge passes a row, so an answer comparing rows with them stands. ``now``
    itself when a row sits on an edge; :data:`FOREVER` without rows past the edges.
    One statement: the tables' times in one column, each edge's first found once (the
    earliest of each table's is the earliest of them all). Raises StorageError."""
    if not tables or not edges:
        return FOREVER
    marks = {f"e{i}": e for i, e in enumerate(edges)}
    lowest = min(marks, key=lambda m: marks[m])
    times = " UNION ALL ".join(
        f"SELECT {ROW_TIME[t]} AS at FROM {storage.database}.{t} "
        f"WHERE {ROW_TIME[t]} >= {{{lowest}:DateTime64(3, 'UTC')}}"
        for t in sorted(tables)
    )
    found = ", ".join(
        f"minIf(at, at >= {{{m}:DateTime64(3, 'UTC')}}) AS a{m}, "
        f"countIf(at >= {{{m}:DateTime64(3, 'UTC')}}) AS n{m}"
        for m in marks
    )
    until = FOREVER
    for row in storage.query(f"SELECT {found} FROM ({times})", marks):
        for mark, edge in marks.items():
            if int(row[f"n{mark}"]):
                until = min(until, now + (aware(row[f"a{mark}"]) - edge))
    return max(until, now)
