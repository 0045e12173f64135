"""POST to a receiver and classify what went wrong: the one HTTP call of every HTTP channel.

Transient (retried until the notice's deadline): no connection, no answer in
time, 5xx, 408 Request Timeout and 429 Too Many Requests (honouring
``Retry-After``). Permanent (given up at once): other 4xx and 3xx answers, and
URLs that cannot work. The split follows RFC 9110's status classes and what
Alertmanager's notifiers retry.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from server.notify.base import ChannelError

TRANSIENT_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER = 3600.0  # a receiver asking for more is asked again within the deadline


def redact(url: str) -> str:
    """``https://hooks.slack.com/…``: where a secret URL points, without the secret part."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{'/…' if parts.path.strip('/') else ''}"


def post_json(
    url: str,
    body: bytes,
    timeouts: tuple[float, float],
    headers: dict[str, str] | None = None,
    *,
    accept: tuple[int, ...] = (200, 201, 202, 204),
    shown: str | None = None,
) -> requests.Response:
    """POST ``body`` as JSON; return the response or raise a classified ChannelError.

    ``timeouts`` is (connect, answer) in seconds. ``shown`` replaces the URL in
    messages when the URL itself is a secret (Slack webhooks): errors end up in
    logs, rows and pages.
    """
    where = shown or url
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=timeouts,
            allow_redirects=False,  # a redirected POST becomes a GET: say so instead
        )
    except requests.ConnectTimeout:
        raise ChannelError(f"cannot reach {where}: no connection within {timeouts[0]:g}s") from None
    except requests.Timeout:
        raise ChannelError(f"no answer from {where} within {timeouts[1]:g}s") from None
    except requests.ConnectionError:
        raise ChannelError(f"cannot reach {where}: connection refused or failed") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:  # fmt: skip
        detail = str(exc).replace(url, where)
        raise ChannelError(f"cannot post to {where}: {detail}", permanent=True) from None
    except requests.RequestException as exc:
        detail = str(exc).replace(url, where)
        raise ChannelError(f"cannot reach {where}: {detail}") from None
    code = response.status_code
    if code in accept:
        return response
    snippet = response.text[:200].strip()
    message = f"{where} answered HTTP {code}: {snippet}".rstrip(": ")
    if code >= 500 or code in TRANSIENT_STATUSES:
        raise ChannelError(message, retry_after=retry_after(response))
    raise ChannelError(message, permanent=True)


def retry_after(response: requests.Response) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or an HTTP date, read against the
    response's own ``Date``), capped at ``MAX_RETRY_AFTER``; None when absent or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        until = parsedate_to_datetime(value)
        sent = response.headers.get("Date")
        now = parsedate_to_datetime(sent) if sent else None
    except (TypeError, ValueError):
        return None
    if now is None or not isinstance(until, datetime):
        return None
    return min(max((until - now).total_seconds(), 0.0), MAX_RETRY_AFTER)
