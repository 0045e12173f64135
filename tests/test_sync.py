"""Mirroring the YAML into services / service_relations / alert_rules on chDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.sync import sync_config_tables
from server.validation import parse_config

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

BASE = """
services:
  - {id: api, type: http, stack: web, http: {url: "http://x", headers: {X-Token: "${TOKEN}"}}}
  - {id: db, type: tcp, stack: data, tcp: {host: db, port: 5432}}
relations:
  - {source: api, target: db}
alert_rules:
  - {id: api-down, service: api, condition: "status >= FAILED", channels: [ops]}
channels:
  ops: {type: webhook, url: "http://hook"}
"""


def counts(results: list[object]) -> dict[str, tuple[int, int, int, int]]:
    return {r.table: (r.added, r.changed, r.disabled, r.unchanged) for r in results}  # type: ignore[attr-defined]


def test_first_sync_adds_every_entry(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    config = parse_config(BASE, "lb.yaml", environ={"TOKEN": "tok-123"})
    assert counts(sync_config_tables(store, config, T0)) == {
        "services": (2, 0, 0, 0),
        "service_relations": (1, 0, 0, 0),
        "alert_rules": (1, 0, 0, 0),
    }
    rule = store.query("SELECT * FROM monitor.alert_rules FINAL")[0]
    assert rule["notification_channels"] == ["ops"] and rule["condition"] == "status >= FAILED"
    relation = store.query("SELECT * FROM monitor.service_relations FINAL")[0]
    assert (relation["source_service_id"], relation["target_service_id"]) == ("api", "db")


def test_same_config_twice_writes_nothing(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    config = parse_config(BASE, "lb.yaml", environ={"TOKEN": "t"})
    sync_config_tables(store, config, T0)
    before = store.query("SELECT count() AS n FROM monitor.services")
    result = counts(sync_config_tables(store, config, T0 + timedelta(minutes=1)))
    assert result["services"] == (0, 0, 0, 2)
    assert store.query("SELECT count() AS n FROM monitor.services") == before


def test_removed_service_is_disabled_and_history_kept(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    sync_config_tables(store, parse_config(BASE, "lb.yaml", {"TOKEN": "t"}), T0)
    smaller = BASE.replace(
        "  - {id: db, type: tcp, stack: data, tcp: {host: db, port: 5432}}\n", ""
    ).replace("relations:\n  - {source: api, target: db}\n", "")
    smaller = smaller.replace("stack: web", "stack: frontend")
    result = counts(
        sync_config_tables(
            store, parse_config(smaller, "lb.yaml", {"TOKEN": "t"}), T0 + timedelta(hours=1)
        )
    )
    assert result["services"] == (0, 1, 1, 0)
    assert result["service_relations"] == (0, 0, 1, 0)
    latest = {r["service_id"]: r for r in store.query("SELECT * FROM monitor.services FINAL")}
    assert latest["db"]["enabled"] == 0 and latest["db"]["stack"] == "data"
    assert latest["api"]["stack"] == "frontend" and latest["api"]["enabled"] == 1
    versions = store.query("SELECT count() AS n FROM monitor.services WHERE service_id = 'db'")
    assert versions == [{"n": 2}]
    # A disabled entry stays disabled: syncing again does not write it once more.
    again = counts(
        sync_config_tables(
            store, parse_config(smaller, "lb.yaml", {"TOKEN": "t"}), T0 + timedelta(hours=2)
        )
    )
    assert again["services"] == (0, 0, 0, 1)


def test_env_secrets_are_stored_as_written_not_expanded(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    sync_config_tables(store, parse_config(BASE, "lb.yaml", {"TOKEN": "sup3r-s3cret"}), T0)
    row = store.query("SELECT status_config FROM monitor.services FINAL WHERE service_id = 'api'")[
        0
    ]
    assert "sup3r-s3cret" not in row["status_config"]
    stored = json.loads(row["status_config"])
    assert stored["http"]["headers"]["X-Token"] == "${TOKEN}"
    assert stored["interval"] == "30s"
