"""Alert rules, channels, silences and the report against the alerting and notify registries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from server import notify
from server.alerting.conditions import (
    AbsentCondition,
    AnomalyCondition,
    Comparison,
    Condition,
    ConditionError,
    ConsecutiveFailures,
    SloBurn,
    StatusCondition,
    parse_condition,
    tokenize,
)
from server.alerting.silences import NEVER_YEARS, parse_cron
from server.alerting.templates import compile_template
from server.config import Draft
from server.config.models import AlertRuleConfig
from server.config.pydantic_errors import describe, translate_all
from server.config.source import Path
from server.core import redact, selectors
from server.core.status import Status
from server.validation import rule_pairs


@dataclass(frozen=True)
class ParsedRule:
    """An alert rule whose condition parsed: the one parse of it that later checks read
    (:mod:`server.validation.slo`), so no check words a condition differently.

    ``raw`` is the rule as written; ``rule`` its model, None when another key of it
    failed (its path is kept, so a check can still judge what parsed)."""

    path: Path
    raw: dict[str, Any]
    condition: Condition
    rule: AlertRuleConfig | None


def check(draft: Draft) -> list[ParsedRule]:
    """Rules (conditions, templates, services, channels), channels, silences, fallbacks,
    report; every rule whose condition parsed, in file order."""
    channels = _channels(draft)
    rules = _rules(draft, channels)
    _silences(draft)
    for section in (("alerting", "fallback_channels"), ("report", "channels")):
        names = (
            draft.config.alerting.fallback_channels
            if section[0] == "alerting"
            else (draft.config.report.channels)
        )
        for position, name in enumerate(names):
            if name not in channels:
                draft.report(
                    (*section, position), f'unknown channel "{name}"; define it under channels'
                )
    return rules


def _channels(draft: Draft) -> set[str]:
    """Check each channel's type and settings; return every channel name written."""
    section = draft.data.get("channels")
    if not isinstance(section, dict):
        return set()
    for name, raw in section.items():
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str) or not kind:
            continue  # the model reported it
        path: Path = ("channels", name)
        if kind not in notify.CHANNEL_TYPES:
            names = ", ".join(f"'{t}'" for t in notify.CHANNEL_TYPES[:-1])
            expected = f"{names} or '{notify.CHANNEL_TYPES[-1]}'"
            draft.report((*path, "type"), f"expected one of {expected}, got {describe(kind)}")
            continue
        model = notify.settings_model(kind)
        try:
            settings = model.model_validate(raw)
        except ValidationError as exc:
            draft.problems.extend(translate_all(exc, raw, draft.source, model, path))
            continue
        draft.secrets |= redact.secrets_in(settings)
    return {str(name) for name in section}


def _rules(draft: Draft, channels: set[str]) -> list[ParsedRule]:
    services = [(s.id, s.stack) for s in draft.services_written()]
    parsed = dict(draft.items("alert_rules"))
    seen: set[str] = set()
    judged: list[tuple[Path, Any, Condition]] = []
    conditions: list[ParsedRule] = []
    for path, raw in draft.raw_items("alert_rules"):
        rule_id = raw.get("id")
        if isinstance(rule_id, str):
            if rule_id in seen:
                draft.report((*path, "id"), f'duplicate rule id "{rule_id}"')
            seen.add(rule_id)
        condition = _condition(draft, path, raw.get("condition"))
        rule = parsed.get(path)
        if condition is not None:
            conditions.append(ParsedRule(path, raw, condition, rule))
            _threshold_set(draft, path, condition, raw)
        if condition is not None and rule is not None and draft.parsed((*path, "threshold")):
            _threshold(draft, path, condition, rule.threshold)
            if rule.enabled:
                judged.append((path, rule, condition))
        _annotations(draft, path, raw.get("annotations"))
        selector = raw.get("service")
        if isinstance(selector, str) and not selectors.matches_any(selector, services):
            draft.report(
                (*path, "service"),
                f'unknown service "{selector}"; use a service id, '
                '"stack:<name>" or a glob like "api-*" that matches one',
            )
        names = raw.get("channels")
        for position, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in channels:
                draft.report(
                    (*path, "channels", position),
                    f'unknown channel "{name}"; define it under channels',
                )
    rule_pairs.check(draft, judged)
    return conditions


