"""What people read: grouped notice titles, the log's word for held news, links."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from checkers.base import Status
from server.notify.apprise import body, target
from server.notify.base import Notice
from tests.alerting_harness import Harness
from tests.test_alert_engine import DOWN
from tests.test_notify_channels import AT, item


def resolved(service: str) -> object:
    return replace(item(state="resolved", service=service), summary=f"{service} recovered after 5m")


@pytest.mark.parametrize(
    ("states", "title"),
    [
        (["resolved", "firing"], "[FIRING] Service down on API (1 resolved)"),
        (
            ["firing", "resolved", "firing"],
            "[FIRING] Service down on DB (+1 more firing, 1 resolved)",
        ),
        (["resolved", "resolved"], "[RESOLVED] db recovered after 5m (+1 more resolved)"),
        (["firing"], "[FIRING] Service down on DB"),
    ],
)
def test_a_grouped_title_is_led_by_an_alert_in_the_notices_own_status(
    states: list[str], title: str
) -> None:
    services = ["db", "api", "web"]
    items = [
        resolved(s) if state == "resolved" else item(service=s)
        for state, s in zip(states, services, strict=False)
    ]
    notice = Notice("c", "alert", "down", items, AT)  # type: ignore[arg-type]
    assert notice.title == title
    assert "FIRING] " not in title or "recovered" not in title


def test_the_log_says_held_for_group_wait_not_queued(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(DOWN, group_wait="5s")
    with caplog.at_level(logging.INFO, "lightbulb"):
        h.result("db", Status.FAILED)
    [line] = [r.getMessage() for r in caplog.records if "-> firing" in r.getMessage()]
    assert (
        line == "alert down:db: inactive -> firing (held 5s for group_wait, then queued for hook)"
    )


def test_the_log_says_held_and_by_which_silence(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(DOWN + '\nsilences:\n  - {service: db, end: "2026-11-22T13:00:00Z"}\n')
    with caplog.at_level(logging.INFO, "lightbulb"):
        h.result("db", Status.FAILED)
    [line] = [r.getMessage() for r in caplog.records if "-> firing" in r.getMessage()]
    assert "(held: silenced by " in line and "queued" not in line


def test_the_log_says_held_while_the_upstream_fires(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(DOWN)
    h.result("db", Status.FAILED)
    with caplog.at_level(logging.INFO, "lightbulb"):
        h.result("api", Status.FAILED, advance=1)
    [line] = [r.getMessage() for r in caplog.records if "down:api" in r.getMessage()]
    assert line == "alert down:api: inactive -> firing (held: inhibited while db is firing)"


def test_apprise_links_to_the_service_page_or_the_alerts_page() -> None:
    one = Notice("c", "alert", "down", [item()], AT, "http://lb.example:8080")
    assert target(one) == "http://lb.example:8080/services/db"
    assert body(one, "text").endswith("\nhttp://lb.example:8080/services/db")
    two = Notice("c", "alert", "down", [item(), item(service="api")], AT, "http://lb.example:8080")
    assert target(two) == "http://lb.example:8080/alerts"
