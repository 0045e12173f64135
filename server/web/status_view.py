"""The public status page (/status): groups, their 90-day bars, scheduled maintenance.

Groups come from ``status_page.groups`` (service selectors), or one per stack
when none are configured; the daemon's own row is not shown. Each group has its
worst current status (as a word and a colour), how many of its services are up,
a 90-day bar of daily uptime and the list of its services. Maintenance windows
are the configured silences (``silences:``) that select a shown service: the
one open now and those opening within :data:`MAINTENANCE_AHEAD`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import render_template
from markupsafe import Markup

from server.alerting.silences import Silence, from_config
from server.analytics.incidents import Incident
from server.analytics.slo import Counts, availability
from server.analytics.uptime import daily, days, utc_today
from server.config.models import Config
from server.config.types import format_duration
from server.core import selectors
from server.core import status as statuses
from server.core.latest import per_last
from server.core.text import escape
from server.storage import Storage
from server.storage.changes import Tokens
from server.web.bars import day_bar
from server.web.charts import badge, pct
from server.web.context import current as context
from server.web.incidents_view import recent
from server.web.queries import Reader, ServiceView
from server.web.status_incidents import burn_rules
from server.web.status_incidents import shown as public

DAYS = 90
MAINTENANCE_AHEAD = timedelta(days=14)
MAX_OPENINGS = 20  # per recurring window, within MAINTENANCE_AHEAD


@dataclass
class Group:
    name: str
    members: list[ServiceView]
    bar: Markup = field(default_factory=Markup)
    uptime: dict[str, float | None] = field(default_factory=dict)  # service id -> 90-day %

    @property
    def code(self) -> int | None:
        checked = [v.status_code for v in self.members if v.checked]
        return int(statuses.worst(checked)) if checked else None

    @property
    def up(self) -> int:
        return sum(1 for v in self.members if v.checked and statuses.is_up(v.status_code))

    def rows(self) -> Markup:
        """The members' table rows, built in Python: through Jinja, 1,000 rows took ~80 ms."""
        return Markup("".join(  # noqa: S704 - every interpolated value is escaped or ours
            f"{_row_head(v.id, v.label)}<td>{badge(v.status_code if v.checked else None)}</td>"
            f"<td>{pct(self.uptime.get(v.id))}</td></tr>"
            for v in self.members
        ))  # fmt: skip


@functools.lru_cache(maxsize=8192)
def _row_head(sid: str, label: str) -> str:
    """A member row's start: escaping 1,000 ids and labels cost ~3 ms a page, and they
    change only with the configuration."""
    return f'<tr data-service="{escape(sid)}"><td>{escape(label)}</td>'


@dataclass(frozen=True)
class Window:
    """A configured maintenance window's current or next opening.

    ``repeats`` words a recurring window's schedule (empty for a one-off), and
    ``later`` counts its further openings within :data:`MAINTENANCE_AHEAD`.
    """

    start: datetime
    end: datetime
    services: tuple[str, ...]  # labels of the shown services it selects
    comment: str
    repeats: str = ""
    later: int = 0

    def open(self, now: datetime) -> bool:
        return self.start <= now < self.end


def groups(config: Config, views: list[ServiceView]) -> list[Group]:
    """The page's groups, in configured order (or by stack name), members in the order of
    ``views``. Which ids a group holds depends on the configuration only: worked out once
    per configuration (1,000 services x 10 groups cost ~5 ms a request)."""
    shown = [v for v in views if v.id != "lightbulb"]
    if not config.status_page.groups:
        stacks: dict[str, list[ServiceView]] = {}
        for view in shown:
            stacks.setdefault(view.stack, []).append(view)
        return [Group(name, stacks[name]) for name in sorted(stacks)]
    key = (id(config), tuple((v.id, v.stack) for v in shown))
    cached = _MEMBERS.get(key[0])
    if cached is None or cached[0] is not config or cached[1] != key[1]:
        picked = [{v.id for v in select(g.services, shown)} for g in config.status_page.groups]
        _MEMBERS.clear()  # one configuration is live at a time (a reload replaces it)
        _MEMBERS[key[0]] = cached = (config, key[1], picked)
    return [Group(g.name, [v for v in shown if v.id in ids])
            for g, ids in zip(config.status_page.groups, cached[2], strict=True)]  # fmt: skip


