"""``http``: an HTTP(S) endpoint answers with the expected status, body and speed (requests).

For HTTPS the certificate's days to expiry are a metric and, under
``cert_expiry_days``, a DEGRADED reason. The certificate is read at most once
an hour per service: it changes rarely and a second TLS handshake per check
would double the cost of every check.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import requests
import urllib3
from pydantic import BeforeValidator, Field, field_validator, model_validator

from checkers.base import CheckContext, Checker, CheckResult, Metric, Settings, Status, invalid
from server.core.httpfields import HeaderName, HeaderValue, HttpMethod
from server.core.units import Duration, DurationRange

_RANGE = re.compile(r"^(\d{3})(?:-(\d{3}))?$|^([1-5])xx$")
CERT_RECHECK = timedelta(hours=1)


def parse_status_spec(spec: str | int) -> tuple[int, int]:
    """``200`` -> (200, 200); ``"200-299"`` -> (200, 299); ``"2xx"`` -> (200, 299)."""
    text = str(spec).strip()
    match = _RANGE.match(text)
    if not match:
        raise invalid('expected a status like 200, "200-299" or "2xx"')
    if match.group(3):
        base = int(match.group(3)) * 100
        return base, base + 99
    low = int(match.group(1))
    return low, int(match.group(2) or low)


def _check_spec(value: str | int) -> str | int:
    parse_status_spec(value)
    return value


StatusSpec = Annotated[str | int, BeforeValidator(_check_spec)]


class HttpSettings(Settings):
    url: str = Field(max_length=8192)
    method: HttpMethod = "GET"
    expect_status: list[StatusSpec] = Field(default_factory=lambda: list[StatusSpec](["200-399"]))
    timeout: Annotated[Duration, DurationRange("100ms", "1h")] | None = None
    degraded_over_ms: int | None = Field(None, ge=1, le=3_600_000)
    body_contains: str | None = None
    json_path: str | None = None
    equals: Any = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    body: str | None = None
    verify_tls: bool = True
    ca_cert: str | None = None
    cert_expiry_days: int | None = Field(None, ge=1, le=3650)
    follow_redirects: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"http", "https"} or not urlsplit(value).hostname:
            raise invalid("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _equals_needs_path(self) -> HttpSettings:
        if self.equals is not None and self.json_path is None:
            raise ValueError("equals needs json_path")
        return self


def json_path_get(document: Any, path: str) -> Any:
    """A small JSONPath subset: ``$.a.b[0].c`` (or ``a.b[0].c``). Raises KeyError if absent."""
    current = document
    for name, index in re.findall(r"\.?([^.\[\]]+)|\[(\d+)\]", path.removeprefix("$")):
        if index:
            if not isinstance(current, list) or int(index) >= len(current):
                raise KeyError(path)
            current = current[int(index)]
        else:
            if not isinstance(current, dict) or name not in current:
                raise KeyError(path)
            current = current[name]
    return current


_local = threading.local()


def thread_session() -> requests.Session:
    """One session (connection pool) per worker thread, shared by every http checker.

    A Session per service cost ~30 KB each and kept thousands of idle sockets;
    per thread, memory is bounded by the pool size and keep-alive still works.
    """
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        _local.session = session
    return session


class HttpChecker(Checker[HttpSettings]):
    Settings = HttpSettings

    def __init__(self, settings: HttpSettings) -> None:
        super().__init__(settings)
        self._ranges = [parse_status_spec(s) for s in settings.expect_status]
        if not settings.verify_tls:
            # The user's explicit choice; urllib3 would otherwise warn on every check.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._cert_expires: datetime | None = None
        self._cert_checked: datetime | None = None

    def check(self, ctx: CheckContext) -> CheckResult:
        s = self.settings
        timeout = s.timeout.total_seconds() if s.timeout else ctx.timeout
        verify: bool | str = s.ca_cert or s.verify_tls
        started = time.perf_counter()
        try:
            response = thread_session().request(
                s.method,
                s.url,
                headers=s.headers,
                data=s.body,
                timeout=timeout,
                verify=verify,
                allow_redirects=s.follow_redirects,
            )
            content = response.content
        except requests.exceptions.RequestException as exc:
            elapsed = int((time.perf_counter() - started) * 1000)
            return CheckResult(
                Status.FAILED, f"{s.method} {s.url}: {_reason(exc)}", response_time_ms=elapsed
            )
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        metrics = [
            Metric("response_time_ms", elapsed_ms, "ms"),
            Metric("http_status", response.status_code),
        ]
        details: dict[str, Any] = {"status": response.status_code, "bytes": len(content)}
        problem = self._content_problem(response.status_code, content)
        if problem:
            return CheckResult(Status.FAILED, problem, details, elapsed_ms, metrics=metrics)
        degraded = []
        if s.degraded_over_ms is not None and elapsed_ms > s.degraded_over_ms:
            degraded.append(f"slow: {elapsed_ms} ms > {s.degraded_over_ms} ms")
        days = self._cert_expiry_days(ctx.now, timeout)
        if days is not None:
            metrics.append(Metric("cert_expiry_days", round(days, 2), "days"))
            details["cert_expiry_days"] = round(days, 2)
            if s.cert_expiry_days is not None and days < s.cert_expiry_days:
                degraded.append(f"certificate expires in {days:.1f} days")
        if degraded:
            return CheckResult(
                Status.DEGRADED, "; ".join(degraded), details, elapsed_ms, metrics=metrics
            )
        return CheckResult(
            Status.OK,
            f"HTTP {response.status_code} in {elapsed_ms} ms",
            details,
            elapsed_ms,
            metrics=metrics,
        )

    def _content_problem(self, code: int, content: bytes) -> str | None:
        s = self.settings
        if not any(low <= code <= high for low, high in self._ranges):
            wanted = ", ".join(str(x) for x in s.expect_status)
            return f"HTTP {code}, expected {wanted}"
        if s.body_contains is not None and s.body_contains.encode() not in content:
            return f"body does not contain {s.body_contains!r}"
        if s.json_path is not None:
            try:
                value = json_path_get(json.loads(content), s.json_path)
            except ValueError:
                return "body is not JSON"
            except KeyError:
                return f"{s.json_path} not found in body"
            if s.equals is not None and value != s.equals:
                return f"{s.json_path} is {value!r}, expected {s.equals!r}"
        return None

    def _cert_expiry_days(self, now: datetime, timeout: float) -> float | None:
        url = urlsplit(self.settings.url)
        if url.scheme != "https":
            return None
        if self._cert_checked is None or now - self._cert_checked >= CERT_RECHECK:
            self._cert_checked = now
            self._cert_expires = peer_cert_expiry(
                url.hostname or "", url.port or 443, timeout, self.settings.ca_cert
            )
        if self._cert_expires is None:
            return None
        return (self._cert_expires - now).total_seconds() / 86400


def peer_cert_expiry(host: str, port: int, timeout: float, ca_cert: str | None) -> datetime | None:
    """The server certificate's notAfter, read without verifying it (expiry is the question)."""
    context = (
        ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
    )
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return der_not_after(der) if der else None


def der_not_after(der: bytes) -> datetime | None:
    """notAfter of a DER certificate: the second time in its validity sequence.

    Parsing the few ASN.1 bytes we need avoids a dependency on ``cryptography``
    (the stdlib only decodes certificates it has verified).
    """
    times = re.findall(rb"[\x17\x18]([\x0d\x0f])(\d{12,14}Z)", der)
    if len(times) < 2:
        return None
    text = times[1][1].decode()
    fmt = "%y%m%d%H%M%SZ" if len(text) == 13 else "%Y%m%d%H%M%SZ"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def _reason(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error: " + str(exc.args[0] if exc.args else exc)[:200]
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        for marker in (
            "Connection refused",
            "Name or service not known",
            "Connection reset",
            "RemoteDisconnected",
        ):
            if marker in text:
                return marker.lower()
        return "connection failed: " + text[:200]
    return str(exc)[:200]
