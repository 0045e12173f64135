"""A small HTTP/1.1 client for checks: asyncio transports, httptools' C parser, keep-alive.

Why our own and not requests, aiohttp or httpx: a check needs only one
request's status, headers and at most a bounded body, and its cost per check is
the figure we compete on (see ``benchmarks/RESULTS.md`` for the measurements
that chose this). What it guarantees:

- every step (lookup, connect, TLS, headers, body) runs under the caller's
  deadline; nothing here has a timeout of its own to get wrong;
- the body is read only when asked (``need_body``), and then at most
  ``max_body`` bytes; a response whose body is not needed is answered when its
  headers arrive, and its connection is kept only if the rest drains soon;
- one pool of idle connections per target (scheme, host, port, TLS settings)
  for the running loop; no proxy or ``.netrc`` lookups on each request;
- on TLS, the peer certificate's ``notAfter`` comes from the handshake already
  made, not from a second connection.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httptools

from checkers.netio import connect, loop_local, tls_context
from server.core.httpfields import request_target

IDLE_TIMEOUT = 90.0  # seconds an idle connection is kept (nginx closes at 75 s)
MAX_IDLE_PER_TARGET = 4
DRAIN_LIMIT = 64 * 1024  # an unwanted body up to this size is drained to keep the connection
DRAIN_TIMEOUT = 5.0
MAX_REDIRECTS = 10
# Response header limits, as CPython's http.client (_MAXHEADERS = 100 headers,
# _MAXLINE = 65536 bytes; we apply the byte limit to the whole header block, as
# Node's --max-http-header-size does with its 16 KiB). Past either the exchange
# fails "response headers too large": 100,000 headers parsed one Python callback
# each held the event loop for tens of ms per check.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
USER_AGENT = "Lightbulb/0.1 (+health check)"
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)""")


class HttpError(Exception):
    """The exchange failed (connection, TLS, malformed response); ``str`` is the reason."""


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


# Byte order marks, checked first: a BOM beats any declaration (WHATWG Encoding,
# "decode", and HTML's "determining the character encoding", step 1).
BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
# Labels whose WHATWG meaning differs from Python's codec of the same name
# (https://encoding.spec.whatwg.org/#names-and-labels): browsers and every HTML
# parser read "iso-8859-1"/"ascii" as windows-1252 and "utf-16" as UTF-16LE.
WHATWG_LABELS = {
    **dict.fromkeys(
        ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
         "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1",
         "us-ascii", "windows-1252", "x-cp1252"),
        "cp1252",
    ),
    **dict.fromkeys(
        ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16",
         "utf-16le"),
        "utf-16-le",
    ),
    **dict.fromkeys(("unicodefffe", "utf-16be"), "utf-16-be"),
}  # fmt: skip


def sniff_encoding(content_type: str | None, body: bytes) -> tuple[str, int]:
    """(Python codec, bytes of BOM to skip) for a body, in the WHATWG order.

    1. a byte order mark (UTF-8, UTF-16BE, UTF-16LE), whatever is declared;
    2. the ``charset`` of ``Content-Type``;
    3. in the first 1024 bytes, an XML declaration's ``encoding`` or an HTML
       ``<meta charset>`` (a UTF-16 one means UTF-8: the bytes read as ASCII);
    4. UTF-8.
    Labels are read as WHATWG defines them (``iso-8859-1`` is windows-1252);
    an unknown label is skipped. Source: https://html.spec.whatwg.org/multipage/
    parsing.html#determining-the-character-encoding and
    https://encoding.spec.whatwg.org/#decode.
    """
    for bom, codec in BOMS:
        if body.startswith(bom):
            return codec, len(bom)
    if content_type:
        match = _CHARSET.search(content_type.encode("latin-1", "replace"))
        if match:
            declared = _codec(match.group(1))
            if declared:
                return declared, 0
    head = body[:1024]
    match = _XML_ENCODING.match(head)
    if match is None and b"<meta" in head.lower():
        match = _CHARSET.search(head)
    if match:
        found = _codec(match.group(1))
        if found:
            return ("utf-8" if found.startswith("utf-16") else found), 0
    return "utf-8", 0


def declared_charset(content_type: str | None, body: bytes) -> str:
    """The codec :func:`sniff_encoding` picks (a BOM, the header, the document; utf-8)."""
    return sniff_encoding(content_type, body)[0]


