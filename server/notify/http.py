"""POST to a receiver and classify what went wrong: the one HTTP call of every HTTP channel.

Transient (retried until the notice's deadline): no connection, no answer in
time, 5xx, 408 Request Timeout and 429 Too Many Requests (honouring
``Retry-After``). Permanent (given up at once): other 4xx and 3xx answers, and
URLs that cannot work. The split follows RFC 9110's status classes and what
Alertmanager's notifiers retry.
"""

from __future__ import annotations

import socket
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from pydantic_core import PydanticCustomError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from server.core.text import clip
from server.notify.base import ChannelError
from server.notify.deadline import AttemptLimit, watch

TRANSIENT_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER = 3600.0  # a receiver asking for more is asked again within the deadline


def usable(url: str) -> bool:
    """``http://`` or ``https://`` with a host and a valid port, as the HTTP client
    (urllib3's parser) reads it: whatever passes can at least be posted to."""
    try:
        parts = urllib3.util.parse_url(url)
        split = urlsplit(url)
        _ = split.port  # ValueError when out of range
    except (urllib3.exceptions.LocationParseError, ValueError):
        return False
    return parts.scheme in ("http", "https") and bool(parts.host) and bool(split.hostname)


def check_url(url: str) -> str:
    """A receiver URL (:func:`usable`); else a config error (``lightbulb``: quoted
    back with the fix)."""
    if not usable(url):
        raise PydanticCustomError(
            "lightbulb", "expected an http:// or https:// URL with a host (and a valid port), e.g. "
            "https://alerts.example.org/hook",
        )  # fmt: skip
    return url


def check_secret_url(url: Any) -> Any:
    """:func:`check_url` for a URL that is itself a credential (Slack): the error
    names only the scheme, never the URL."""
    if not usable(url.reveal()):
        scheme = url.reveal().partition("://")[0] if "://" in url.reveal() else ""
        scheme = f'"{scheme}://"' if scheme else "no scheme"
        raise PydanticCustomError(
            "lightbulb_secret", f"expected an https:// URL with a host (and a valid port), like "
            f"https://hooks.slack.com/services/…; got {scheme}",
        )  # fmt: skip
    return url


def redact(url: str) -> str:
    """``https://hooks.slack.com/…``: where a secret URL points, without the secret part."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{'/…' if parts.path.strip('/') else ''}"


class _WatchedHTTP(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return watch(super()._new_conn())


class _WatchedHTTPS(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return watch(super()._new_conn())


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class _WatchedAdapter(HTTPAdapter):
    """Every connection it opens is put under the attempt's hard limit."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def _session() -> requests.Session:
    """A session for one attempt: fresh connections, each one watched."""
    session = requests.Session()
    adapter = _WatchedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _mid_response(exc: requests.RequestException) -> bool:
    """The connection was made and the request sent, then closed before a whole answer
    (no status line: ``RemoteDisconnected``; part of the body: ``IncompleteRead``)."""
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(exc, requests.ConnectionError) and isinstance(
        reason, urllib3.exceptions.ProtocolError
    )


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

    ``timeouts`` is (connect, answer) in seconds; their sum is also a hard limit
    on the whole attempt (:mod:`server.notify.deadline`), so a receiver that
    trickles its answer cannot hold the channel. ``shown`` replaces the URL in
    messages when the URL itself is a secret (Slack webhooks): errors end up in
    logs, rows and pages.
    """
    where = shown or url
    limit = AttemptLimit(timeouts[0] + timeouts[1])
    try:
        with limit, _session() as session:
            response = session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **(headers or {})},
                timeout=timeouts,
                allow_redirects=False,  # a redirected POST becomes a GET: say so instead
            )
    except requests.ConnectTimeout:
        raise ChannelError(f"cannot reach {where}: no connection within {timeouts[0]:g}s") from None
    except requests.RequestException as exc:
        if limit.expired:
            raise ChannelError(
                f"no complete answer from {where} within {limit.seconds:g}s (the limit per "
                "attempt); it may have been received", maybe_delivered=True,
            ) from None  # fmt: skip
        if isinstance(exc, requests.Timeout):
            raise ChannelError(
                f"no answer from {where} within {timeouts[1]:g}s", maybe_delivered=True
            ) from None
        if _mid_response(exc):
            raise ChannelError(
                f"{where}: connection closed mid-response; it may have been received",
                maybe_delivered=True,
            ) from None
        if isinstance(exc, requests.ConnectionError):
            raise ChannelError(f"cannot reach {where}: connection refused or failed") from None
        detail = str(exc).replace(url, where)
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema)):  # fmt: skip
            raise ChannelError(f"cannot post to {where}: {detail}", permanent=True) from None
        raise ChannelError(f"cannot reach {where}: {detail}") from None
    code = response.status_code
    if code in accept:
        return response
    snippet = clip(response.text, 200).strip()
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
    if value.isascii() and value.isdigit():  # str.isdigit alone takes "²", float() not
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
