"""clickhouse.cluster.sharding: every statement of every variant rendered and parsed by ClickHouse.

Only Debian's 18.16 server runs here, so the sharded DDL is checked by parsing
it with the embedded engine (``EXPLAIN AST``), and its shape by reading it.
"""

from __future__ import annotations

import re

import pytest

from server.schema import GRANTS_FILE, SHARD_KEYS, Target, render_file, render_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import ConfigError, parse_config

VARIANTS = {
    "embedded": Target("monitor"),
    "cluster": Target("monitor", "production"),
    "sharded": Target("monitor", "production", 90, "service_id"),
    "cluster-with-dash": Target("monitor", "prod-eu"),
    "sharded-with-dash": Target("monitor", "prod-eu", 90, "service_id"),
}


def statements(target: Target) -> list[str]:
    out = [s.sql for s in render_schema(target)]
    if target.cluster:
        out += render_file(GRANTS_FILE, target, user="`monitor`", password="'pw'", profile=None)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_statement_of_every_variant_parses(store: EmbeddedStorage, variant: str) -> None:
    rendered = statements(VARIANTS[variant])
    assert len(rendered) > 20
    for sql in rendered:
        store.query(f"EXPLAIN AST {sql}")  # raises StorageError naming the statement


def test_cluster_as_a_plain_name_keeps_working_and_sharding_is_opt_in() -> None:
    plain = parse_config(
        "clickhouse:\n  hosts: ['ch1:9000']\n  cluster: production\n", "t.yaml", {}
    )
    assert Target.of(plain.clickhouse) == Target("monitor", "production", 90, "none")
    sharded = parse_config(
        "clickhouse:\n  hosts: ['ch1:9000']\n  cluster: {name: production, sharding: service_id}\n",
        "t.yaml",
        {},
    )
    assert Target.of(sharded.clickhouse).sharded
    with pytest.raises(ConfigError) as bad:
        parse_config("clickhouse:\n  cluster: {name: production, sharding: rand}\n", "t.yaml", {})
    assert "clickhouse.cluster.sharding" in bad.value.report()


def test_sharded_tables_are_local_under_distributed_and_views_stay_on_their_shard() -> None:
    by_name = {s.name: s.sql for s in render_schema(VARIANTS["sharded"])}
    for table, key in SHARD_KEYS.items():
        local = by_name[f"{table}_local"]
        assert f"'/clickhouse/tables/{{shard}}/monitor/{table}_local', '{{replica}}'" in local
        assert by_name[table].endswith(
            f"ENGINE = Distributed(production, monitor, {table}_local, cityHash64({key}))"
        )
    for name, sql in by_name.items():
        if "MATERIALIZED VIEW" in sql:
            sources = re.findall(r"\b(?:TO|FROM)\s+monitor\.(\w+)", sql)
            assert sources and all(s.endswith("_local") for s in sources), (name, sources)
    # small tables are whole on every host: one replica set across the shards
    assert "'/clickhouse/tables/all/monitor/services'" in by_name["services"]
    assert "'/clickhouse/tables/all/monitor/silences'" in by_name["silences"]


def test_unsharded_cluster_renders_as_before() -> None:
    by_name = {s.name: s.sql for s in render_schema(VARIANTS["cluster"])}
    assert not any(name.endswith("_local") for name in by_name)
    assert "'/clickhouse/tables/{shard}/monitor/services'" in by_name["services"]


def test_a_cluster_name_with_a_dash_is_accepted_and_backquoted_in_every_statement() -> None:
    config = parse_config(
        "clickhouse:\n  hosts: ['ch1:9000']\n  cluster: {name: prod-eu, sharding: service_id}\n",
        "t.yaml",
        {},
    )
    target = Target.of(config.clickhouse)
    assert target.cluster == "prod-eu"
    rendered = statements(target)
    clustered = [sql for sql in rendered if "prod-eu" in sql]
    assert len(clustered) > 20
    for sql in clustered:  # never bare: `ON CLUSTER prod-eu` would parse as prod minus eu
        assert not re.search(r"(?<!`)prod-eu", sql), sql
    assert any("Distributed(`prod-eu`, monitor," in sql for sql in rendered)


@pytest.mark.parametrize("name", ["prod eu", "prod`eu", "1prod", "-prod", "prod;DROP", "p.q"])
def test_a_cluster_name_that_is_not_a_plain_name_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config(f"clickhouse:\n  cluster: {{name: '{name}'}}\n", "t.yaml", {})
    assert "clickhouse.cluster.name" in bad.value.report()
    assert "letters, digits, _ and -" in bad.value.report()
