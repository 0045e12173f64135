"""The public /status page, its Atom feed and the incidents API agree at any moment.

A service no rule watches flaps, then settles: its flapping period ends once enough
steady checks follow its last change (the engine's ``flapping_end`` row, written with
the check that settles it). The page and the feed keep
their answers while nothing they read changed (:mod:`server.web.read_cache`); they
kept "ongoing" after the API (which keeps nothing) said "resolved", until some part
changed. In process (chDB, the real recorder, a pinned clock) and with a real daemon
(``insert_interval: 1s``), waiting on its own counters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.support.incident_site import NOW, TOKEN, entries, sections
from tests.test_daemon import no_leaked_daemons
from tests.test_daemon_alerting import Lightbulb, Worker, worker
from tests.test_incident_flapping_and_burns import INTERVAL, RULELESS, Flapper

__all__ = ["no_leaked_daemons", "worker"]  # fixtures, shared


@pytest.fixture
def flapper(tmp_path: Path) -> Iterator[Flapper]:
    f = Flapper(tmp_path, RULELESS, step=INTERVAL, shown=["web"], start=NOW - timedelta(hours=1))
    yield f
    f.close()


def test_a_kept_status_page_says_resolved_when_steady_checks_end_the_flapping(
    flapper: Flapper,
) -> None:
    """One dashboard kept across requests (its read cache lives on) against one made for
    each look: after the last change only OK checks come (rows of service_status, no
    transition), and at every check both say the same, "ongoing" then "resolved"."""
    f = flapper
    f.checks("." + "x." * 8)  # web, no rule: flapping, as the engine's flapping row says
    kept = f.client()
    looks = []
    for _ in range(8):
        page = sections(kept.get("/status").get_data(as_text=True))
        fresh = f.client()
        assert page == sections(fresh.get("/status").get_data(as_text=True))
        assert entries(kept) == entries(fresh)
        looks.append(page.count('class="incident open"'))
        f.checks(".")
    assert looks[0] == 1 and looks[-1] == 0, looks  # it did flap, and it did settle


def test_a_range_reaching_past_now_assumes_no_steady_checks_to_come(flapper: Flapper) -> None:
    """Flapping found on status changes ends after enough steady checks: the API asked
    for a range ending in an hour still says "ongoing" now, as /status does."""
    f = flapper
    f.checks("." + "x." * 8)
    c, now = f.client(), f.h.clock.now()
    ahead = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = c.get(f"/api/v1/incidents?to={ahead}&range=1d", headers=TOKEN).get_json()
    assert [i["open"] for i in got["incidents"]] == [True]
    assert sections(c.get("/status").get_data(as_text=True)).count('class="incident open"') == 1


def up(lb: Lightbulb) -> int | None:
    """The worker's last check as the daemon holds it (1 up, 0 not), from /metrics."""
    found = re.search(r'^lightbulb_service_up\{[^}]*service="worker"[^}]*\} (\S+)$',
                      lb.get("/metrics"), re.M)  # fmt: skip
    return int(float(found.group(1))) if found else None


def api(lb: Lightbulb) -> list[tuple[str, bool]]:
    found: list[dict[str, Any]] = json.loads(lb.get("/api/v1/incidents"))["incidents"]
    return [(i["id"], i["open"]) for i in found]


def page(lb: Lightbulb) -> list[tuple[str, bool]]:
    found = re.finditer(
        r'<article class="incident( open)?" id="incident-([^"]+)"', lb.get("/status")
    )
    return [(m.group(2), m.group(1) == " open") for m in found]


def feed(lb: Lightbulb) -> list[tuple[str, bool]]:
    xml = lb.get("/status/feed.atom")
    titles = re.findall(r"<entry><title>(\w+):", xml)
    ids = re.findall(r'href="[^"]*/status#incident-([^"]+)"', xml)
    return [(i, t == "Ongoing") for i, t in zip(ids, titles, strict=True)]


def test_a_daemons_status_page_feed_and_api_agree_while_a_service_flaps_and_settles(
    tmp_path: Path, worker: Worker
) -> None:
    """The worker (no rule) is killed and started at every check until its changes flap,
    then left up. After each check, once the API has moved on, the page and the feed
    show what it shows: the same incidents, open or resolved alike."""
    lb = Lightbulb(tmp_path, worker, "  {}", "{flapping: {window: 12}}")
    text = lb.config.read_text().replace("insert_interval: 200ms", "insert_interval: 1s")
    lb.config.write_text(re.sub(r"alert_rules:\n  - .*\n .*\n", "alert_rules: []\n", text))
    daemon = lb.start()
    lb.wait_checks(2)
    for i in range(10):  # every other check fails: flapping, one incident ongoing
        (worker.kill if i % 2 == 0 else worker.start)()
        assert wait_until(lambda: up(lb) == i % 2, 20)  # noqa: B023 - this round's
    assert wait_until(lambda: [o for _, o in api(lb)] == [True], 30), api(lb)
    seen = []
    for _ in range(12):  # steady OK checks end it, with no transition stored
        lb.wait_checks(1)
        before = api(lb)
        shown = (page(lb), feed(lb))
        if api(lb) == before:  # no row landed between the three reads
            assert shown == (before, before), (before, shown)
            seen.append(before[0][1])
    assert seen[0] is True and seen[-1] is False, seen  # compared while open and after
    code, _ = daemon.stop()
    assert code == 0, daemon.output
