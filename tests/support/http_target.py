"""A local HTTP(S) server with routes that misbehave on purpose."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASIC = base64.b64encode(b"u s:p/w:x").decode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if self.path == "/close":
            self.connection.close()  # hang up without a response
            return
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.partition("=")[2] or 0.3))
        if self.path == "/error":
            self._send(500, b"internal error")
            return
        if self.path.startswith("/echo"):  # the request target, as it came on the wire
            self._send(200, self.path.encode("latin-1"))
            return
        if self.path.startswith("/goto?"):  # a redirect to what follows the "?"
            self.send_response(302)
            self.send_header("Location", self.path.partition("?")[2])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/basic"):  # Basic auth as user "u s", password "p/w:x"
            if self.headers.get("Authorization") != "Basic " + BASIC:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="t"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(200, f"{self.path} {self.headers.get('Host')}".encode())
            return
        if self.path == "/credentials":  # echoes the Basic credentials, decoded, as JSON
            token = (self.headers.get("Authorization") or " ").partition(" ")[2]
            pair = base64.b64decode(token).decode("utf-8", "replace") if token else ""
            echo = {"password": pair.partition(":")[2], "pair": pair, "token": token}
            self._send(200, json.dumps(echo).encode(), "application/json")
            return
        if self.path == "/headers":  # echoes what the checker sent
            self._send(200, json.dumps(dict(self.headers)).encode(), "application/json")
            return
        body = json.dumps({"status": "ok", "data": {"items": [{"state": "green"}]}}).encode()
        self._send(200, body, "application/json")

    def _send(self, code: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Target:
    def __init__(self, tls_dir: Path | None = None, days: int = 5) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls_dir is not None:
            cert, key = make_cert(tls_dir, days)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
            self.cert = cert
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_cert(directory: Path, days: int) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 valid for ``days`` days (openssl CLI)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)
