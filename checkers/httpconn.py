"""One HTTP/1.1 connection and its pool: reading a response off the stream.

:class:`Connection` is an asyncio protocol fed by httptools' C parser: it
enforces the header limits, reads the body only when asked (at most
``max_body`` bytes), drains a small unwanted body to keep the connection, and
takes the TLS peer certificate's ``notAfter`` from the handshake already made.
:class:`Pool` keeps a target's idle keep-alive connections for the running
loop. Building requests, redirects and the choice between a pooled and a fresh
connection are :mod:`checkers.httpclient`'s; decoding a body's text is
:mod:`checkers.httpcharset`'s.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import httptools

from checkers.httpcharset import sniff_encoding
from checkers.netio import loop_local

IDLE_TIMEOUT = 90.0  # seconds an idle connection is kept (nginx closes at 75 s)
MAX_IDLE_PER_TARGET = 4
DRAIN_LIMIT = 64 * 1024  # an unwanted body up to this size is drained to keep the connection
DRAIN_TIMEOUT = 5.0
# Response header limits, as CPython's http.client (_MAXHEADERS = 100 headers,
# _MAXLINE = 65536 bytes; we apply the byte limit to the whole header block, as
# Node's --max-http-header-size does with its 16 KiB). Past either the exchange
# fails "response headers too large": 100,000 headers parsed one Python callback
# each held the event loop for tens of ms per check.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024


class HttpError(Exception):
    """The exchange failed (connection, TLS, malformed response); ``str`` is the reason."""


class StaleConnection(HttpError):
    """A reused keep-alive connection was closed by the server before it answered."""


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    truncated: bool = False  # the body went past max_body; ``body`` holds the first part
    cert_not_after: datetime | None = None
    url: str = ""

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def text(self) -> str:
        """The body decoded by WHATWG's sniffing order (:func:`sniff_encoding`).

        Undecodable bytes become U+FFFD: decoding never fails a check by itself.
        """
        codec, skip = sniff_encoding(self.header("content-type"), self.body)
        return self.body[skip:].decode(codec, "replace")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    verify: bool
    ca_cert: str | None


class Connection(asyncio.Protocol):
    """One TCP (TLS) connection; one exchange at a time, parsed by httptools."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.cert_not_after: datetime | None = None
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0  # bytes received before the end of the headers was seen
        self.head_tail = b""  # the last 3 of them: a blank line may straddle two reads
        self.too_large: str | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.got_bytes = False
        self.complete = False
        self.need_body = False
        self.max_body = 0
        self.head_only = False
        self.answer: asyncio.Future[Response] | None = None
        self.response: Response | None = None
        self.on_complete: asyncio.Handle | None = None

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            der = tls.getpeercert(binary_form=True)
            self.cert_not_after = der_not_after(der) if der else None

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.response is None and self._head_too_large(data):
            self._fail(HttpError(f"response headers too large: over {MAX_HEADER_BYTES} bytes"))
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HttpError("server switched protocols"))
        except httptools.HttpParserCallbackError:
            if self.too_large is None:
                raise
            self._fail(HttpError(self.too_large))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"malformed HTTP response: {exc}"))

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the header block runs past MAX_HEADER_BYTES, counting ``data`` (read
        before it is parsed, so a 10 MB header is refused without being assembled)."""
        before = self.head_bytes
        self.head_bytes += len(data)
        if self.head_bytes <= MAX_HEADER_BYTES:
            self.head_tail = (self.head_tail + data)[-3:]
            return False
        window = self.head_tail + data[: MAX_HEADER_BYTES - before + 1]
        if b"\r\n\r\n" in window or b"\n\n" in window:
            self.head_bytes = 0  # the headers end in time; what follows is body
            return False
        return True

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    # -- httptools callbacks -------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            self.too_large = f"response headers too large: more than {MAX_HEADERS} headers"
            raise HttpError(self.too_large)  # stops the parser at once
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.response = Response(status, self.headers, cert_not_after=self.cert_not_after)
        if self.need_body and not self.head_only:
            return
        # Nothing needs the body: answer now, drain a small one to keep the connection.
        self._answer(self.response)
        length = self.response.header("content-length")
        if self.head_only or status in (204, 304) or (status < 200):
            return
        digits = length is not None and length.strip().isascii() and length.strip().isdigit()
        if length is None or not digits or int(length) > DRAIN_LIMIT:
            self.close()
        elif int(length) > 0:
            asyncio.get_running_loop().call_later(DRAIN_TIMEOUT, self._drain_expired)

    def _drain_expired(self) -> None:
        if not self.complete:
            self.close()  # a slow body we did not want: not worth keeping the connection

    def on_body(self, body: bytes) -> None:
        if not self.need_body:
            return
        room = self.max_body - self.size
        if len(body) > room:
            self.chunks.append(body[:room])
            self.size = self.max_body
            assert self.response is not None
            self.response.truncated = True
            self._finish_body()
            self.close()  # the rest is not read: a 1 GiB body costs max_body, no more
            return
        self.chunks.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self._finish_body()
        if self.parser.should_keep_alive() and not self.closed:
            pool(self.target).release(self)
        else:
            self.close()

    # -- ours ------------------------------------------------------------------------
    def _finish_body(self) -> None:
        if self.response is not None and self.need_body:
            self.response.body = b"".join(self.chunks)
            self._answer(self.response)

    def _answer(self, response: Response) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(response)

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)
        self.close()

    def _ended(self, exc: Exception | None = None) -> None:
        if self.answer is None or self.answer.done():
            return
        if (
            self.response is not None
            and self.response.header("content-length") is None
            and ((self.response.header("transfer-encoding") or "").lower() != "chunked")
        ):
            self.complete = True  # a body delimited by the end of the connection
            self._finish_body()
            return
        if not self.got_bytes:
            self._fail(StaleConnection("server closed the connection without a response"))
        else:
            reason = f"connection lost mid-response: {exc}" if exc else "response cut short"
            self._fail(HttpError(reason))

    def send(
        self, data: bytes, need_body: bool, max_body: int, head_only: bool
    ) -> asyncio.Future[Response]:
        self._reset()
        self.need_body, self.max_body, self.head_only = need_body, max_body, head_only
        self.answer = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle connections of one target for the running loop."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.idle: deque[Connection] = deque()

    def acquire(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_TIMEOUT:
                return conn
            conn.close()
        return None

    def release(self, conn: Connection) -> None:
        if len(self.idle) >= MAX_IDLE_PER_TARGET:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class Pools:
    def __init__(self) -> None:
        self.by_target: dict[Target, Pool] = {}

    async def aclose(self) -> None:
        for each in self.by_target.values():
            each.close()
        self.by_target.clear()
        await asyncio.sleep(0)  # let transports finish closing


def pool(target: Target) -> Pool:
    pools = loop_local("http-pools", Pools).by_target
    found = pools.get(target)
    if found is None:
        found = pools[target] = Pool(target)
    return found


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
