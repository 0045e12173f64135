"""Each channel against a real local receiver: what arrives, and how failures read."""

from __future__ import annotations

import hashlib
import hmac
import ssl
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from server.notify import CHANNEL_TYPES, REGISTRY, build_channel
from server.notify.base import PAYLOAD_VERSION, AlertItem, ChannelError, Notice
from server.notify.webhook import WebhookChannel, WebhookSettings
from tests.conftest import free_port
from tests.support.http_target import make_cert
from tests.support.receivers import HttpReceiver, SmtpReceiver

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def item(state: str = "firing", severity: str = "critical", service: str = "db") -> AlertItem:
    return AlertItem(
        alert_id=f"down:{service}",
        rule_id="down",
        rule_name="Service down",
        service_id=service,
        service_label=service.upper(),
        stack="core",
        state=state,
        severity=severity,
        condition="status >= FAILED",
        threshold=0,
        value=2,
        since=AT,
        message="connection refused <script>",
        summary=f"Service down on {service.upper()}",
        description="check the pool",
        caused_by="",
        labels={"team": "data"},
    )


def notice(*items: AlertItem, channel: str = "c") -> Notice:
    return Notice(channel, "alert", "down", list(items), AT, "http://127.0.0.1:8080")


def test_every_channel_type_has_a_module() -> None:
    assert set(REGISTRY) == set(CHANNEL_TYPES)


def test_webhook_posts_the_versioned_payload_signed_with_hmac(receiver: HttpReceiver) -> None:
    channel = build_channel(
        "ops",
        "webhook",
        {"url": f"{receiver.url}/hook", "secret": "s3cret", "headers": {"X-Team": "data"}},
    )
    channel.send(notice(item()))
    request = receiver.wait_for(1)[0]
    body = request.json
    assert body["version"] == PAYLOAD_VERSION
    assert body["status"] == "firing"
    alert = body["alerts"][0]
    assert alert["id"] == "down:db"
    assert alert["labels"] == {"team": "data"}
    assert alert["dashboard_url"] == "http://127.0.0.1:8080/services/db"
    assert request.headers["X-Team"] == "data"
    stamp = request.headers["X-Lightbulb-Timestamp"]
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["X-Lightbulb-Signature"] == "sha256=" + expected.hexdigest()


def test_webhook_resolved_payload_says_resolved(receiver: HttpReceiver) -> None:
    build_channel("ops", "webhook", {"url": receiver.url}).send(notice(item("resolved")))
    assert receiver.wait_for(1)[0].json["status"] == "resolved"
    assert "X-Lightbulb-Signature" not in receiver.requests[0].headers


def test_http_failures_are_reported_with_status_and_body(receiver: HttpReceiver) -> None:
    receiver.fail_next = 1
    channel = build_channel("ops", "webhook", {"url": receiver.url})
    with pytest.raises(ChannelError, match="answered HTTP 500: try again later") as caught:
        channel.send(notice(item()))
    assert caught.value.permanent is False


@pytest.mark.parametrize(
    ("status", "retry_after", "permanent", "wait"),
    [
        (500, None, False, None),
        (502, None, False, None),
        (503, "7", False, 7.0),
        (408, None, False, None),
        (429, "30", False, 30.0),
        (429, "Wed, 21 Oct 2015 07:28:30 GMT", False, 0.0),  # a past date (against Date): 0
        (400, None, True, None),
        (401, None, True, None),
        (404, None, True, None),
        (410, None, True, None),
        (301, None, True, None),  # a redirected POST would become a GET: say so, do not follow
    ],
)
def test_http_answers_are_transient_or_permanent_by_their_status(
    receiver: HttpReceiver, status: int, retry_after: str | None, permanent: bool,
    wait: float | None,
) -> None:  # fmt: skip
    receiver.fail_next, receiver.fail_status, receiver.retry_after = 1, status, retry_after
    channel = build_channel("ops", "webhook", {"url": receiver.url})
    with pytest.raises(ChannelError, match=f"answered HTTP {status}") as caught:
        channel.send(notice(item()))
    assert (caught.value.permanent, caught.value.retry_after) == (permanent, wait)
    assert receiver.attempts == 1


def test_an_unreachable_endpoint_is_named_in_the_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    channel = build_channel("ops", "webhook", {"url": url, "timeout": "2s"})
    with pytest.raises(ChannelError, match=f"cannot reach {url}") as caught:
        channel.send(notice(item()))
    assert caught.value.permanent is False  # it may come up


@pytest.mark.parametrize(
    "url", ["htp:/nowhere", "ftp://example.org/x", "http://exa mple.org/x",
            "http://[::1/x", "http://example.org:99999/x", "http:///path-only"],
)  # fmt: skip
def test_a_url_that_cannot_work_is_refused_at_load_and_permanent_at_send(url: str) -> None:
    with pytest.raises(ValidationError, match="expected an http:// or https:// URL"):
        build_channel("ops", "webhook", {"url": url})
    unchecked = WebhookChannel("ops", WebhookSettings.model_construct(url=url))
    with pytest.raises(ChannelError) as caught:
        unchecked.send(notice(item()))
    assert caught.value.permanent is True