_MEMBERS: dict[int, tuple[Config, tuple[tuple[str, str], ...], list[set[str]]]] = {}


@dataclass(frozen=True)
class Overall:
    """The page's headline: services shown, how many were checked, how many are not up.

    Each counts distinct services: one in two groups is one service (with two checked
    of them down, the page says "2 of 5", never "4 of 10")."""

    members: int
    checked: int
    down: int


def overall(found: list[Group]) -> Overall:
    """The headline over every group's members, each service once (by id)."""
    members = list({v.id: v for g in found for v in g.members}.values())
    checked = [v for v in members if v.checked]
    down = sum(1 for v in checked if not statuses.is_up(v.status_code))
    return Overall(len(members), len(checked), down)


@per_last
def listed(config: Config) -> frozenset[str]:
    """Ids of the services the page's groups select (every configured one without
    groups), enabled or not: a disabled one is not shown, but an incident's public id
    is the first of these members' (:func:`server.web.status_incidents.shown`), so
    disabling a service for a while moves no incident's id or feed entry."""
    every = [ServiceView(s.id, s.label, s.type, s.stack) for s in config.services
             if s.id != "lightbulb"]  # fmt: skip
    if not config.status_page.groups:
        return frozenset(v.id for v in every)
    return frozenset(v.id for g in config.status_page.groups for v in select(g.services, every))


def select(selectors_: list[str], views: list[ServiceView]) -> list[ServiceView]:
    """``views`` that any selector picks, in their order: ids and stacks by lookup,
    only globs by matching (1,000 services x 10 groups matched one by one took 50 ms)."""
    ids = {s for s in selectors_ if selectors.is_exact(s)}
    stacks = {s[len(selectors.STACK_PREFIX) :] for s in selectors_
              if s.startswith(selectors.STACK_PREFIX)}  # fmt: skip
    globs = [s for s in selectors_ if s not in ids and not s.startswith(selectors.STACK_PREFIX)]
    return [v for v in views if v.id in ids or v.stack in stacks
            or any(selectors.matches(g, v.id, v.stack) for g in globs)]  # fmt: skip


def add_history(reader: Reader, found: list[Group], now: datetime,
                tokens: Tokens | None) -> list[date]:  # fmt: skip
    """90-day bars per group and 90-day uptime per service; returns the days drawn.

    Kept while the daily summary's parts are unchanged (:mod:`server.web.read_cache`;
    ``tokens``: the request's part hashes; the days drawn are in the key): read and
    drawn, it cost ~25 ms a request."""
    shown = days(utc_today(now), DAYS)
    members = {g.name: [v.id for v in g.members] for g in found}
    key = (tuple((name, tuple(ids)) for name, ids in members.items()), shown[0], shown[-1])
    ctx = context()
    bars, uptime = ctx.read_cache.get(
        "status history", reader.storage, lambda storage: _history(storage, members, shown),
        tokens=tokens, config=ctx.config, key=key, now=now, edges=(),
    )  # fmt: skip
    for group in found:
        group.bar = bars[group.name]
        group.uptime = {v.id: uptime[v.id] for v in group.members}
    return shown


def _history(storage: Storage, members: dict[str, list[str]],
             shown: list[date]) -> tuple[dict[str, Markup], dict[str, float | None]]:  # fmt: skip
    """Each group's 90-day bar and each member's 90-day uptime."""
    counted = daily(storage, members, shown[0], shown[-1])
    bars = {name: day_bar(shown, counted.by_day.get(name, {}), name) for name in members}
    uptime = {sid: availability(counted.by_service.get(sid, Counts(0, 0)))
              for ids in members.values() for sid in ids}  # fmt: skip
    return bars, uptime


