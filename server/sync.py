"""Mirror the YAML's services, relations and rules into their ClickHouse tables.

The tables are ReplacingMergeTree(updated_at): we append a new version only
for rows that changed, and a removed entry gets a version with ``enabled = 0``
rather than a DELETE, so history keeps resolving ids to names. Running the sync
twice with the same config writes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.config.models import Config
from server.config.types import format_duration
from server.core.redact import redact_value
from server.storage import Storage


@dataclass(frozen=True)
class Mirror:
    """How one config section maps onto one table."""

    table: str
    key: str
    columns: tuple[str, ...]  # key first, ``enabled`` last; ``updated_at`` is added
    rows: Callable[[Config], list[tuple[Any, ...]]]


@dataclass
class SyncResult:
    table: str
    added: int = 0
    changed: int = 0
    disabled: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return (
            f"{self.table}: {self.added} added, {self.changed} changed, "
            f"{self.disabled} disabled, {self.unchanged} unchanged"
        )


def _service_rows(config: Config) -> list[tuple[Any, ...]]:
    rows = []
    for index, service in enumerate(config.services):
        block = config.raw_block(index)
        status_config = {
            "interval": format_duration(service.interval),
            "timeout": format_duration(service.timeout),
            service.type: block,
        }
        rows.append(
            (
                service.id,
                service.display_label,
                service.type,
                service.stack,
                json.dumps(status_config, sort_keys=True, default=str),
                json.dumps(block.get("thresholds", {}), sort_keys=True, default=str),
                int(service.enabled),
            )
        )
    return rows


def _relation_rows(config: Config) -> list[tuple[Any, ...]]:
    return [(r.relation_id, r.source, r.target, r.type, int(r.enabled)) for r in config.relations]


def _rule_rows(config: Config) -> list[tuple[Any, ...]]:
    return [
        (
            r.id,
            r.service,
            r.name or r.id,
            r.condition,
            float(r.threshold),
            r.severity,
            list(r.channels),
            int(r.enabled),
        )
        for r in config.alert_rules
    ]


MIRRORS = (
    Mirror(
        "services",
        "service_id",
        (
            "service_id",
            "label",
            "service_type",
            "stack",
            "status_config",
            "metric_config",
            "enabled",
        ),
        _service_rows,
    ),
    Mirror(
        "service_relations",
        "relation_id",
        ("relation_id", "source_service_id", "target_service_id", "relation_type", "enabled"),
        _relation_rows,
    ),
    Mirror(
        "alert_rules",
        "rule_id",
        (
            "rule_id",
            "service_id",
            "rule_name",
            "condition",
            "threshold",
            "severity",
            "notification_channels",
            "enabled",
        ),
        _rule_rows,
    ),
)


def sync_config_tables(storage: Storage, config: Config, now: datetime) -> list[SyncResult]:
    # config text is shown and stored like any other: secrets masked (server.core.redact)
    return [_sync(storage, mirror, redact_value(mirror.rows(config)), now) for mirror in MIRRORS]


def _sync(
    storage: Storage, mirror: Mirror, desired: Sequence[tuple[Any, ...]], now: datetime
) -> SyncResult:
    columns = ", ".join(mirror.columns)
    current = {
        row[mirror.key]: tuple(row[c] for c in mirror.columns)
        for row in storage.query(f"SELECT {columns} FROM {storage.database}.{mirror.table} FINAL")
    }
    result = SyncResult(mirror.table)
    writes: list[tuple[Any, ...]] = []
    wanted = {row[0] for row in desired}
    for row in desired:
        before = current.get(row[0])
        if before == row:
            result.unchanged += 1
            continue
        if before is None:
            result.added += 1
        else:
            result.changed += 1
        writes.append((*row, now))
    for key, row in current.items():
        if key not in wanted and row[-1] == 1:
            result.disabled += 1
            writes.append((*row[:-1], 0, now))
    storage.insert(mirror.table, [*mirror.columns, "updated_at"], writes)
    return result
