"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver).

Loads the overview, filters it, opens a service, reads a chart's hover value,
and silences an alert as a signed-in user; screenshots go to the test's temp dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.security import generate_password_hash

from server.config.models import DashboardConfig
from server.web import WebContext, create_app
from tests.support.browser import browser, serving
from tests.web_fixture import build

__all__ = ["browser"]  # the module's Chromium (tests.support.browser)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store, h = build(tmp_path_factory.mktemp("browser"))
    dashboard = DashboardConfig.model_validate(
        {"auth": {"type": "basic", "users": {"ana": generate_password_hash("s3cret")}}}
    )
    config = h.config.model_copy(update={"dashboard": dashboard})
    with serving(create_app(WebContext(config, store, h.clock, h.engine))) as url:
        yield url
    store.close()


def statuses(browser: WebDriver) -> dict[str, str]:
    tiles = browser.find_elements(By.CSS_SELECTOR, "article.tile")
    return {
        t.get_attribute("data-service") or "": t.get_attribute("data-status") or "" for t in tiles
    }


def test_overview_filter_service_chart_and_silence(
    site: str, browser: WebDriver, tmp_path: Path
) -> None:
    wait = WebDriverWait(browser, 10)
    browser.get(site + "/")
    assert statuses(browser) == {
        "db": "FAILED",
        "api": "FAILED",
        "web": "OK",
        "lightbulb": "UNKNOWN",
    }
    browser.save_screenshot(str(tmp_path / "overview.png"))

    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("FAILED")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait.until(ec.url_contains("status=FAILED"))
    assert set(statuses(browser)) == {"db", "api"}

    browser.find_element(By.LINK_TEXT, "db").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart circle.point")))
    assert "FAILED" in browser.find_element(By.CSS_SELECTOR, "section.head h1").text
    point = browser.find_elements(
        By.CSS_SELECTOR, 'svg[data-series="response_time_ms"] circle.point'
    )[-1]
    ActionChains(browser).move_to_element(point).perform()
    tip = wait.until(ec.visibility_of_element_located((By.ID, "tip")))
    assert tip.text.startswith("2026-11-22 ") and " avg " in tip.text and tip.text.endswith("ms")
    browser.save_screenshot(str(tmp_path / "service.png"))

    browser.get(site + "/login")
    browser.find_element(By.NAME, "user").send_keys("ana")
    browser.find_element(By.NAME, "password").send_keys("s3cret")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait.until(ec.url_contains("/alerts"))
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-alert="down:db"]')
    Select(row.find_element(By.NAME, "duration")).select_by_visible_text("4h")
    row.find_element(By.NAME, "comment").send_keys("failing over the database")
    row.find_element(By.CSS_SELECTOR, "form.silence button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-silence]")))
    silenced = browser.find_element(By.CSS_SELECTOR, 'section[data-section="Silenced"]')
    assert "down:db" in silenced.get_attribute("innerHTML")
    assert (
        "failing over the database"
        in browser.find_element(By.CSS_SELECTOR, "tr[data-silence]").text
    )
    browser.save_screenshot(str(tmp_path / "alerts.png"))
    assert all(
        (tmp_path / f).stat().st_size > 10_000
        for f in ("overview.png", "service.png", "alerts.png")
    )
