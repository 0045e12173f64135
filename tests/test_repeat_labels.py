"""Repeats follow what each channel was actually told: none queues behind a firing still
on its way, the first comes ``repeat_interval`` after the firing was delivered, and a
channel's first notice of an incident is the firing, even after a kill during group_wait.

Real loopback receiver (the harness's), real chDB for the restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from checkers.base import Status
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock

RULES = """
alert_rules:
  - {{id: down, service: db, condition: "status >= FAILED", repeat_interval: {repeat},
     channels: [hook]}}
"""


def sent_times(h: Harness, seconds: float, step: float = 0.25) -> list[datetime]:
    """Tick ``seconds`` of the fake clock; the clock time at which each notice arrived."""
    times: list[datetime] = []
    for _ in range(int(seconds / step)):
        h.tick(step)
        times += [h.clock.now()] * (len(h.kinds()) - len(times))
    return times


def test_no_repeat_queues_behind_a_retried_firing_and_the_first_waits_a_full_interval() -> None:
    """atk1 F4: group_wait 2 s = repeat_interval 2 s, the receiver failing for 4 s: the
    firing alone is retried, and the first repeat comes 2 s after it was delivered, not
    right behind it."""
    h = Harness(RULES.format(repeat="2s"), group_wait="2s")
    h.receiver.failing = True
    try:
        h.result("db", Status.FAILED)
        for _ in range(24):  # 2 s in group_wait, then 4 s of failed attempts
            h.tick(0.25)
        assert h.kinds() == [] and h.events("repeat") == []
        (delivery,) = h.engine.alerts()[0]["delivery"]
        assert delivery["state"] == "retrying" and delivery["kind"] == "alert"
    finally:
        h.receiver.failing = False
    times = sent_times(h, 12)
    assert h.kinds()[:3] == ["alert", "repeat", "repeat"]
    assert times[1] - times[0] >= timedelta(seconds=2), times
    assert times[2] - times[1] >= timedelta(seconds=2), times


def test_after_a_kill_during_group_wait_a_channels_first_notice_is_the_firing(
    store: EmbeddedStorage,
) -> None:
    """atk1 F7: killed 1.2 s into group_wait, started again after more than
    repeat_interval: the channel never heard of the incident, so it gets the firing
    (kind "alert"), and repeats only after that."""
    apply_schema(store, Target("monitor"))
    rules = RULES.format(repeat="4s")
    h = Harness(rules, group_wait="2s")
    h.result("db", Status.FAILED)
    h.tick(1.2)
    assert h.kinds() == []
    h.persist(store)  # what was on disk at the kill: the firing, queued in no outbox

    later = FakeClock(h.clock.now() + timedelta(seconds=6))
    h2 = Harness(rules, later, storage=store, path=h.path, group_wait="2s")
    h2.engine.restore()
    h2.deliver()
    sent_times(h2, 3)
    assert h2.kinds() == ["alert"], h2.kinds()
    assert h2.told() == [("alert", "db", "firing")]
    assert h2.events("repeat") == []
    sent_times(h2, 7)
    assert h2.kinds()[:2] == ["alert", "repeat"]


def test_after_a_firing_that_failed_for_good_the_next_notice_is_the_firing_not_a_repeat() -> None:
    """The channel refused the firing (HTTP 400: permanent); it never heard of the
    incident, so what repeat_interval brings it next is labelled the firing."""
    h = Harness(RULES.format(repeat="2s"))
    h.receiver.fail_status, h.receiver.fail_next = 400, 1
    try:
        h.result("db", Status.FAILED)
        (delivery,) = h.engine.alerts()[0]["delivery"]
        assert (delivery["state"], delivery["kind"]) == ("failed", "alert")
    finally:
        h.receiver.fail_status, h.receiver.fail_next = 500, 0
    sent_times(h, 2.5)
    assert h.kinds() == ["alert"]
    assert [e["event"] for e in h.events() if e["event"] in ("notify", "repeat")] == ["notify"]
    sent_times(h, 2.5)
    assert h.kinds() == ["alert", "repeat"]
