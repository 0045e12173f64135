"""Long unbroken user text wraps on every page instead of scrolling it sideways.

Real recorder rows in chDB, the real app behind its real web server, and Debian's
headless Chromium at 1400 px and at 390 px: a 3,000-character label, stack and
check message, a 5,000-character ERROR line (with its stack trace), a long status
page title and group name, a failing run that makes an incident; every page is
measured by ``document.documentElement.scrollWidth`` against the window's width.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from checkers.base import CheckResult, LogEntry, Metric, Status
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.support.browser import OVERFLOW_JS, browser, serving, view
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows

__all__ = ["browser"]  # the module's Chromium (tests.support.browser)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LABEL = "L" * 3000
STACK = "s" * 300
MESSAGE = "M" * 3000
ERROR = "E" * 5000
TITLE = "T" * 2000
GROUP = "G" * 2000
METRIC = "metric_" + "m" * 200
CONFIG = f"""
services:
  - {{id: long, label: {LABEL}, type: tcp, stack: {STACK}, interval: 1m,
     tcp: {{host: 127.0.0.1, port: 9}}, slo: {{target: 99.9, window: 7d}}}}
  - {{id: short, type: tcp, interval: 1m, tcp: {{host: 127.0.0.1, port: 9}}}}
status_page:
  title: {TITLE}
  groups:
    - {{name: {GROUP}, services: [long, short]}}
"""
PAGES = [
    "/",
    "/errors",
    "/services/long",
    "/incidents",
    "/status",
    "/alerts",
    "/reports",
    "/dependencies",
    f"/reports/{NOW.date().isoformat()}",
]


class Svc:
    def __init__(self, sid: str, stack: str = "default") -> None:
        self.id, self.type, self.stack = sid, "tcp", stack


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = EmbeddedStorage(tmp_path_factory.mktemp("long") / "db", "monitor")
    apply_schema(store, Target("monitor", retention_days=3650))
    sink = MemoryRows()
    recorder = Recorder(sink)
    for i in range(120):
        at = NOW - timedelta(minutes=120 - i)
        failing = 60 <= i < 90  # a run of FAILED: an incident
        result = CheckResult(
            Status.FAILED if failing else Status.OK,
            MESSAGE,
            response_time_ms=20 + i % 7,
            metrics=[Metric(METRIC, float(i), "count", {"tag": "v" * 300})],
            logs=[LogEntry("ERROR", f"{ERROR}{i}", stack_trace="F" * 5000)] if failing else [],
        )
        recorder.record(Svc("long", STACK), result, at)
        recorder.record(Svc("short"), CheckResult(Status.OK, "ok", response_time_ms=5), at)
    sink.insert_into(store)
    config = parse_config(CONFIG, "long.yaml", {})
    with serving(create_app(WebContext(config, store, FakeClock(NOW)))) as url:
        yield url
    store.close()


@pytest.mark.parametrize("width", [1400, 390])
@pytest.mark.parametrize("path", PAGES)
def test_long_unbroken_text_wraps_instead_of_widening_the_page(
    site: str, browser: WebDriver, path: str, width: int
) -> None:
    view(browser, width)
    browser.get(site + path)
    urls = [site + path]
    if path == "/incidents":  # and the page of the incident the failing run made
        link = "tr[data-incident] a[href*='/incidents/']"
        urls += [
            a.get_attribute("href") or "" for a in browser.find_elements(By.CSS_SELECTOR, link)
        ]
        assert len(urls) > 1, "no incident listed"
    for url in urls:
        browser.get(url)
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        found = browser.execute_script(OVERFLOW_JS)
        # innerWidth itself grows past a phone's width when the page is wider
        assert found["scroll"] <= min(found["width"], width), (url, width, found)
        assert found["bad"] == [], (url, width, found)


def test_the_incident_and_the_long_texts_are_on_the_pages(site: str, browser: WebDriver) -> None:
    """The measure above is of pages that show the texts, not of pages that left them out."""
    view(browser, 1400)
    for path, text in (("/", LABEL), ("/errors", ERROR[:100]), ("/services/long", ERROR[:100]),
                       ("/status", GROUP), ("/status", TITLE)):  # fmt: skip
        browser.get(site + path)
        assert text in browser.page_source, path
