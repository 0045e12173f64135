"""A flapping service makes one incident, and an SLO-burn rule watches for no outage.

Real chDB, the real recorder feeding the real alert engine (tests.alerting_harness),
checks at the service's interval: the engine's own flap detection (Nagios-style, over
``alerting.flapping.window`` checks) decides what flapping is, as rows
(``flapping``/``flapping_end``), and incidents read those rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from checkers.base import CheckResult, Status
from server.alerting.log import aware
from server.analytics.incident_timeline import timeline
from server.analytics.incidents import Incidents, incident_id
from server.analytics.rule_coverage import coverage, record
from server.config.models import DashboardConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.support.incident_site import NOW, Site, Svc, entries, sections

FLAPPY = """
alert_rules:
  - {id: web-down, service: web, condition: "status >= FAILED", channels: [hook]}
alerting: {group_wait: 0s, flapping: {window: 6}}
"""
INTERVAL = timedelta(seconds=10)  # the harness's services are checked every 10 s


class Flapper(Site):
    """Checks of web alone, at its interval."""

    def checks(self, plan: str) -> None:
        self.play({"web": plan})


@pytest.fixture
def flapper(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Flapper]:
    """Web checked alone at its interval, under the rules ``param`` (else FLAPPY)."""
    rules = getattr(request, "param", FLAPPY)
    f = Flapper(tmp_path, rules, step=INTERVAL, shown=["web"], start=NOW - timedelta(hours=1))
    yield f
    f.close()


def test_a_flapping_period_is_one_incident_whose_timeline_keeps_each_firing(
    flapper: Flapper,
) -> None:
    f = flapper
    f.checks("." + "x." * 12 + "." * 12)  # flaps (every other check fails), then settles
    flapped = f.store.query(
        "SELECT event, timestamp FROM monitor.alert_events "
        "WHERE event IN ('flapping', 'flapping_end') ORDER BY timestamp"
    )
    assert [r["event"] for r in flapped] == ["flapping", "flapping_end"]  # the engine's say
    f.checks("xx..")  # a later outage, after it settled: an incident of its own
    first, later = f.incidents()
    fired = [m for m in first.members if not m.flap]
    (period,) = [m for m in first.members if m.flap]
    assert len(fired) == 12 and first.services == ["web"] and first.end is not None
    assert [m.start for m in fired] == f.at[1:25:2]  # each firing, in order
    assert (period.start, period.end) == tuple(aware(r["timestamp"]) for r in flapped)
    assert first.start == f.at[1] and first.end == period.end  # ongoing until it settled
    (spell,) = first.spells()
    assert (spell.start, spell.end, spell.firings, spell.flapping) == (
        f.at[1], period.end, 12, True)  # fmt: skip
    assert len(later.members) == 1 and later.start == f.at[-4]
    firings = [e for e in timeline(Incidents(f.store, f.h.config), first, f.h.clock.now())
               if e["kind"] == "alert" and "-> firing" in e["text"]]  # fmt: skip
    assert len(firings) == 12
    # the same incident, whoever asks: by a later firing's id, from mid-flap, a page of one
    source = Incidents(f.store, f.h.config)
    again = source.get(incident_id(first.members[-1]), f.h.clock.now())
    assert again is not None and (again.id, len(again.members)) == (first.id, 13)
    assert [i.id for i in f.incidents(start=f.at[15])] == [first.id, later.id]
    assert [i.id for i in f.incidents(start=f.at[15], limit=2)] == [first.id, later.id]


def test_firings_that_do_not_flap_stay_incidents_of_their_own(flapper: Flapper) -> None:
    f = flapper
    f.checks(".xx" + "." * 8 + "xx" + "." * 8 + "x.")
    assert f.store.query(
        "SELECT count() AS n FROM monitor.alert_events WHERE event = 'flapping'"
    )[0]["n"] == 0  # fmt: skip
    assert [len(i.members) for i in f.incidents()] == [1, 1, 1]


BURN_ONLY = """
services:
  - {id: slo1, label: "SLO tight", type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1},
     slo: {target: 99.999, window: 1h}}
  - {id: web, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/"}
alert_rules:
  - {id: r-slo1, service: slo1, condition: "slo_burn 1h 5m > 1", channels: [hook]}
  - {id: r-web, service: "*", condition: "status >= FAILED", channels: [hook], enabled: false}
  - {id: r-web2, service: web, condition: "status >= FAILED", channels: [hook]}
status_page: {groups: [{name: Shop, services: [slo1]}]}
"""


def test_a_service_only_an_slo_burn_rule_selects_has_its_outage_as_an_incident(
    tmp_path: Path,
) -> None:
    """An SLO burn fires on an error budget spent, maybe never on a 40 s outage; counted as
    covering the service, its FAILED run was no incident, and /status showed nothing."""
    config = parse_config(BURN_ONLY, "t.yaml")
    config = config.model_copy(update={"dashboard": DashboardConfig.model_validate(
        {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}})})  # fmt: skip
    assert coverage(config) == {"slo1": False, "web": True}
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    clock = FakeClock(NOW - timedelta(hours=1))
    record(store, config, clock.now())
    h = Harness("", clock)
    recorder = Recorder(h)
    for mark in ".xxxx." + "." * 3:
        at = clock.advance(10)
        for sid in ("slo1", "web"):
            status = Status.FAILED if mark == "x" else Status.OK
            recorder.record(Svc(sid), CheckResult(status, f"{sid} {mark}"), at)
    h.insert_into(store)
    (found,) = Incidents(store, config).between(NOW - timedelta(days=1), clock.now())
    assert found.services == ["slo1"] and found.root.rule_id == ""
    assert found.duration(clock.now()) == timedelta(seconds=40)
    app = create_app(WebContext(config, store, clock, None))
    page = app.test_client().get("/status").get_data(as_text=True)
    assert f'data-incident="{found.id}"' in page and "SLO tight" in page
    store.close()


RULELESS = """
alerting: {group_wait: 0s, flapping: {window: 6}}
"""
HELD = """
alert_rules:
  - {id: web-down, service: web, condition: "status >= FAILED", for: 30s, channels: [hook]}
alerting: {group_wait: 0s, flapping: {window: 6}}
"""


@pytest.mark.parametrize(
    ("flapper", "members"),
    [(FLAPPY, "firings"),  # a rule without ``for:``: a firing a failed check
     (RULELESS, "runs"),  # no rule: a run of FAILED a failed check (flapping found on them)
     (HELD, "none")],  # ``for: 30s`` never met: no firing at all, the service still fails
    indirect=["flapper"], ids=["a-rule", "no-rule", "for-never-met"],
)  # fmt: skip
def test_a_flapping_service_is_one_incident_ongoing_throughout_and_told_once(
    flapper: Flapper, members: str
) -> None:
    """Every other check fails, 13 times: /status and the feed say "ongoing" at every
    look from when it flaps (never "resolved" between two failures), one entry, one
    line with the count; the dashboard lists one incident."""
    f = flapper
    f.checks("." + "x." * 3)  # the engine (or the status changes) need 6 checks to judge
    looks = []
    for _ in range(10):
        f.checks("x.")  # each look comes after an OK check, between two failures
        c = f.client()
        shown = sections(c.get("/status").get_data(as_text=True))
        looks.append(([e["title"] for e in entries(c)], shown.count('class="incident open"'),
                      "resolved" in shown))  # fmt: skip
    assert looks == [(["Ongoing: web"], 1, False)] * 10
    (incident,) = f.incidents()
    assert incident.end is None and incident.services == ["web"]
    kinds = {"firings": "web-down", "runs": "", "none": None}[members]
    failed = [m for m in incident.members if not m.flap]
    assert [m.rule_id for m in failed] == ([kinds] * 13 if kinds is not None else [])
    alerts = ["web-down:web"] if members == "firings" else []  # each alert once, not 13 times
    assert incident.as_dict(incident.start)["alerts"] == alerts
    (entry,) = entries(c)
    told = 13 if kinds is not None else 0
    word = "failures" if members == "runs" else "firings"  # no rule: nothing fired
    said = f"; flapping: {told} {word})." if told else "; flapping)."  # 0: none fired
    assert entry["summary"].count("web: from ") == 1 and said in entry["summary"], entry
    assert f'<p class="muted">{said[2:-2]}</p>' in shown
