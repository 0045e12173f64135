"""Pushed logs through the real app, writer and chDB: NDJSON and OTLP, limits, the DLQ."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.validation import parse_config
from server.web import WebContext, create_app
from server.writer import Writer
from tests.support.clock import FakeClock

TOKEN = {"Authorization": "Bearer push-t0ken"}
CONFIG = """
services:
  - {id: api, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
logs:
  max_body: 64KiB
  max_record: 2KiB
  max_records: 50
  environment: staging
"""


class Pipeline:
    def __init__(self, root: Path, extra: str = "") -> None:
        self.store = EmbeddedStorage(root / "db", "monitor")
        apply_schema(self.store, Target("monitor"))
        columns = WRITTEN_TABLES
        self.writer = Writer(self.store, Spool(root / "spool", 2**20), columns=columns)
        self.client = self.app(extra)

    def app(self, extra: str = "", clock: FakeClock | None = None) -> FlaskClient:
        """A client on the same store and writer with more config (one chDB per process)."""
        tokens = "" if "tokens:" in extra else "  tokens: {shipper: push-t0ken}\n"
        config = parse_config(CONFIG + tokens + extra, "t.yaml", {})
        context = WebContext(config, self.store, clock or FakeClock(), sink=self.writer)
        return create_app(context).test_client()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        self.writer.flush()
        return self.store.query(sql)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path)
    yield p
    p.store.close()


def ndjson(*records: Any) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else json.dumps(r).encode() for r in records)


GOOD = {"timestamp": "2026-11-22T11:59:00Z", "service_id": "api", "level": "error",
        "message": "timeout after 5000 ms", "context": {"request_id": "r-1"}}  # fmt: skip


def test_valid_records_are_stored_and_every_bad_one_lands_in_the_dlq(pipeline: Pipeline) -> None:
    body = ndjson(
        GOOD,
        {**GOOD, "level": "warning", "timestamp": 1795348740, "message": "slow"},
        b"{not json",
        {**GOOD, "service_id": None},
        {**GOOD, "level": "LOUD"},
        {**GOOD, "timestamp": "yesterday"},
        {**GOOD, "timestamp": "2026-11-22T11:59:00"},
        b'{"service_id": "api", "level": "INFO", "message": "caf\xe9", "timestamp": 1}',
        {**GOOD, "message": "x" * 3000},
        {**GOOD, "context": ["not", "a", "map"]},
        {**GOOD, "message": ""},
    )
    response = pipeline.client.post("/api/v1/logs", data=body, headers=TOKEN)
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["accepted"], answer["rejected"]) == (2, 9)
    assert answer["errors"][0] == "record 3: not JSON: unexpected character, expected a string key"
    stored = pipeline.rows("SELECT log_level, message, context, pattern FROM monitor.service_logs "
                           "ORDER BY log_level")  # fmt: skip
    assert [(r["log_level"], r["message"]) for r in stored] == [
        ("ERROR", "timeout after 5000 ms"), ("WARN", "slow")]  # fmt: skip
    assert (stored[0]["pattern"], stored[1]["pattern"]) == ("timeout after <num> ms", "")
    context = stored[0]["context"]
    assert (context["request_id"], context["environment"]) == ("r-1", "staging")
    assert "received_at" in context and "sender" in context
    reasons = [r["reason"] for r in pipeline.rows("SELECT reason FROM monitor.log_dlq")]
    assert sorted(reasons) == sorted([
        "not JSON: unexpected character, expected a string key",
        "service_id: required",
        "level: unknown 'LOUD'; expected one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL, FATAL",
        "timestamp: 'yesterday' is neither RFC 3339 nor epoch time",
        "timestamp: '2026-11-22T11:59:00' has no time zone (RFC 3339 needs one)",
        "not valid UTF-8",
        "record larger than logs.max_record (2048 bytes)",
        "context: expected an object of strings",
        "message: required",
    ])  # fmt: skip


def test_epoch_seconds_milliseconds_and_nanoseconds_mean_the_same_instant(
    pipeline: Pipeline,
) -> None:
    stamps = [1795348740, 1795348740000, "1795348740000000000", "2026-11-22T11:59:00+00:00"]
    body = ndjson(*({**GOOD, "timestamp": t} for t in stamps))
    assert (
        pipeline.client.post("/api/v1/logs", data=body, headers=TOKEN).get_json()["accepted"] == 4
    )
    rows = pipeline.rows("SELECT DISTINCT timestamp FROM monitor.service_logs")
    assert len(rows) == 1


def test_gzip_bodies_are_accepted(pipeline: Pipeline) -> None:
    body = gzip.compress(ndjson(GOOD, GOOD))
    headers = {**TOKEN, "Content-Encoding": "gzip"}
    response = pipeline.client.post("/api/v1/logs", data=body, headers=headers)
    assert response.get_json()["accepted"] == 2


def test_every_member_of_a_multi_member_gzip_body_is_read(pipeline: Pipeline) -> None:
    # RFC 1952 2.2: `cat a.gz b.gz` is one gzip stream of two members (each record once)
    body = gzip.compress(ndjson(GOOD) + b"\n") + gzip.compress(ndjson(GOOD, GOOD))
    for encoding in ("gzip", "x-gzip", " GZIP "):
        headers = {**TOKEN, "Content-Encoding": encoding}
        answer = pipeline.client.post("/api/v1/logs", data=body, headers=headers).get_json()
        assert (answer["accepted"], answer["rejected"]) == (3, 0)
    assert pipeline.rows("SELECT count() AS n FROM monitor.service_logs")[0]["n"] == 9


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (gzip.compress(ndjson(*[GOOD] * 10))[:-10], "cut short"),  # no trailer: CRC unchecked
        (gzip.compress(ndjson(*[GOOD] * 10))[:-1], "cut short"),
        (gzip.compress(ndjson(GOOD)) + b"garbage after the member", "after its last member"),
        (gzip.compress(ndjson(GOOD)) + gzip.compress(ndjson(GOOD))[:-4], "cut short"),
        (b"not gzip at all", "the body is not gzip"),
    ],
)
def test_a_gzip_body_that_is_not_whole_stores_nothing(
    pipeline: Pipeline, body: bytes, says: str
) -> None:
    # storing the records before the damage would store them again when the client retries
    headers = {**TOKEN, "Content-Encoding": "gzip"}
    response = pipeline.client.post("/api/v1/logs", data=body, headers=headers)
    assert response.status_code == 400 and says in response.get_json()["error"]
    assert pipeline.rows("SELECT count() AS n FROM monitor.service_logs")[0]["n"] == 0


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"x" * 70_000, {}, "body larger than logs.max_body (64 KiB)"),
        (gzip.compress(b" " * 200_000), {"Content-Encoding": "gzip"},
         "decompressed body larger than logs.max_body (64 KiB)"),
        (ndjson(*[GOOD] * 51), {}, "51 records in one request; logs.max_records is 50"),
    ],
)  # fmt: skip
def test_limits_answer_413_naming_the_limit(
    pipeline: Pipeline, body: bytes, headers: dict[str, str], message: str
) -> None:
    response = pipeline.client.post("/api/v1/logs", data=body, headers={**TOKEN, **headers})
    assert response.status_code == 413
    assert response.get_json()["error"] == message


def test_a_request_whose_every_record_is_bad_is_a_400(pipeline: Pipeline) -> None:
    response = pipeline.client.post("/api/v1/logs", data=b"nope\n", headers=TOKEN)
    assert response.status_code == 400 and response.get_json()["rejected"] == 1


def test_ingestion_needs_a_logs_token(pipeline: Pipeline) -> None:
    assert pipeline.client.post("/api/v1/logs", data=ndjson(GOOD)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert pipeline.client.post("/api/v1/logs", data=ndjson(GOOD), headers=wrong).status_code == 401
    off = pipeline.app("  tokens: {}\n")
    response = off.post("/api/v1/logs", data=ndjson(GOOD), headers=TOKEN)
    assert response.status_code == 403 and "logs.tokens" in response.get_json()["error"]


def test_unknown_services_are_flagged_or_rejected(pipeline: Pipeline) -> None:
    other = {**GOOD, "service_id": "billing"}
    answer = pipeline.client.post("/api/v1/logs", data=ndjson(other), headers=TOKEN).get_json()
    assert answer["unknown_services"] == ["billing"]
    assert pipeline.rows("SELECT context FROM monitor.service_logs")[0]["context"][
        "unknown_service"] == "1"  # fmt: skip
    strict = pipeline.app("  unknown_services: reject\n")
    answer = strict.post("/api/v1/logs", data=ndjson(other), headers=TOKEN).get_json()
    assert answer["errors"] == ["record 1: service_id: unknown service 'billing'"]


def otlp_request() -> ExportLogsServiceRequest:
    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    records = [
        LogRecord(time_unix_nano=1795348740_000_000_000, severity_number=17, severity_text="ERROR",
                  body=AnyValue(string_value="db pool exhausted after 30 s"),
                  attributes=[kv("exception.type", "PoolError")],
                  trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
                  span_id=bytes.fromhex("eee19b7ec3c1b174")),
        LogRecord(observed_time_unix_nano=1795348741_000_000_000, severity_number=9,
                  body=AnyValue(string_value="served")),
        LogRecord(time_unix_nano=5, severity_number=9, body=AnyValue(string_value="too old")),
    ]  # fmt: skip
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=[kv("service.name", "api"), kv("host.name", "h1")]),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )


def test_otlp_protobuf_maps_resource_severity_body_and_trace_ids(pipeline: Pipeline) -> None:
    body = otlp_request().SerializeToString()
    headers = {**TOKEN, "Content-Type": "application/x-protobuf"}
    response = pipeline.client.post("/v1/logs", data=body, headers=headers)
    assert response.status_code == 200
    answer = ExportLogsServiceResponse.FromString(response.data)
    assert answer.partial_success.rejected_log_records == 1
    rows = pipeline.rows("SELECT service_id, log_level, message, error_code, context "
                         "FROM monitor.service_logs ORDER BY timestamp")  # fmt: skip
    assert [(r["service_id"], r["log_level"], r["message"]) for r in rows] == [
        ("api", "ERROR", "db pool exhausted after 30 s"), ("api", "INFO", "served")]  # fmt: skip
    context = rows[0]["context"]
    assert context["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert context["span_id"] == "eee19b7ec3c1b174"
    assert context["resource.host.name"] == "h1"
    assert rows[0]["error_code"] == "PoolError"


def test_otlp_json_is_accepted_too(pipeline: Pipeline) -> None:
    record = {
        "timeUnixNano": "1795348740000000000",
        "severityText": "WARN",
        "body": {"stringValue": "hi"},
        "traceId": "5B8EFFF798038103D269B633813FC60C",
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    doc = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]}
    response = pipeline.client.post("/v1/logs", json=doc, headers=TOKEN)
    assert response.status_code == 200 and response.get_json() == {}
    row = pipeline.rows("SELECT log_level, context FROM monitor.service_logs")[0]
    assert row["log_level"] == "WARN"
    assert row["context"]["trace_id"] == "5b8efff798038103d269b633813fc60c"


def test_bad_otlp_bodies_get_a_4xx(pipeline: Pipeline) -> None:
    proto = {**TOKEN, "Content-Type": "application/x-protobuf"}
    assert pipeline.client.post("/v1/logs", data=b"\xff\xff", headers=proto).status_code == 400
    text = {**TOKEN, "Content-Type": "text/plain"}
    assert pipeline.client.post("/v1/logs", data=b"hi", headers=text).status_code == 415


def test_logs_accepted_during_a_clickhouse_outage_are_written_when_it_returns(
    tmp_path: Path,
) -> None:
    from tests.test_writer import Flaky

    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        flaky = Flaky(store)
        columns = WRITTEN_TABLES
        writer = Writer(flaky, Spool(tmp_path / "spool", 2**20), columns=columns)  # type: ignore[arg-type]
        config = parse_config(CONFIG + "  tokens: {shipper: push-t0ken}\n", "t.yaml", {})
        client = create_app(WebContext(config, store, FakeClock(), sink=writer)).test_client()
        flaky.down = True
        response = client.post("/api/v1/logs", data=ndjson(GOOD, GOOD, b"bad"), headers=TOKEN)
        assert response.get_json()["accepted"] == 2
        writer.flush()
        assert writer.pending_rows() == 3  # held on disk, not lost
        assert store.query("SELECT count() AS n FROM monitor.service_logs")[0]["n"] == 0
        flaky.down = False
        writer.flush()
        assert store.query("SELECT count() AS n FROM monitor.service_logs")[0]["n"] == 2
        assert store.query("SELECT count() AS n FROM monitor.log_dlq")[0]["n"] == 1
    finally:
        store.close()


def test_pushed_secrets_are_masked_in_stored_rows_patterns_and_dead_letters(
    pipeline: Pipeline,
) -> None:
    """A pushed record quoting a secret (any spelling) is stored masked: message, stack,
    context, the error pattern taken from it, and the raw text of a refused record."""
    from server.core import redact

    held = redact.hold()
    redact.learn(["CmdThetaSecret8", "Pw/Beta:Secret2"])
    held.keep()
    leak = "canary CmdThetaSecret8 url Pw%2FBeta%3ASecret2"
    good = dict(GOOD, message=leak, stack_trace=f"at x ({leak})", context={"q": leak})
    bad = {"service_id": "api", "level": "error", "message": leak, "timestamp": "nonsense"}
    answer = pipeline.client.post("/api/v1/logs", data=ndjson(good, bad), headers=TOKEN)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    rows = pipeline.rows("SELECT message, stack_trace, context, pattern FROM monitor.service_logs")
    dead = pipeline.rows("SELECT raw FROM monitor.log_dlq")
    held.release()
    stored = repr(rows) + repr(dead)
    assert len(rows) == 1 and len(dead) == 1
    assert "Secret8" not in stored and "Secret2" not in stored, stored
    assert rows[0]["message"] == "canary <secret> url <secret>"
    assert "<secret>" in rows[0]["pattern"]


def test_an_otlp_record_nested_past_the_limit_is_refused_by_partial_success_not_a_500(
    pipeline: Pipeline,
) -> None:
    body = '{"arrayValue":{"values":[' * 300 + "{}" + "]}}" * 300
    doc = '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":' + body + "}]}]}]}"
    answer = pipeline.client.post(
        "/v1/logs", data=doc, headers={**TOKEN, "Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)  # OTLP partial success
    assert answer.get_json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "nested deeper" in answer.get_json()["partialSuccess"]["errorMessage"]
    assert len(pipeline.rows("SELECT raw FROM monitor.log_dlq")) == 1


def test_in_a_large_request_only_the_records_quoting_a_secret_are_masked(
    pipeline: Pipeline,
) -> None:
    """The request's text is scanned once; the record that hits is masked (its error
    pattern taken again from the masked text) and its neighbours are stored as sent,
    over NDJSON and OTLP alike."""
    from server.core import redact

    held = redact.hold()
    redact.learn(["CmdThetaSecret8"])
    held.keep()
    try:
        plain = [{**GOOD, "message": f"timeout after {i} ms"} for i in range(40)]
        leaky = {**GOOD, "message": "login CmdThetaSecret8 refused"}
        answer = pipeline.client.post("/api/v1/logs", data=ndjson(*plain[:20], leaky, *plain[20:]),
                                      headers=TOKEN)  # fmt: skip
        assert answer.get_json()["accepted"] == 41
        record = LogRecord(time_unix_nano=1795348740 * 10**9, severity_number=17,
                           body=AnyValue(string_value="otlp CmdThetaSecret8 leak"))  # fmt: skip
        quiet = LogRecord(time_unix_nano=1795348740 * 10**9, severity_number=17,
                          body=AnyValue(string_value="otlp quiet"))  # fmt: skip
        service = KeyValue(key="service.name", value=AnyValue(string_value="api"))
        request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
            resource=Resource(attributes=[service]),
            scope_logs=[ScopeLogs(log_records=[quiet, record])])])  # fmt: skip
        headers = {**TOKEN, "Content-Type": "application/x-protobuf"}
        response = pipeline.client.post("/v1/logs", data=request.SerializeToString(),
                                        headers=headers)  # fmt: skip
        assert response.status_code == 200
        rows = pipeline.rows("SELECT message, pattern FROM monitor.service_logs")
    finally:
        held.release()
    by_message = {r["message"]: r["pattern"] for r in rows}
    assert len(rows) == 43 and "Secret8" not in repr(rows)
    assert by_message["login <secret> refused"] == "login <secret> refused"
    assert by_message["otlp <secret> leak"] == "otlp <secret> leak"
    assert by_message["otlp quiet"] == "otlp quiet"
    assert by_message["timeout after 7 ms"] == "timeout after <num> ms"


def test_pushed_error_records_among_many_others_reach_the_alert_engine(
    pipeline: Pipeline,
) -> None:
    from tests.alerting_harness import Harness

    h = Harness("""
alert_rules:
  - {id: errors, service: api, condition: "log_errors > threshold", threshold: 1, for: 1m,
     channels: [hook]}
logs: {tokens: {shipper: push-t0ken}}
""")
    context = WebContext(h.config, pipeline.store, h.clock, alerts=h.engine, sink=pipeline.writer)
    client = create_app(context).test_client()
    at = h.clock.now().isoformat()
    records = [{**GOOD, "timestamp": at, "level": "INFO", "message": f"ok {i}"} for i in range(30)]
    records[7] = records[19] = {**GOOD, "timestamp": at, "level": "ERROR", "message": "boom"}
    answer = client.post("/api/v1/logs", data=ndjson(*records), headers=TOKEN)
    assert answer.get_json()["accepted"] == 30
    h.tick(1)
    assert h.state("errors:api") == "firing"