def test_a_slow_receiver_is_waited_for_up_to_response_timeout(receiver: HttpReceiver) -> None:
    receiver.delay = 1.5
    fast = build_channel("ops", "webhook", {"url": receiver.url, "timeout": "1s"})
    fast.send(notice(item()))  # connecting is quick; the answer may take its time
    assert len(receiver.requests) == 1
    impatient = build_channel("ops", "webhook", {"url": receiver.url, "response_timeout": "1s"})
    with pytest.raises(ChannelError, match=r"no answer from .* within 1s") as caught:
        impatient.send(notice(item()))
    assert caught.value.permanent is False


def test_slack_message_is_coloured_by_severity_and_green_when_resolved(
    receiver: HttpReceiver,
) -> None:
    channel = build_channel("s", "slack", {"url": f"{receiver.url}/services/T/B/X"})
    channel.send(notice(item(severity="warning")))
    channel.send(notice(item("resolved")))
    firing, resolved = (r.json for r in receiver.wait_for(2))
    assert firing["attachments"][0]["color"] == "#ff9f1c"
    assert resolved["attachments"][0]["color"] == "#2ca02c"
    assert firing["text"].startswith("[FIRING]")
    section = firing["attachments"][0]["blocks"][1]["text"]["text"]
    assert "http://127.0.0.1:8080/services/db" in section


def test_pagerduty_triggers_and_resolves_with_one_dedup_key(receiver: HttpReceiver) -> None:
    receiver.status = 202
    channel = build_channel("pd", "pagerduty", {"routing_key": "R0UT", "url": receiver.url})
    channel.send(notice(item()))
    channel.send(notice(item("resolved")))
    trigger, resolve = (r.json for r in receiver.wait_for(2))
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UT"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "db"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "lightbulb/down/db"


def test_apprise_delivers_through_an_apprise_url(receiver: HttpReceiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/notify"
    build_channel("a", "apprise", {"urls": [url]}).send(notice(item()))
    body = receiver.wait_for(1)[0].json
    assert body["title"].startswith("[FIRING] Service down on DB")
    assert body["type"] == "failure"
    assert "connection refused" in body["message"]


def test_apprise_failure_carries_apprises_reason() -> None:
    url = f"json://127.0.0.1:{free_port()}/notify"
    channel = build_channel("a", "apprise", {"urls": [url], "timeout": "2s"})
    with pytest.raises(ChannelError, match="Apprise: "):
        channel.send(notice(item()))


def _email_settings(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "lightbulb@example.com",
        "to": ["ops@example.com"],
        **extra,
    }


def test_email_sends_text_and_escaped_html_with_auth() -> None:
    smtp = SmtpReceiver(users={"lb": "pw"})
    try:
        settings = _email_settings(smtp.port, username="lb", password="pw")
        build_channel("mail", "email", settings).send(notice(item(), item(service="api")))
        assert len(smtp.messages) == 1
        envelope = smtp.messages[0]
        assert envelope.rcpt_tos == ["ops@example.com"]
        message = message_from_bytes(envelope.original_content or b"")
        assert message["Subject"] == "[lightbulb] [FIRING] Service down on DB (+1 more firing)"
        parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
                 if not p.is_multipart()}  # fmt: skip
        assert "FIRING critical Service down on API" in parts["text/plain"]
        assert "connection refused &lt;script&gt;" in parts["text/html"]
        assert "<script>" not in parts["text/html"]
    finally:
        smtp.close()


def test_email_with_a_wrong_password_says_the_login_was_refused() -> None:
    smtp = SmtpReceiver(users={"lb": "pw"})
    try:
        settings = _email_settings(smtp.port, username="lb", password="nope")
        with pytest.raises(ChannelError, match="refused the login for 'lb'") as caught:
            build_channel("mail", "email", settings).send(notice(item()))
        assert caught.value.permanent is True
        assert smtp.messages == []
    finally:
        smtp.close()


@pytest.mark.parametrize(
    ("security", "receiver", "wrong", "error"),
    [
        # the server insists on STARTTLS: a plain session is refused
        ("starttls", "tls", {}, "answered 530"),
        # implicit TLS with only the system roots: our test CA is not trusted
        ("ssl", "implicit_tls", {"security": "ssl"}, "CERTIFICATE_VERIFY_FAILED"),
    ],
)
def test_email_over_tls(
    tmp_path: Path, security: str, receiver: str, wrong: dict[str, str], error: str
) -> None:
    cert, key = make_cert(tmp_path, 5)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    smtp = SmtpReceiver(**{receiver: context})
    try:
        settings = _email_settings(smtp.port, security=security, ca_cert=cert)
        build_channel("mail", "email", settings).send(notice(item()))
        assert len(smtp.messages) == 1
        with pytest.raises(ChannelError, match=error):
            build_channel("mail", "email", _email_settings(smtp.port, **wrong)).send(notice(item()))
    finally:
        smtp.close()


def test_a_slack_failure_does_not_leak_the_webhook_secret() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/s3cr3tXYZ"
    channel = build_channel("s", "slack", {"url": url, "timeout": "2s"})
    with pytest.raises(ChannelError) as caught:
        channel.send(notice(item()))
    assert "s3cr3tXYZ" not in str(caught.value)
    assert str(caught.value).startswith("cannot reach Slack webhook http://127.0.0.1/…")
