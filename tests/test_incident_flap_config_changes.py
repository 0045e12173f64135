"""Changing ``alerting.flapping`` later never rewrites an incident already shown.

Real chDB, the real recorder feeding the real alert engine (tests.support.incident_site):
web has no rule, so its incidents are runs of FAILED, and its flapping joins them into
one. The engine declares web's flapping as it happens, with the thresholds in force
then (``flapping``/``flapping_end`` rows); incidents read those rows. Before, they
judged a rule-less service's flapping afresh on every read, so a SIGHUP with other
thresholds turned one noted incident into many (or an ongoing one into a 1-second one),
and reverting the file brought it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from server.alerting.log import aware
from server.analytics.flap_replay import detect, replay
from server.analytics.incident_timeline import timeline
from server.analytics.incidents import Incidents
from tests.support.incident_site import NOW, TOKEN, Site

INTERVAL = timedelta(seconds=10)  # the harness's services are checked every 10 s
RULES = """
alert_rules:
  - {{id: db-down, service: db, condition: "status >= FAILED", channels: [hook]}}
alerting: {{group_wait: 0s, flapping: {{{flapping}}}}}
"""
BEFORE = "window: 6, high: 0.5, low: 0.25"
AFTER = "window: 6, high: 0.3, low: 0.1"  # flaps sooner, settles later
NEVER = "window: 6, high: 0.95, low: 0.9"  # web's checks would never have flapped
SHORT = "window: 3, high: 0.5, low: 0.25"  # fewer checks (a shorter span) make it flap
FLAPS = "." * 6 + "x." * 8 + "." * 10  # every other check fails, then it settles


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Web (no rule) checked alone at its interval, flapping thresholds :data:`BEFORE`."""
    s = Site(tmp_path, RULES.format(flapping=BEFORE), step=INTERVAL, shown=["web"],
             start=NOW - timedelta(hours=1))  # fmt: skip
    yield s
    s.close()


def shown(site: Site) -> list[tuple[Any, ...]]:
    """Each incident as a page shows it: id, start, end, members, note, and its spells."""
    now = site.h.clock.now()
    return [(i.id, i.start, i.end, [(m.key, m.start, m.end) for m in i.members],
             i.note and i.note["note"], i.as_dict(now)["affected"])
            for i in site.incidents()]  # fmt: skip


def flap_rows(site: Site) -> list[tuple[str, Any]]:
    rows = site.store.query(
        "SELECT event, timestamp FROM monitor.alert_events WHERE service_id = 'web' "
        "AND event IN ('flapping', 'flapping_end') ORDER BY timestamp, event"
    )
    return [(r["event"], aware(r["timestamp"])) for r in rows]


def note(site: Site, incident_id: str, text: str) -> None:
    Incidents(site.store, site.config()).save_note(incident_id, text, "ops",
                                                   site.h.clock.now(), None)  # fmt: skip


@pytest.mark.parametrize("thresholds", [AFTER, NEVER, SHORT])  # a window fewer checks too
def test_new_flapping_thresholds_leave_a_noted_past_incident_as_it_was(
    site: Site, thresholds: str
) -> None:
    site.play({"web": FLAPS})
    (flapped,) = site.incidents()
    assert len([m for m in flapped.members if m.flap]) == 1 and len(flapped.members) == 9
    note(site, flapped.id, "bad cable, replaced")
    before = shown(site)
    assert before[0][4] == "bad cable, replaced"
    site.reload(RULES.format(flapping=thresholds))  # as a SIGHUP does
    assert shown(site) == before  # ids, starts, ends, members, note, affected: the same
    site.reload(RULES.format(flapping=BEFORE))  # and back: still the same
    assert shown(site) == before


def test_a_longer_window_later_pulls_no_earlier_outage_into_a_flapping_incident(
    site: Site,
) -> None:
    """The span of checks that made a service flap (how far back its flapping incident
    reaches) is the one in force when it was declared, not a later window's."""
    site.play({"web": "." * 6 + "x" + "." * 8 + "x." * 8 + "." * 10})
    alone, flapped = site.incidents()  # an outage 80 s before: outside its 60 s span
    assert len(alone.members) == 1 and any(m.flap for m in flapped.members)
    note(site, alone.id, "a blip")
    before = shown(site)
    site.reload(RULES.format(flapping="window: 30, high: 0.5, low: 0.25"))  # a 300 s span
    assert shown(site) == before


def test_an_ongoing_noted_flapping_incident_stays_ongoing_across_a_reload(site: Site) -> None:
    site.play({"web": "." * 6 + "x." * 8})  # still flapping
    (ongoing,) = site.incidents()
    assert ongoing.end is None
    note(site, ongoing.id, "on it")
    before = shown(site)
    site.reload(RULES.format(flapping=NEVER))
    assert shown(site) == before
    site.play({"web": "." * 10})  # settles: by the thresholds in force now
    (settled,) = site.incidents()
    assert (settled.id, settled.note and settled.note["note"]) == (ongoing.id, "on it")
    assert settled.end is not None and [e for e, _ in flap_rows(site)] == [
        "flapping", "flapping_end"]  # fmt: skip


