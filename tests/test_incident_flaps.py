"""Flapping found on status changes (services no rule watches) is the engine's flapping.

:func:`server.analytics.flap_replay.detect` sees only the stored status changes and
the interval; the alert engine's :class:`server.alerting.history.History` sees every
check. Over the same checks, with the same window and thresholds, they must declare
and end flapping at the same checks.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from checkers.base import CheckResult, Status
from server.alerting.history import History
from server.analytics.flap_replay import detect

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)
STATUSES = (Status.OK, Status.FAILED, Status.DEGRADED)


def engine(checks: list[Status], window: int, high: float, low: float) -> list[tuple[int, int]]:
    """(declared, stopped or -1) as check indices, by the engine's own history."""
    history, out = History(STEP.total_seconds(), window), []
    for i, status in enumerate(checks):
        history.add(CheckResult(status, ""), T0 + i * STEP, STEP, STEP)
        flap = history.update_flapping(high, low)
        if flap is True:
            out.append((i, -1))
        elif flap is False:
            out[-1] = (out[-1][0], i)
    return out


def from_changes(checks: list[Status], window: int, high: float,
                 low: float) -> list[tuple[int, int]]:  # fmt: skip
    moves = [(T0 + i * STEP, int(checks[i - 1]), int(s)) for i, s in enumerate(checks)
             if i and s != checks[i - 1]]  # fmt: skip
    end = T0 + (len(checks) - 1) * STEP
    found = detect(moves, STEP.total_seconds(), end, window=window, high=high, low=low)
    return [((a - T0) // STEP, -1 if b is None else (b - T0) // STEP) for a, b in found]


@pytest.mark.parametrize("seed", range(40))
def test_flapping_on_status_changes_starts_and_stops_at_the_engines_checks(seed: int) -> None:
    rng = random.Random(seed)
    window = rng.choice([3, 6, 21])
    high, low = rng.choice([(0.5, 0.25), (0.3, 0.1), (0.6, 0.4)])
    checks = [Status.OK] * window  # the engine judges from its window-th check
    for _ in range(rng.randint(5, 12)):  # stretches: steady, or changing at some rate
        rate, length = rng.choice([0.0, 0.1, 0.5, 0.9]), rng.randint(1, 3 * window)
        for _ in range(length):
            checks.append(rng.choice(STATUSES) if rng.random() < rate else checks[-1])
    assert from_changes(checks, window, high, low) == engine(checks, window, high, low)


def test_every_other_check_failing_flaps_and_steady_failing_does_not() -> None:
    flapping = [Status.OK] * 6 + [Status.FAILED, Status.OK] * 10 + [Status.OK] * 10
    assert engine(flapping, 6, 0.5, 0.25) != []
    assert from_changes(flapping, 6, 0.5, 0.25) == engine(flapping, 6, 0.5, 0.25)
    steady = [Status.OK] * 6 + [Status.FAILED] * 20
    assert from_changes(steady, 6, 0.5, 0.25) == []


def _settles_after(new_window: int | None) -> int | None:
    """Steady checks a service flapping under a window of 21 takes to settle, its window
    raised to ``new_window`` (None: left as it was) when the steady run begins."""
    history = History(STEP.total_seconds(), 21)
    at = T0
    for i in range(30):
        history.add(CheckResult(STATUSES[i % 2], ""), at, STEP, STEP)
        history.update_flapping(0.5, 0.25)
        at += STEP
    assert history.flapping
    if new_window is not None:
        history.resize(new_window)  # as server.alerting.catalog does on a reload
    for i in range(1, 200):  # steady from now on
        at += STEP
        history.add(CheckResult(Status.FAILED, ""), at, STEP, STEP)
        if history.update_flapping(0.5, 0.25) is False:
            return i
    return None


@pytest.mark.parametrize("new_window", [1000, 40])
def test_a_service_flapping_when_its_window_is_raised_settles_as_soon_as_before(
    new_window: int,
) -> None:
    """Raised by a reload while a service flaps (the catalog keeps its checks, under the
    new bound), its window holds fewer checks than it asks for; flapping used to be
    judged only over a full window, so it stayed flapping until 1,000 checks came
    (atk14e: 16.7 h at 60 s), holding the alerts of a steady outage; then over every
    check held, which still took ~50-80 steady checks (atk16). It now settles over the
    old window's count of newest checks until the new window fills: as soon as it would
    have without the reload."""
    unchanged = _settles_after(None)
    assert unchanged is not None and unchanged < 21
    assert _settles_after(new_window) == unchanged
