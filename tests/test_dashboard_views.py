"""Every page in a real headless Chromium over 90 days of real recorder output, at 1400 px
and at 390 px (a phone), light and dark: chart labels inside their boxes with one unit
each, one chart per measured series, no page wider than the screen, keyboard focus
visible. The README's screenshots are written here (``docs/``), so they cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from server.core.measures import COLUMN_UNITS, unit_of
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from tests.conftest import REPO
from tests.dashboard_fixture import NOW, build
from tests.support.browser import OVERFLOW_JS, browser, serving, view

__all__ = ["browser"]  # the module's Chromium (tests.support.browser)

DOCS = REPO / "docs"
# name -> (path, width, dark): every screenshot the README shows, made by this module
SCREENSHOTS = {
    "overview.png": ("/", 1400, False),
    "service.png": ("/services/worker", 1400, False),
    "status.png": ("/status", 1400, False),
    "incidents.png": ("/incidents", 1400, False),
    "phone.png": ("/", 390, False),
    "phone-dark.png": ("/services/shop", 390, True),
}
PAGES = [
    "/",
    "/services/shop",
    "/services/worker",
    "/services/host",
    "/services/search",
    "/services/lightbulb",
    "/alerts",
    "/errors",
    "/dependencies",
    "/reports",
    f"/reports/{(NOW.date() - timedelta(days=1)).isoformat()}",
    "/status",
    "/incidents",
    "/login",
]
SERIES_SERVICES = ["shop", "worker", "host", "search", "lightbulb"]

CHARTS_JS = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
return [...document.querySelectorAll('svg.chart')].map(svg => {
  const vb = svg.viewBox.baseVal;
  const outside = [...svg.querySelectorAll('text')].filter(t => {
    const b = t.getBBox();
    return b.x < vb.x - 0.5 || b.y < vb.y - 0.5 || b.x + b.width > vb.x + vb.width + 0.5
        || b.y + b.height > vb.y + vb.height + 0.5;
  }).map(t => t.textContent);
  return {series: svg.dataset.series, unit: svg.dataset.unit,
          titles: [...svg.querySelectorAll('text.unit')].map(t => t.textContent),
          ticks: [...svg.querySelectorAll('text.tick')].map(t => t.textContent), outside};
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmbeddedStorage]]:
    store, config, clock, engine = build(tmp_path_factory.mktemp("views"))
    with serving(create_app(WebContext(config, store, clock, engine))) as url:
        yield url, store
    store.close()


def expected_series(store: EmbeddedStorage, sid: str, start: datetime) -> set[str]:
    """What the service measured in [start, NOW): each column with values, each metric per
    tag set (a metric named like a column, or equal to one at each of its checks, is that
    column)."""
    columns = store.query(
        "SELECT count(response_time_ms) AS response_time_ms, count(cpu_usage) AS cpu_usage, "
        "count(memory_usage) AS memory_usage FROM monitor.service_status "
        "WHERE service_id = {sid:String} AND timestamp >= {s:DateTime64(3, 'UTC')}",
        {"sid": sid, "s": start},
    )[0]
    metrics = store.query(
        "SELECT DISTINCT metric_name AS name, mapKeys(tags) AS k, mapValues(tags) AS v "
        "FROM monitor.service_metrics WHERE service_id = {sid:String} "
        "AND timestamp >= {s:DateTime64(3, 'UTC')}",
        {"sid": sid, "s": start},
    )
    found = {name for name in COLUMN_UNITS if columns[name]}
    for m in metrics:
        if m["name"] not in COLUMN_UNITS and not repeats_a_column(store, sid, m, start):
            tags = ",".join(f'{k}="{v}"' for k, v in zip(m["k"], m["v"], strict=True))
            found.add(m["name"] + ("{" + tags + "}" if tags else ""))
    return found


def repeats_a_column(store: EmbeddedStorage, sid: str, m: dict[str, Any], start: datetime) -> bool:
    """Whether every sample of untagged metric ``m`` equals a filled column of its check."""
    if m["k"]:
        return False
    for column in COLUMN_UNITS:
        row = store.query(
            f"SELECT count() AS n, countIf(abs(m.metric_value - s.{column}) <= "
            f"1e-6 * greatest(abs(m.metric_value), 1e-6)) AS same "
            "FROM monitor.service_metrics AS m INNER JOIN monitor.service_status AS s "
            "ON s.service_id = m.service_id AND s.timestamp = m.timestamp "
            "WHERE m.service_id = {sid:String} AND m.metric_name = {n:String} "
            f"AND m.timestamp >= {{s:DateTime64(3, 'UTC')}} AND s.{column} IS NOT NULL",
            {"sid": sid, "n": m["name"], "s": start},
        )[0]
        if row["n"] and row["n"] == row["same"]:
            return True
    return False


@pytest.mark.parametrize("width", [1400, 390])
def test_one_chart_per_measured_series_with_labels_inside_and_one_unit_each(
    site: tuple[str, EmbeddedStorage], browser: WebDriver, width: int
) -> None:
    url, store = site
    view(browser, width)
    for sid in SERIES_SERVICES:
        browser.get(f"{url}/services/{sid}")
        shown = re.search(
            r"showing (\S+ \S+) to", browser.find_element(By.CLASS_NAME, "ranges").text
        )
        assert shown is not None
        start = datetime.fromisoformat(shown.group(1) + "+00:00")
        charts: list[dict[str, Any]] = browser.execute_script(CHARTS_JS)
        labels = [c["series"] for c in charts]
        assert sorted(labels) == sorted(expected_series(store, sid, start)), sid
        for chart in charts:
            assert chart["outside"] == [], (sid, chart["series"])
            unit = unit_of(chart["series"].split("{")[0], chart["unit"])
            allowed = {unit.symbol, *(symbol for _, symbol in unit.scales)}
            allowed |= {f"{s} {unit.symbol}".strip() for _, s in unit.scales}
            assert len(chart["titles"]) == (1 if unit.symbol else len(chart["titles"])) <= 1
            assert all(t in allowed for t in chart["titles"]), (sid, chart)
            assert not any(re.search(r"[a-zA-Z%]", tick) for tick in chart["ticks"]), chart
    browser.get(f"{url}/services/worker")
    charts = {c["series"]: c for c in browser.execute_script(CHARTS_JS)}
    assert charts["memory_usage"]["unit"] == "percent" and charts["memory_usage"]["titles"] == ["%"]
    assert charts["rss_bytes"]["titles"] == ["MiB"]  # 22.9 MB of RSS, in MiB, not a percent
    assert charts["memory_usage"]["ticks"][-1] in ("0.16", "0.2")  # 0.14 %, rounded up


@pytest.mark.parametrize("path", PAGES)
def test_every_page_fits_a_phone_screen_light_and_dark(
    site: tuple[str, EmbeddedStorage], browser: WebDriver, path: str
) -> None:
    url, _ = site
    for dark in (False, True):
        view(browser, 390, dark)
        browser.get(url + path)
        found = browser.execute_script(OVERFLOW_JS)
        assert found["scroll"] <= found["width"] and not found["bad"], (path, dark, found)
        tables = browser.execute_script(
            "return [...document.querySelectorAll('main table')].map(t => "
            "[Math.round(t.getBoundingClientRect().right), "
            "getComputedStyle(t).overflowX, getComputedStyle(t.parentElement).overflowX])"
        )
        for right, own, parent in tables:
            assert right <= 390 and "auto" in (own, parent), (path, tables)
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor"
        )
        assert (luminance(background) < 0.1) is dark, (path, background)


def luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_tiles_stack_on_a_phone_and_sit_side_by_side_on_a_desktop(
    site: tuple[str, EmbeddedStorage], browser: WebDriver
) -> None:
    url, _ = site
    lefts = "return [...document.querySelectorAll('article.tile')].map(t => t.getBoundingClientRect().left)"  # noqa: E501
    view(browser, 390)
    browser.get(url + "/")
    assert len({round(x) for x in browser.execute_script(lefts)}) == 1
    view(browser, 1400)
    browser.get(url + "/")
    assert len({round(x) for x in browser.execute_script(lefts)}) > 1


def test_keyboard_reaches_every_control_with_a_visible_focus(
    site: tuple[str, EmbeddedStorage], browser: WebDriver
) -> None:
    url, _ = site
    view(browser, 1400)
    browser.get(url + "/")
    chain = ActionChains(browser)
    chain.send_keys(Keys.TAB).perform()
    skip = browser.switch_to.active_element
    assert skip.get_attribute("class") == "skip" and skip.rect["x"] >= 0
    reached, outlines = set(), set()
    for _ in range(40):
        element = browser.switch_to.active_element
        if element.tag_name != "body":  # past the last control, focus leaves the page
            reached.add(element.get_attribute("name") or element.text.strip()[:20])
            outlines.add(element.value_of_css_property("outline-style"))
        chain.send_keys(Keys.TAB).perform()
    assert {"Overview", "Status page", "stack", "status", "q", "Filter"} <= reached
    assert outlines == {"solid"}  # every focused control shows the focus ring
    assert "#" not in browser.current_url
    browser.get(url + "/")
    ActionChains(browser).send_keys(Keys.TAB).send_keys(Keys.ENTER).perform()
    assert browser.current_url.endswith("#content")


def test_status_is_written_as_well_as_coloured(
    site: tuple[str, EmbeddedStorage], browser: WebDriver
) -> None:
    url, _ = site
    view(browser, 1400)
    browser.get(url + "/")
    for tile in browser.find_elements(By.CSS_SELECTOR, "article.tile"):
        assert (
            tile.find_element(By.CSS_SELECTOR, ".badge").text == tile.get_attribute("data-status")
            or tile.find_element(By.CSS_SELECTOR, ".badge").text == "NO DATA"
        )
    assert "FAILED" in browser.find_element(By.CLASS_NAME, "legend").text
    colour = "return getComputedStyle(document.querySelector(arguments[0])).backgroundColor"
    for name in ("OK", "DEGRADED", "FAILED", "STARTING", "STOPPED", "UNKNOWN"):
        pill = browser.execute_script(colour, f'.count[data-status="{name}"]')
        legend = browser.execute_script(
            "const b = [...document.querySelectorAll('.legend .badge')]"
            ".find(b => b.textContent === arguments[0]);"
            "return getComputedStyle(b).backgroundColor",
            name,
        )
        assert pill == legend, name  # the count of FAILED is the colour of FAILED
    browser.get(url + "/dependencies")
    states = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.graph text.state")]
    assert sorted(states) == ["FAILED", "OK", "OK", "OK"]
    browser.get(url + "/status")
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "figure.days .overall")]
    assert len(captions) == 2 and all(re.fullmatch(r"90 days: [\d.]+% up", c) for c in captions)


def test_readme_screenshots_are_made_here_from_the_current_pages(
    site: tuple[str, EmbeddedStorage], browser: WebDriver
) -> None:
    url, _ = site
    for name, (path, width, dark) in SCREENSHOTS.items():
        view(browser, width, dark)
        browser.get(url + path)
        assert browser.save_screenshot(str(DOCS / name))
        assert (DOCS / name).stat().st_size > 10_000
    readme = (REPO / "README.md").read_text()
    assert set(re.findall(r"\(docs/([\w.-]+\.png)\)", readme)) == set(SCREENSHOTS)
    nav = browser.find_element(By.CSS_SELECTOR, "header.top nav").text
    assert "Top errors" in nav and "Reports" in nav
