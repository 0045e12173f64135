"""Real local receivers for notification tests: an HTTP server and an SMTP server.

:class:`HttpReceiver` stands in for webhook, Slack, PagerDuty and Apprise
``json://`` endpoints: it records every request and can be told to fail the
next N requests or to hang until released. :class:`SmtpReceiver` is aiosmtpd.
"""

from __future__ import annotations

import json
import ssl
import threading
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

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    status: int = 200
    fail_next: int = 0  # answer 500 to this many requests first
    requests: list[Received] = field(default_factory=list)
    attempts: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    hanging: bool = False

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.hanging:
                    receiver.release.wait(30)
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self._answer(500, b"try again later")
                    return
                receiver.requests.append(
                    Received("POST", self.path, dict(self.headers.items()), body)
                )
                self._answer(receiver.status, b'{"status":"success"}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, count: int, seconds: float = 10) -> list[Received]:
        assert wait_until(lambda: len(self.requests) >= count, seconds), (
            f"expected {count} requests, got {len(self.requests)}"
        )
        return self.requests

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

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

    def close(self) -> None:
        self.controller.stop()
