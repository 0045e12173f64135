"""What the public /status page and its feed make of an incident's members.

The view (:func:`server.web.status_incidents.shown`) over incidents grouped by the
real :func:`server.analytics.incident_model.group` from members as the alert log and
the status transitions give them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from server.analytics.incident_model import Member, group
from server.config.models import Config
from server.validation import parse_config
from server.web.feed import updated
from server.web.status_incidents import burn_rules, shown
from tests.web_fixture import NOW

T0 = NOW - timedelta(hours=1)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(sid: str, start: int, end: int | None) -> Member:
    """A rule-less run of FAILED checks, minutes after T0."""
    return Member(f"status:{sid}@{start}", "", sid, "critical", at(start),
                  None if end is None else at(end), "down")  # fmt: skip


def firing(rule: str, sid: str, start: int, end: int | None, cause: str = "") -> Member:
    return Member(f"{rule}:{sid}@{start}", rule, sid, "critical", at(start),
                  None if end is None else at(end), "firing", cause)  # fmt: skip


def config() -> Config:
    return parse_config(
        """
services:
  - {id: thou, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1},
     slo: {target: 99.9, window: 30d}}
alert_rules:
  - {id: thou-burn, service: thou, condition: "slo_burn"}
  - {id: thou-down, service: thou, condition: "status >= FAILED"}
""",
        "test.yaml",
    )


def test_an_slo_burn_still_firing_after_recovery_leaves_the_outage_resolved() -> None:
    """thou failed with no rule; a burn rule added during the run fired and joined it,
    and keeps firing after thou is back (its short window): the page shows thou's
    outage resolved at its recovery, as its own table shows thou up."""
    burns = burn_rules(config())
    assert burns == {"thou-burn"}
    (incident,) = group([run("thou", 0, 30), firing("thou-burn", "thou", 20, None)])
    assert incident.end is None  # the dashboard's incident: the burn still fires
    (public,) = shown([incident], {"thou"}, burns)
    assert (public.start, public.end) == (at(0), at(30))
    assert public.id == incident.id


def test_an_incident_that_is_only_an_slo_burn_is_not_on_the_public_page() -> None:
    found = group([firing("thou-burn", "thou", 5, None)])
    assert shown(found, {"thou"}, burn_rules(config())) == []


def test_a_feed_entry_moves_forward_when_a_resolved_incident_reopens() -> None:
    """hidden hdb's outage caused dep1's; dep1 recovered (the public entry resolved),
    then failed again while hdb still fired, joining the same incident."""
    cause = firing("hdb-down", "hdb", 0, None)
    before = shown(group([cause, firing("down", "dep1", 1, 5, "hdb")]), {"dep1"})
    after = shown(group([cause, firing("down", "dep1", 1, 5, "hdb"),
                         firing("down", "dep1", 8, None, "hdb")]), {"dep1"})  # fmt: skip
    assert before[0].id == after[0].id and before[0].end == at(5) and after[0].end is None
    assert updated(before[0]) == at(5)
    assert updated(after[0]) == at(8)


def test_an_slo_burn_firing_across_two_outages_does_not_chain_them() -> None:
    """thou (only an slo_burn rule selects it: its outages are runs of FAILED) fails, the
    burn fires during the outage and keeps firing after it; a second outage while the
    burn still fires is a new incident, not the first one reopened."""
    burns = burn_rules(config())
    first, burn, second = run("thou", 0, 5), firing("thou-burn", "thou", 3, None), run(
        "thou", 20, 25)  # fmt: skip
    found = group([second, burn, first], burns=burns)
    assert [[m.key for m in i.members] for i in found] == [
        [first.key, burn.key], [second.key]]  # fmt: skip
    public = shown(found, {"thou"}, burns)
    assert [(p.start, p.end) for p in public] == [(at(20), at(25)), (at(0), at(5))]
    # and an outage that began while the burn fired, the burn having begun on its own
    alone = firing("thou-burn", "thou", 0, None)
    assert len(group([alone, run("thou", 10, 15)], burns=burns)) == 2
