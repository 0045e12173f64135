"""Service level objectives: availability, error budget and burn rate, from check counts.

Pure arithmetic over counts of good and total checks; reading the counts is
:mod:`server.analytics.uptime`'s job, alerting on them the ``slo_burn``
condition's. Definitions follow the Google SRE Workbook (Beyer et al., 2018):

- **SLI** (ch. 2, "Implementing SLOs"): good events / valid events. A check is
  valid; it is good when it found the service up (OK or DEGRADED, the same
  "up" as uptime: :data:`server.core.status.UP`).
- **Error budget**: ``1 - target``, the share of checks allowed to be bad over
  the SLO window (99.9 % over 30 days: 0.1 %, or 43.2 minutes of the window).
- **Budget in minutes**: the window's allowance (``budget x window``: 43.2 min
  for 99.9 % over 30 days) less the time spent down, measured as the bad share
  of the time the checks *cover*: the window, or, for a service younger than
  its window, the time since its first check. A day-old service down 10 minutes
  has spent 10 of its 43.2 minutes, not 0.7 % x 30 days = 300 (spreading a few
  checks' bad share over the whole window invents downtime nobody saw).
  **Budget remaining** is that as a share of the allowance: ``1 - spent / allowed``,
  below zero once overspent; for a service as old as its window it is the
  workbook's ``1 - bad share / error budget``.
- **Burn rate** (ch. 5, "Alerting on SLOs"): bad share over a window divided
  by the error budget. At 1 the budget lasts exactly the SLO window; at 14.4
  over one hour, an hour spends 2 % of a 30-day budget.
- **Multi-window, multi-burn-rate alerts** (ch. 5, "6: Multiwindow,
  Multi-Burn-Rate Alerts", table 5-8): alert when the burn rate over a long
  window *and* over a short window (1/12 of it, so the alert resets soon after
  the burning stops) both exceed the rate that would spend a given share of
  the budget in the long window. :data:`BURN_ALERTS` holds the workbook's
  recommendation (2 % in 1 h and 5 % in 6 h page, 10 % in 3 days makes a
  ticket); :func:`burn_threshold` turns a share into a rate for any SLO window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from server.core.humanize import exact

_ZERO = timedelta(0)


@dataclass(frozen=True)
class Objective:
    """``target`` percent of checks good over a rolling ``window`` (e.g. 99.9, 30 days)."""

    target: float
    window: timedelta

    @property
    def budget(self) -> float:
        """The error budget as a share of checks: 0.001 for 99.9 %.

        Worked out in decimal from the target as written: in floats ``1 - 99.9 / 100``
        is 0.0010000000000000009 (an all-bad hour then burns "over" 1,000x), and
        for 99.99999999999999 the float difference is 11 % off the budget."""
        return float((100 - Decimal(repr(float(self.target)))) / 100)

    @property
    def budget_minutes(self) -> float:
        """The error budget as minutes of the window: 43.2 for 99.9 % over 30 days."""
        return self.budget * self.window.total_seconds() / 60.0


@dataclass(frozen=True)
class Counts:
    """Checks in a period: ``good`` of them found the service up, of ``total``.

    Whole numbers when counted; fractional when part of an hour was estimated pro
    rata from a summary (see :func:`server.analytics.uptime.counts`).
    """

    good: float
    total: float

    @property
    def bad_share(self) -> float | None:
        """Share of bad checks (0..1); None without checks."""
        return (self.total - self.good) / self.total if self.total else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.good + other.good, self.total + other.total)


def availability(counts: Counts) -> float | None:
    """Percent of good checks (the SLI as a percentage); None without checks."""
    bad = counts.bad_share
    return None if bad is None else 100.0 * (1.0 - bad)


def burn_rate(counts: Counts, objective: Objective) -> float | None:
    """How fast ``counts`` spend the budget: bad share / error budget; None without checks."""
    bad = counts.bad_share
    return None if bad is None else bad / objective.budget


def burn_threshold(budget_share: float, long_window: timedelta, slo_window: timedelta) -> float:
    """The burn rate that spends ``budget_share`` of the budget in ``long_window``.

    ``budget_share x slo_window / long_window``: 2 % in 1 h of a 30-day SLO is
    14.4, as in the workbook's table 5-8.
    """
    return budget_share * slo_window.total_seconds() / long_window.total_seconds()


@dataclass(frozen=True)
class BurnAlert:
    """One row of the workbook's table 5-8: fire when both windows burn above the rate.

    The rate is ``rate`` when given (a rule's own ``slo_burn 1h 5m > 14.4``), else
    the one spending ``budget_share`` of the budget in ``long`` (:func:`burn_threshold`).
    """

    long: timedelta
    short: timedelta
    budget_share: float
    severity: str  # "page" or "ticket", the workbook's words
    rate: float | None = None

    def threshold(self, objective: Objective) -> float:
        if self.rate is not None:
            return self.rate
        return burn_threshold(self.budget_share, self.long, objective.window)


BURN_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert(timedelta(hours=1), timedelta(minutes=5), 0.02, "page"),
    BurnAlert(timedelta(hours=6), timedelta(minutes=30), 0.05, "page"),
    BurnAlert(timedelta(days=3), timedelta(hours=6), 0.10, "ticket"),
)
# What a bare ``slo_burn`` condition pages on: the workbook's two "page" rows.
PAGE_ALERTS: tuple[BurnAlert, ...] = tuple(a for a in BURN_ALERTS if a.severity == "page")
# Every window any alert (and the pages' 1 h / 6 h burn rates) needs counts for.
BURN_WINDOWS: tuple[timedelta, ...] = tuple(
    sorted({w for a in BURN_ALERTS for w in (a.long, a.short)})
)


def burning(
    objective: Objective,
    counts: Mapping[timedelta, Counts],
    alerts: tuple[BurnAlert, ...] = BURN_ALERTS,
) -> BurnAlert | None:
    """The first alert of ``alerts`` whose long and short windows both burn above its rate.

    ``counts`` maps a window length to the checks in the window ending now; a
    window without counts (or without checks) does not burn. None: no alert.
    """
    for alert in alerts:
        threshold = alert.threshold(objective)
        rates = [burn_rate(counts[w], objective) if w in counts else None
                 for w in (alert.long, alert.short)]  # fmt: skip
        if all(r is not None and r > threshold for r in rates):
            return alert
    return None


@dataclass(frozen=True)
class SloReport:
    """What the service page, overview and API show for one service's objective."""

    objective: Objective
    window: Counts
    burn_1h: float | None
    burn_6h: float | None
    covered: timedelta | None = None  # time the window's checks span; None: all of it

    @property
    def availability(self) -> float | None:
        return availability(self.window)

    @property
    def covered_minutes(self) -> float:
        """Minutes of the window the checks span (the window, or less for a young service;
        0 without checks in the window)."""
        window = self.objective.window
        if not self.window.total:
            return 0.0
        covered = window if self.covered is None else min(max(self.covered, _ZERO), window)
        return covered.total_seconds() / 60.0

    @property
    def spent_minutes(self) -> float | None:
        """Estimated minutes down in the window: bad share x covered minutes."""
        bad = self.window.bad_share
        return None if bad is None else bad * self.covered_minutes

    @property
    def budget_remaining(self) -> float | None:
        """Share of the window's allowance left (1 untouched, < 0 overspent)."""
        spent, allowed = self.spent_minutes, self.objective.budget_minutes
        if spent is None:
            return None
        return 1.0 - spent / allowed if allowed > 0 else (1.0 if spent == 0 else -math.inf)

    @property
    def remaining_minutes(self) -> float | None:
        """Allowed minutes less spent minutes (negative: overspent by that much)."""
        spent = self.spent_minutes
        return None if spent is None else self.objective.budget_minutes - spent

    @property
    def met(self) -> bool | None:
        value = self.availability
        return None if value is None else value >= self.objective.target

    def as_dict(self) -> dict[str, object]:
        """The API's ``slo`` object.

        Figures keep 4 significant digits (:func:`significant`), not fixed decimals:
        a 99.9999 % budget of 0.0432 min is not 0.0, and a 76,924,778,632x burn is
        not cut to a readable-looking lie. ``availability`` keeps the target's
        decimals plus two, so it never reads as the target when it misses it.
        """
        left = self.budget_remaining
        return {
            "target": self.objective.target,
            "window_seconds": int(self.objective.window.total_seconds()),
            "covered_seconds": round(self.covered_minutes * 60),
            "checks": round(self.window.total),
            "good": round(self.window.good),
            "availability": _round(self.availability, max(4, decimals(self.objective.target) + 2)),
            "met": self.met,
            "error_budget_minutes": significant(self.objective.budget_minutes),
            "error_budget_spent_minutes": significant(self.spent_minutes),
            "error_budget_remaining_minutes": significant(self.remaining_minutes),
            "error_budget_remaining_percent": significant(None if left is None else 100 * left),
            "burn_rate_1h": significant(self.burn_1h),
            "burn_rate_6h": significant(self.burn_6h),
        }


def report(
    objective: Objective, counts: Mapping[timedelta, Counts], covered: timedelta | None = None
) -> SloReport:
    """The report from counts over the SLO window, the last hour and the last six hours.

    ``covered``: how much of the window the service's checks span (now - first
    check, for a service younger than the window); None when it is the whole window.
    """
    empty = Counts(0, 0)

    def rate(window: timedelta) -> float | None:
        return burn_rate(counts.get(window, empty), objective)

    return SloReport(
        objective,
        counts.get(objective.window, empty),
        rate(timedelta(hours=1)),
        rate(timedelta(hours=6)),
        covered,
    )


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def significant(value: float | None, digits: int = 4) -> float | None:
    """``value`` to ``digits`` significant digits (None stays None; inf becomes None,
    which JSON cannot carry)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def decimals(target: float) -> int:
    """Decimals a target is written with: 2 for 99.95, 10 for 99.9999999999, 14 for
    99.99999999999999 (every digit the float holds, :func:`server.core.humanize.exact`)."""
    text = exact(target)
    return len(text.split(".")[1]) if "." in text else 0
