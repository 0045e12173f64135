"""server.core.thresholds: pairs and bands of thresholds that contradict each other."""

from __future__ import annotations

from server.core.thresholds import band_problem, pair_problem


def test_degraded_past_failed_is_a_problem_whichever_way_the_measure_worsens() -> None:
    assert pair_problem(("age_degraded", 20), ("age_failed", 10)) is not None
    assert pair_problem(("age_degraded", 10), ("age_failed", 20)) is None
    assert pair_problem(("free_degraded", 5), ("free_failed", 10), "lower") is not None
    assert pair_problem(("free_degraded", 10), ("free_failed", 5), "lower") is None


def test_equal_or_unset_thresholds_agree_unless_equal_hides_the_milder_state() -> None:
    assert pair_problem(("d", 5), ("f", 5)) is None
    assert pair_problem(("d", 5), ("f", 5), equal_ok=False) is not None
    assert pair_problem(("d", None), ("f", 5)) is None


def test_overlapping_below_and_above_bands_are_a_problem() -> None:
    message = band_problem(("below_failed", 100), ("above_failed", 10))
    assert message is not None and "never reports OK" in message
    assert band_problem(("below_failed", 10), ("above_failed", 100)) is None
    assert band_problem(("below_failed", None), ("above_failed", 1)) is None
