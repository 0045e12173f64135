"""Ingest at the edge: hostile records, OTLP semantics, backpressure and a full disk.

Real app, real writer and chDB; OTLP bodies come from the real OpenTelemetry
SDK and its OTLP encoder where it can produce the case. Every test counts what
was stored, dead-lettered and refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.support.clock import FakeClock
from tests.support.hostile_logs import NDJSON_RECORDS, OTLP_BODIES, _with_good
from tests.test_log_ingest import TOKEN, Pipeline

PROTOBUF = {**TOKEN, "Content-Type": "application/x-protobuf"}


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path)
    yield p
    p.store.close()


def counts(p: Pipeline) -> tuple[int, int]:
    logs = p.rows("SELECT count() AS n FROM monitor.service_logs")[0]["n"]
    dlq = p.store.query("SELECT count() AS n FROM monitor.log_dlq")[0]["n"]
    return int(logs), int(dlq)


@pytest.mark.parametrize(
    ("name", "bad", "reason"), NDJSON_RECORDS, ids=[c[0] for c in NDJSON_RECORDS]
)
def test_a_hostile_record_is_dead_lettered_and_its_neighbours_stored(
    pipeline: Pipeline, name: str, bad: bytes, reason: str
) -> None:
    response = pipeline.client.post("/api/v1/logs", data=_with_good(bad), headers=TOKEN)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    if not reason:  # a case we take
        assert (answer["accepted"], answer["rejected"]) == (3, 0)
        assert counts(pipeline) == (3, 0)
        return
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    assert reason in answer["errors"][0]
    assert counts(pipeline) == (2, 1)
    (dlq,) = pipeline.store.query("SELECT reason, raw FROM monitor.log_dlq")
    assert reason in dlq["reason"]
    assert pipeline.writer.stats.rows_set_aside == 0  # nothing accepted failed later


@pytest.mark.parametrize(("name", "body", "status", "fragment"), OTLP_BODIES,
                         ids=[c[0] for c in OTLP_BODIES])  # fmt: skip
def test_otlp_json_of_unexpected_shape_gets_a_4xx_naming_what(
    pipeline: Pipeline, name: str, body: bytes, status: int, fragment: str
) -> None:
    headers = {**TOKEN, "Content-Type": "application/json"}
    response = pipeline.client.post("/v1/logs", data=body, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    if fragment:
        assert fragment in response.get_json()["error"]
    assert counts(pipeline) == (0, 0)


def sdk_request(*emits: dict[str, object]) -> bytes:
    """Log records as the real SDK builds and its OTLP encoder serialises them."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "api"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("edge-test")
    for kwargs in emits:
        logger.emit(**kwargs)  # type: ignore[arg-type]
    provider.shutdown()
    return bytes(encode_logs(exporter.get_finished_logs()).SerializeToString())


def test_otlp_unspecified_severity_is_stored_with_an_empty_level(pipeline: Pipeline) -> None:
    at = {"timestamp": int(datetime(2026, 11, 22, 11, tzinfo=UTC).timestamp() * 1e9)}
    body = sdk_request(
        {"body": "no severity at all", **at},
        {"body": "text only", "severity_text": "Information", **at},
        {"body": "number only", "severity_number": SeverityNumber.WARN2, **at},
        {
            "body": "odd text",
            "severity_text": "loud",
            "severity_number": SeverityNumber.ERROR,
            **at,
        },
        {"body": "odd text, no number", "severity_text": "loud", **at},
    )
    response = pipeline.client.post("/v1/logs", data=body, headers=PROTOBUF)
    assert response.status_code == 200
    rows = pipeline.rows("SELECT message, log_level, context FROM monitor.service_logs")
    got = {r["message"]: (r["log_level"], r["context"].get("otel.severity_text")) for r in rows}
    assert got == {
        "no severity at all": ("", None),
        "text only": ("INFO", None),
        "number only": ("WARN", None),
        "odd text": ("ERROR", "loud"),
        "odd text, no number": ("", "loud"),
    }
    assert counts(pipeline) == (5, 0)


