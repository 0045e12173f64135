"""``pagerduty``: Events API v2, one trigger or resolve event per alert.

The dedup key is ``lightbulb/<rule>/<service>``, so PagerDuty folds repeats of
a firing alert into one incident and the resolve closes exactly that incident.
"""

from __future__ import annotations

import json
from typing import Any

from server.config.types import SecretStr
from server.notify.base import AlertItem, Channel, ChannelSettings, Notice, info_item, post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


class PagerDutySettings(ChannelSettings):
    routing_key: SecretStr
    url: str = EVENTS_URL


def dedup_key(item: AlertItem) -> str:
    return f"lightbulb/{item.rule_id}/{item.service_id}"


def event(notice: Notice, item: AlertItem, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if item.state == "resolved" else "trigger",
        "dedup_key": dedup_key(item),
    }
    if item.state != "resolved":
        body["payload"] = {
            "summary": item.summary[:1024],
            "source": item.service_id,
            "severity": PD_SEVERITY[item.severity],
            "timestamp": item.since.isoformat(),
            "component": item.service_label,
            "group": item.stack,
            "class": item.rule_id,
            "custom_details": {
                "message": item.message,
                "value": item.value,
                "condition": item.condition,
                "caused_by": item.caused_by or None,
                **item.labels,
            },
        }
        link = notice.service_link(item.service_id)
        if link:
            body["links"] = [{"href": link, "text": "Lightbulb"}]
    return body


class PagerDutyChannel(Channel[PagerDutySettings]):
    Settings = PagerDutySettings

    def send(self, notice: Notice) -> None:
        if notice.kind == "report":
            return  # a daily report is not an incident: nothing to page anyone about
        key = self.settings.routing_key.reveal()
        items = notice.items or [info_item(notice.group_key, notice.text, notice.created)]
        for item in items:
            body = json.dumps(event(notice, item, key)).encode()
            post_json(self.settings.url, body, self.timeout, accept=(200, 202))
