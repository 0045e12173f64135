"""Which alerts exist: one per (rule, service it selects), built from the config.

Rebuilt on every reload; an alert that stays keeps its state (and the history of
its service stays), so a reload neither re-fires nor forgets anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from server.alerting.conditions import AbsentCondition
from server.alerting.evaluate import is_timed
from server.alerting.history import History
from server.alerting.rules import Rule
from server.alerting.state import Alert
from server.analytics.slo import Objective
from server.config.models import Config, ServiceConfig
from server.core.latest import per_last


@dataclass
class Catalog:
    alerts: dict[str, Alert] = field(default_factory=dict)
    by_service: dict[str, list[Alert]] = field(default_factory=dict)
    # every enabled service: flapping is the service's, watched by a rule or not
    # (:mod:`server.alerting.flaps`); rules read the rest of it
    histories: dict[str, History] = field(default_factory=dict)
    absent: list[Alert] = field(default_factory=list)  # evaluated on every tick
    log_driven: list[Alert] = field(default_factory=list)  # logs or time change them: ticks too


def build(
    services: list[ServiceConfig],
    rules: list[Rule],
    old: Catalog,
    *,
    flap_window: int,
    started: datetime,
    book: dict[int, datetime],
    baselines: Any,
    slo: Any = None,
) -> Catalog:
    """Index ``rules`` over ``services``; state and histories carried over from ``old``."""
    out = Catalog()
    exact: dict[str, list[Rule]] = {}
    patterns: list[Rule] = []
    for rule in rules:  # index by id: 10,000 rules x 2,000 services is no loop
        (exact.setdefault(rule.selector, []) if rule.is_exact else patterns).append(rule)
    for service in services:
        selected = exact.get(service.id, []) + [r for r in patterns if r.selects(service)]
        history = old.histories.get(service.id)
        if history is None:
            history = History(service.interval.total_seconds(), flap_window)
            history.last_seen = started
        elif history.flap_window != flap_window:
            history.resize(flap_window)  # a flapping period still ends with a flapping_end
        history.book, history.service_id = book, service.id
        history.baselines = baselines
        history.slo = slo
        history.objective = (
            Objective(service.slo.target, service.slo.window) if service.slo else None
        )
        history.interval = service.interval.total_seconds()
        out.histories[service.id] = history
        for rule in selected:
            alert = Alert(rule, service)
            previous = old.alerts.get(alert.id)
            if previous is not None:  # news in flight is asked for again (the ledger knows)
                alert = replace(previous, rule=rule, service=service, submitted=None)
            out.alerts[alert.id] = alert
            out.by_service.setdefault(service.id, []).append(alert)
            if isinstance(rule.condition, AbsentCondition):
                out.absent.append(alert)
            elif is_timed(rule.condition):
                out.log_driven.append(alert)
    return out


_SECOND = timedelta(seconds=1)


@per_last
def flap_spans(config: Config) -> dict[str, timedelta]:
    """Each configured service's id -> how far back its flap detection looks: the last
    ``alerting.flapping.window`` checks (:class:`History`) at its interval. A flapping
    period, for incidents, begins this long before the engine's ``flapping`` event (the
    changes that made it flap: :func:`server.analytics.incident_model.group`). The
    same figure as :attr:`History.flap_span` of a service's history."""
    window = config.alerting.flapping.window
    return {s.id: History(s.interval.total_seconds(), window).flap_span * _SECOND
            for s in config.services}  # fmt: skip
