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

This module builds requests, follows redirects and picks a pooled or a fresh
connection; reading responses off a connection and the pools are in
:mod:`checkers.httpconn`, the body's charset sniffing in :mod:`checkers.httpcharset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from checkers.httpconn import Connection, HttpError, Response, StaleConnection, Target, pool
from checkers.netio import connect, tls_context
from server.core.httpfields import request_target

MAX_REDIRECTS = 10
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
USER_AGENT = "Lightbulb/0.1 (+health check)"


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
        target.host, target.port, lambda: Connection(target), tls, target.host
    )
    conn: Connection = proto  # type: ignore[assignment]
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
        nxt = Request(method, urljoin(current.url, location), current.headers, body)
        if nxt.prepared(verify, ca_cert)[0] != target:
            # As curl does: credentials go only to the origin they were given for.
            headers = {k: v for k, v in current.headers.items() if k.lower() != "authorization"}
            nxt = Request(method, nxt.url, headers, body)
        current = nxt
    raise HttpError(f"more than {MAX_REDIRECTS} redirects")
