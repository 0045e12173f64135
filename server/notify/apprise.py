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
Apprise's plugins open their own connections, out of our reach, so an attempt
is bounded by running it in a helper thread (:class:`~server.notify.deadline.Bounded`)
for at most ``timeout`` + ``response_timeout``: past that it counts as a timeout
that may have been delivered, and no new attempt starts until it has ended.

Links: a notice about one service links to that service's page; otherwise to
the dashboard's alerts page.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from server.core.secret import SecretStr
from server.notify.base import Channel, ChannelError, ChannelSettings, Notice
from server.notify.deadline import Bounded

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


def check_apprise_url(url: Any) -> Any:
    """A URL Apprise understands (its scheme names a supported service); checked at
    load by Apprise itself, which parses without connecting. The error names the
    scheme only: the rest usually holds a token."""
    import apprise

    if apprise.Apprise.instantiate(url.reveal()) is None:
        scheme = url.reveal().partition("://")[0] if "://" in url.reveal() else ""
        raise PydanticCustomError(
            "lightbulb_secret",
            f'Apprise does not support "{scheme}://" or cannot read the rest of the URL; '
            "see https://github.com/caronc/apprise/wiki for the URL of each service"
            if scheme else "expected an Apprise URL like ntfy://host/topic",
        )  # fmt: skip
    return url


class AppriseSettings(ChannelSettings):
    # URLs usually embed tokens
    urls: list[Annotated[SecretStr, AfterValidator(check_apprise_url)]] = Field(min_length=1)
    format: Format = "text"


def body(notice: Notice, fmt: Format) -> str:
    """The message body in ``fmt``, untrusted text escaped, our own markup not."""
    lines = [escape(line, fmt) for line in notice.lines()]
    if fmt == "markdown":
        lines = [f"- {line}" for line in lines]
    text = "\n".join(lines) or escape(notice.body or notice.text, fmt)
    if fmt == "html":
        text = text.replace("\n", "<br>\n")
    link = target(notice)
    if link:
        text += {
            "text": f"\n{link}",
            "markdown": f"\n\n[Open in Lightbulb](<{link}>)",
            "html": f'<br>\n<a href="{html.escape(link)}">Open in Lightbulb</a>',
        }[fmt]
    return text


def target(notice: Notice) -> str:
    """Where the notice links: its service's page when all its alerts are of one
    service, else the alerts page; empty without a dashboard URL."""
    if not notice.dashboard_url:
        return ""
    services = {item.service_id for item in notice.items}
    if len(services) == 1 and notice.kind not in ("test", "report"):
        return notice.service_link(services.pop())
    return f"{notice.dashboard_url}/alerts"


class AppriseChannel(Channel[AppriseSettings]):
    Settings = AppriseSettings

    def __init__(self, name: str, settings: AppriseSettings) -> None:
        super().__init__(name, settings)
        self._bounded = Bounded()

    def send(self, notice: Notice) -> None:
        limit = self.attempt_limit
        try:
            finished, _ = self._bounded.run(lambda: self._send(notice), limit)
        except RuntimeError as exc:  # the last attempt is still running: not a second one
            raise ChannelError(f"Apprise: {exc}") from None
        if not finished:
            raise ChannelError(
                f"Apprise: no result within {limit:g}s (the limit per attempt); "
                "it may have been received", maybe_delivered=True,
            )  # fmt: skip

    def _send(self, notice: Notice) -> None:
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