def test_otlp_time_falls_back_to_observed_then_to_receive_time(pipeline: Pipeline) -> None:
    now = FakeClock().now()
    own = int(datetime(2026, 11, 22, 11, 0, tzinfo=UTC).timestamp() * 1e9)
    observed = int(datetime(2026, 11, 22, 11, 30, tzinfo=UTC).timestamp() * 1e9)
    body = sdk_request(
        {"body": "own time", "timestamp": own, "observed_timestamp": observed},
        {"body": "observed only", "observed_timestamp": observed},
    )
    response = pipeline.client.post("/v1/logs", data=body, headers=PROTOBUF)
    assert response.status_code == 200
    # and what the SDK cannot send: no time fields at all, and timeUnixNano "0"
    record = {"body": {"stringValue": "no time"}, "timeUnixNano": "0"}
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    doc = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [
        record, {"body": {"stringValue": "no fields"}}]}]}]}  # fmt: skip
    assert pipeline.client.post("/v1/logs", json=doc, headers=TOKEN).status_code == 200
    rows = pipeline.rows("SELECT message, timestamp FROM monitor.service_logs")
    got = {r["message"]: r["timestamp"] for r in rows}
    assert got["own time"] == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert got["observed only"] == datetime(2026, 11, 22, 11, 30, tzinfo=UTC)
    assert (
        got["no time"]
        == got["no fields"]
        == now.replace(microsecond=now.microsecond // 1000 * 1000)
    )


def test_otlp_times_outside_the_range_are_dead_lettered(pipeline: Pipeline) -> None:
    far = int(datetime(2290, 1, 1, tzinfo=UTC).timestamp() * 1e9)
    body = sdk_request(
        {"body": "far future", "timestamp": far},
        {
            "body": "fine",
            "timestamp": int(datetime(2026, 11, 22, 11, tzinfo=UTC).timestamp() * 1e9),
        },
    )
    response = pipeline.client.post("/v1/logs", data=body, headers=PROTOBUF)
    assert response.status_code == 200
    assert counts(pipeline) == (1, 1)
    (dlq,) = pipeline.store.query("SELECT reason FROM monitor.log_dlq")
    assert "out of range" in dlq["reason"]


def test_otlp_attributes_nested_too_deep_are_dead_lettered_alone(pipeline: Pipeline) -> None:
    value: dict[str, object] = {"stringValue": "leaf"}
    for _ in range(40):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    records = [{"body": {"stringValue": "deep"}, "attributes": [{"key": "a", "value": value}]},
               {"body": {"stringValue": "shallow"}}]  # fmt: skip
    doc = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]}
    headers = {**TOKEN, "Content-Type": "application/json"}
    response = pipeline.client.post("/v1/logs", data=json.dumps(doc), headers=headers)
    assert response.status_code == 200
    assert response.get_json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert counts(pipeline) == (1, 1)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (built by hand: protobuf itself refuses to build
    messages as deep as these)."""

    def varint(n: int) -> bytes:
        out = b""
        while n > 0x7F:
            out += bytes([n & 0x7F | 0x80])
            n >>= 7
        return out + bytes([n])

    return varint(field << 3 | 2) + varint(len(payload)) + payload


def _nested_request(depth: int, proto: bool) -> bytes:
    """A record with an attribute ``depth`` key-value lists deep, and a shallow sibling."""
    if not proto:
        value: dict[str, object] = {"stringValue": "leaf"}
        for _ in range(depth):
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
        records = [{"body": {"stringValue": "deep"}, "attributes": [{"key": "a", "value": value}]},
                   {"body": {"stringValue": "shallow"}}]  # fmt: skip
        doc = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]}
        return json.dumps(doc).encode()
    any_value = _ld(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):  # AnyValue.kvlist_value > KeyValueList.values > KeyValue
        any_value = _ld(6, _ld(1, _ld(1, b"k") + _ld(2, any_value)))
    deep = _ld(5, _ld(1, b"deep")) + _ld(6, _ld(1, b"a") + _ld(2, any_value))
    shallow = _ld(5, _ld(1, b"shallow"))
    resource = _ld(1, _ld(1, b"service.name") + _ld(2, _ld(1, b"api")))
    return _ld(1, _ld(1, resource) + _ld(2, _ld(2, deep) + _ld(2, shallow)))


@pytest.mark.parametrize("depth", [32, 33, 200])
@pytest.mark.parametrize("proto", [False, True], ids=["json", "protobuf"])
def test_otlp_protobuf_nested_attributes_are_judged_per_record_as_json_is(
    tmp_path: Path, depth: int, proto: bool
) -> None:
    # the attacker's finding: protobuf nested 32 deep refused the whole request (siblings
    # lost) while the same as JSON was stored; past 32 JSON refuses that record alone
    p = Pipeline(tmp_path)
    try:
        ctype = "application/x-protobuf" if proto else "application/json"
        response = p.client.post("/v1/logs", data=_nested_request(depth, proto),
                                 headers={**TOKEN, "Content-Type": ctype})  # fmt: skip
        assert response.status_code == 200, response.get_data()
        rejected = 0 if depth <= 32 else 1
        assert counts(p) == (2 - rejected, rejected)
        stored = sorted(r["message"] for r in p.rows("SELECT message FROM monitor.service_logs"))
        assert stored == (["deep", "shallow"] if depth <= 32 else ["shallow"])
        if rejected:
            (dlq,) = p.rows("SELECT reason FROM monitor.log_dlq")
            assert "nested deeper than 32 levels" in dlq["reason"]
            if proto:
                answer = ExportLogsServiceResponse.FromString(response.get_data())
                assert answer.partial_success.rejected_log_records == 1
            else:
                assert response.get_json()["partialSuccess"]["rejectedLogRecords"] == "1"
    finally:
        p.store.close()


def test_a_protobuf_body_broken_in_its_wire_format_is_still_a_whole_400(
    pipeline: Pipeline,
) -> None:
    body = _nested_request(40, True)
    for broken in (body[:-3], b"\x0f" + body, _ld(1, _ld(1, b"\xff\xff"))):
        response = pipeline.client.post("/v1/logs", data=broken, headers=PROTOBUF)
        assert response.status_code == 400, (broken[:20], response.get_data())
        assert "not an OTLP ExportLogsServiceRequest" in response.get_data(as_text=True)


def test_a_body_starting_with_a_utf8_bom_is_taken_whole_ndjson_and_otlp_json(
    tmp_path: Path,
) -> None:
    # the attacker's finding: "record 1: not valid UTF-8" for a BOM (valid UTF-8 bytes)
    p = Pipeline(tmp_path)
    try:
        bom = b"\xef\xbb\xbf"
        line = json.dumps({"timestamp": "2026-11-22T11:59:00Z", "service_id": "api",
                           "level": "INFO", "message": "after a BOM"})  # fmt: skip
        answer = p.client.post("/api/v1/logs", data=bom + line.encode() + b"\n" + line.encode(),
                               headers=TOKEN)  # fmt: skip
        assert answer.status_code == 200, answer.get_data()
        assert (answer.json["accepted"], answer.json["rejected"]) == (2, 0)
        otlp_json = _nested_request(1, False)
        answer = p.client.post("/v1/logs", data=bom + otlp_json,
                               headers={**TOKEN, "Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 200 and "partialSuccess" not in answer.json, answer.json
        assert counts(p) == (4, 0)
        # a BOM later (a second file appended, or two BOMs) is named, not "not valid UTF-8"
        for body in (line.encode() + b"\n" + bom + line.encode(), bom + bom + line.encode()):
            answer = p.client.post("/api/v1/logs", data=body, headers=TOKEN)
            errors = answer.json["errors"]
            assert len(errors) == 1 and "byte order mark" in str(errors[0]), answer.json
    finally:
        p.store.close()


def test_a_writer_behind_answers_429_with_retry_after_and_keeps_nothing(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    try:
        p.writer.max_queue_rows = 1000
        for i in range(1001):
            p.writer.add("service_status", ("svc", datetime.now(UTC), 0, f"m{i}", "http", "web",
                                            "{}", 1, None, None))  # fmt: skip
        body = _with_good(json.dumps({"service_id": "api"}).encode())
        response = p.client.post("/api/v1/logs", data=body, headers=TOKEN)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert "rows are waiting" in response.get_json()["error"]
        assert p.writer.stats.busy_refusals == 1
        p.writer.flush()  # the writer catches up: accepted again
        assert p.client.post("/api/v1/logs", data=body, headers=TOKEN).status_code == 200
        assert counts(p) == (2, 1)
    finally:
        p.store.close()


def test_records_older_than_the_retention_are_refused_not_acknowledged_then_dropped(
    pipeline: Pipeline,
) -> None:
    """A row older than clickhouse.retention_days would be dropped by the table's TTL after
    the client was told it was kept: refused instead, naming the setting (NDJSON and OTLP)."""
    # the table's TTL counts from the wall clock: the daemon's clock must be now too
    clock = FakeClock(datetime.now(UTC))
    client = pipeline.app(clock=clock)
    now = clock.now().timestamp()
    lines = [{"service_id": "api", "level": "INFO", "message": m, "timestamp": now - days * 86400}
             for m, days in (("old", 91), ("kept", 89))]  # fmt: skip
    body = "\n".join(json.dumps(line) for line in lines).encode()
    answer = client.post("/api/v1/logs", data=body, headers=TOKEN).get_json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert "retention_days" in answer["errors"][0]
    otlp = sdk_request({"body": "old", "timestamp": int((now - 91 * 86400) * 1e9)},
                       {"body": "kept", "timestamp": int((now - 89 * 86400) * 1e9)})  # fmt: skip
    assert client.post("/v1/logs", data=otlp, headers=PROTOBUF).status_code == 200
    assert counts(pipeline) == (2, 2)
    kept = pipeline.rows("SELECT message FROM monitor.service_logs ORDER BY message")
    assert [r["message"] for r in kept] == ["kept", "kept"]
    reasons = pipeline.store.query("SELECT reason FROM monitor.log_dlq")
    assert all("retention_days" in r["reason"] for r in reasons)
