"""``webhook``: POST the versioned JSON payload (see :func:`server.notify.base.payload`).

Every request carries the notice's idempotency key twice: as the
``Idempotency-Key`` header (the IETF httpapi draft's name) and as the payload's
``idempotency_key``; it is the same on every attempt and after a restart.

With ``secret`` set, ``X-Lightbulb-Signature: sha256=<hex>`` is the HMAC-SHA256
of ``"<X-Lightbulb-Timestamp>.<body>"`` under the secret, so a receiver can check
both origin and freshness (the timestamp stops replays), Stripe-style.

Escaping: none. Text goes out JSON-encoded as it came from checks, logs and
labels; a receiver rendering it into markup escapes it for that markup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated

from pydantic import AfterValidator, Field

from server.core.httpfields import HeaderName, check_header_value
from server.core.secret import Secret, SecretStr
from server.notify.base import Channel, ChannelSettings, Notice, payload
from server.notify.http import check_url, post_json

SIGNATURE_HEADER = "X-Lightbulb-Signature"
TIMESTAMP_HEADER = "X-Lightbulb-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookSettings(ChannelSettings):
    url: Annotated[str, AfterValidator(check_url)]
    headers: dict[HeaderName, Annotated[SecretStr, AfterValidator(check_header_value)]] = Field(
        default_factory=dict
    )
    secret: SecretStr = Secret("")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel(Channel[WebhookSettings]):
    Settings = WebhookSettings

    def send(self, notice: Notice) -> None:
        body = json.dumps(payload(notice), separators=(",", ":")).encode()
        headers = {k: v.reveal() for k, v in self.settings.headers.items()}
        headers["User-Agent"] = "lightbulb"
        if notice.id:
            headers[IDEMPOTENCY_HEADER] = notice.id
        if self.settings.secret:
            timestamp = str(int(notice.created.timestamp()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.settings.secret.reveal(), timestamp, body)
        post_json(self.settings.url, body, (self.timeout, self.response_timeout), headers)
