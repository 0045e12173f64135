"""A client that resets or vanishes costs the daemon's log nothing.

waitress logs each socket error it meets while serving with a traceback (267 in 35 s
under a trickling flood) unless ``log_socket_errors`` is off. Its own reads and
writes already swallow a reset (ECONNRESET, EPIPE: ``wasyncore._DISCONNECTED``), so
resets alone never reach that switch: the daemon test below holds with it on too and
guards the quiet of resets as such. What the switch governs is any other OSError met
while answering, such as the ETIMEDOUT of a write to a client gone silent (no RST,
no FIN); the server test raises that one while a real waitress answers.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from server.web import WebServer
from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, write_config

__all__ = ["no_leaked_daemons"]

RESETS = 40  # of each kind


def reset(sock: socket.socket) -> None:
    """Close with an RST, not a FIN: the peer's next read or write fails."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def held(pid: int, ports: set[int]) -> int:
    """Sockets ``pid`` still holds whose peer is one of ``ports`` (ours, reset or not)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) in ports and fields[9] in inodes:
                count += 1
    return count


def test_connections_reset_mid_request_or_mid_answer_log_no_traceback(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, "  - {id: h, type: host, interval: 1s}\n", port=port)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    ports: set[int] = set()
    for n in range(RESETS):
        # half a request, then gone: the daemon's read fails
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        ports.add(sock.getsockname()[1])
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: " + b"a" * n)
        reset(sock)
        # a whole request for a page, a window too small for it, then gone: its write fails
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        ports.add(sock.getsockname()[1])
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(12).startswith(b"HTTP/1.1 ")  # it is answering
        reset(sock)
    assert wait_until(lambda: held(daemon.proc.pid, ports) == 0, 60)  # each one dealt with
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # still serving
    code, _ = daemon.stop()
    assert code == 0, daemon.output[-3000:]
    tracebacks = [line for line in daemon.lines if line.startswith("Traceback")]
    socket_errors = [line for line in daemon.lines if "Socket error" in line]
    assert (len(tracebacks), len(socket_errors)) == (0, 0), daemon.output[-3000:]


def vanishing(environ: dict[str, object], start: Callable[..., object]) -> Iterator[bytes]:
    """Answers "/" in two parts; the second's write meets a client gone silent."""
    start("200 OK", [("Content-Type", "text/plain")])
    yield b"first part"
    if environ["PATH_INFO"] == "/gone":
        raise TimeoutError(errno.ETIMEDOUT, "Connection timed out")
    yield b", second part"


def answer(port: int, path: str) -> bytes:
    """The raw answer to one ``GET path`` on a fresh connection, up to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        return got


def test_a_socket_error_while_answering_closes_the_connection_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waitress")
    server = WebServer(vanishing, "127.0.0.1", free_port())
    server.start()
    try:
        for _ in range(RESETS):
            assert b"second part" not in answer(server.port, "/gone")  # closed: read to EOF
        assert b"second part\r\n0\r\n\r\n" in answer(server.port, "/")  # still serving, whole
    finally:
        server.stop()
    tracebacks = [r for r in caplog.records if r.name.startswith("waitress") and r.exc_info]
    assert len(tracebacks) == 0, [r.getMessage() for r in tracebacks[:3]]