def _annotations(draft: Draft, path: Path, annotations: Any) -> None:
    for key, text in (annotations if isinstance(annotations, dict) else {}).items():
        if isinstance(text, str):
            try:
                compile_template(text)
            except TemplateSyntaxError as exc:
                draft.report((*path, "annotations", key), f"template error: {exc.message}")


def _condition(draft: Draft, path: Path, text: Any) -> Condition | None:
    if not isinstance(text, str):
        return None  # the model reported it
    try:
        return parse_condition(text)
    except ConditionError as exc:
        draft.report((*path, "condition"), str(exc))
        return None


# what a rule's threshold is for each condition reading it, for the example in a report
_EXAMPLE_VALUE: dict[type, str] = {
    StatusCondition: "FAILED",
    SloBurn: "14.4",
    ConsecutiveFailures: "3",
    AnomalyCondition: "3",
}


def _threshold_set(draft: Draft, path: Path, condition: Condition, raw: dict[str, Any]) -> None:
    """A condition reading the rule's ``threshold`` (``metric x > threshold``, ``absent``)
    needs the rule to set one: its default, 0, compares with nothing the author chose
    (``status >= threshold`` would hold for every check)."""
    if "threshold" in raw:
        return
    where = (*path, "threshold")
    if isinstance(condition, AbsentCondition):
        draft.report(
            where,
            "absent counts the intervals without a result up to threshold, and the rule "
            "sets no threshold: add threshold: 3 (fire after 3 intervals without a result)",
        )
        return
    compare = getattr(condition, "compare", None)
    if not isinstance(compare, Comparison) or compare.value is not None:
        return
    text = str(raw.get("condition"))
    value = _EXAMPLE_VALUE.get(type(condition), "500")
    example = " ".join(value if t.lower() == "threshold" else t for t in tokenize(text))
    draft.report(
        where,
        f'the condition "{text}" compares with the rule\'s threshold, and the rule sets no '
        f"threshold: add threshold: <number> to the rule, or write the number in place of "
        f'"threshold" (e.g. "{example}")',
    )


def _threshold(draft: Draft, path: Path, condition: Condition, threshold: float) -> None:
    if (
        isinstance(condition, StatusCondition)
        and condition.compare.value is None
        and threshold not in {float(c) for c in Status}
    ):
        draft.report(
            (*path, "threshold"),
            f"a status condition needs a status code 0-5 as threshold, got {threshold:g}",
        )
    if isinstance(condition, AbsentCondition) and threshold < 1:
        draft.report(
            (*path, "threshold"),
            f"absent needs the missed intervals as threshold (>= 1), got {threshold:g}",
        )


def _silences(draft: Draft) -> None:
    """A bad zone is reported at ``timezone``, a bad or never-opening crontab at ``cron``."""
    for path, silence in draft.items("silences"):
        if not silence.cron:
            continue
        # a time zone refused while parsing is reported under its own key already;
        # the crontab is then judged alone, in UTC
        zone = silence.timezone if draft.parsed((*path, "timezone")) else "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            draft.report(
                (*path, "timezone"),
                f"unknown time zone {describe(silence.timezone)}; use an IANA name like "
                '"Europe/Berlin" or "UTC"',
            )
            zone = "UTC"
        try:
            cron = parse_cron(silence.cron, zone)
        except (ValueError, LookupError) as exc:
            draft.report(
                (*path, "cron"),
                f'expected a crontab of 5 fields like "30 2 * * SUN" '
                f"(minute hour day-of-month month day-of-week), got {describe(silence.cron)}: "
                f"{exc}",
            )
            continue
        if cron.never_opens():
            draft.report(
                (*path, "cron"),
                f"{describe(silence.cron)} never opens a window (no such date in the next "
                f"{NEVER_YEARS} years, e.g. 30 February); check the day and month fields",
            )