def _codec(label: bytes) -> str | None:
    """Python's codec for a charset label, WHATWG's meaning first; None if unknown."""
    import codecs

    name = label.decode("ascii", "replace").strip().lower()
    if name in WHATWG_LABELS:
        return WHATWG_LABELS[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    verify: bool
    ca_cert: str | None


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    _prepared: tuple[bool, str | None, Target, bytes] | None = field(default=None, repr=False)

    def prepared(self, verify: bool, ca_cert: str | None) -> tuple[Target, bytes]:
        """(target, bytes on the wire), built once per request object: a check sends the
        same request every interval, so parsing the URL each time would be waste."""
        cached = self._prepared
        if cached is None or cached[0] != verify or cached[1] != ca_cert:
            target, path = self.target(verify, ca_cert)
            cached = self._prepared = (verify, ca_cert, target, self.encode(target, path))
        return cached[2], cached[3]

    def target(self, verify: bool, ca_cert: str | None) -> tuple[Target, str]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"cannot fetch {self.url!r}: not an http(s) URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # refused at load; a redirect's Location may still hold one
            raise HttpError(f"cannot fetch {self.url!r}: not a valid port") from None
        path = request_target(parts.path, parts.query)
        return Target(parts.scheme, parts.hostname, port, verify, ca_cert), path

    def encode(self, target: Target, path: str) -> bytes:
        host = f"[{target.host}]" if ":" in target.host else target.host
        default_port = 443 if target.scheme == "https" else 80
        lines = {
            "Host": host if target.port == default_port else f"{host}:{target.port}",
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
        }
        if self.body is not None:
            lines["Content-Length"] = str(len(self.body))
        lowered = {k.lower() for k in self.headers}
        lines = {k: v for k, v in lines.items() if k.lower() not in lowered}
        lines.update(self.headers)
        head = f"{self.method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in lines.items()
        )
        return (head + "\r\n").encode("latin-1", "replace") + (self.body or b"")


class _Connection(asyncio.Protocol):
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
        if length is None or not length.strip().isdigit() or int(length) > DRAIN_LIMIT:
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


class StaleConnection(HttpError):
    """A reused keep-alive connection was closed by the server before it answered."""


class Pool:
    """Idle connections of one target for the running loop."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.idle: deque[_Connection] = deque()

    def acquire(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_TIMEOUT:
                return conn
            conn.close()
        return None

    def release(self, conn: _Connection) -> None:
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


async def _exchange(
    target: Target, data: bytes, method: str, need_body: bool, max_body: int
) -> Response:
    head_only = method == "HEAD"
    reusable = pool(target).acquire() if method in IDEMPOTENT else None
    if reusable is not None:
        try:
            return await reusable.send(data, need_body, max_body, head_only)
        except StaleConnection:
            pass  # the server timed the idle connection out: one fresh try
        except BaseException:
            reusable.close()
            raise
    tls = tls_context(target.verify, target.ca_cert) if target.scheme == "https" else None
    _transport, proto = await connect(
        target.host, target.port, lambda: _Connection(target), tls, target.host
    )
    conn: _Connection = proto  # type: ignore[assignment]
    try:
        return await conn.send(data, need_body, max_body, head_only)
    except BaseException:
        conn.close()
        raise


async def fetch(
    request: Request,
    *,
    verify: bool = True,
    ca_cert: str | None = None,
    need_body: bool = False,
    max_body: int = 2**20,
    follow_redirects: bool = True,
) -> Response:
    """One request (and its redirects); raises ``HttpError`` or ``OSError``.

    Call it under a deadline (``asyncio.timeout``): it has none of its own.
    """
    current = request
    for _hop in range(MAX_REDIRECTS + 1):
        target, data = current.prepared(verify, ca_cert)
        response = await _exchange(target, data, current.method, need_body, max_body)
        response.url = current.url
        location = response.header("location")
        if not follow_redirects or response.status not in (301, 302, 303, 307, 308) or not location:
            return response
        method, body = current.method, current.body
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), None
        current = Request(method, urljoin(current.url, location), current.headers, body)
    raise HttpError(f"more than {MAX_REDIRECTS} redirects")


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
