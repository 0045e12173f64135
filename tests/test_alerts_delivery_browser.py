"""/alerts in a real headless Chromium shows, per channel, whether the alert's notice was
delivered, is retrying (with the last error) or failed: three real loopback webhooks
answering 200, 500 and 403 to the engine's real dispatcher, at 1400 px and at 390 px.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from checkers.base import CheckResult, Status
from server.alerting.engine import AlertEngine
from server.alerting.log import AlertLog
from server.notify.dispatcher import Dispatcher
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.support.browser import OVERFLOW_JS, browser, serving, view
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver
from tests.support.rows import MemoryRows

__all__ = ["browser"]  # the module's Chromium (tests.support.browser)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CONFIG = """
services:
  - {{id: db, type: tcp, tcp: {{host: 127.0.0.1, port: 1}}}}
channels:
  ops: {{type: webhook, url: "{ok}/ops"}}
  flaky: {{type: webhook, url: "{flaky}/flaky"}}
  gone: {{type: webhook, url: "{gone}/gone"}}
alerting: {{group_wait: 0s, retry_backoff: 1h, retry_max_backoff: 1h}}
alert_rules:
  - {{id: down, service: db, condition: "status >= FAILED", severity: critical,
     channels: [ops, flaky, gone]}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, HttpReceiver]]]:
    receivers = {
        "ok": HttpReceiver(),
        "flaky": HttpReceiver(failing=True, fail_status=500),
        "gone": HttpReceiver(status=403),
    }
    config = parse_config(
        CONFIG.format(**{k: r.url for k, r in receivers.items()}), "alerts.yaml", {}
    )
    root: Path = tmp_path_factory.mktemp("delivery")
    store = EmbeddedStorage(root / "db", "monitor")
    apply_schema(store, Target("monitor"))
    clock = FakeClock(NOW)
    log = AlertLog(MemoryRows(), store, clock)  # the page reads live alerts from the engine
    dispatcher = Dispatcher(config, clock, log, rng=random.Random(3))
    engine = AlertEngine(config, log, dispatcher, clock)
    engine.observe("db", CheckResult(Status.FAILED, "connection refused"), clock.now())
    assert dispatcher.step() == 3  # one attempt per channel; the retry is an hour away
    with serving(create_app(WebContext(config, store, clock, engine))) as url:
        yield url, receivers
    store.close()
    for receiver in receivers.values():
        receiver.down()


@pytest.mark.parametrize("width", [1400, 390])
def test_alerts_page_shows_delivered_retrying_with_its_error_and_failed_per_channel(
    site: tuple[str, dict[str, HttpReceiver]], browser: WebDriver, width: int
) -> None:
    url, receivers = site
    assert [len(r.arrivals) for r in receivers.values()] == [1, 1, 1]
    view(browser, width)
    browser.get(url + "/alerts")
    # the firing alert's row: one line per channel, its state in words
    row = browser.find_element(By.CSS_SELECTOR, 'section[data-section="Firing"] tr[data-alert]')
    cells = {
        d.get_attribute("data-channel"): (d.get_attribute("data-state"), d.text)
        for d in row.find_elements(By.CSS_SELECTOR, "td.delivery div")
    }
    assert set(cells) == {"ops", "flaky", "gone"}
    assert cells["ops"][0] == "delivered" and cells["ops"][1].startswith(
        "ops: delivered 2026-11-22"
    )
    state, text = cells["flaky"]
    assert state == "retrying" and "(1 attempts)" in text and "HTTP 500" in text
    state, text = cells["gone"]
    assert state == "failed" and text.startswith("gone: failed permanently") and "403" in text
    # the summary per channel: counts and the newest error, for every configured channel
    summary = {
        tr.get_attribute("data-channel"): (
            tr.get_attribute("data-delivered"),
            tr.get_attribute("data-retrying"),
            tr.get_attribute("data-failed"),
            tr.find_element(By.CSS_SELECTOR, "td.error").text,
        )
        for tr in browser.find_elements(By.CSS_SELECTOR, "section.channels tr[data-channel]")
    }
    assert summary["ops"] == ("1", "0", "0", "")
    assert (
        summary["flaky"][:3] == ("0", "1", "0") and "down:db: retrying since" in summary["flaky"][3]
    )
    assert "HTTP 500" in summary["flaky"][3]
    assert summary["gone"][:3] == ("0", "0", "1") and "failed permanently" in summary["gone"][3]
    for cell in row.find_elements(By.CSS_SELECTOR, "td.delivery div"):
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        assert cell.is_displayed()
    fits = browser.execute_script(OVERFLOW_JS)
    assert fits["scroll"] <= fits["width"] and not fits["bad"], fits
