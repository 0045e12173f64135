"""Which services an enabled alert rule selected, and from when: table ``rule_coverage``.

An incident is a firing period for a service some rule watches, and a run of FAILED
checks for one that no rule watches (:mod:`server.analytics.incidents`). Which of the
two a run is must not change when the rules do: judged by today's rules, adding a
rule for a service made its earlier rule-less incidents (and their notes) vanish. So
the daemon records each service's coverage as rows (:func:`record`, at start and on
every reload, ``since`` = when that configuration took effect) and a run is judged by
the coverage when it began (:class:`Coverage`).

A service with no row at all (data older than this table, a dashboard reading a
store no daemon of this version wrote) is judged by the configuration given; one
with rows by its rows alone, a run older than its first row by that row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.alerting.log import aware, table_columns
from server.alerting.rules import Rule
from server.config.models import Config
from server.core.latest import per_last
from server.storage import Storage

COLUMNS = table_columns("rule_coverage")  # service_id, since, watched
# Coverage.read's: per store (held, so its id is not reused), the configuration and row
# count it was read under
_READS: dict[tuple[int, str], tuple[Storage, Config, int, Coverage]] = {}


@per_last
def watchers(config: Config) -> dict[str, int]:
    """Each configured service's id -> how many enabled alert rules that watch for
    outages select it (:meth:`server.alerting.rules.Rule.selects`; an ``slo_burn`` rule
    does not watch: :attr:`~server.alerting.rules.Rule.watches_outages`). Matched once
    per configuration (1,000 services against globs took ~30 ms)."""
    rules = [rule for rule in (Rule.from_config(r) for r in config.alert_rules if r.enabled)
             if rule.watches_outages]  # fmt: skip
    return {s.id: sum(1 for r in rules if r.selects(s)) for s in config.services}


@per_last
def coverage(config: Config) -> dict[str, bool]:
    """Each configured service's id -> whether a rule watches it (:func:`watchers`).

    A disabled service counts as its rules select it: disabling one is not a rule
    change. It is not checked, so it starts no run and no alert either way; counted
    unwatched, disabling a watched service that was failing would record the rule
    as gone while it failed, and hand the outage over to a made-up run of FAILED
    (:func:`server.analytics.incident_runs._handed_over`) beside its retired alert."""
    return {sid: n > 0 for sid, n in watchers(config).items()}


def changes(before: Mapping[str, bool], config: Config, since: datetime) -> list[tuple[Any, ...]]:
    """Rows (``COLUMNS``) for the services whose coverage in ``config`` differs from
    ``before`` (id -> watched; a service missing there counts as changed)."""
    return [(sid, since, int(watched)) for sid, watched in coverage(config).items()
            if before.get(sid) != watched]  # fmt: skip


def record(storage: Storage, config: Config, since: datetime) -> list[tuple[Any, ...]]:
    """Append a row for each service of ``config`` whose coverage differs from its newest
    stored one, as in effect from ``since``; returns the rows written.

    Raises StorageError when ClickHouse does not answer (nothing written)."""
    stored = {
        r["service_id"]: bool(r["watched"])
        for r in storage.query(
            "SELECT service_id, argMax(watched, since) AS watched "
            f"FROM {storage.database}.rule_coverage GROUP BY service_id"
        )
    }
    rows = changes(stored, config, since)
    if rows:
        storage.insert("rule_coverage", COLUMNS, rows)
    return rows


@dataclass
class Coverage:
    """The coverage history a read of incidents needs (:meth:`read`).

    ``candidates``: services some of whose FAILED runs may be incidents, sorted;
    ``points``: for those whose coverage changed, ``[(since, watched), …]`` oldest first.
    The rest of the candidates were never watched (or have no rows and ``config`` does
    not watch them): every run of theirs counts.
    """

    candidates: list[str]
    points: dict[str, list[tuple[datetime, bool]]] = field(default_factory=dict)

    @classmethod
    def read(cls, storage: Storage, config: Config,
             services: Collection[str] | None = None) -> Coverage:  # fmt: skip
        """The history of ``services`` (None: all). Read whole once and kept while the
        table's row count and ``config`` stay the same (rows are only ever appended, at
        a start or reload): a request pays a ``count()`` (~2 ms against ~7 ms for the
        read with 1,000 services). Raises StorageError."""
        rows = storage.query(f"SELECT count() AS n FROM {storage.database}.rule_coverage")
        key, count = (id(storage), storage.database), int(rows[0]["n"])
        held = _READS.get(key)
        if held is None or held[1] is not config or held[2] != count:
            held = (storage, config, count, cls._load(storage, config))
            if len(_READS) >= 8:  # one store and one configuration live at a time
                _READS.clear()
            _READS[key] = held
        return held[3].among(services)

    @classmethod
    def _load(cls, storage: Storage, config: Config) -> Coverage:
        unwatched = sorted(s for s, w in coverage(config).items() if not w)
        rows = storage.query(
            f"""
            SELECT service_id, min(watched) AS lo, max(watched) AS hi,
                   if(lo = hi, [], arraySort(groupArray((since, watched)))) AS points
            FROM {storage.database}.rule_coverage
            GROUP BY service_id
            HAVING lo = 0 OR has({{unwatched:Array(String)}}, service_id)""",
            {"unwatched": unwatched},
        )  # fmt: skip
        recorded = {r["service_id"] for r in rows}
        found = cls(sorted({*(s for s in unwatched if s not in recorded),
                            *(r["service_id"] for r in rows if int(r["lo"]) == 0)}))  # fmt: skip
        for row in rows:
            if row["points"]:
                found.points[row["service_id"]] = [(aware(at), bool(w)) for at, w in row["points"]]
        return found

    def among(self, services: Collection[str] | None) -> Coverage:
        """This history narrowed to ``services`` (None: all of it)."""
        if services is None:
            return self
        wanted = set(services)
        return Coverage([s for s in self.candidates if s in wanted],
                        {s: p for s, p in self.points.items() if s in wanted})  # fmt: skip

    def counted(self, service_id: str, began: datetime) -> bool:
        """Whether a FAILED run of ``service_id`` that began at ``began`` is an incident:
        no enabled rule selected the service then."""
        if service_id not in self.candidates:
            return False
        points = self.points.get(service_id)
        if not points:
            return True
        watched = points[0][1]
        for since, value in points:
            if since > began:
                break
            watched = value
        return not watched

    def sql(self, service: str = "service_id", began: str = "began") -> tuple[str, dict[str, Any]]:
        """A condition (``AND …``) and its parameters for a query over FAILED runs with
        columns ``service`` and ``began``: :meth:`counted`, in ClickHouse, so a LIMIT
        counts only runs that are incidents. Candidates are filtered apart (``IN``).
        No condition at all while no candidate's coverage changed (every run counts):
        chDB analyses the lambdas before reading a row (~2 ms a statement)."""
        if not self.points:
            return "", {}
        each = [(sid, at, int(w)) for sid, points in sorted(self.points.items())
                for at, w in points]  # fmt: skip
        last = (f"arrayLastIndex((s, t) -> s = {service} AND t <= {began}, "
                "{cov_ids:Array(String)}, {cov_at:Array(DateTime64(3, 'UTC'))})")  # fmt: skip
        first = f"arrayFirstIndex(s -> s = {service}, {{cov_ids:Array(String)}})"
        condition = (f" AND (NOT has({{cov_ids:Array(String)}}, {service}) OR "
                     f"{{cov_watched:Array(UInt8)}}[greatest({last}, {first})] = 0)")  # fmt: skip
        return condition, {"cov_ids": [e[0] for e in each], "cov_at": [e[1] for e in each],
                           "cov_watched": [e[2] for e in each]}  # fmt: skip
