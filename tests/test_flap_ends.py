"""A flapping period the engine declared is always ended by a ``flapping_end`` row, also
when no check of the service settles it: its service leaves the config while it flaps,
or a restart finds it stored as flapping but settled by this run's checks. A restart
reads back only the statuses flapping can still be judged on.

Real chDB, the real recorder feeding the real alert engine (tests.support.incident_site);
the restart is a second engine (:class:`tests.alerting_harness.Harness`) reading the same
store, with the first one's receiver path.
"""

from __future__ import annotations

import pytest

from checkers.base import Status
from tests.alerting_harness import Harness
from tests.support.incident_site import Site
from tests.test_incident_flap_config_changes import BEFORE, INTERVAL, RULES, flap_rows, site

__all__ = ["site"]  # the fixture: web alone, flapping thresholds BEFORE

FLAPPING = "." * 6 + "x." * 8  # every other check fails: web flaps, and still does


def ends(site: Site) -> list[tuple[str, str]]:
    rows = site.store.query(
        "SELECT event, message FROM monitor.alert_events WHERE service_id = 'web' "
        "AND event IN ('flapping', 'flapping_end') ORDER BY timestamp, event"
    )
    return [(r["event"], r["message"]) for r in rows]


def test_a_service_that_leaves_the_config_while_flapping_ends_its_period(site: Site) -> None:
    site.play({"web": FLAPPING})
    assert [e for e, _ in flap_rows(site)] == ["flapping"]
    site.reload(RULES.format(flapping=BEFORE), disabled="web")
    (_, ended) = flap_rows(site)
    assert ended == ("flapping_end", site.h.clock.now())
    assert ends(site)[1] == ("flapping_end", "no longer checked")
    (incident,) = site.incidents()
    assert incident.end is not None


def test_a_period_stored_as_flapping_that_settled_before_the_restore_ends_at_it(
    site: Site,
) -> None:
    site.play({"web": FLAPPING})
    assert [e for e, _ in flap_rows(site)] == ["flapping"]
    h = Harness(RULES.format(flapping=BEFORE), site.h.clock, storage=site.store, path=site.h.path)
    for _ in range(3):  # this run's first checks of web: healthy, judged alone
        h.result("web", Status.OK, advance=INTERVAL.total_seconds())
    h.engine.restore()
    h.log.sync()
    h.insert_into(site.store)
    (_, ended) = flap_rows(site)
    assert ended == ("flapping_end", site.h.clock.now())
    assert ends(site) == [("flapping", ends(site)[0][1]),
                          ("flapping_end", "not flapping after the restart")]  # fmt: skip


@pytest.mark.parametrize(("gap", "kept"), [(30, 6), (150, 0)])
def test_a_restart_reads_back_only_the_statuses_within_twice_the_flap_span(
    site: Site, gap: float, kept: int
) -> None:
    """web's span is 6 checks x 10 s: a restart reads its statuses of the last 120 s (a
    window's checks of a run stopped up to a window's time before), not a day's."""
    site.play({"web": FLAPPING})
    site.h.clock.advance(gap)
    h = Harness(RULES.format(flapping=BEFORE), site.h.clock, storage=site.store, path=site.h.path)
    h.engine.restore()
    assert len(h.engine._history["web"].statuses) == kept