def test_flapping_after_the_change_is_judged_by_the_new_thresholds(site: Site) -> None:
    site.play({"web": FLAPS})
    before = shown(site)
    site.reload(RULES.format(flapping=AFTER))
    later = "x....." * 4 + "." * 12  # a change in 3 of 6 checks' pairs at most
    site.play({"web": later})
    checks = [int(c == "x") for c in "." * 10 + later]  # web's last checks before, then these
    pairs = enumerate(zip([0, *checks], checks, strict=False))
    moves = [(site.at[-len(later) - 10 + i], a, b) for i, (a, b) in pairs if a != b]
    old = detect(moves, 10, site.at[-1], window=6, high=0.5, low=0.25)
    new = detect(moves, 10, site.at[-1], window=6, high=0.3, low=0.1)
    assert old == [] and len(new) == 1  # only the new thresholds call this flapping
    rows = flap_rows(site)
    assert rows[2:] == [("flapping", new[0][0]), ("flapping_end", new[0][1])]
    _, second = site.incidents()
    assert shown(site)[0] == before[0]  # the first as it was
    assert [m.start for m in second.members if m.flap] == [new[0][0]]
    assert len([m for m in second.members if not m.flap]) == 4  # its four runs, one incident


def test_a_new_flapping_window_ends_the_period_open_when_it_changed(site: Site) -> None:
    site.play({"web": "." * 6 + "x." * 8})
    site.reload(RULES.format(flapping="window: 10, high: 0.5, low: 0.25"))
    site.play({"web": "." * 14})
    assert [e for e, _ in flap_rows(site)] == ["flapping", "flapping_end"]
    (settled,) = site.incidents()
    assert settled.end is not None


def test_flapping_from_before_it_was_recorded_is_replayed_once_and_kept(site: Site) -> None:
    site.play({"web": FLAPS})
    before = shown(site)
    # a store from before the engine recorded rule-less flapping: no rows of it
    site.store.query("ALTER TABLE monitor.alert_events DELETE WHERE service_id = 'web' "
                     "SETTINGS mutations_sync = 1")  # fmt: skip
    assert flap_rows(site) == []
    now = site.h.clock.now()
    assert replay(site.store, site.config(), now, now) == 1  # the daemon's first start
    assert shown(site) == before
    site.reload(RULES.format(flapping=NEVER))  # other thresholds, then a restart
    assert replay(site.store, site.config(), now, now) is None  # done once, never again
    assert shown(site) == before
    (flapped,) = site.incidents()
    told = [e["text"] for e in timeline(Incidents(site.store, site.config()), flapped, now)
            if e["text"].startswith("flapping")]  # fmt: skip
    assert told == ["flapping started (replayed from stored status changes)",
                    "flapping stopped (replayed from stored status changes)"]  # fmt: skip


def test_the_api_counts_a_flapping_stretch_as_the_page_tells_it(site: Site) -> None:
    site.play({"web": FLAPS})
    (flapped,) = site.incidents()
    c = site.client()
    (row,) = c.get("/api/v1/incidents", headers=TOKEN).get_json()["incidents"]
    (affected,) = row["affected"]
    assert (affected["flapping"], affected["firings"], affected["fired"]) == (True, 8, False)
    assert affected["aside"] == "flapping: 8 failures"
    page = c.get(f"/incidents/{flapped.id}", headers=TOKEN).get_data(as_text=True)
    assert "; flapping: 8 failures</li>" in page


def test_an_older_flapping_row_without_its_span_gets_it_from_the_replay_shown_once(
    site: Site,
) -> None:
    """An engine ``flapping`` row from before it stored its span (no value): the replay
    records the span in force (a row at the same instant), so a later, longer window
    pulls no earlier outage in, and the timeline tells the declaration once."""
    site.play({"web": "." * 6 + "x" + "." * 8 + "x." * 8 + "." * 10})
    site.store.query("ALTER TABLE monitor.alert_events UPDATE value = NULL "
                     "WHERE event = 'flapping' SETTINGS mutations_sync = 1")  # fmt: skip
    now = site.h.clock.now()
    assert replay(site.store, site.config(), now, now) == 0  # web's own row: a span only
    site.reload(RULES.format(flapping="window: 30, high: 0.5, low: 0.25"))  # a 300 s span
    alone, flapped = site.incidents()  # the outage 80 s before: outside the 60 s span
    assert len(alone.members) == 1 and any(m.flap for m in flapped.members)
    told = [e["text"] for e in timeline(Incidents(site.store, site.config()), flapped,
                                        site.h.clock.now())
            if e["text"].startswith("flapping")]  # fmt: skip
    assert len(told) == 2 and told[0].startswith("flapping started (web is flapping")
