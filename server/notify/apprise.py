"""``apprise``: any Apprise URL (Discord, Teams, Telegram, ntfy, Opsgenie, Pushover …).

Apprise speaks 100+ services, so one channel type covers them all. It is
imported on first use: configs without it pay nothing.
"""

from __future__ import annotations

import logging

from pydantic import Field

from server.config.types import SecretStr
from server.notify.base import Channel, ChannelSettings, DeliveryError, Notice

APPRISE_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}


class AppriseSettings(ChannelSettings):
    urls: list[SecretStr] = Field(min_length=1)  # URLs usually embed tokens


class AppriseChannel(Channel[AppriseSettings]):
    Settings = AppriseSettings

    def send(self, notice: Notice) -> None:
        import apprise

        client = apprise.Apprise()
        client.asset.async_mode = False  # one delivery thread per channel already
        for url in self.settings.urls:
            if not client.add(url.reveal()):
                raise DeliveryError("Apprise does not understand one of the configured urls")
        kind = "success" if notice.status == "resolved" else APPRISE_TYPE[notice.severity]
        body = notice.body or "\n".join(notice.lines()) or notice.text
        if notice.dashboard_url:
            body += f"\n{notice.dashboard_url}"
        capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
        with capture as captured:
            ok = client.notify(title=notice.title, body=body, notify_type=kind)
        if not ok:
            reasons = [line for line in captured.getvalue().splitlines() if line.strip()]
            raise DeliveryError("Apprise: " + ("; ".join(reasons[-3:]) or "delivery failed"))
