"""Debian's headless Chromium through chromium-driver, for the real-browser tests."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest
from flask import Flask
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from server.web import WebServer
from tests.conftest import free_port, require_binary

# A page of the local dashboard loads in well under a second. Without these limits a
# server that stops answering holds a navigation open until chromedriver's 300 s page
# load timeout, selenium gives up reading after 120 s, and later commands (the next
# test's first DevTools call) queue behind it: minutes a command, a suite that looks hung.
PAGE_LOAD_SECONDS = 30  # chromedriver fails the navigation ("Timed out receiving message")
COMMAND_SECONDS = 60  # any WebDriver or DevTools command; above PAGE_LOAD so that error wins


def chromium() -> WebDriver:
    """A headless Chromium 1400 px wide, scrollbars hidden, sRGB (steady screenshots);
    skips the test when chromium or chromium-driver is not installed. Quit it after.

    A navigation or script fails after ``PAGE_LOAD_SECONDS`` and any command, DevTools
    calls included, after ``COMMAND_SECONDS``: a stuck page is a failure, not a hang."""
    require_binary("chromium", "chromium")
    require_binary("chromedriver", "chromium-driver")
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
    ):
        options.add_argument(flag)
    options.timeouts = {"pageLoad": PAGE_LOAD_SECONDS * 1000, "script": PAGE_LOAD_SECONDS * 1000}
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    driver.command_executor.client_config.timeout = COMMAND_SECONDS
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One :func:`chromium` for the tests of a module, quit after them. A module takes it
    with ``from tests.support.browser import browser`` and ``__all__ = ["browser"]``."""
    driver = chromium()
    yield driver
    driver.quit()


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` served by the daemon's own :class:`WebServer` on a free loopback port:
    yields its base URL (``http://127.0.0.1:<port>``); stopped on leaving."""
    server = WebServer(app, "127.0.0.1", free_port())
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def view(browser: WebDriver, width: int, dark: bool = False) -> None:
    """Emulate a screen ``width`` CSS px wide (a phone below 600) and the colour scheme."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": 844 if width < 600 else 1000,
            "deviceScaleFactor": 1,
            "mobile": width < 600,
        },
    )
    scheme = "dark" if dark else "light"
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


# Elements reaching past the right edge of the window, unless inside a box that scrolls
# (or clips) sideways: what makes a page scroll horizontally on a phone.
OVERFLOW_JS = """
const w = window.innerWidth, bad = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (!r.width || r.right <= w + 1) continue;
  let p = el.parentElement, inside = false;
  while (p && !inside) { inside = ['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX); p = p.parentElement; }
  if (!inside) bad.push(el.tagName.toLowerCase() + '.' + el.getAttribute('class') + ' right ' + Math.round(r.right));
}
return {scroll: document.documentElement.scrollWidth, width: w, bad: bad.slice(0, 8)};
"""  # noqa: E501
