"""What the public ``/status`` page and its feed say about an incident.

An incident may group services the page does not show: a hidden database whose
outage inhibited a shown dependant's alert is the incident's cause and first
member. The public view keeps the page's services only, each with its own start and
end (:class:`server.analytics.incident_model.Spell`): a dependant that recovered is
shown resolved at its recovery, however long the hidden cause keeps firing, and no
name, state or time of a hidden service reaches the page. Even the id is the first
shown member's (an incident id spells its first member's start): that id opens the
same incident on ``/incidents`` (any member's does), and is the incident's own id
whenever its cause is shown. "Shown" for the id means selected by the page's groups,
enabled or not (``listed``): disabling a service for a while takes its spells off
the page but does not move the id (or the feed's entry id) of an incident it is in.

An SLO-burn alert (``slo_burn``) is not an outage: it fires on errors already past
and keeps firing for up to its short window after the service is back. The public
view leaves such firings out, so a service that recovered is shown resolved at its
recovery (as the page's own table shows it up), and an incident that is only a burn
is not on the page at all; the dashboard's ``/incidents`` keeps them.

``changed`` is the newest start or end of a member of a service the page's groups
select, enabled or not (the order and the feed's ``updated`` also count the note's
newest save, a clearing included: :func:`news`): a member that rejoins an
incident moves it forward, and disabling a service (its alert retired then) does
too, so an Atom entry's ``updated`` never goes back: not when a resolved incident
reopens, not when a service in it is disabled.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.alerting.rules import burn_rules
from server.analytics.incident_model import Incident, Spell, incident_id

__all__ = ["Shown", "burn_rules", "shown"]  # burn_rules: the feed's and page's, re-exported


@dataclass(frozen=True)
class Shown:
    """An incident as the public sees it: ``spells`` of the shown services only (at
    least one), ``note`` the operators' (``{note, author, updated_at}``) or None."""

    id: str
    spells: list[Spell]
    note: dict[str, Any] | None
    changed: datetime  # the newest start or end of a member of a listed service
    noted_at: datetime | None = None  # the note's newest save, a clearing included

    @property
    def start(self) -> datetime:
        return min(s.start for s in self.spells)

    @property
    def end(self) -> datetime | None:
        """None while a shown service is still in it; else the last one's recovery."""
        ends = [s.end for s in self.spells]
        return None if None in ends else max(e for e in ends if e is not None)

    @property
    def affected(self) -> list[Spell]:
        """The spells still open while the incident is; all of them once it is over (a
        service that left and rejoined has a spell for each part)."""
        return [s for s in self.spells if s.end is None] or self.spells

    @property
    def recovered(self) -> list[Spell]:
        """While the incident is open: the last spell of each shown service out of it
        now (not one that is back in it: its earlier spell ended, it did not recover)."""
        if self.end is None:
            last = {s.service_id: s for s in self.spells}
            return [s for s in last.values() if s.end is not None]
        return []

    def duration(self, now: datetime) -> timedelta:
        """Start to end, or to ``now`` while open."""
        return (self.end or now) - self.start


def shown(incidents: list[Incident], services: Collection[str], burns: Collection[str] = (),
          listed: Collection[str] = ()) -> list[Shown]:  # fmt: skip
    """The public view of each of ``incidents`` touching any of ``services`` (the page's),
    open ones first, then by their newest change (``changed`` or the note's save),
    newest first; firings of the rules ``burns``
    (:func:`burn_rules`) left out. ``listed``: the services the page's groups select,
    enabled or not (:func:`server.web.status_view.listed`); the id is that of the
    first member among them (and ``services``), so it stays while one is disabled."""
    wanted, skipped = set(services), set(burns)
    named = wanted | set(listed)
    out = []
    for incident in incidents:
        members = [m for m in incident.members
                   if m.service_id in wanted and m.rule_id not in skipped]  # fmt: skip
        if not members:
            continue
        first = next(m for m in incident.members
                     if m.service_id in named and m.rule_id not in skipped)  # fmt: skip
        part = Incident(incident.id, members)
        # over the page's services enabled or not: disabling one takes its spells off the
        # page, not its changes (the entry's ``updated`` would go back to before them)
        listed_ = [m for m in incident.members if m.service_id in named
                   and m.rule_id not in skipped]  # fmt: skip
        changed = max(t for m in listed_ for t in (m.start, m.end) if t is not None)
        out.append(Shown(incident_id(first), part.spells(), incident.note, changed,
                         incident.note_saved_at))  # fmt: skip
    # newest news first: a resolution (or a note saved) is news however long ago it began
    out.sort(key=lambda i: (i.end is None, news(i), i.id), reverse=True)
    return out


def news(incident: Shown) -> datetime:
    """When ``incident`` last changed for the public: ``changed`` or its note's save
    (a clearing included), the later: the page's order and the feed's ``updated``."""
    return max(incident.changed, incident.noted_at) if incident.noted_at else incident.changed
