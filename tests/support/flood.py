"""A connection flood of any shape, from one thread (reusable; ``python -m
tests.support.flood PORT SHAPE COUNT`` runs one by hand and prints what it did).

Every connection of the flood is reopened as soon as the server closes it (or answers
it), so the server stays at its connection limit however many it closes. Shapes:

- ``idle``: connects and sends nothing;
- ``headers``: trickles a push's headers, a byte each ``pace`` s;
- ``body``: a token holder's push, headers at once (``Content-Length: 100000``), its body
  trickled a byte each ``pace`` s (the attacker's slowre.py);
- ``reconnect``: sends the headers and closes at once, again and again.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

SHAPES = ("idle", "headers", "body", "reconnect")


def push_head(token: str, length: int = 100_000) -> bytes:
    """A push's request line and headers, ``Content-Length: length``, with ``token``."""
    return (f"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n"
            ).encode()  # fmt: skip


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    due: float  # monotonic s of its next byte
    sent: int = 0  # bytes of the headers sent (``headers`` shape)
    connected: bool = False


@dataclass
class FloodCounts:
    """What the flood did: connections opened, closed by the server (or answered),
    connects refused or reset outright."""

    opened: int = 0
    closed: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # first answers' statuses


class Flood(threading.Thread):
    """``count`` connections of ``shape`` to ``127.0.0.1:port`` from ``sources`` (round
    robin over the addresses), each sending a byte every ``pace`` s; until :meth:`stop`."""

    def __init__(self, port: int, shape: str, count: int, *, sources: tuple[str, ...] = (
                 "127.0.0.1",), pace: float = 1.0, token: str = "t0k3n") -> None:  # noqa: S107 # fmt: skip
        super().__init__(daemon=True, name=f"flood-{shape}")
        assert shape in SHAPES, shape
        self.port, self.shape, self.count, self.pace = port, shape, count, pace
        self.sources = sources
        self.head = push_head(token)
        self.counts = FloodCounts()
        self.selector = selectors.DefaultSelector()
        self.halt = threading.Event()
        self._conns: dict[int, _Conn] = {}
        self._next_source = 0

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        source = self.sources[self._next_source % len(self.sources)]
        self._next_source += 1
        try:
            sock.bind((source, 0))
            code = sock.connect_ex(("127.0.0.1", self.port))
        except OSError:
            code = errno.ECONNREFUSED
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.counts.failed += 1
            return
        conn = _Conn(sock, time.monotonic() + self.pace)
        self._conns[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        self.counts.opened += 1

    def _close(self, conn: _Conn, answer: bytes = b"") -> None:
        self._conns.pop(conn.sock.fileno(), None)
        self.selector.unregister(conn.sock)
        conn.sock.close()
        self.counts.closed += 1
        if answer.startswith(b"HTTP/1.1 "):
            status = int(answer.split(b" ", 2)[1])
            self.counts.statuses[status] = self.counts.statuses.get(status, 0) + 1

    def _connected(self, conn: _Conn) -> None:
        conn.connected = True
        self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if self.shape in ("body", "reconnect"):
            conn.sock.send(self.head)
        if self.shape == "reconnect":
            self._close(conn)
            self._open()

    def _tick(self, conn: _Conn) -> None:
        """Its next byte: of the headers or of the body."""
        conn.due += self.pace
        if self.shape == "headers" and conn.sent < len(self.head):
            conn.sock.send(self.head[conn.sent : conn.sent + 1])
            conn.sent += 1
        elif self.shape == "body":
            conn.sock.send(b"x")

    def run(self) -> None:
        for _ in range(self.count):
            self._open()
        next_tick = time.monotonic()
        while not self.halt.is_set():
            for key, events in self.selector.select(timeout=0.05):
                conn: _Conn = key.data
                try:
                    if not conn.connected and events & selectors.EVENT_WRITE:
                        if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            raise ConnectionRefusedError
                        self._connected(conn)
                        continue
                    answer = conn.sock.recv(4096)
                except OSError:
                    answer = b""
                if conn.sock.fileno() in self._conns:
                    self._close(conn, answer)
                    self._open()
            now = time.monotonic()
            if self.shape in ("headers", "body") and now >= next_tick:
                next_tick = now + min(self.pace, 0.05)
                for conn in list(self._conns.values()):
                    if conn.connected and now >= conn.due:
                        try:
                            self._tick(conn)
                        except OSError:
                            self._close(conn)
                            self._open()
        for conn in list(self._conns.values()):
            self.selector.unregister(conn.sock)
            conn.sock.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def main() -> None:
    port, shape, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    flood = Flood(port, shape, count)
    flood.start()
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(seconds)
    flood.stop()
    print(flood.counts)


if __name__ == "__main__":
    main()
