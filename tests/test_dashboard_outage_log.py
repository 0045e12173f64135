"""A ClickHouse outage fails every dashboard request: one log line, then one a minute."""

from __future__ import annotations

import logging

import pytest

from server.storage import open_storage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.conftest import free_port
from tests.support.clock import FakeClock


def test_a_failing_dashboard_query_is_logged_once_then_summed_up_each_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the attacker's finding: "dashboard query failed" on every request of an outage
    config = parse_config(f"clickhouse:\n  hosts: ['127.0.0.1:{free_port()}']\n"
                          "services: []\n", "lb.yaml")  # fmt: skip
    storage = open_storage(config.clickhouse)  # nothing listens there: every query fails
    clock = FakeClock()
    client = create_app(WebContext(config, storage, clock)).test_client()
    caplog.set_level(logging.WARNING)

    def failed() -> list[str]:
        return [r.getMessage() for r in caplog.records if "dashboard query failed" in r.message]

    try:
        for _ in range(5):
            assert client.get("/").status_code == 503
        assert len(failed()) == 1 and "more failed" not in failed()[0]
        clock.advance(59)
        assert client.get("/").status_code == 503
        assert len(failed()) == 1
        clock.advance(1)
        assert client.get("/").status_code == 503
        assert len(failed()) == 2
        assert "(5 more failed since the last such line)" in failed()[1]
    finally:
        storage.close()
