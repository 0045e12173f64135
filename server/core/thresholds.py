"""Pairs and bands of thresholds that must not contradict each other.

A checker with a DEGRADED and a FAILED threshold on one measure promises that the
milder state comes first: as the measure worsens it passes the degraded threshold
before the failed one. Written the other way round (``backlog_age_degraded: 20d``
with ``backlog_age_failed: 10s``) the degraded state can never be seen, and a
below/above band that overlaps (``below_failed: 100`` with ``above_failed: 10``)
fails at every value. These functions word that as a config error: the names as
written, their values, and the fix. Used by checker settings models, the alert
rules check and the Temporal checkers alike (attack report 2, item 9).
"""

from __future__ import annotations

from typing import Literal

Worse = Literal["higher", "lower"]


def pair_problem(
    milder: tuple[str, float | None],
    severe: tuple[str, float | None],
    worse: Worse = "higher",
    *,
    equal_ok: bool = True,
) -> str | None:
    """The problem with a ``(name, value)`` pair of thresholds, or None if they agree.

    ``worse`` says which way the measure goes bad: ``"higher"`` (latency, backlog,
    error ratio: the milder threshold must be the lower value) or ``"lower"`` (free
    space, counts that must not drop: the milder threshold must be the higher value).
    Equal thresholds agree (the severe state wins) unless ``equal_ok`` is False (when
    the milder state is entered strictly past its threshold and the severe one at
    its own); an unset one (None) agrees with all.
    """
    (mild_name, mild), (severe_name, bad) = milder, severe
    if mild is None or bad is None or (mild == bad and equal_ok):
        return None
    if (mild >= bad) if worse == "higher" else (mild <= bad):
        side = "below" if worse == "higher" else "above"
        return (
            f"{mild_name} ({mild:g}) must be {side} {severe_name} ({bad:g}): the milder "
            f"state is reached first as the value {'rises' if worse == 'higher' else 'falls'}; "
            "swap them or change one"
        )
    return None


def band_problem(below: tuple[str, float | None], above: tuple[str, float | None]) -> str | None:
    """The problem when a ``below_*`` threshold is not under an ``above_*`` one: the two
    bands overlap and every value is in one of them (always that state), or None."""
    (low_name, low), (high_name, high) = below, above
    if low is None or high is None or low < high:
        return None
    return (
        f"{low_name} ({low:g}) must be below {high_name} ({high:g}): otherwise every "
        "value is below one or above the other and the check never reports OK"
    )
