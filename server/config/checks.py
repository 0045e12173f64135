"""Checks that span sections: unique ids, references, dependency cycles, checker blocks.

They run on an already-typed :class:`Config` so each check is a few lines; every
problem is collected and none stops the others.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

import checkers
from server import notify
from server.alerting.conditions import (
    AbsentCondition,
    ConditionError,
    StatusCondition,
    parse_condition,
)
from server.alerting.silences import parse_cron
from server.alerting.templates import compile_template
from server.config.errors import ConfigProblem
from server.config.models import Config
from server.config.pydantic_errors import translate
from server.config.source import Path, Source
from server.config.types import format_duration
from server.core import selectors
from server.core.status import Status

Report = Callable[[Path, str], None]
RESERVED_ID = "lightbulb"  # the daemon reports on itself under this id


def cross_check(config: Config, source: Source) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def report(path: Path, message: str) -> None:
        problems.append(ConfigProblem(source.filename, source.line_of(path), path, message))

    _services(config, source, report, problems)
    _relations(config, report)
    _rules(config, report)
    _channels(config, source, report, problems)
    _silences(config, report)
    _dashboard(config, report)
    for position, channel in enumerate(config.alerting.fallback_channels):
        if channel not in config.channels:
            report(
                ("alerting", "fallback_channels", position),
                f'unknown channel "{channel}"; define it under channels',
            )
    for position, channel in enumerate(config.report.channels):
        if channel not in config.channels:
            report(
                ("report", "channels", position),
                f'unknown channel "{channel}"; define it under channels',
            )
    if config.report.timezone:
        try:
            ZoneInfo(config.report.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            report(
                ("report", "timezone"),
                f'unknown time zone "{config.report.timezone}"; e.g. "Europe/Berlin"',
            )
    if config.alerting.flapping.low >= config.alerting.flapping.high:
        report(("alerting", "flapping", "low"), "must be below alerting.flapping.high")
    return problems


def duplicate_service_ids(data: object, source: Source) -> list[ConfigProblem]:
    """Checked on the raw list so it is reported even when other service keys are bad."""
    services = data.get("services") if isinstance(data, dict) else None
    first: dict[str, int] = {}
    problems = []
    for index, raw in enumerate(services if isinstance(services, list) else []):
        sid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(sid, str):
            continue
        if sid not in first:
            first[sid] = index
            continue
        path: Path = ("services", index, "id")
        line = source.line_of(("services", first[sid]))
        message = f'duplicate service id "{sid}" (first at line {line})'
        problems.append(ConfigProblem(source.filename, source.line_of(path), path, message))
    return problems


def _services(
    config: Config, source: Source, report: Report, problems: list[ConfigProblem]
) -> None:
    for index, service in enumerate(config.services):
        path: Path = ("services", index)
        if service.id == RESERVED_ID:
            report((*path, "id"), f'"{RESERVED_ID}" is reserved for the daemon\'s own status row')
        if service.timeout > service.interval:
            report(
                (*path, "timeout"),
                f"must not exceed interval ({format_duration(service.interval)}), "
                f"got {format_duration(service.timeout)}",
            )
        mismatched = False
        for other in checkers.SERVICE_TYPES:
            if other != service.type and getattr(service, other) is not None:
                mismatched = True
                report(
                    (*path, other),
                    f'block "{other}" does not match type "{service.type}"; '
                    f'rename it to "{service.type}" or change the type',
                )
        model = checkers.settings_model(service.type)
        if model is None or mismatched:
            continue
        try:
            model.model_validate(service.block())
        except ValidationError as exc:
            required_fields = any(f.is_required() for f in model.model_fields.values())
            if getattr(service, service.type) is None and required_fields:
                required = [n for n, f in model.model_fields.items() if f.is_required()]
                report(
                    (*path, service.type),
                    f'block "{service.type}" is required, with at least: ' + ", ".join(required),
                )
            else:
                problems.extend(translate(exc, source, model, (*path, service.type)))


def _relations(config: Config, report: Report) -> None:
    known = {s.id for s in config.services}
    seen: set[str] = set()
    edges: dict[str, list[str]] = {}
    for index, relation in enumerate(config.relations):
        path: Path = ("relations", index)
        for end in ("source", "target"):
            name = getattr(relation, end)
            if name not in known:
                report((*path, end), f'unknown service "{name}"; define it under services')
        if relation.source == relation.target:
            report((*path, "target"), "a service cannot relate to itself")
        if relation.relation_id in seen:
            report(path, f'duplicate relation "{relation.relation_id}"')
        seen.add(relation.relation_id)
        if relation.type == "depends_on" and relation.source != relation.target:
            edges.setdefault(relation.source, []).append(relation.target)
    cycle = find_cycle(edges)
    if cycle:
        index = next(
            i
            for i, r in enumerate(config.relations)
            if r.type == "depends_on" and (r.source, r.target) == (cycle[-2], cycle[-1])
        )
        report(("relations", index), "depends_on cycle: " + " -> ".join(cycle))


def find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """One cycle in the graph as a closed walk ``[a, b, a]``, or ``[]``."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def _rules(config: Config, report: Report) -> None:
    known = [(s.id, s.stack) for s in config.services]
    seen: set[str] = set()
    for index, rule in enumerate(config.alert_rules):
        path: Path = ("alert_rules", index)
        if rule.id in seen:
            report((*path, "id"), f'duplicate rule id "{rule.id}"')
        seen.add(rule.id)
        try:
            condition = parse_condition(rule.condition)
        except ConditionError as exc:
            report((*path, "condition"), str(exc))
        else:
            if (
                isinstance(condition, StatusCondition)
                and condition.compare.value is None
                and rule.threshold not in {float(c) for c in Status}
            ):
                report(
                    (*path, "threshold"),
                    f"a status condition needs a status code 0-5 as threshold, "
                    f"got {rule.threshold:g}",
                )
            if isinstance(condition, AbsentCondition) and rule.threshold < 1:
                missed = f"got {rule.threshold:g}"
                report(
                    (*path, "threshold"),
                    f"absent needs the missed intervals as threshold (>= 1), {missed}",
                )
        for key, text in rule.annotations.items():
            try:
                compile_template(text)
            except TemplateSyntaxError as exc:
                report((*path, "annotations", key), f"template error: {exc.message}")
        if not selectors.matches_any(rule.service, known):
            report(
                (*path, "service"),
                f'unknown service "{rule.service}"; use a service id, '
                '"stack:<name>" or a glob like "api-*" that matches one',
            )
        for position, channel in enumerate(rule.channels):
            if channel not in config.channels:
                report(
                    (*path, "channels", position),
                    f'unknown channel "{channel}"; define it under channels',
                )


