"""The escaping contract of each channel, over hostile text from checks, logs and labels.

One function per channel makes untrusted text inert in that channel's markup:
Slack mrkdwn (``slack.escape``), e-mail headers (``email.header``) and HTML (the
autoescaped template), Apprise's markdown and HTML formats (``apprise.escape``)
and PagerDuty's fields (``pagerduty.field``). Each is tested on its own and in
the message that actually goes out to a real receiver.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from email import message_from_bytes

import pytest

from server.notify import apprise, build_channel, email, pagerduty, slack
from tests.support.hostile import HOSTILE_TEXTS
from tests.support.receivers import HttpReceiver, SmtpReceiver
from tests.test_notify_channels import item, notice


def hostile_notice(text: str) -> object:
    bad = replace(item(), message=text, summary=text, description=text, service_label=text,
                  labels={"team": text})  # fmt: skip
    return notice(bad)


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_slack_escape_leaves_no_angle_bracket_sequence_to_parse(text: str) -> None:
    escaped = slack.escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert html.unescape(escaped) == text  # what people read is what the check printed


def test_slack_escape_turns_a_channel_ping_into_text() -> None:
    assert slack.escape("<!channel> & <@U0ADMIN>") == "&lt;!channel&gt; &amp; &lt;@U0ADMIN&gt;"


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_a_slack_message_carries_no_mention_or_link_from_check_output(
    receiver: HttpReceiver, text: str
) -> None:
    build_channel("s", "slack", {"url": receiver.url}).send(hostile_notice(text))  # type: ignore[arg-type]
    body = receiver.wait_for(1)[0].json
    parsed = [body["text"]] + [
        block["text"]["text"]
        for block in body["attachments"][0]["blocks"]
        if block["text"]["type"] == "mrkdwn"
    ]
    for field in parsed:  # every <...> left is our own dashboard link
        assert re.findall(r"<[^>]*>", field) in (
            [],
            ["<http://127.0.0.1:8080/services/db|Open in Lightbulb>"],
        )
    assert "link_names" not in body


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_email_header_is_one_line_whatever_the_check_printed(text: str) -> None:
    value = email.header(f"[lightbulb] {text}")
    assert not re.search(r"[\r\n\x00-\x1f\x7f\u2028\u2029]", value)


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_an_email_with_hostile_text_is_sent_with_safe_headers_and_escaped_html(text: str) -> None:
    smtp = SmtpReceiver()
    try:
        settings = {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                    "from": "lightbulb@example.com", "to": ["ops@example.com"]}  # fmt: skip
        build_channel("mail", "email", settings).send(hostile_notice(text))  # type: ignore[arg-type]
        (envelope,) = smtp.messages
        assert envelope.rcpt_tos == ["ops@example.com"]  # no injected Bcc
        message = message_from_bytes(envelope.original_content or b"")
        assert message["Bcc"] is None and len(message.get_all("Subject") or []) == 1
        html_part = next(
            p.get_payload(decode=True).decode() for p in message.walk()
            if p.get_content_type() == "text/html"
        )  # fmt: skip
        for tag in ("<script", "<img", '<a href="https://evil'):
            assert tag not in html_part
    finally:
        smtp.close()


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_apprise_html_escape_leaves_no_tag(text: str) -> None:
    escaped = apprise.escape(text, "html")
    assert "<" not in escaped and ">" not in escaped
    assert html.unescape(escaped) == text


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_apprise_markdown_escape_renders_to_the_text_itself(text: str) -> None:
    import markdown  # what Apprise itself uses to turn markdown into HTML

    escaped = apprise.escape(text, "markdown")
    rendered = markdown.markdown(escaped)
    assert not re.search(r"<(?!/?p>)[a-z!/]", rendered)  # no element but the paragraph
    assert "](" not in escaped.replace("\\](", "").replace("\\]\\(", "")


def test_apprise_text_format_is_passed_as_is_and_apprise_escapes_for_the_service() -> None:
    assert apprise.escape("<b>&</b>", "text") == "<b>&</b>"


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
@pytest.mark.parametrize("service_format", ["html", "markdown"])
def test_an_apprise_message_in_each_format_reaches_a_markup_service_without_live_markup(
    receiver: HttpReceiver, fmt: str, service_format: str
) -> None:
    # json:// with ?format= stands for a service that renders HTML or markdown:
    # Apprise converts our body from `fmt` to the service's format on the way
    url = f"json://127.0.0.1:{receiver.port}/notify?format={service_format}"
    text = "<script>alert(1)</script> **x** [l](https://evil.example) <!channel>"
    channel = build_channel("a", "apprise", {"urls": [url], "format": fmt})
    channel.send(hostile_notice(text))  # type: ignore[arg-type]
    message = receiver.wait_for(1)[0].json["message"]
    if service_format == "markdown":  # what the service shows: the markdown rendered
        import markdown

        message = markdown.markdown(message)
    assert "<script" not in message
    assert 'href="https://evil' not in message


@pytest.mark.parametrize("text", [*HOSTILE_TEXTS, "x" * 5000])
def test_pagerduty_fields_have_no_control_characters_and_keep_to_their_limits(text: str) -> None:
    value = pagerduty.field(text, pagerduty.SUMMARY_MAX)
    assert len(value) <= pagerduty.SUMMARY_MAX
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value)


def test_a_pagerduty_event_from_hostile_text_is_accepted_shape(receiver: HttpReceiver) -> None:
    receiver.status = 202
    text = "\x1b[31m" + "y" * 3000
    channel = build_channel("pd", "pagerduty", {"routing_key": "R0UT", "url": receiver.url})
    channel.send(hostile_notice(text))  # type: ignore[arg-type]
    event = receiver.wait_for(1)[0].json
    assert len(event["payload"]["summary"]) <= 1024
    assert len(event["payload"]["component"]) <= 255
    assert "\x1b" not in json.dumps(event, ensure_ascii=False)
