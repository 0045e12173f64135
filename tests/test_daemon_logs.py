"""A real OpenTelemetry SDK and OTLP/HTTP exporter pushing logs to a running daemon."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.conftest import free_port
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]


# The SDK steers users to opentelemetry-instrumentation-logging; its handler is the same
# exporter path, and what we test is the wire format the exporter sends.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_opentelemetry_exporter_pushes_logs_that_the_daemon_stores(tmp_path: Path) -> None:
    port = free_port()
    services = "  - {id: payments, type: tcp, interval: 1s, tcp: {host: 127.0.0.1, port: 1}}\n"
    config = write_config(tmp_path, services, extra="logs:\n  tokens: {otel: t0k3n}\n", port=port)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")

    provider = LoggerProvider(resource=Resource.create({"service.name": "payments"}))
    exporter = OTLPLogExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/logs",
        headers={"Authorization": "Bearer t0k3n"},
        compression=Compression.Gzip,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("lightbulb-otel-test")
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    logger.setLevel(logging.INFO)
    logger.error("charge 42 failed for bob@example.com")
    logger.warning("card network slow: 900 ms")
    assert provider.force_flush(10_000)
    provider.shutdown()

    # and NDJSON over plain HTTP, as curl would send it
    body = (
        '{"timestamp": "2026-11-22T10:00:00Z", "service_id": "payments", "level": "INFO",'
        ' "message": "settled batch 7"}\n{"service_id": "payments"}\n'
    )
    answer = requests.post(
        f"http://127.0.0.1:{port}/api/v1/logs",
        data=body.encode(),
        headers={"Authorization": "Bearer t0k3n", "Content-Type": "application/x-ndjson"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 1)

    code, _ = daemon.stop()
    assert code == 0, daemon.output
    rows = query(
        tmp_path,
        "SELECT service_id, log_level, message, source, pattern, context "
        "FROM monitor.service_logs WHERE source = 'otlp' ORDER BY timestamp",
    )
    assert [(r["service_id"], r["log_level"], r["message"]) for r in rows] == [
        ("payments", "ERROR", "charge 42 failed for bob@example.com"),
        ("payments", "WARN", "card network slow: 900 ms"),
    ]
    assert rows[0]["pattern"] == "charge <num> failed for <email>"
    pushed = query(tmp_path, "SELECT message FROM monitor.service_logs WHERE source = 'push'")
    assert [r["message"] for r in pushed] == ["settled batch 7"]
    dlq = query(tmp_path, "SELECT endpoint, reason FROM monitor.log_dlq")
    assert [(r["endpoint"], r["reason"]) for r in dlq] == [("ndjson", "level: expected one of "
            "TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL, FATAL")]  # fmt: skip
    assert rows[0]["context"]["otel.scope"] == "lightbulb-otel-test"
