"""What a reload changed, by entry id, for the daemon's "reloaded …" log line.

The scheduler reports the services it added, removed or rebuilt; this adds every other
configured list an operator edits by id: alert rules, relations, silences, channels
and the status page's groups (by name), and the settings changed in every other
section, by dotted name (``alerting: changed ['flapping.high']``: a change that decides
what is declared flapping from now on; ``dashboard: changed ['auth']``: who may write).
Only ids and names are printed, never values (a channel or a token is a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from server.config.models import Config

KINDS = ("added", "removed", "changed", "disabled", "enabled")
# sections of settings, named by dotted setting when they change (alerting: always said)
SETTINGS = ("alerting", "clickhouse", "logs", "baselines", "report", "dashboard", "status_page",
            "scheduler", "temporal")  # fmt: skip
Changes = dict[str, list[str]]  # kind (one of KINDS) -> ids, in config order


def entries(config: Config) -> dict[str, dict[str, Any]]:
    """Each section's entries by id: ``{"alert rules": {id: entry}, …}``. A silence
    without an id is ``config-<index>``, as the alert engine names it
    (:func:`server.alerting.silences.from_config`)."""
    return {
        "alert rules": {r.id: r for r in config.alert_rules},
        "relations": {r.relation_id: r for r in config.relations},
        "silences": {s.id or f"config-{i}": s for i, s in enumerate(config.silences)},
        "channels": dict(config.channels),
        "status page groups": {g.name: g for g in config.status_page.groups},
    }


def settings(before: BaseModel, after: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two models of one section,
    nested sections named down to their own settings (``flapping.high``)."""
    out = []
    for name in type(after).model_fields:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if isinstance(old, BaseModel) and isinstance(new, BaseModel):
            out += settings(old, new, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> Changes:
    """Ids ``added``, ``removed``, ``changed`` (any setting), ``disabled`` and ``enabled``
    (``enabled`` flipped, whatever else changed) between two ``{id: entry}`` maps."""
    found: Changes = {kind: [] for kind in KINDS}
    for key, new in after.items():
        if key not in before:
            found["added"].append(key)
        elif new != before[key]:
            was, now = getattr(before[key], "enabled", True), getattr(new, "enabled", True)
            found["changed" if was == now else "enabled" if now else "disabled"].append(key)
    found["removed"] = [key for key in before if key not in after]
    return found


def describe(before: Config, after: Config) -> str:
    """``alert rules: added ['r2'], disabled ['r1']; silences: removed ['config-0']; …;
    alerting: changed ['flapping.high']``, each section with the kinds it has, or
    ``unchanged``."""
    old, new = entries(before), entries(after)
    parts = []
    for section, now in new.items():
        found = compare(old[section], now)
        said = [f"{kind} {found[kind]}" for kind in KINDS if found[kind]]
        parts.append(f"{section}: {', '.join(said) if said else 'unchanged'}")
    for section in SETTINGS:
        changed = [
            name
            for name in settings(getattr(before, section), getattr(after, section))
            if not (section == "status_page" and name == "groups")
        ]  # said above
        if changed or section == "alerting":
            parts.append(f"{section}: {f'changed {changed}' if changed else 'unchanged'}")
    return "; ".join(parts)
