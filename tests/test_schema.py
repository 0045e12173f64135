"""The schema in sql/ on a real chDB engine: creation, idempotence, drift, the summary view."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.recorder import LOG_COLUMNS, METRIC_COLUMNS, STATUS_COLUMNS
from server.schema import Target, apply_schema, render_schema, schema_files
from server.schema_check import check_schema
from server.storage.embedded import EmbeddedStorage
from tests.conftest import run_cli

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TARGET = Target("monitor")


def status_row(service: str, at: datetime, code: int, rt: int | None = 10) -> tuple[object, ...]:
    return (service, at, code, "msg", "http", "web", "{}", rt, 1.5, 20.0)


def test_every_ddl_file_creates_its_objects(store: EmbeddedStorage) -> None:
    results = apply_schema(store, TARGET)
    assert all(created for _, created in results)
    assert {s.file for s, _ in results} == set(schema_files())
    tables = {
        r["name"]: r["engine"]
        for r in store.query("SELECT name, engine FROM system.tables WHERE database = 'monitor'")
    }
    assert tables == {
        "service_status": "MergeTree",
        "service_metrics": "MergeTree",
        "service_logs": "MergeTree",
        "services": "ReplacingMergeTree",
        "service_relations": "ReplacingMergeTree",
        "alert_rules": "ReplacingMergeTree",
        "service_status_hourly": "AggregatingMergeTree",
        "service_status_summary": "MaterializedView",
        "alert_events": "MergeTree",
        "silences": "ReplacingMergeTree",
        "service_current": "AggregatingMergeTree",
        "service_current_mv": "MaterializedView",
        "service_transitions": "MergeTree",
        "service_transitions_mv": "MaterializedView",
        "service_status_daily": "AggregatingMergeTree",
        "service_status_daily_mv": "MaterializedView",
        "log_dlq": "MergeTree",
        "error_patterns": "AggregatingMergeTree",
        "error_patterns_mv": "MaterializedView",
        "anomaly_baselines": "ReplacingMergeTree",
        "reports": "ReplacingMergeTree",
        "notifications": "MergeTree",
        "incident_notes": "ReplacingMergeTree",
        "rule_coverage": "MergeTree",
        "flap_replays": "MergeTree",
    }


def test_time_series_tables_have_monthly_partitions_and_ttl(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor", retention_days=45))
    rows = store.query(
        "SELECT name, partition_key, engine_full FROM system.tables WHERE database = 'monitor' "
        "AND name IN ('service_status', 'service_metrics', 'service_logs', 'alert_events')"
    )
    assert len(rows) == 4
    for row in rows:
        assert row["partition_key"] == "toYYYYMM(timestamp)"
        assert "TTL toDateTime(timestamp) + toIntervalDay(45)" in row["engine_full"]


def test_applying_twice_creates_nothing_new(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    second = apply_schema(store, TARGET)
    assert not any(created for _, created in second)


def test_fresh_schema_has_no_drift(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    assert check_schema(store, TARGET).problems == []


def test_drift_names_a_dropped_column(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    store.execute("ALTER TABLE monitor.service_status DROP COLUMN cpu_usage")
    assert check_schema(store, TARGET).problems == [
        "monitor.service_status: missing column cpu_usage (Nullable(Float32))"
    ]


def test_drift_names_a_retyped_column(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    store.execute("ALTER TABLE monitor.service_logs MODIFY COLUMN message LowCardinality(String)")
    assert check_schema(store, TARGET).problems == [
        "monitor.service_logs: column message has type LowCardinality(String), expected String"
    ]


def test_drift_reports_missing_ttl_and_missing_table(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    store.execute("ALTER TABLE monitor.service_metrics REMOVE TTL")
    store.execute("DROP TABLE monitor.alert_rules")
    problems = check_schema(store, TARGET).problems
    assert "monitor.alert_rules: missing (ReplacingMergeTree)" in problems
    assert any(p.startswith("monitor.service_metrics: TTL missing") for p in problems)
    assert len(problems) == 2


def test_drift_reports_extra_table(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    store.execute("CREATE TABLE monitor.stray (x UInt8) ENGINE = Memory")
    assert check_schema(store, TARGET).problems == [
        "monitor.stray: extra Memory, not defined in sql/"
    ]


def test_summary_view_counts_checks_per_hour(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    rows = [
        status_row("api", T0 + timedelta(minutes=1), 0, 100),
        status_row("api", T0 + timedelta(minutes=2), 2, 300),
        status_row("api", T0 + timedelta(minutes=3), 2, None),
        status_row("api", T0 + timedelta(minutes=4), 1, 50),
        status_row("api", T0 + timedelta(minutes=61), 5, None),
        status_row("db", T0 + timedelta(minutes=5), 4, None),
    ]
    store.insert("service_status", STATUS_COLUMNS, rows[:3])
    store.insert("service_status", STATUS_COLUMNS, rows[3:])  # two blocks, merged by the view
    summary = store.query(
        "SELECT service_id, hour, sum(checks) AS checks, sum(failures) AS failures, "
        "sum(count_ok) AS ok, sum(count_degraded) AS degraded, sum(count_stopped) AS stopped, "
        "sum(count_unknown) AS unknown, "
        "sum(response_time_sum) / sum(response_time_count) AS avg_rt, "
        "max(response_time_max) AS max_rt, argMaxMerge(last_status) AS last_status "
        "FROM monitor.service_status_summary GROUP BY service_id, hour ORDER BY service_id, hour"
    )
    assert [(r["service_id"], r["hour"], r["checks"], r["failures"]) for r in summary] == [
        ("api", T0, 4, 2),
        ("api", T0 + timedelta(hours=1), 1, 0),
        ("db", T0, 1, 0),
    ]
    first = summary[0]
    assert (first["ok"], first["degraded"], first["stopped"], first["unknown"]) == (1, 1, 0, 0)
    assert first["avg_rt"] == pytest.approx(150.0)
    assert first["max_rt"] == 300
    assert first["last_status"] == 1
    assert summary[1]["last_status"] == 5 and summary[1]["unknown"] == 1
    assert summary[2]["stopped"] == 1


def test_retried_batch_with_same_token_is_stored_once(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    batch = [status_row("api", T0 + timedelta(seconds=i * 15), 0) for i in range(5)]
    for _ in range(3):
        store.insert("service_status", STATUS_COLUMNS, batch, dedup_token="batch-0001")
    store.insert("service_status", STATUS_COLUMNS, batch[:2], dedup_token="batch-0002")
    assert store.query("SELECT count() AS n FROM monitor.service_status") == [{"n": 7}]
    checks = store.query("SELECT sum(checks) AS n FROM monitor.service_status_summary")
    assert checks == [{"n": 7}]


def test_query_values_are_parameters_not_sql(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    evil = "x'); DROP TABLE monitor.service_status; --"
    store.insert("service_status", STATUS_COLUMNS, [status_row(evil, T0, 0)])
    rows = store.query(
        "SELECT service_id FROM monitor.service_status WHERE service_id = {id:String}",
        {"id": evil},
    )
    assert rows == [{"service_id": evil}]
    assert store.query("EXISTS TABLE monitor.service_status") == [{"result": 1}]


def test_metrics_and_logs_round_trip_maps_and_nulls(store: EmbeddedStorage) -> None:
    apply_schema(store, TARGET)
    store.insert(
        "service_metrics",
        METRIC_COLUMNS,
        [("host", T0, "disk_used", 71.5, "percent", {"mount": "/"})],
    )
    store.insert(
        "service_logs",
        LOG_COLUMNS,
        [("api", T0, "ERROR", "boom", "checker", None, "Traceback…", {"k": "v"}, "boom", 42)],
    )
    metric = store.query("SELECT * FROM monitor.service_metrics")[0]
    assert metric["tags"] == {"mount": "/"} and metric["timestamp"] == T0
    log = store.query("SELECT * FROM monitor.service_logs")[0]
    assert log["error_code"] is None and log["stack_trace"] == "Traceback…"
    assert log["context"] == {"k": "v"}
    assert (log["pattern"], log["fingerprint"]) == ("boom", 42)


def test_cluster_ddl_differs_only_by_on_cluster_and_engine() -> None:
    local = render_schema(Target("monitor"))
    cluster = render_schema(Target("monitor", cluster="production"))
    assert [s.name for s in local] == [s.name for s in cluster]

    def normalise(sql: str) -> list[str]:
        sql = re.sub(
            r"^ENGINE = .*$", "ENGINE", sql.replace("ON CLUSTER production", ""), flags=re.M
        )
        return [line.rstrip() for line in sql.splitlines()]

    for plain, replicated in zip(local, cluster, strict=True):
        assert "ON CLUSTER production" in replicated.sql
        assert normalise(replicated.sql) == normalise(plain.sql), plain.name
    engines = [s.sql for s in cluster if s.kind == "table"]
    assert all(
        re.search(
            r"ENGINE = Replicated\w+\('/clickhouse/tables/\{shard\}/monitor/\w+', '\{replica\}'",
            sql,
        )
        for sql in engines
    )


def test_bootstrap_cli_is_idempotent_and_reports_objects(tmp_path: Path) -> None:
    config = tmp_path / "lb.yaml"
    config.write_text(
        f"clickhouse:\n  embedded_path: {tmp_path / 'db'}\nservices:\n  - {{id: api, type: host}}\n"
    )
    first = run_cli("bootstrap.py", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "created table service_status" in first.stdout
    assert "created materialized view service_status_summary" in first.stdout
    assert "synced services: 1 added, 0 changed, 0 disabled, 0 unchanged" in first.stdout
    second = run_cli("bootstrap.py", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert "found table service_status" in second.stdout
    assert "synced services: 0 added, 0 changed, 0 disabled, 1 unchanged" in second.stdout
    valid = run_cli("validate_schema.py", "--config", str(config))
    assert (valid.returncode, valid.stdout.strip()) == (0, "Schema of monitor matches sql/.")
    storage = EmbeddedStorage(tmp_path / "db", "monitor")
    storage.execute("ALTER TABLE monitor.service_status DROP COLUMN memory_usage")
    storage.close()
    drift = run_cli("validate_schema.py", "--config", str(config))
    assert drift.returncode == 1
    assert "monitor.service_status: missing column memory_usage" in drift.stdout


def test_second_process_gets_clear_error_naming_holder(tmp_path: Path) -> None:
    config = tmp_path / "lb.yaml"
    config.write_text(f"clickhouse:\n  embedded_path: {tmp_path / 'db'}\n")
    holder = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        result = run_cli("bootstrap.py", "--config", str(config))
    finally:
        holder.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        f"the embedded database at {tmp_path / 'db'} is in use by process {os.getpid()}"
        in result.stderr
    )


def test_grants_render_user_password_cluster_and_profile() -> None:
    from server.schema import render_file, sql_string

    statements = render_file(
        "grants.sql",
        Target("monitor", cluster="production"),
        user="`monitor`",
        password=sql_string("it's a \\ secret"),
        profile=sql_string("program"),
    )
    assert statements[0].endswith(
        "CREATE USER IF NOT EXISTS `monitor` ON CLUSTER production "
        "IDENTIFIED WITH sha256_password BY 'it\\'s a \\\\ secret'"
    )
    assert "GRANT ON CLUSTER production ALL ON monitor.* TO `monitor`" in statements
    assert statements[-1] == "ALTER USER `monitor` ON CLUSTER production SETTINGS PROFILE 'program'"
    plain = render_file("grants.sql", Target("monitor"), user="`m`", password="''", profile=None)
    assert not any("CLUSTER" in s or "PROFILE" in s for s in plain)


def test_tables_from_an_older_release_get_new_columns_before_views_read_them(
    store: EmbeddedStorage,
) -> None:
    """service_logs and alert_events as the first alerting release made them."""
    store.execute("CREATE DATABASE monitor")
    store.execute(
        "CREATE TABLE monitor.service_logs (service_id LowCardinality(String), "
        "timestamp DateTime64(3, 'UTC'), log_level LowCardinality(String), message String, "
        "source LowCardinality(String), error_code Nullable(String), "
        "stack_trace Nullable(String), context Map(LowCardinality(String), String)) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (service_id, timestamp)"
    )
    store.execute(
        "INSERT INTO monitor.service_logs (service_id, timestamp, log_level, message, source, "
        "context) VALUES ('api', now64(3), 'ERROR', 'kept', 'old', map())"
    )
    apply_schema(store, TARGET)  # adds pattern and fingerprint, then creates error_patterns
    drift = check_schema(store, TARGET)
    assert not [p for p in drift.problems if "column" in p], drift.problems
    row = store.query("SELECT message, pattern, fingerprint FROM monitor.service_logs")[0]
    assert row == {"message": "kept", "pattern": "", "fingerprint": 0}
    store.insert("service_logs", LOG_COLUMNS,
                 [("api", T0, "ERROR", "new", "t", None, None, {}, "new", 7)])  # fmt: skip
    assert store.query("SELECT sum(count) AS n FROM monitor.error_patterns")[0]["n"] == 1
