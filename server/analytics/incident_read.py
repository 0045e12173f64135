"""What one read of incidents reads once and hands down (:class:`Read`).

Split from :mod:`server.analytics.incidents`, whose :meth:`Incidents.between` and
:meth:`Incidents.get` make one per call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from server.analytics import incident_flaps
from server.analytics.incident_model import Flaps, Member
from server.analytics.incident_runs import Runs
from server.analytics.rule_coverage import Coverage

if TYPE_CHECKING:
    from server.analytics.incidents import Incidents


class Read:
    """What one read of incidents (:meth:`Incidents.between` or :meth:`Incidents.get`)
    reads once and hands down: the coverage of every service (its row-count probe
    once a read, not at every step), the rule-less runs' reader (:class:`Runs`, which
    keeps each service's oldest transition) and, on first need, which services each
    cause inhibited in ``[since, end)``."""

    def __init__(self, incidents: Incidents, since: datetime, end: datetime,
                 current: Mapping[str, int] | None) -> None:  # fmt: skip
        self.since, self.end = since, end
        self.coverage = Coverage.read(incidents.storage, incidents.config)
        self.runs = Runs(incidents.storage, current)
        self._log = incidents.log
        self._config = incidents.config
        self._inhibited: dict[str, set[str]] | None = None
        self._flaps: incident_flaps.Declared | None = None
        self._members: list[Member] | None = None
        # the kept page of periods (:meth:`Incidents._periods`): (since, end, services or
        # None for all, from when it holds all, members in the statement's order)
        self.periods: tuple[datetime, datetime, frozenset[str] | None, datetime,
                            list[Member]] | None = None  # fmt: skip
        self._storage = incidents.storage
        # every period of each service met, not only those that can join backwards: a read
        # seeded by one instant has no later seeds to bring in a firing that reaches back
        self.whole = False

    def flaps(self) -> Flaps:
        """Each service that flapped in ``[since, end)`` -> its flapping periods ``(from,
        to)``: from when flapping was declared less the span of checks that made it
        flap, as recorded (:func:`incident_flaps.reaches`). Read on first need."""
        return incident_flaps.reaches(self.declared())

    def declared(self) -> incident_flaps.Declared:
        """Each service that flapped in ``[since, end)`` -> ``(declared, stopped or None,
        span)``: the flapping the alert engine recorded as it happened, for every
        service (:func:`incident_flaps.declared`); never judged again on a read."""
        if self._flaps is None:
            self._flaps = incident_flaps.declared(self._log, self._config, self.since, self.end)
        return self._flaps

    def flap_members(self, services: Collection[str] | None = None) -> list[Member]:
        """The flapping periods in which their service failed, as members
        (:func:`incident_flaps.members`), of ``services`` (None: all)."""
        if self._members is None:
            self._members = incident_flaps.members(self._storage, self.declared(), self.since,
                                                   self.end)  # fmt: skip
        return [m for m in self._members if services is None or m.service_id in services]

    def dependants(self, causes: Collection[str]) -> set[str]:
        """The services whose firings in ``[since, end)`` named one of ``causes`` as their
        cause: the only ones that can hold a period caused by them. Raises StorageError."""
        if self._inhibited is None:
            self._inhibited = self._log.inhibited(self.since, self.end)
        return {d for c in causes for d in self._inhibited.get(c, ())}
