"""Incidents in a real headless Chromium over 90 days of real recorder output, at 1400 px
and at 390 px: the list, an incident's page with its timeline, a note written through
the signed-in form, and the status page showing it; no page wider than the screen.

The fixture has two incidents: ``shop``'s three-hour outage ten days ago (resolved)
and ``search`` failing for the last 20 minutes (ongoing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.security import generate_password_hash

from server.config.models import DashboardConfig
from server.web import WebContext, create_app
from tests.dashboard_fixture import build
from tests.support.browser import OVERFLOW_JS, browser, serving, view

__all__ = ["browser"]  # the module's Chromium, shared
NOTE = "Search index rebuilding after a failed deploy; results may be stale until 13:00."


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store, config, clock, engine = build(tmp_path_factory.mktemp("incidents-browser"))
    dashboard = DashboardConfig.model_validate(
        {"auth": {"type": "basic", "users": {"ana": generate_password_hash("s3cret")}}}
    )
    config = config.model_copy(update={"dashboard": dashboard})
    with serving(create_app(WebContext(config, store, clock, engine))) as url:
        yield url
    store.close()


def fits(browser: WebDriver) -> None:
    found = browser.execute_script(OVERFLOW_JS)
    assert found["scroll"] <= found["width"] and not found["bad"], (browser.current_url, found)


def rows(browser: WebDriver) -> list[dict[str, str]]:
    out = []
    for row in browser.find_elements(By.CSS_SELECTOR, "table.incidents tr[data-incident]"):
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        out.append({"id": row.get_attribute("data-incident") or "", "end": cells[1],
                    "duration": cells[2], "cause": cells[3], "services": cells[4],
                    "sent": cells[6]})  # fmt: skip
    return out


@pytest.mark.parametrize("width", [1400, 390])
def test_incidents_list_and_page_at_desktop_and_phone_width(
    site: str, browser: WebDriver, width: int, tmp_path: Path
) -> None:
    view(browser, width)
    browser.get(site + "/incidents")
    found = rows(browser)
    assert [(r["services"], r["end"], r["duration"]) for r in found] == [
        ("search", "ongoing", "20m"),
        ("shop", "2026-11-12 09:00:00 UTC", "3h"),
    ]
    assert found[1]["cause"] == "down on shop: GET http://shop/: connection refused"
    fits(browser)
    browser.save_screenshot(str(tmp_path / f"incidents-{width}.png"))
    browser.find_element(By.CSS_SELECTOR, f'tr[data-incident="{found[1]["id"]}"] td a').click()
    WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "table.timeline"))
    )
    kinds = [
        r.get_attribute("data-kind")
        for r in browser.find_elements(By.CSS_SELECTOR, "table.timeline tr[data-kind]")
    ]
    assert kinds == ["status", "alert", "status", "alert"]
    assert "2026-11-12 06:00:00 UTC" in browser.find_element(By.CSS_SELECTOR, "dl.incident").text
    fits(browser)
    browser.save_screenshot(str(tmp_path / f"incident-{width}.png"))


def test_a_signed_in_note_shows_on_the_incident_and_the_status_page(
    site: str, browser: WebDriver, tmp_path: Path
) -> None:
    wait = WebDriverWait(browser, 10)
    view(browser, 1400)
    browser.get(site + "/incidents")
    ongoing = rows(browser)[0]["id"]
    browser.get(f"{site}/incidents/{ongoing}")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.note-form")  # not signed in
    browser.find_element(By.CSS_SELECTOR, "section.note a").click()  # back here after
    browser.find_element(By.NAME, "user").send_keys("ana")
    browser.find_element(By.NAME, "password").send_keys("s3cret")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "form.note-form")))
    browser.find_element(By.NAME, "note").send_keys(NOTE)
    browser.find_element(By.CSS_SELECTOR, "form.note-form button").click()
    shown = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-note]")))
    assert shown.text == NOTE
    assert "by ana" in browser.find_element(By.CSS_SELECTOR, "section.note").text
    for width in (1400, 390):
        view(browser, width)
        browser.get(site + "/status")
        current = browser.find_element(
            By.CSS_SELECTOR, f'section.current [data-incident="{ongoing}"]'
        )
        assert "Search API" in current.text and NOTE in current.text
        past = browser.find_elements(By.CSS_SELECTOR, "section.past article.incident")
        assert [p.find_element(By.TAG_NAME, "h3").text for p in past] == ["resolved Shop front"]
        fits(browser)
        browser.save_screenshot(str(tmp_path / f"status-{width}.png"))
