"""An SLO burn that fires during an outage is told with it but never outlasts it.

The real recorder into chDB, the real alert engine reading its burn windows from there
(:class:`tests.test_slo_burn.Rig`: ``shop`` selected by slo_burn rules only, so its runs
of FAILED are incident members). A burn fires on for up to its short window after the
service is back; the outage it joined must end when the service recovers, and the
service's next outage must be its only open incident.
"""

from __future__ import annotations

from datetime import timedelta

from server.analytics.incidents import Incidents
from server.storage.embedded import EmbeddedStorage
from tests.test_slo_burn import EVERY, rig, store

__all__ = ["store"]  # the chDB fixture, used here as there


def test_an_outage_ends_when_its_service_recovers_though_its_burn_fires_on(
    store: EmbeddedStorage,
) -> None:
    r = rig(store)
    r.history("." * 720)  # six quiet hours
    assert r.checks("...") == []  # the engine's recorder knows shop up
    assert r.checks("xx") == []
    began = r.clock.now() - timedelta(seconds=EVERY)
    assert r.checks("xx") == [("budget:shop", "firing")]  # while shop still fails
    assert r.checks(".") == []
    back = r.clock.now()
    assert r.checks("...") == []  # the burn fires on: the five minutes still hold failures
    assert r.states()["budget:shop"] == "firing"
    assert r.checks("x") == []
    again = r.clock.now()
    found = sorted(Incidents(store, r.config).between(back - timedelta(days=1),
                                                        again + timedelta(seconds=1)),
                   key=lambda i: i.start)  # fmt: skip
    print(
        [(m.key, m.start, m.end, m.run_began) for i in found for m in i.members], began, back, again
    )
    assert [(i.start, i.end) for i in found] == [(began, back), (again, None)]
    assert [m.rule_id for m in found[0].members] == ["", "budget"]  # the burn, told with it
    assert [(sp.start, sp.end) for sp in found[0].spells()] == [(began, back)]
    opened = [i for i in found if "shop" in i.failing]
    assert [i.id for i in opened] == [found[1].id]  # one open incident for shop
