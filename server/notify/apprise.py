"""``apprise``: any Apprise URL (Discord, Teams, Telegram, ntfy, Opsgenie, Pushover …).

Apprise speaks 100+ services, so one channel type covers them all. It is
imported on first use: configs without it pay nothing.

Escaping (:func:`escape`): the body is written in ``format`` (``text``, the
default, ``markdown`` or ``html``) and handed to Apprise as that format; Apprise
converts it to each service's own. Text from checks, logs and labels is escaped
for the chosen format first: for ``markdown`` every CommonMark punctuation
character is backslash-escaped and ``<``/``&`` become entities (Markdown passes
raw HTML through); for ``html`` it is HTML-escaped; ``text`` needs nothing here,
since Apprise escapes plain text for markdown and HTML services itself.

Failures: Apprise does not say whether a failure could pass on a second try,
so a failed notify is transient; a URL Apprise does not understand is permanent.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Literal

from pydantic import Field

from server.core.secret import SecretStr
from server.notify.base import Channel, ChannelError, ChannelSettings, Notice

APPRISE_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}
Format = Literal["text", "markdown", "html"]
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>=])")


def escape(text: str, fmt: Format) -> str:
    """``text`` made literal in ``fmt``."""
    if fmt == "html":
        return html.escape(text, quote=True)
    if fmt == "markdown":
        escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
        return escaped.replace("&", "&amp;").replace("<", "&lt;")
    return text


class AppriseSettings(ChannelSettings):
    urls: list[SecretStr] = Field(min_length=1)  # URLs usually embed tokens
    format: Format = "text"


def body(notice: Notice, fmt: Format) -> str:
    """The message body in ``fmt``, untrusted text escaped, our own markup not."""
    lines = [escape(line, fmt) for line in notice.lines()]
    if fmt == "markdown":
        lines = [f"- {line}" for line in lines]
    text = "\n".join(lines) or escape(notice.body or notice.text, fmt)
    if fmt == "html":
        text = text.replace("\n", "<br>\n")
    if notice.dashboard_url:
        link = notice.dashboard_url
        text += {
            "text": f"\n{link}",
            "markdown": f"\n\n[Open in Lightbulb](<{link}>)",
            "html": f'<br>\n<a href="{html.escape(link)}">Open in Lightbulb</a>',
        }[fmt]
    return text


class AppriseChannel(Channel[AppriseSettings]):
    Settings = AppriseSettings

    def send(self, notice: Notice) -> None:
        import apprise

        client = apprise.Apprise()
        client.asset.async_mode = False  # one delivery thread per channel already
        for url in self.settings.urls:
            if not client.add(url.reveal()):
                raise ChannelError(
                    "Apprise does not understand one of the configured urls", permanent=True
                )
        fmt = self.settings.format
        kind = "success" if notice.status == "resolved" else APPRISE_TYPE[notice.severity]
        capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
        with capture as captured:
            ok = client.notify(
                title=escape(notice.title, fmt), body=body(notice, fmt), notify_type=kind,
                body_format=fmt,
            )  # fmt: skip
        if not ok:
            reasons = [line for line in captured.getvalue().splitlines() if line.strip()]
            raise ChannelError("Apprise: " + ("; ".join(reasons[-3:]) or "delivery failed"))
