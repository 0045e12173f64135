"""``slack``: an incoming-webhook message, coloured by severity.

Slack colours only attachments, so the blocks sit inside one attachment whose
``color`` is the severity's (green once everything resolved); ``text`` is the
plain fallback used in notifications on phones.

Escaping (:func:`escape`): Slack parses ``text`` and every ``mrkdwn`` field for
``<…>`` sequences: links, ``<!channel>``/``<!here>``/``<!everyone>`` and user or
group mentions ``<@U…>``/``<!subteam^…>``. Slack's rule is to escape exactly
``&``, ``<`` and ``>`` as HTML entities, which turns every such sequence into
plain text; text from checks, logs and labels goes through it. The header is a
``plain_text`` block, which Slack never parses. ``link_names`` stays off, so a
bare ``@channel`` is text too.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator

from server.core.secret import SecretStr
from server.notify.base import (
    RESOLVED_COLOUR,
    SEVERITY_COLOURS,
    Channel,
    ChannelSettings,
    Notice,
)
from server.notify.http import check_secret_url, post_json, redact

_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: str) -> str:
    """Text made inert in Slack mrkdwn: ``<!channel> & <@U1>`` -> ``&lt;!channel&gt; &amp; …``."""
    return text.translate(_ENTITIES)


class SlackSettings(ChannelSettings):
    # the incoming-webhook URL is itself the credential
    url: Annotated[SecretStr, AfterValidator(check_secret_url)]
    channel: str = ""
    username: str = "Lightbulb"


def message(notice: Notice, settings: SlackSettings) -> dict[str, Any]:
    resolved = notice.status in ("resolved", "report")
    colour = RESOLVED_COLOUR if resolved else SEVERITY_COLOURS[notice.severity]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}}
    ]
    for item, line in zip(notice.items, notice.lines(), strict=True):
        link = notice.service_link(item.service_id)
        text = f"*{escape(line)}*" + (f"\n<{link}|Open in Lightbulb>" if link else "")
        if item.description:
            text += f"\n{escape(item.description)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if not notice.items and (notice.body or notice.text):
        text = f"```{escape(notice.body[:2900])}```" if notice.body else escape(notice.text)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    body: dict[str, Any] = {
        "text": escape(notice.title),
        "username": settings.username,
        "attachments": [{"color": colour, "blocks": blocks}],
    }
    if settings.channel:
        body["channel"] = settings.channel
    return body


class SlackChannel(Channel[SlackSettings]):
    Settings = SlackSettings

    def send(self, notice: Notice) -> None:
        body = json.dumps(message(notice, self.settings)).encode()
        url = self.settings.url.reveal()
        shown = f"Slack webhook {redact(url)}"
        post_json(url, body, (self.timeout, self.response_timeout), accept=(200,), shown=shown)
