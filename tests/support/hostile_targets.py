"""Targets that misbehave the way real ones do, for the check engine's tests.

- :class:`HostileHttp`: ``/drip`` (headers, then one body byte every 0.5 s),
  ``/huge`` (a 1 GiB body), ``/endless`` (chunked, never ends),
  ``/page/<charset>`` (a page in that charset, declared in the header, in a
  ``<meta>``, or not at all), ``/redirect-drip``, ``/many-headers`` (100,000
  of them), ``/huge-header`` (one of 10 MB), ``/headers?n=`` (exactly n);
- :class:`Blackhole`: accepts connections and never says a word (a hung TLS
  handshake too, when spoken to over https);
- :class:`Backlogged`: listens with a full backlog, so a connect hangs half-open;
- :class:`Endless`: a TCP service that streams bytes forever;
- :class:`HungFifo`: a file whose reads block forever (a FIFO with no writer).

Each runs in threads of the test process, on a loopback port, and stops cleanly.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from urllib.parse import parse_qs, urlsplit

GIB = 2**30
PAGES = {
    # path -> (content-type header, body bytes); the text "café crème ÿ" in each
    "latin1-header": ("text/html; charset=ISO-8859-1", "<p>café crème ÿ</p>".encode("latin-1")),
    "cp1251-meta": (
        "text/html",
        '<html><head><meta charset="windows-1251"></head><p>привет café</p>'.encode(
            "cp1251", "replace"
        ),
    ),
    "utf8-undeclared": ("text/plain", "café crème ÿ".encode()),
    "broken-undeclared": ("text/plain", b"status: ok \xff\xfe\xc3 caf\xe9"),
    "latin1-json": (
        "application/json; charset=latin-1",
        '{"state": "café"}'.encode("latin-1"),
    ),
    # A byte order mark beats every declaration (WHATWG's sniffing order).
    "utf16le-bom-undeclared": ("text/plain", "\ufeffcafé crème ÿ".encode("utf-16-le")),
    "utf16be-bom-says-utf8": (
        "text/plain; charset=utf-8",
        "\ufeffcafé crème ÿ".encode("utf-16-be"),
    ),
    "utf8-bom-says-latin1": ("text/html; charset=iso-8859-1", "\ufeffcafé crème ÿ".encode()),
    "utf16-bom-json": ("application/json; charset=utf-16", '{"state": "café"}'.encode("utf-16")),
    # Labels as browsers read them: "iso-8859-1" is windows-1252 (0x80 is the euro sign).
    "cp1252-says-latin1": ("text/plain; charset=iso-8859-1", "café crème ÿ €".encode("cp1252")),
    "xml-declaration": (
        "application/xml",
        '<?xml version="1.0" encoding="iso-8859-1"?><a>café crème ÿ</a>'.encode("latin-1"),
    ),
}


# Built once: building them per request would hold the GIL the checks under test need.
MANY_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"X-%d: v\r\n" % i for i in range(100_000))
    + b"Content-Length: 2\r\n\r\nok"
)
HUGE_HEADER = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 10_000_000 + b"\r\nContent-Length: 2\r\n\r\nok"


def _n_headers(query: dict[str, list[str]]) -> bytes:
    """Exactly ``n`` header lines, Content-Length included."""
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(int(query["n"][0]) - 1))
    return b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok"


HEADER_FLOODS = {
    "/many-headers": lambda _query: MANY_HEADERS,
    "/huge-header": lambda _query: HUGE_HEADER,
    "/headers": _n_headers,
}


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1].decode()
            self.server.arrivals.append((path, time.monotonic()))
            self.route(sock, path)
        except OSError:
            return

    def route(self, sock: socket.socket, path: str) -> None:
        url = urlsplit(path)
        query = parse_qs(url.query)
        stop = self.server.stopping
        if url.path == "/drip":
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
            )
            while not stop.wait(float(query.get("every", ["0.5"])[0])):
                sock.sendall(b"x")
        elif url.path == "/redirect-drip":
            sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: /drip\r\nContent-Length: 0\r\n\r\n")
        elif url.path == "/huge":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
            sock.sendall(f"Content-Length: {GIB}\r\n\r\n".encode())
            block = b"y" * 65536
            for _ in range(GIB // len(block)):
                if stop.is_set():
                    return
                sock.sendall(block)
        elif url.path == "/endless":
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            block = b"10000\r\n" + b"z" * 65536 + b"\r\n"
            while not stop.is_set():
                sock.sendall(block)
        elif url.path in HEADER_FLOODS:
            sock.sendall(HEADER_FLOODS[url.path](query))
        elif url.path.startswith("/page/"):
            kind, body = PAGES[url.path.removeprefix("/page/")]
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body)
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()
        # (path, time.monotonic() when its request was read): the system-wide clock, so
        # comparable with another process's stamps (when a check began talking to us)
        self.arrivals: list[tuple[str, float]] = []


class HostileHttp:
    def __init__(self) -> None:
        self.server = _Server()
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def arrived(self, path: str) -> list[float]:
        """When each request for ``path`` was read (``time.monotonic()``), oldest first."""
        return [at for p, at in list(self.server.arrivals) if p == path]

    def close(self) -> None:
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """Accepts and holds every connection without reading or writing a byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


class Backlogged:
    """A listening socket that never accepts, its backlog filled: new connects hang."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


class Endless:
    """A TCP service that streams bytes forever once connected."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn: socket.socket) -> None:
        block = b"noise " * 10000
        with conn:
            try:
                while not self._closed.is_set():
                    conn.sendall(block)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self.sock.close()


class HungFifo:
    """A FIFO nobody writes to: opening it for reading blocks forever, the way a read of
    a hung NFS mount does. :meth:`close` releases every reader (EOF) and removes it."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.mkfifo(path)

    def close(self) -> None:
        held = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)  # never blocks; frees the opens
        os.unlink(self.path)
        os.close(held)  # the last writer gone: every reader sees end of file


def not_regular_files(directory: str) -> list[tuple[str, str]]:
    """(path, kind) of files a config may name that are not regular files: reading one
    blocks (a FIFO), never ends (``/dev/zero``) or makes no sense (a directory, a socket).
    The socket is left bound; it goes with the directory."""
    fifo = os.path.join(directory, "fifo.pid")
    os.mkfifo(fifo)
    sock_path = os.path.join(directory, "sock.pid")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)
    sock.close()
    return [
        (fifo, "a FIFO"),
        ("/dev/zero", "a character device"),
        ("/dev/urandom", "a character device"),
        (directory, "a directory"),
        (sock_path, "a socket"),
    ]


def append_long_line(path: str, size: int, text: bytes = b"x") -> None:
    """Append one line of ``size`` bytes and its newline, written in 1 MiB blocks (the
    writer never holds it in memory): a log line no reader may load whole."""
    block = text * (2**20 // len(text))
    with open(path, "ab") as handle:
        left = size
        while left > 0:
            handle.write(block[: min(left, len(block))])
            left -= len(block)
        handle.write(b"\n")
