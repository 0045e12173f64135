"""Alert rules on one measure of one service whose severities contradict their thresholds.

Two rules watching the same measure (``response_time > …`` on ``api``) at different
severities promise that the milder one fires first: a ``warning`` at 1000 ms with a
``critical`` at 500 ms never warns before paging. Reported on the milder rule, worded
by :func:`server.core.thresholds.pair_problem` (attack report 2, item 9).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from server.alerting.conditions import Comparison, Condition
from server.config import Draft
from server.config.source import Path
from server.core.thresholds import Worse, pair_problem

RANK = {"info": 0, "warning": 1, "critical": 2}
WORSE: dict[str, Worse] = {">": "higher", ">=": "higher", "<": "lower", "<=": "lower"}


def check(draft: Draft, rules: list[tuple[Path, Any, Condition]]) -> None:
    """``rules``: ``(path, AlertRuleConfig, parsed condition)`` of every enabled rule
    whose threshold parsed. O(n log n) in the rules."""
    groups: dict[tuple[str, Any, Worse], list[tuple[int, float, Path, str]]] = defaultdict(list)
    for path, rule, condition in rules:
        compare = getattr(condition, "compare", None)
        if not isinstance(compare, Comparison) or compare.op not in WORSE:
            continue
        written: Any = condition  # every condition with a compare is a dataclass holding one
        measure = dataclasses.replace(written, compare=Comparison(compare.op, None))
        value = rule.threshold if compare.value is None else compare.value
        where = (*path, "threshold" if compare.value is None else "condition")
        groups[(rule.service, measure, WORSE[compare.op])].append(
            (RANK[rule.severity], value, where, rule.id)
        )
    for (_, _, worse), members in groups.items():
        _check_group(draft, members, worse)


def _check_group(draft: Draft, members: list[tuple[int, float, Path, str]], worse: Worse) -> None:
    # walking from the most severe down, keep the earliest threshold of any more severe rule
    members.sort(key=lambda m: -m[0])
    earliest: tuple[float, str] | None = None
    level_best: tuple[float, str] | None = None
    level = None
    for rank, value, path, rule_id in members:
        if rank != level:
            earliest = _earlier(earliest, level_best, worse)
            level, level_best = rank, None
        if earliest is not None:
            problem = pair_problem(
                (f'rule "{rule_id}"\'s threshold', value),
                (f'the more severe rule "{earliest[1]}"\'s', earliest[0]),
                worse,
            )
            if problem:
                draft.report(path, problem)
        level_best = _earlier(level_best, (value, rule_id), worse)


def _earlier(
    a: tuple[float, str] | None, b: tuple[float, str] | None, worse: Worse
) -> tuple[float, str] | None:
    """The threshold the measure reaches first as it worsens."""
    if a is None or b is None:
        return a or b
    first = min if worse == "higher" else max
    return first(a, b, key=lambda t: t[0])
