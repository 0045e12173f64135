"""The clickhouse-driver backend against a real clickhouse-server process.

Debian ships ClickHouse 18.16, which predates Map, DateTime64 and
LowCardinality, so these tests cover the wire: connect, parameterised queries,
inserts of the types that server has, failover, auth errors and reconnects.
Set ``CLICKHOUSE_TEST_HOST`` (host:port of a modern server, optionally with
``CLICKHOUSE_TEST_USER``/``_PASSWORD``/``_CLUSTER``) to run the whole schema
suite against it as well.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.config.models import ClickHouseConfig
from server.schema import Target, apply_schema, require_cluster
from server.schema_check import check_schema
from server.storage import StorageError, StorageUnavailable
from server.storage.cluster import ClusterStorage, to_driver_params
from server.storage.embedded import EmbeddedStorage
from server.storage.version import (
    UnsupportedServer,
    missing_features,
    parse_version,
    require_supported,
)
from tests.conftest import ClickHouseServer, free_port, run_cli

pytestmark = pytest.mark.clickhouse_server
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def cluster(clickhouse_server: ClickHouseServer) -> ClusterStorage:
    storage = ClusterStorage(clickhouse_server.config(), connect_timeout=2)
    storage.execute("CREATE DATABASE IF NOT EXISTS monitor")
    storage.execute("DROP TABLE IF EXISTS monitor.wire")
    storage.execute(
        "CREATE TABLE monitor.wire (service_id String, ts DateTime, code UInt8, "
        "rt Nullable(UInt32), cpu Float32, value Float64, tags Array(String)) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (service_id, ts)"
    )
    return storage


COLUMNS = ["service_id", "ts", "code", "rt", "cpu", "value", "tags"]


def test_insert_and_select_round_trip_types(cluster: ClusterStorage) -> None:
    rows = [
        ("api", T0, 0, 120, 1.5, 0.25, ["a", "b"]),
        ("db", T0, 2, None, 0.0, -1.0, []),
    ]
    assert cluster.insert("wire", COLUMNS, rows) == 2
    got = cluster.query("SELECT * FROM monitor.wire ORDER BY service_id")
    assert [tuple(r.values()) for r in got] == rows


def test_parameters_are_escaped_by_the_driver(cluster: ClusterStorage) -> None:
    evil = "x' OR 1=1 --"
    cluster.insert(
        "wire", COLUMNS, [(evil, T0, 1, 5, 0.0, 0.0, []), ("ok", T0, 0, 5, 0.0, 0.0, [])]
    )
    rows = cluster.query(
        "SELECT service_id FROM monitor.wire WHERE service_id = {id:String} AND code < {c:UInt8}",
        {"id": evil, "c": 5},
    )
    assert rows == [{"service_id": evil}]


def test_placeholder_translation_keeps_percent_literal() -> None:
    assert to_driver_params("SELECT '%' WHERE a = {a:String}") == "SELECT '%%' WHERE a = %(a)s"


def test_failover_to_second_host_when_first_is_down(clickhouse_server: ClickHouseServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    storage = ClusterStorage(
        clickhouse_server.config(hosts=[dead, clickhouse_server.address]), connect_timeout=1
    )
    assert storage.query("SELECT 1 AS one") == [{"one": 1}]


def test_wrong_password_is_a_clear_error(clickhouse_server: ClickHouseServer) -> None:
    storage = ClusterStorage(clickhouse_server.config(password="wrong-password"))
    with pytest.raises(StorageError) as caught:
        storage.query("SELECT 1")
    message = str(caught.value)
    assert message == (
        f"ClickHouse at {clickhouse_server.address} (database monitor) refused user 'lb': "
        "authentication failed; check clickhouse.user and clickhouse.password "
        "(or CLICKHOUSE_USER / CLICKHOUSE_PASSWORD)"
    )
    assert "wrong-password" not in message


def test_all_hosts_down_is_storage_unavailable() -> None:
    config = ClickHouseConfig.model_validate({"hosts": [f"127.0.0.1:{free_port()}"]})
    with pytest.raises(StorageUnavailable, match="is unreachable"):
        ClusterStorage(config, connect_timeout=1).query("SELECT 1")


def test_reconnects_after_server_restart(clickhouse_server: ClickHouseServer) -> None:
    storage = ClusterStorage(clickhouse_server.config(), connect_timeout=2)
    assert storage.query("SELECT 1 AS one") == [{"one": 1}]
    clickhouse_server.stop()
    with pytest.raises(StorageUnavailable):
        storage.query("SELECT 1")
    clickhouse_server.start()
    assert storage.query("SELECT 2 AS two") == [{"two": 2}]


# --- The full schema suite on a modern server, when one is given -----------------

MODERN = os.environ.get("CLICKHOUSE_TEST_HOST")


@pytest.fixture
def modern() -> ClusterStorage:
    if not MODERN:
        pytest.skip("set CLICKHOUSE_TEST_HOST=host:port to run the schema on a modern server")
    config = ClickHouseConfig.model_validate(
        {
            "hosts": [MODERN],
            "user": os.environ.get("CLICKHOUSE_TEST_USER", "default"),
            "password": os.environ.get("CLICKHOUSE_TEST_PASSWORD", ""),
            "database": "lightbulb_test",
            "cluster": os.environ.get("CLICKHOUSE_TEST_CLUSTER") or None,
        }
    )
    storage = ClusterStorage(config)
    storage.execute("DROP DATABASE IF EXISTS lightbulb_test")
    return storage


def test_modern_server_schema_applies_and_matches(modern: ClusterStorage) -> None:
    target = Target("lightbulb_test", modern.cluster)
    assert all(created for _, created in apply_schema(modern, target))
    assert check_schema(modern, target).problems == []
    modern.execute("ALTER TABLE lightbulb_test.service_status DROP COLUMN cpu_usage")
    assert check_schema(modern, target).problems == [
        "lightbulb_test.service_status: missing column cpu_usage (Nullable(Float32))"
    ]


# --- Honest errors and the version floor ---------------------------------------------


def test_a_refused_statement_names_the_statement_and_the_servers_reason(
    cluster: ClusterStorage,
) -> None:
    with pytest.raises(StorageError) as caught:
        cluster.query("SELECT no_such_column\nFROM monitor.wire")
    message = str(caught.value)
    assert not isinstance(caught.value, StorageUnavailable)  # reachable: refused, not away
    assert message.startswith(
        f"ClickHouse at {cluster.hosts[0]} (database monitor) refused "
        "`SELECT no_such_column`: Code 47: "
    )
    assert "no_such_column" in message.split("Code 47: ", 1)[1]
    assert "Stack trace" not in message


def test_version_check_refuses_the_old_server_naming_both_versions_and_features(
    cluster: ClusterStorage,
) -> None:
    version = cluster.query("SELECT version() AS v")[0]["v"]
    with pytest.raises(UnsupportedServer) as caught:
        require_supported(cluster)
    message = str(caught.value)
    assert f"runs ClickHouse {version}; Lightbulb needs 22.3 or newer" in message
    for feature in ("DateTime64 (20.1)", "Map (21.1)", "insert_deduplication_token (22.2)"):
        assert feature in message


@pytest.mark.parametrize("command", ["bootstrap", "validate-schema", "report"])
def test_cli_against_an_old_server_says_why_not_a_bare_code(
    clickhouse_server: ClickHouseServer, tmp_path: Path, command: str
) -> None:
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"clickhouse:\n  hosts: ['{clickhouse_server.address}']\n"
        f"  user: {clickhouse_server.USER}\n  password: {clickhouse_server.PASSWORD}\n"
    )
    extra = ["--date", "2026-11-21"] if command == "report" else []
    result = run_cli("-m", "server.cli", command, "--config", str(config), *extra)
    assert result.returncode == 1
    assert "Lightbulb needs 22.3 or newer. Missing: " in result.stderr
    assert "DateTime64 (20.1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_parse_and_missing_features() -> None:
    assert parse_version("18.16.1") == (18, 16, 1)
    assert parse_version("24.8.4.13-lts") == (24, 8, 4, 13)
    assert missing_features((21, 8)) == ["insert_deduplication_token (22.2)"]
    assert missing_features((22, 3, 1)) == []


# --- One connection per concurrent caller ---------------------------------------------


def test_concurrent_writers_and_readers_lose_and_fail_nothing(cluster: ClusterStorage) -> None:
    writers, readers, batches, per_batch = 2, 4, 40, 48
    failures: list[str] = []
    stop = threading.Event()

    def write(worker: int) -> None:
        for b in range(batches):
            rows = [(f"w{worker}", T0, b % 3, i, 0.0, float(i), []) for i in range(per_batch)]
            try:
                cluster.insert("wire", COLUMNS, rows)
            except StorageError as exc:
                failures.append(f"insert: {exc}")

    def read() -> None:
        while not stop.is_set():
            try:
                got = cluster.query(
                    "SELECT count() AS n, sum(value) AS s FROM monitor.wire WHERE code < {c:UInt8}",
                    {"c": 9},
                )
                assert got[0]["n"] >= 0
            except StorageError as exc:
                failures.append(f"query: {exc}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reading = [threading.Thread(target=read) for _ in range(readers)]
    for t in reading + threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    for t in reading:
        t.join(30)
    assert failures == []
    counts = cluster.query("SELECT service_id, count() AS n FROM monitor.wire GROUP BY service_id")
    assert {r["service_id"]: r["n"] for r in counts} == {
        f"w{w}": batches * per_batch for w in range(writers)
    }


def test_an_unknown_cluster_name_is_refused_naming_the_clusters_the_server_knows(
    cluster: ClusterStorage, tmp_path: Path
) -> None:
    require_cluster(cluster, Target("monitor", "lb-local"))  # conftest's remote_servers
    with pytest.raises(StorageError) as caught:
        require_cluster(cluster, Target("monitor", "prod-eu"))
    message = str(caught.value)
    assert "'prod-eu' is not a cluster of" in message
    assert message.endswith("the clusters it knows: lb-local, lb_local")
    empty = EmbeddedStorage(tmp_path / "db", "monitor")  # no remote_servers at all
    try:
        with pytest.raises(
            StorageError, match=r"knows: none \(its remote_servers section is empty\)"
        ):
            require_cluster(empty, Target("monitor", "prod-eu"))
    finally:
        empty.close()
