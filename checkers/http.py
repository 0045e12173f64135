"""``http``: an HTTP(S) endpoint answers with the expected status, body and speed.

Runs on the event loop with :mod:`checkers.httpclient`: the whole exchange,
redirects included, ends by the deadline, whatever the server does (a body
dripping a byte at a time, a TLS handshake that never completes). The body is
read only when ``body_contains`` or ``json_path`` needs it, and then at most
``max_body`` bytes; it is decoded in the charset the response declares
(header, then ``<meta>``), else UTF-8 with replacement characters.

For HTTPS the certificate's days to expiry are a metric and, under
``cert_expiry_days``, a DEGRADED reason; they come from the handshake of the
connection in use, so no second handshake is made.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from checkers.base import (
    CheckContext,
    Checker,
    CheckResult,
    Metric,
    Settings,
    Status,
    invalid,
    timed_out_message,
)
from checkers.httpclient import Request, fetch
from checkers.httpconn import HttpError, Response
from checkers.netio import os_reason
from server.core.httpfields import HeaderName, HeaderValue, HttpMethod, HttpUrl
from server.core.thresholds import pair_problem
from server.core.units import ByteSize, Duration, DurationRange, format_size

__all__ = [
    "HttpChecker",
    "HttpSettings",
    "json_path_get",
    "parse_status_spec",
    "split_userinfo",
]

# ASCII digits only (\d takes Arabic-Indic and fullwidth digits too); "2xx" in either
# case, as OpenAPI writes "2XX" and many write "2xx"
_RANGE = re.compile(r"^([0-9]{3})(?:-([0-9]{3}))?$|^([1-5])[xX][xX]$")
MAX_BODY = 2**20  # 1 MiB: the most of a body read for body_contains / json_path


def parse_status_spec(spec: str | int) -> tuple[int, int]:
    """``200`` -> (200, 200); ``"200-299"`` -> (200, 299); ``"2xx"``/``"2XX"`` -> (200, 299).

    Digits are ASCII only. Raises the settings error :func:`checkers.base.invalid`.
    """
    text = str(spec).strip()
    match = _RANGE.match(text)
    allowed = (
        "expected a status 100 to 599 in ASCII digits like 200, a range low-high like "
        '"200-299", or "2xx"'
    )
    if not match:
        raise invalid(allowed)
    if match.group(3):
        base = int(match.group(3)) * 100
        return base, base + 99
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not (100 <= low <= 599 and 100 <= high <= 599):
        raise invalid(f"{allowed}; {text} is outside 100 to 599")
    if low > high:
        raise invalid(f"{allowed}; {text} has its low end above its high end")
    return low, high


def split_userinfo(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host/p`` -> (``http://host/p``, ``"Basic base64(user:pw)"``).

    As curl does: user and password are percent-decoded, then sent as Basic auth;
    the URL without them is what goes on the wire and into messages.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, "Basic " + base64.b64encode(pair).decode("ascii")


def _check_spec(value: str | int) -> str | int:
    parse_status_spec(value)
    return value


StatusSpec = Annotated[str | int, BeforeValidator(_check_spec)]


def _some_status(value: list[str | int]) -> list[str | int]:
    if not value:
        raise invalid(
            'expected at least one status, like [200] or ["2xx"]; '
            "leave expect_status out for the default 200-399"
        )
    return value


class HttpSettings(Settings):
    url: HttpUrl = Field(max_length=8192)
    method: HttpMethod = "GET"
    expect_status: Annotated[list[StatusSpec], AfterValidator(_some_status)] = Field(
        default_factory=lambda: list[StatusSpec](["200-399"])
    )
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
    max_body: ByteSize = Field(MAX_BODY, ge=1, le=256 * 2**20)

    @model_validator(mode="after")
    def _equals_needs_path(self) -> HttpSettings:
        if self.equals is not None and self.json_path is None:
            raise ValueError("equals needs json_path")
        timeout_ms = self.timeout.total_seconds() * 1000 if self.timeout else None
        problem = pair_problem(
            ("degraded_over_ms", self.degraded_over_ms),
            ("timeout in ms", timeout_ms),
            equal_ok=False,
        )
        if problem:
            raise ValueError(problem)
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


class HttpChecker(Checker[HttpSettings]):
    Settings = HttpSettings
    timeout_status = Status.FAILED

    def __init__(self, settings: HttpSettings) -> None:
        super().__init__(settings)
        self._ranges = [parse_status_spec(s) for s in settings.expect_status]
        self._url, basic = split_userinfo(settings.url)
        headers = dict(settings.headers)
        if basic is not None and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = basic  # an explicit Authorization header wins
        self._request = Request(
            settings.method.upper(),
            self._url,
            headers,
            settings.body.encode() if settings.body is not None else None,
        )
        self._need_body = settings.body_contains is not None or settings.json_path is not None

    def describe(self) -> str:
        return f"{self.settings.method} {self._url}"  # never the userinfo

    async def check_async(self, ctx: CheckContext) -> CheckResult:
        s = self.settings
        # The runner's deadline is ctx.timeout; a shorter http.timeout is cut here.
        timeout = s.timeout.total_seconds() if s.timeout else None
        if timeout is not None and timeout >= ctx.timeout:
            timeout = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await fetch(
                    self._request,
                    verify=s.verify_tls,
                    ca_cert=s.ca_cert,
                    need_body=self._need_body,
                    max_body=s.max_body,
                    follow_redirects=s.follow_redirects,
                )
        except TimeoutError:
            return self._failed(timed_out_message(timeout or ctx.timeout), started)
        except HttpError as exc:
            return self._failed(str(exc), started)
        except OSError as exc:
            return self._failed(os_reason(exc), started)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        metrics = [
            Metric("response_time_ms", elapsed_ms, "ms"),
            Metric("http_status", response.status),
        ]
        details: dict[str, Any] = {"status": response.status}
        if self._need_body:
            details["bytes"] = len(response.body)
        problem = self._content_problem(response)
        if problem:
            return CheckResult(Status.FAILED, problem, details, elapsed_ms, metrics=metrics)
        degraded = []
        if s.degraded_over_ms is not None and elapsed_ms > s.degraded_over_ms:
            degraded.append(f"slow: {elapsed_ms} ms > {s.degraded_over_ms} ms")
        if response.cert_not_after is not None:
            days = round((response.cert_not_after - ctx.now).total_seconds() / 86400, 2)
            metrics.append(Metric("cert_expiry_days", days, "days"))
            details["cert_expiry_days"] = days
            if s.cert_expiry_days is not None and days < s.cert_expiry_days:
                degraded.append(f"certificate expires in {days:.1f} days")
        if degraded:
            return CheckResult(
                Status.DEGRADED, "; ".join(degraded), details, elapsed_ms, metrics=metrics
            )
        return CheckResult(
            Status.OK,
            f"HTTP {response.status} in {elapsed_ms} ms",
            details,
            elapsed_ms,
            metrics=metrics,
        )

    def _failed(self, reason: str, started: float) -> CheckResult:
        elapsed = int((time.perf_counter() - started) * 1000)
        return CheckResult(Status.FAILED, f"{self.describe()}: {reason}", response_time_ms=elapsed)

    def _content_problem(self, response: Response) -> str | None:
        s = self.settings
        code = response.status
        if not any(low <= code <= high for low, high in self._ranges):
            wanted = ", ".join(str(x) for x in s.expect_status)
            return f"HTTP {code}, expected {wanted}"
        if not self._need_body:
            return None
        text = response.text()
        cut = f" (body larger than max_body {format_size(s.max_body)}; only that much was read)"
        if s.body_contains is not None and s.body_contains not in text:
            return f"body does not contain {s.body_contains!r}" + (
                cut if response.truncated else ""
            )
        if s.json_path is not None:
            if response.truncated:
                return "body is not complete JSON" + cut
            try:
                value = json_path_get(json.loads(text), s.json_path)
            except ValueError:
                return "body is not JSON"
            except KeyError:
                return f"{s.json_path} not found in body"
            if s.equals is not None and value != s.equals:
                return f"{s.json_path} is {value!r}, expected {s.equals!r}"
        return None
