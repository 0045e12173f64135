"""Alert rules compiled once from the config: parsed condition, windows, templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jinja2 import TemplateError

from server.alerting.conditions import Condition, ConditionError, SloBurn, parse_condition
from server.alerting.evaluate import is_windowed
from server.alerting.templates import compile_template
from server.config.models import AlertRuleConfig, Config, ServiceConfig
from server.core import selectors
from server.core.latest import per_last


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    selector: str
    condition: Condition
    condition_text: str
    threshold: float
    pending: timedelta  # how long the condition must hold before firing
    window: timedelta  # what windowed conditions look back on
    severity: str
    channels: tuple[str, ...]
    repeat: timedelta
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: AlertRuleConfig) -> Rule:
        condition = parse_condition(cfg.condition)
        windowed = is_windowed(condition)
        return cls(
            id=cfg.id,
            name=cfg.name or cfg.id,
            selector=cfg.service,
            condition=condition,
            condition_text=cfg.condition,
            threshold=cfg.threshold,
            pending=timedelta(0) if windowed else cfg.for_,
            window=cfg.for_ if windowed else timedelta(0),
            severity=cfg.severity,
            channels=tuple(cfg.channels),
            repeat=cfg.repeat_interval,
            labels=dict(cfg.labels),
            annotations={k: compile_template(v) for k, v in cfg.annotations.items()},
        )

    @property
    def is_exact(self) -> bool:
        """The selector is one service id (no stack, no glob)."""
        return selectors.is_exact(self.selector)

    @property
    def watches_outages(self) -> bool:
        """Whether a firing of this rule says the service is down now. Not so for an
        ``slo_burn`` rule: it fires on an error budget spent (errors already past, for
        up to its short window after the service is back) and may never fire on a short
        outage, so it covers no service (:mod:`server.analytics.rule_coverage`): a run
        of FAILED of a service only it selects is an incident of its own."""
        return not isinstance(self.condition, SloBurn)

    def selects(self, service: ServiceConfig) -> bool:
        return selectors.matches(self.selector, service.id, service.stack)

    def render(self, context: dict[str, Any]) -> dict[str, str]:
        out = {}
        for key, template in self.annotations.items():
            try:
                out[key] = template.render(context)
            except TemplateError as exc:  # e.g. a sandbox refusal; the alert still goes out
                out[key] = f"<annotation {key} failed: {exc}>"
        return out


@per_last
def burn_rules(config: Config) -> frozenset[str]:
    """Ids of ``config``'s alert rules whose condition is ``slo_burn`` (they watch no
    outage: :attr:`Rule.watches_outages`); parsed once per configuration (every rule's
    condition, each request, before)."""
    found = set()
    for rule in config.alert_rules:
        try:
            if isinstance(parse_condition(rule.condition), SloBurn):
                found.add(rule.id)
        except ConditionError:  # a loaded configuration was validated; be safe anyway
            continue
    return frozenset(found)
