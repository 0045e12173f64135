"""Checks inside one section that its model cannot make alone: duplicates, pairs of fields.

They run on a :class:`~server.config.draft.Draft` (the items that parsed), add every
problem they find and stop at none. Checks that span sections or need a registry
(references, conditions, checker and channel settings) live in :mod:`server.validation`.
"""

from __future__ import annotations

import ipaddress
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.config.draft import Draft
from server.config.pydantic_errors import describe
from server.config.source import Path
from server.core import numbers, selectors

RESERVED_ID = "lightbulb"  # the daemon reports on itself under this id


def is_loopback(bind: str) -> bool:
    """Whether ``bind`` answers only this machine: ``localhost``, 127.0.0.0/8, ``::1`` in
    any spelling (``0:0:0:0:0:0:0:1``) and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    if bind.strip().lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(bind.strip().strip("[]"))
    except ValueError:
        return False  # a host name: it may resolve to anything
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def number_spellings(draft: Draft) -> None:
    """Numbers YAML read from text other than plain decimal (``1_000``, ``0x1F``, ``017``
    as octal, ``1:30`` in base 60, ``.inf``), each refused with what it was read as.

    Run after every other check: a value another check refused (a string setting
    given ``0x1F`` unquoted says "quote it") is not reported twice.
    """
    refused = {p.path for p in draft.problems}
    seen: set[tuple[int | None, str, str | int]] = set()
    for path, text in draft.source.written.items():
        value = draft.value_at(path)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or path in refused
            or numbers.is_plain(text)
            or str(path[0]).startswith("x-")  # the file's own anchors: reported where used
        ):
            continue
        # a value under an anchor (&tcp) used twice is one text on one line: one report
        once = (draft.source.line_of(path), text, path[-1])
        if once in seen:
            continue
        seen.add(once)
        if not numbers.is_finite(value):
            draft.report(path, f"expected a finite number, got {numbers.abbreviated(text)}")
            continue
        fix = numbers.abbreviated(numbers.spelled(value))
        draft.report(
            path,
            f"expected {numbers.EXPECTED}, got {numbers.abbreviated(text)} (YAML reads it as "
            f"{fix}); write {fix}",
        )


def section_checks(draft: Draft) -> None:
    """Add to ``draft.problems`` every problem found within a section."""
    _duplicate_service_ids(draft)
    _services(draft)
    _silences(draft)
    _dashboard(draft)
    _logs(draft)
    config = draft.config
    if config.report.timezone:
        _time_zone(draft, ("report", "timezone"), config.report.timezone)
    flapping = ("alerting", "flapping")
    if (
        draft.parsed((*flapping, "low"), (*flapping, "high"))
        and config.alerting.flapping.low >= config.alerting.flapping.high
    ):
        draft.report(("alerting", "flapping", "low"), "must be below alerting.flapping.high")
    most, least = ("alerting", "retry_max_backoff"), ("alerting", "retry_backoff")
    if (
        draft.parsed(most, least)
        and config.alerting.retry_max_backoff < config.alerting.retry_backoff
    ):
        draft.report(
            most,
            f"{draft.as_written(most, config.alerting.retry_max_backoff)} is below "
            f"alerting.retry_backoff ({draft.as_written(least, config.alerting.retry_backoff)}), "
            "so no delay could grow; set it to at least retry_backoff",
        )


def _time_zone(draft: Draft, path: Path, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        draft.report(
            path, f'unknown time zone "{name}"; use an IANA name like "Europe/Berlin" or "UTC"'
        )


def _duplicate_service_ids(draft: Draft) -> None:
    """Checked on the raw list so it is reported even when other service keys are bad."""
    first: dict[str, int] = {}
    for service in draft.services_written():
        sid, path = service.id, service.path
        if sid not in first:
            first[sid] = int(path[1])
            continue
        line = draft.source.line_of(("services", first[sid]))
        draft.report((*path, "id"), f'duplicate service id "{sid}" (first at line {line})')


def _services(draft: Draft) -> None:
    for path, service in draft.items("services"):
        if service.id == RESERVED_ID:
            draft.report(
                (*path, "id"), f'"{RESERVED_ID}" is reserved for the daemon\'s own status row'
            )
        if (
            draft.parsed((*path, "timeout"), (*path, "interval"))
            and service.timeout > service.interval
        ):
            draft.report(
                (*path, "timeout"),
                f"must not exceed interval "
                f"({draft.as_written((*path, 'interval'), service.interval)}), "
                f"got {draft.as_written((*path, 'timeout'), service.timeout)}",
            )


def _silences(draft: Draft) -> None:
    for path, silence in draft.items("silences"):
        if (
            draft.parsed(*_keys(path, "service", "rule"))
            and not silence.service
            and not silence.rule
        ):
            draft.report(path, "needs a service and/or a rule to match")
        for key, stacks in (("service", True), ("rule", False)):
            selector = getattr(silence, key)
            wrong = selectors.problem(selector, stacks) if selector else None
            if wrong is not None:
                draft.report((*path, key), f"{wrong}, got {describe(selector)}")
        if silence.timezone != "UTC":
            _time_zone(draft, (*path, "timezone"), silence.timezone)
        if not draft.parsed(*_keys(path, "cron", "duration", "end")):
            pass  # judged by a value that failed: its default stands in for it
        elif silence.cron:
            if silence.duration is None:
                draft.report((*path, "duration"), "a recurring silence (cron) needs a duration")
        elif silence.end is None:
            draft.report(path, "needs an end (or cron and duration for a recurring window)")
        if (
            draft.parsed(*_keys(path, "start", "end"))
            and silence.start
            and silence.end
            and silence.end <= silence.start
        ):
            draft.report((*path, "end"), "must be after start")


def _keys(path: Path, *names: str) -> list[Path]:
    return [(*path, name) for name in names]


def _dashboard(draft: Draft) -> None:
    dashboard = draft.config.dashboard
    auth = dashboard.auth
    where: Path = ("dashboard", "auth")
    if (
        draft.parsed(("dashboard", "bind"), ("dashboard", "enabled"), (*where, "type"))
        and dashboard.enabled
        and auth.type == "none"
        and not is_loopback(dashboard.bind)
    ):
        draft.report(
            ("dashboard", "bind"),
            f'"{dashboard.bind}" is reachable from other machines; set dashboard.auth '
            "(basic or bearer) or bind to 127.0.0.1",
        )
    # each pair judged only when both values parsed (a default stands in for a bad one)
    tokens, reads = _keys(where, "type", "tokens"), _keys(where, "type", "public_reads")
    if draft.parsed(*tokens) and auth.type == "bearer" and not any(auth.tokens.values()):
        draft.report((*where, "tokens"), "bearer auth needs at least one non-empty token")
    if draft.parsed(*reads) and not auth.public_reads and auth.type == "none":
        draft.report((*where, "public_reads"), "false needs auth type basic or bearer")
    if draft.parsed(*_keys(where, "type", "users")) and auth.type == "basic" and not auth.users:
        draft.report((*where, "users"), "basic auth needs at least one user")


def _logs(draft: Draft) -> None:
    logs = draft.config.logs
    if (
        draft.parsed(*_keys(("logs",), "max_record", "max_body"))
        and logs.max_record > logs.max_body
    ):
        draft.report(("logs", "max_record"), "must not exceed logs.max_body")
