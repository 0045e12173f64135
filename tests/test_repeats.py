"""A repeating failure is due a line at its start, then once per ``every`` s with the
count of those not logged; its end is said once, after ``settle`` s of successes only.

:class:`server.core.repeats.Repeats` alone, its clock pinned and moved; the thread
test runs real threads against one instance. Times are binary-exact (halves,
quarters), so edges are exact: a line is due at ``every`` s, not before; an episode
ends at ``settle`` s of successes, not before.
"""

from __future__ import annotations

from server.core.repeats import Repeats
from tests.support.clock import FakeClock


def test_a_failure_repeating_is_logged_first_then_each_minute_with_the_count_between() -> None:
    clock = FakeClock()
    r = Repeats(clock=clock)
    assert (r.every, r.settle, r.failing) == (60.0, 0.0, False)
    assert r.due() == 0 and r.failing  # the first: logged, nothing before it
    said = []
    for _ in range(119):  # one every 0.5 s: 59.5 s
        clock.advance(0.5)
        said.append(r.due())
    assert said == [None] * 119  # within the minute: counted, not logged
    clock.advance(0.5)  # 60 s since the first line, exactly
    assert r.due() == 119  # logged, with the 119 that were not
    clock.advance(59.75)
    assert r.due() is None
    clock.advance(0.25)
    assert r.due() == 1  # the count starts again after each line


def test_a_success_ends_the_episode_and_the_next_failure_starts_a_new_one() -> None:
    clock = FakeClock()
    r = Repeats(every=10, clock=clock)
    assert r.ok() is None  # nothing failing: nothing to say
    for _ in range(5):
        r.due()
        clock.advance(1)
    assert r.ok() == 5 and not r.failing  # settle 0: over at the first success, 5 failed
    assert r.ok() is None  # said once
    assert r.due() == 0 and r.failing  # a new episode: logged at once, nothing unlogged
    clock.advance(1)
    assert r.due() is None
    assert r.ok() == 2  # this episode's failures only


def test_an_episode_ends_only_after_settle_seconds_of_successes_alone() -> None:
    clock = FakeClock()
    r = Repeats(every=60, clock=clock, settle=10)
    assert r.due() == 0
    clock.advance(1)
    assert r.ok() is None  # successes since now
    clock.advance(9.75)
    assert r.ok() is None and r.failing
    r.due()  # a failure 9.75 s into the successes: they start again
    for _ in range(10):
        clock.advance(1)
        assert r.ok() is None  # the first starts the successes, the tenth is 9 s after it
    clock.advance(1)
    assert r.ok() == 2 and not r.failing  # 10 s after the first success since the failure
    assert r.due() == 0  # a new episode; its unlogged count started from zero


def test_an_unlogged_count_is_not_carried_into_the_next_episode() -> None:
    clock = FakeClock()
    r = Repeats(every=60, clock=clock)
    r.due()
    for _ in range(7):
        clock.advance(1)
        assert r.due() is None
    assert r.ok() == 8
    clock.advance(1)
    assert r.due() == 0  # not 7
    clock.advance(60)
    assert r.due() == 0  # nothing went unlogged in this episode
