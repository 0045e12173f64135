"""A note stays with its incident when a later re-grouping merges that incident into
another (a flapping period found later, a cause found later, a rule added later).

Real chDB, the real recorder feeding the real alert engine, the dashboard's API
through Flask's test client (tests.support.incident_site). ``web`` has no rule and
fails every other check: its first runs are incidents of their own until the status
changes show it flapping, then the flapping period's incident holds them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.incident_site import NOW, TOKEN, Site

RULELESS = """
alerting: {group_wait: 0s, flapping: {window: 10}}
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, RULELESS, step=timedelta(seconds=10), shown=["web"],
             start=NOW - timedelta(hours=1))  # fmt: skip
    yield s
    s.close()


def listed(s: Site) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = s.client().get("/api/v1/incidents").get_json()["incidents"]
    return sorted(found, key=lambda i: i["start"])


def note_of(s: Site, iid: str) -> str | None:
    answer = s.client().get(f"/api/v1/incidents/{iid}")
    assert answer.status_code == 200
    note: str | None = answer.get_json()["note"]
    return note


@pytest.mark.parametrize("noted", [[1], [0, 1], [1, 0]], ids=["second", "both", "first-last"])
def test_a_note_on_an_incident_a_flapping_period_merges_goes_with_it(
    site: Site, noted: list[int]
) -> None:
    """Decided: the merged incident carries the newest note saved on it or on any
    incident it took in; every old id still opens it, with that note."""
    s = site
    s.play({"web": ".xx..xx.."})  # two runs of FAILED, not flapping yet: two incidents
    before = listed(s)
    assert [i["end"] is not None for i in before] == [True, True]
    c = s.client()
    for n, which in enumerate(noted):
        s.h.clock.advance(1)
        put = c.put(f"/api/v1/incidents/{before[which]['id']}/note",
                    json={"note": f"note {n}"}, headers=TOKEN)  # fmt: skip
        assert put.status_code == 200
    newest = f"note {len(noted) - 1}"
    assert note_of(s, before[noted[-1]]["id"]) == newest

    s.play({"web": "x.x.x.x.x.x.x."})  # now it flaps: one incident holds every run
    (merged,) = listed(s)
    assert merged["end"] is None
    assert merged["note"] == newest
    for old in before:
        assert note_of(s, old["id"]) == newest
    page = s.client().get(f"/incidents/{before[1]['id']}", headers=TOKEN)
    assert page.status_code == 200 and newest in page.get_data(as_text=True)
    # the older note of the other incident is not hidden by the merge (atk14e): listed
    # under "earlier notes", on the API and the page
    older = [f"note {n}" for n in range(len(noted) - 1) if noted[n] != noted[-1]]
    assert [n["note"] for n in merged["earlier_notes"]] == older
    assert all(text in page.get_data(as_text=True) for text in older)
    # another dashboard over the same tables, still showing an old incident, saves on
    # its id later: the newest note wins wherever it was saved (the merged incident's
    # own id holds "note 1" in the first-last case, so only its members can tell)
    (other,) = [i["id"] for i in before if i["id"] != merged["id"]][:1]
    s.h.clock.advance(1)
    s.store.insert("incident_notes", ("incident_id", "note", "author", "updated_at"),
                   [(other, "Seen from the other dashboard.", "ops", s.h.clock.now())])  # fmt: skip
    (again,) = listed(s)
    assert again["id"] == merged["id"] and again["note"] == "Seen from the other dashboard."


def test_clearing_the_merged_incidents_note_clears_the_one_it_took_in(site: Site) -> None:
    """Clearing is a save too: the newest save wins, so a cleared note stays cleared."""
    s = site
    s.play({"web": ".xx..xx.."})
    before = listed(s)
    c = s.client()
    c.put(f"/api/v1/incidents/{before[1]['id']}/note", json={"note": "Disk."}, headers=TOKEN)
    s.play({"web": "x.x.x.x.x.x.x."})
    (merged,) = listed(s)
    assert merged["note"] == "Disk."
    s.h.clock.advance(1)
    c.put(f"/api/v1/incidents/{merged['id']}/note", json={"note": ""}, headers=TOKEN)
    (cleared,) = listed(s)
    assert cleared["note"] is None and note_of(s, before[1]["id"]) is None
