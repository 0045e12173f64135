"""``pagerduty``: Events API v2, one trigger or resolve event per alert.

The dedup key is ``lightbulb/<rule>/<service>``: PagerDuty folds a repeated
trigger into the open incident and the resolve closes exactly that incident,
so it is PagerDuty's idempotency key too.

Escaping (:func:`field`): PagerDuty shows event fields as text, so nothing is
markup; what must hold is its limits. Control characters (other than newlines
and tabs) are dropped and each field is cut to its documented maximum (summary
1024 characters, the others 255) with an ellipsis, so a check printing a
megabyte cannot get the event refused.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator

from server.core.redact import redact
from server.core.secret import SecretStr
from server.notify.base import AlertItem, Channel, ChannelSettings, Notice, info_item
from server.notify.http import check_url, post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
SUMMARY_MAX, FIELD_MAX = 1024, 255  # Events API v2 field limits
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def field(text: str, limit: int = FIELD_MAX) -> str:
    """Text for a PagerDuty field: control characters dropped, cut to ``limit``."""
    clean = redact(_CONTROL.sub("", text))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class PagerDutySettings(ChannelSettings):
    routing_key: SecretStr
    url: Annotated[str, AfterValidator(check_url)] = EVENTS_URL


def dedup_key(item: AlertItem) -> str:
    return field(f"lightbulb/{item.rule_id}/{item.service_id}")


def event(notice: Notice, item: AlertItem, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if item.state == "resolved" else "trigger",
        "dedup_key": dedup_key(item),
    }
    if item.state != "resolved":
        body["payload"] = {
            "summary": field(item.summary, SUMMARY_MAX),
            "source": field(item.service_id),
            "severity": PD_SEVERITY[item.severity],
            "timestamp": item.since.isoformat(),
            "component": field(item.service_label),
            "group": field(item.stack),
            "class": field(item.rule_id),
            "custom_details": {
                "message": field(item.message, SUMMARY_MAX),
                "value": item.value,
                "condition": field(item.condition),
                "caused_by": item.caused_by or None,
                "notice": notice.id or None,
                **{field(k): field(v) for k, v in item.labels.items()},
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
            timeouts = (self.timeout, self.response_timeout)
            post_json(self.settings.url, body, timeouts, accept=(200, 202))
