"""What a reload changed, by entry id, for the daemon's "reloaded …" log line.

The scheduler reports the services it added, removed or rebuilt; this adds every other
configured list an operator edits by id: alert rules, relations, silences and
channels. Only ids and names are printed, never settings (a channel holds secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.config.models import Config

KINDS = ("added", "removed", "changed", "disabled", "enabled")
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
    }


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
    """``alert rules: added ['r2'], disabled ['r1']; silences: removed ['config-0']; …``,
    each section with the kinds it has, or ``unchanged``."""
    old, new = entries(before), entries(after)
    parts = []
    for section, now in new.items():
        found = compare(old[section], now)
        said = [f"{kind} {found[kind]}" for kind in KINDS if found[kind]]
        parts.append(f"{section}: {', '.join(said) if said else 'unchanged'}")
    return "; ".join(parts)
