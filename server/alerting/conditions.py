"""Alert rule conditions, parsed once at config load into small typed values.

Grammar (``VALUE`` is a number, or the word ``threshold`` for the rule's
``threshold`` field; ``OP`` is one of ``> >= < <= == !=``):

- ``status OP VALUE``; VALUE may also be a status name (``status >= FAILED``)
- ``[avg|max|min|last] metric NAME OP VALUE``; the aggregate runs over the
  rule's ``for`` window, ``last`` (the default) takes the newest sample
- ``absent``: no result for ``threshold`` intervals (threshold >= 1)
- ``consecutive_failures OP VALUE``
- ``log_errors OP VALUE``: ERROR-level log rows within ``for``
- ``new_error_pattern``: an error pattern never seen before first appeared within
  ``for`` (1 h when ``for`` is 0)
- ``anomaly METRIC z OP VALUE``: the z-score of the metric's newest value against
  its learned baseline for this hour of the week (``error_logs``: this hour's
  ERROR rows); never true before the baseline has ``baselines.min_samples``
- ``error_pattern_rate OP VALUE``: occurrences per minute of the service's most
  frequent error pattern within ``for`` (5 min when ``for`` is 0)
- ``slo_burn``: the service's error budget (``services[].slo``) burns fast over a
  long and a short window both; alone, the Google SRE workbook's two paging pairs
  (1 h and 5 m above 14.4, 6 h and 30 m above 6, for a 30-day objective); or one
  pair of your own, ``slo_burn LONG [SHORT] > VALUE`` (``>`` only) (SHORT defaults to LONG / 12):
  see :mod:`server.analytics.slo`

A condition that does not parse is a config error at ``alert_rules[i].condition``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from server.core import numbers, status
from server.core.status import Status
from server.core.units import format_duration, parse_duration

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
EXAMPLES = (
    "status >= FAILED, metric <name> > <number|threshold>, avg metric <name> > threshold, "
    "absent, consecutive_failures >= <n>, log_errors > <n>, new_error_pattern, "
    "error_pattern_rate > <per minute>, anomaly <metric> z > <n>, slo_burn, slo_burn 1h 5m > <rate>"
)
_TOKEN = re.compile(r"\s*(>=|<=|==|!=|>|<|[^\s<>=!]+)")
Aggregate = Literal["last", "avg", "max", "min"]


class ConditionError(ValueError):
    """Worded for a config report: what is wrong and what would be right."""


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float | None  # None: the rule's threshold

    def holds(self, observed: float, threshold: float) -> bool:
        target = threshold if self.value is None else self.value
        return OPS[self.op](observed, target)


@dataclass(frozen=True)
class StatusCondition:
    compare: Comparison


@dataclass(frozen=True)
class MetricCondition:
    name: str
    aggregate: Aggregate
    compare: Comparison


@dataclass(frozen=True)
class AbsentCondition:
    pass


@dataclass(frozen=True)
class ConsecutiveFailures:
    compare: Comparison


@dataclass(frozen=True)
class LogErrors:
    compare: Comparison


@dataclass(frozen=True)
class AnomalyCondition:
    metric: str
    compare: Comparison


@dataclass(frozen=True)
class NewErrorPattern:
    pass


@dataclass(frozen=True)
class ErrorPatternRate:
    compare: Comparison


@dataclass(frozen=True)
class SloBurn:
    """Burn rate above ``compare`` over ``long`` and ``short`` both; ``long`` None: the
    workbook's paging pairs (:data:`server.analytics.slo.BURN_ALERTS`, severity page)."""

    long: timedelta | None = None
    short: timedelta | None = None
    compare: Comparison | None = None
    # the windows as written ("360m", "30m"): config reports quote them, not "6h"
    written: tuple[str, ...] = field(default=(), compare=False)


Condition = (
    StatusCondition
    | MetricCondition
    | AbsentCondition
    | ConsecutiveFailures
    | LogErrors
    | NewErrorPattern
    | ErrorPatternRate
    | AnomalyCondition
    | SloBurn
)


def tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None:  # pragma: no cover - the pattern matches any non-space run
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _no_operands(name: str, condition: Condition, hint: str) -> Callable[[list[str]], Condition]:
    def parse(tokens: list[str]) -> Condition:
        if len(tokens) != 1:
            raise ConditionError(f'"{name}" takes no operands; {hint}')
        return condition

    return parse


def _anomaly(tokens: list[str]) -> Condition:
    if len(tokens) < 3 or tokens[2].lower() != "z":
        raise ConditionError(
            '"anomaly" needs a metric and a z-score comparison, e.g. anomaly response_time_ms z > 3'
        )
    return AnomalyCondition(tokens[1], _comparison(tokens[3:], f"anomaly {tokens[1]} z"))


def _metric(tokens: list[str]) -> Condition:
    aggregate: Aggregate = "last"
    if tokens[0].lower() in ("avg", "max", "min", "last"):
        aggregate = tokens[0].lower()  # type: ignore[assignment]
        tokens = tokens[1:]
    if not tokens or tokens[0].lower() != "metric":
        raise ConditionError(f'"{aggregate}" goes before metric: {aggregate} metric NAME OP VALUE')
    if len(tokens) < 2 or tokens[1] in OPS:
        raise ConditionError('"metric" needs a metric name, e.g. metric response_time_ms > 500')
    return MetricCondition(tokens[1], aggregate, _comparison(tokens[2:], f"metric {tokens[1]}"))


MIN_BURN_WINDOW = timedelta(minutes=1)  # shorter holds a check or two: any failure pages
SLO_BURN_HINT = (
    "e.g. slo_burn (the workbook's defaults) or slo_burn 1h 5m > 14.4 "
    "(burn rate over 1 h and over 5 min both above 14.4)"
)


def _slo_burn(tokens: list[str]) -> Condition:
    if len(tokens) == 1:
        return SloBurn()
    windows: list[timedelta] = []
    rest = tokens[1:]
    while rest and rest[0] not in OPS and len(windows) < 2:
        try:
            windows.append(parse_duration(rest[0]))
        except ValueError:
            raise ConditionError(
                f'"{rest[0]}" is not a window like 1h or 5m; {SLO_BURN_HINT}'
            ) from None
        rest = rest[1:]
    if not windows and rest[0] != ">":
        raise ConditionError(f'slo_burn compares with >, got "{rest[0]}"; {SLO_BURN_HINT}')
    if not windows:  # "slo_burn > 2": the bare form is the workbook's pairs and rates
        raise ConditionError(
            "a rate of your own needs its windows before >, e.g. slo_burn 1h 5m > "
            f"{' '.join(rest[1:]) or '14.4'}; or slo_burn alone for the workbook's pairs and rates"
        )
    if rest and rest[0] not in OPS:  # slo_burn 1h 5m 1m > 2
        raise ConditionError(
            f'slo_burn takes at most two windows (long, then short), got a third: "{rest[0]}"; '
            f"{SLO_BURN_HINT}"
        )
    written = tuple(tokens[1 : 1 + len(windows)])
    long, short = windows[0], windows[1] if len(windows) == 2 else windows[0] / 12
    derived = len(written) == 1
    short_text = f"{format_duration(short)} (1/12 of {written[0]})" if derived else written[1]
    if short < MIN_BURN_WINDOW:
        floor = format_duration(MIN_BURN_WINDOW)
        if derived:  # grow the long window, or write a short one the long can hold
            fix = f"write a long window of {format_duration(MIN_BURN_WINDOW * 12)} or more"
            if long > MIN_BURN_WINDOW:
                fix += f", or a short window of {floor} or more after it"
        else:
            fix = f"use a short window of {floor} or more"
            fix += " and a long window above it" if long <= MIN_BURN_WINDOW else ""
        raise ConditionError(
            f"slo_burn: a short window of {short_text} holds a check or two, so one failure "
            f"is a burn rate in the thousands; {fix} (the workbook's shortest is 5m); "
            f"{SLO_BURN_HINT}"
        )
    if short >= long:
        raise ConditionError(
            f"slo_burn: the short window ({short_text}) must be shorter than the long one "
            f"({written[0]}); the workbook uses 1/12 of it; {SLO_BURN_HINT}"
        )
    compare = _comparison(rest, f"slo_burn {' '.join(written)}", example="14.4")
    if compare.op != ">":
        raise ConditionError(f'slo_burn compares with >, got "{compare.op}"; {SLO_BURN_HINT}')
    # a rate <= 0 parses: the config check reports it at the condition beside what the
    # windows break (against the objective, the history), all at once
    return SloBurn(long, short, compare, written)