def _channels(
    config: Config, source: Source, report: Report, problems: list[ConfigProblem]
) -> None:
    for name, channel in config.channels.items():
        model = notify.settings_model(channel.type)
        try:
            model.model_validate(channel.model_dump())
        except ValidationError as exc:
            problems.extend(translate(exc, source, model, ("channels", name)))


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _dashboard(config: Config, report: Report) -> None:
    dashboard = config.dashboard
    auth = dashboard.auth
    if dashboard.enabled and auth.type == "none" and dashboard.bind not in LOOPBACK:
        report(
            ("dashboard", "bind"),
            f'"{dashboard.bind}" is reachable from other machines; set dashboard.auth '
            "(basic or bearer) or bind to 127.0.0.1",
        )
    if auth.type == "bearer" and not any(auth.tokens.values()):
        report(("dashboard", "auth", "tokens"), "bearer auth needs at least one non-empty token")
    if not auth.public_reads and auth.type == "none":
        report(("dashboard", "auth", "public_reads"), "false needs auth type basic or bearer")
    if auth.type == "basic" and not auth.users:
        report(("dashboard", "auth", "users"), "basic auth needs at least one user")


def _silences(config: Config, report: Report) -> None:
    for index, silence in enumerate(config.silences):
        path: Path = ("silences", index)
        if not silence.service and not silence.rule:
            report(path, "needs a service and/or a rule to match")
        if silence.cron:
            if silence.duration is None:
                report((*path, "duration"), "a recurring silence (cron) needs a duration")
            try:
                parse_cron(silence.cron, silence.timezone)
            except (ValueError, LookupError) as exc:
                report((*path, "cron"), f'expected a crontab like "0 2 * * SUN": {exc}')
        elif silence.end is None:
            report(path, "needs an end (or cron and duration for a recurring window)")
        if silence.start and silence.end and silence.end <= silence.start:
            report((*path, "end"), "must be after start")
