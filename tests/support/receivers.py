"""Real local receivers for notification tests: an HTTP server and an SMTP server.

:class:`HttpReceiver` stands in for webhook, Slack, PagerDuty and Apprise
``json://`` endpoints. It records every arrival in order (with the answer it
gave and when), and can be told to answer an error (for the next N requests or
until told otherwise, with ``Retry-After``), to be slow, to hang until released,
or to be down (not listening at all) and come back on the same port.
:class:`SmtpReceiver` is aiosmtpd.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from tests.conftest import free_port, wait_until


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200  # what the receiver answered
    at: float = 0.0  # monotonic arrival time

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class HttpReceiver:
    status: int = 200  # the answer when nothing else is set
    fail_next: int = 0  # answer ``fail_status`` to this many requests first
    fail_status: int = 500
    failing: bool = False  # answer ``fail_status`` until set back to False
    retry_after: str | None = None  # sent with failures
    delay: float = 0.0  # seconds before answering (a slow receiver)
    hanging: bool = False  # hold every request until ``release`` is set
    requests: list[Received] = field(default_factory=list)  # answered with 2xx
    arrivals: list[Received] = field(default_factory=list)  # every request, in order
    attempts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.port = free_port()
        self.server: _Server | None = None
        self.up()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                arrival = Received(
                    "POST", self.path, dict(self.headers.items()), body, at=time.monotonic()
                )
                with receiver._lock:
                    receiver.attempts += 1
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                    receiver.arrivals.append(arrival)
                try:
                    if receiver.hanging:
                        receiver.release.wait(60)
                    if receiver.delay:
                        time.sleep(receiver.delay)  # the receiver's own slowness, not a wait
                    with receiver._lock:
                        fail = receiver.failing or receiver.fail_next > 0
                        if receiver.fail_next > 0:
                            receiver.fail_next -= 1
                    arrival.status = receiver.fail_status if fail else receiver.status
                    if not fail and 200 <= arrival.status < 300:
                        receiver.requests.append(arrival)
                    body_out = b"try again later" if fail else b'{"status":"success"}'
                    headers = (
                        {"Retry-After": receiver.retry_after}
                        if fail and receiver.retry_after
                        else {}
                    )
                    self._answer(arrival.status, body_out, headers)
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def up(self) -> None:
        """Listen (again) on the same port."""
        self.server = _Server(("127.0.0.1", self.port), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answered(self, path: str = "") -> list[Received]:
        """2xx answers, of ``path`` (a prefix) if given."""
        return [r for r in self.requests if r.path.startswith(path)]

    def wait_for(self, count: int, seconds: float = 10) -> list[Received]:
        assert wait_until(lambda: len(self.requests) >= count, seconds), (
            f"expected {count} requests, got {len(self.requests)}"
        )
        return self.requests

    def wait_arrivals(self, count: int, seconds: float = 10) -> list[Received]:
        assert wait_until(lambda: len(self.arrivals) >= count, seconds), (
            f"expected {count} arrivals, got {len(self.arrivals)}"
        )
        return self.arrivals

    def close(self) -> None:
        self.release.set()
        self.down()


def refused_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.refuse: dict[str, str] = {}  # address -> RCPT reply, e.g. "550 5.1.1 no such user"
        self.rcpt_attempts: list[str] = []  # every RCPT TO address, in order

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.rcpt_attempts.append(address)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


class SmtpReceiver:
    """aiosmtpd on a free port; with ``users`` it requires AUTH, with ``tls`` it offers STARTTLS."""

    def __init__(
        self,
        users: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.users = users or {}
        kwargs: dict[str, Any] = {}
        if self.users:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=False
            )
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    @property
    def messages(self) -> list[Envelope]:
        return self.handler.messages

    @property
    def refuse(self) -> dict[str, str]:
        """Recipients to refuse at RCPT TO, with the reply (change it between attempts)."""
        return self.handler.refuse

    def delivered_to(self) -> list[str]:
        """Every recipient of every accepted message, in order (repeats show duplicates)."""
        return [rcpt for envelope in self.messages for rcpt in envelope.rcpt_tos]

    def close(self) -> None:
        self.controller.stop()


class TrickleServer:
    """A receiver that keeps each read within any per-read timeout but never finishes.

    ``mode``: ``body`` reads the request, sends the status line and headers, then
    one body byte per ``every`` seconds; ``status`` sends the status line itself a
    byte at a time; ``close`` sends the headers and part of the body, then closes
    the connection (mid-response); ``hangup`` closes without a word; ``smtp``
    dribbles an SMTP greeting. Trickling stops after ``lasting`` seconds or at
    :meth:`close`. ``requests`` counts whole HTTP requests read (what a real
    receiver may have acted on).
    """

    def __init__(self, mode: str, every: float = 0.25, lasting: float = 60.0) -> None:
        self.mode, self.every, self.lasting = mode, every, lasting
        self.requests = 0
        self.connections = 0
        self.ended = threading.Event()  # set when a trickle ends because the client left
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")), 0,
        )  # fmt: skip
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        self.requests += 1

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.mode != "smtp":
                    self._read_request(conn)
                if self.mode == "close":
                    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok')
                    return
                if self.mode == "hangup":
                    return
                head = {
                    "body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
                    "status": b"",
                    "smtp": b"",
                }[self.mode]
                conn.sendall(head)
                drip = b"HTTP/1.1 200 OK\r\n" * 1000 if self.mode == "status" else b"2" * 100000
                end = time.monotonic() + self.lasting
                for byte in drip:
                    if self._stop.wait(self.every) or time.monotonic() > end:
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                self.ended.set()  # the client hung up: the trickle did not hold it

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