def burn_rate_problem(rate: float) -> str:
    """Why a burn-rate threshold of ``rate`` (<= 0) is refused, worded as its fix."""
    what = "is true of every check, failed or not" if rate < 0 else "fires on one failed check"
    return (
        f"slo_burn > {rate:g} {what} (a burn rate is 0 or more): use a rate above 0, "
        "e.g. 14.4 (2 % of a 30-day budget in an hour) or 1 (the budget lasts exactly "
        "the window); to hear of every failure use status >= FAILED"
    )


# first word -> parser of the whole token list
PARSERS: dict[str, Callable[[list[str]], Condition]] = {
    "absent": _no_operands("absent", AbsentCondition(), "set the missed intervals in threshold"),
    "new_error_pattern": _no_operands(
        "new_error_pattern", NewErrorPattern(), 'its window is "for"'
    ),
    "error_pattern_rate": lambda t: ErrorPatternRate(_comparison(t[1:], "error_pattern_rate")),
    "anomaly": _anomaly,
    "slo_burn": _slo_burn,
    "status": lambda t: StatusCondition(_comparison(t[1:], "status", status_names=True)),
    "consecutive_failures": lambda t: ConsecutiveFailures(
        _comparison(t[1:], "consecutive_failures")
    ),
    "log_errors": lambda t: LogErrors(_comparison(t[1:], "log_errors")),
    **dict.fromkeys(("metric", "avg", "max", "min", "last"), _metric),
}


def parse_condition(text: str) -> Condition:
    tokens = tokenize(text)
    if not tokens:
        raise ConditionError(f"empty condition; expected one of: {EXAMPLES}")
    parser = PARSERS.get(tokens[0].lower())
    if parser is None:
        raise ConditionError(f'unknown condition "{text}"; expected one of: {EXAMPLES}')
    return parser(tokens)


def _comparison(
    tokens: list[str], subject: str, status_names: bool = False, example: str = ""
) -> Comparison:
    """``OP VALUE`` after ``subject``; ``example`` (a ``> VALUE`` the condition takes, for
    a condition with one operator) replaces the generic example in the report."""
    if len(tokens) != 2 or tokens[0] not in OPS:
        if example:
            raise ConditionError(
                f'"{subject}" needs > and a value, e.g. {subject} > {example} or '
                f"{subject} > threshold (with the rule's threshold set)"
            )
        raise ConditionError(
            f'"{subject}" needs an operator and a value, e.g. {subject} >= '
            + ("FAILED" if status_names else "threshold")
            + f"; operators: {' '.join(OPS)}"
        )
    op, raw = tokens
    if raw.lower() == "threshold":
        return Comparison(op, None)
    if status_names:
        try:
            return Comparison(op, float(status.parse(raw)))
        except ValueError:
            expected = f"threshold or a status ({', '.join(Status.__members__)}) or its code 0-5"
            raise ConditionError(f'"{raw}" is not {expected}') from None
    try:
        value = float(raw)  # Python reads "\u0661" and "1_000" too: refused below, with the fix
    except ValueError:
        raise ConditionError(
            f'"{raw}" is not a number or threshold; write a number like 500 or the word '
            "threshold (the rule's threshold)"
        ) from None
    if not math.isfinite(value):  # "nan", "inf", "1e309": no value compares sensibly
        shown = numbers.abbreviated(raw)
        raise ConditionError(f'"{shown}" is not a finite number; write a number or threshold')
    if not numbers.is_plain(raw):
        fix = numbers.abbreviated(numbers.spelled(value))
        raise ConditionError(f'"{raw}" is not {numbers.EXPECTED}; write {fix}')
    return Comparison(op, value)