def maintenance(config: Config, views: list[ServiceView], now: datetime) -> list[Window]:
    """Each configured window selecting a shown service that is open now or opens within
    :data:`MAINTENANCE_AHEAD`, once (its first such opening), by start. ``views``: the
    page's members only (the groups'), as this is public: a window of any other service,
    and its comment, must not show."""
    shown = [(v.id, v.stack, v.label) for v in views if v.id != "lightbulb"]
    rules = [(r.id, r.service) for r in config.alert_rules if r.enabled]
    out = []
    for index, cfg in enumerate(config.silences):
        if not cfg.service:
            continue  # a rule-only silence holds alerts back; it is not service maintenance
        silence = from_config(index, cfg)
        labels = tuple(label for sid, stack, label in shown
                       if _covers(silence, rules, sid, stack))  # fmt: skip
        found = openings(silence, now) if labels else []
        if found:
            repeats = ""
            if cfg.cron and cfg.duration is not None:
                repeats = (f'cron "{cfg.cron}" ({cfg.timezone}), '
                           f"{format_duration(cfg.duration)} each")  # fmt: skip
            start, end = found[0]
            out.append(Window(start, end, labels, cfg.comment, repeats, len(found) - 1))
    return sorted(out, key=lambda w: (w.start, w.services))


def _covers(silence: Silence, rules: list[tuple[str, str]], sid: str, stack: str) -> bool:
    """Whether ``silence`` holds back an alert of service ``sid``: its selector matches
    and, when it names rules, an enabled one of them selects the service too (a window
    for a rule of other services is not this service's maintenance)."""
    if not silence.rule:
        return selectors.matches(silence.service, sid, stack)
    return any(silence.matches(rule_id, sid, stack) and selectors.matches(chosen, sid, stack)
               for rule_id, chosen in rules)  # fmt: skip


def openings(silence: Silence, now: datetime) -> list[tuple[datetime, datetime]]:
    """``(start, end)`` in UTC of each window of ``silence`` open at ``now`` or opening
    before ``now + MAINTENANCE_AHEAD`` (the alerting's own schedule arithmetic, DST
    rules included: :meth:`Silence.window_at` and :meth:`Silence.windows`)."""
    horizon = now + MAINTENANCE_AHEAD
    if silence.cron is None:
        if silence.end > now and silence.start < horizon:
            return [(silence.start.astimezone(UTC), silence.end.astimezone(UTC))]
        return []
    found = []
    current = silence.window_at(now) if silence.active(now) else None
    if current is not None:
        found.append(current)
    found += [w for w in silence.windows(now, horizon) if w != current]
    return [(a.astimezone(UTC), b.astimezone(UTC)) for a, b in found[:MAX_OPENINGS]]


def page() -> str:
    """``GET /status`` (``pages.status_page``, open without sign-in): groups with their
    current status and 90-day bars, current and past incidents (last 30 days, by the
    page's own services: :func:`server.web.incidents_view.recent`, shown as the public
    sees them: :mod:`server.web.status_incidents`), and scheduled maintenance."""
    ctx = context()
    now = ctx.clock.now()
    tokens = ctx.read_cache.tokens(ctx.storage)  # before anything the page reads
    views = ctx.reader.services(now, brief=True)  # the page shows only statuses
    found = groups(ctx.config, views)
    shown = add_history(ctx.reader, found, now, tokens)
    on_page = list({v.id: v for g in found for v in g.members}.values())
    labels = {v.id: v.label for v in on_page}
    return render_template(
        "status.html", title=ctx.config.status_page.title, groups=found, days=shown,
        maintenance=maintenance(ctx.config, on_page, now), now=now,
        incidents=public(incidents_of(views, set(labels), now, tokens), labels,
                         burn_rules(ctx.config), listed(ctx.config)),
        labels=labels, overall=overall(found),
    )  # fmt: skip


def incidents_of(views: list[ServiceView], shown: set[str], now: datetime,
                 tokens: Tokens | None) -> list[Incident]:  # fmt: skip
    """The page's and the feed's incidents (:func:`server.web.incidents_view.recent`)
    of the ``shown`` services, judged with the statuses of ``views`` (read with the
    page's): one answer for both, so a page and its feed read at one instant agree."""
    current = {v.id: v.status_code for v in views if v.checked}
    return recent(now, shown, current, tokens=tokens)
