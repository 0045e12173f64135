"""The door against hostile clients, with a real daemon and waitress (issue 12's second
attack): a request is never charged more than it can legally carry, what can be judged
from the headers is answered at once without reading the body, slow bodies lose their
slot at ``logs.body_timeout``, and idle sockets cannot lock the daemon out."""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from server.web.serve import CONNECTION_LIMIT
from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import write_config
from tests.test_ingest_overload import AUTH, Pushed, ndjson, no_leaked_daemons

__all__ = ["no_leaked_daemons"]
GIB = 1_000_000_000


def _send(pushed: Pushed, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", pushed.port), timeout=10)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock


def _answer(sock: socket.socket) -> tuple[int, str]:
    """Status and whole answer, read until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    text = data.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text


def test_a_push_without_a_token_or_past_max_body_is_answered_from_its_headers_never_held(
    tmp_path: Path,
) -> None:
    pushed = Pushed(tmp_path, "  max_in_flight: 2\n")
    # the attacker's E: a claimed 1 GB body, 2 bytes sent, kept open
    no_token = _send(pushed, f"POST /api/v1/logs HTTP/1.1\nHost: x\nContent-Length: {GIB}\n",
                     b"{}")  # fmt: skip
    status, text = _answer(no_token)
    assert status == 401 and "nothing of this request was read" in text, text
    assert "Retry-After" not in text  # the same request fails the same way again
    # RFC 9110 §11.6.1: a 401 names its scheme; RFC 6750 §3.1: no error code without a token
    assert '\r\nwww-authenticate: bearer realm="lightbulb-logs"\r\n' in text.lower(), text
    wrong = _send(pushed, f"POST /api/v1/logs HTTP/1.1\nHost: x\nAuthorization: Bearer nope\n"
                          f"Content-Length: {GIB}\n", b"{}")  # fmt: skip
    status, text = _answer(wrong)
    assert status == 401, text
    assert 'www-authenticate: bearer realm="lightbulb-logs", error="invalid_token"' in text.lower()
    too_big = _send(pushed, f"POST /v1/logs HTTP/1.1\nHost: x\n{_auth()}Content-Length: {GIB}\n"
                            "Content-Type: application/x-protobuf\n", b"{}")  # fmt: skip
    status, text = _answer(too_big)
    assert status == 413 and "logs.max_body" in text, text
    assert "Retry-After" not in text
    # a body to a path that takes none is not charged: a push still gets in
    healthz = _send(pushed, f"POST /healthz HTTP/1.1\nHost: x\nContent-Length: {GIB}\n", b"{}")
    claimed = _send(pushed, f"POST /api/v1/logs HTTP/1.1\nHost: x\n{_auth()}"
                            f"Content-Length: {9 * 2**20}\n", b"{}")  # fmt: skip
    assert wait_until(lambda: pushed.metric("lightbulb_push_rejections") == 4, 30)
    assert pushed.held() == 0
    # a chunked push is cut as it passes max_body (5 MiB): nothing of it kept, the rest
    # read and thrown away, so the client, sending to its end, reads its 413 (once the
    # server closed under the bytes still arriving: a reset, the 413 never read)
    chunked = _send(pushed, f"POST /api/v1/logs HTTP/1.1\nHost: x\n{_auth()}"
                            "Transfer-Encoding: chunked\n")  # fmt: skip
    chunk = b"x" * 2**20
    for _ in range(8):
        chunked.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    chunked.sendall(b"0\r\n\r\n")
    status, text = _answer(chunked)
    assert status == 413 and "logs.max_body" in text, text
    assert wait_until(lambda: pushed.metric("lightbulb_push_rejections") == 5, 30)
    assert pushed.held() == 0
    assert pushed.post(ndjson(10, 11)).status_code == 200
    assert pushed.metric("lightbulb_push_refusals") == 0
    for sock in (healthz, claimed):
        sock.close()
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == ["m10", "m11"]


def test_with_no_token_set_a_push_is_answered_403_from_its_headers_its_body_never_read(
    tmp_path: Path,
) -> None:
    port = free_port()
    daemon = DaemonProcess(write_config(tmp_path, "  - {id: api, type: host, interval: 1h}\n",
                                        port=port), tmp_path)  # fmt: skip
    daemon.wait_for("dashboard and API")
    # a claimed 1 GB body, 2 bytes sent and kept open: answered at once, not at
    # logs.body_timeout (408) nor after reading it
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {GIB}\r\n\r\n{{}}"
                 .encode())  # fmt: skip
    status, text = _answer(sock)
    assert status == 403 and "set logs.tokens" in text, text
    assert "nothing of this request was read" in text and "Retry-After" not in text
    code, _took = daemon.stop()
    assert code == 0


def test_chunked_and_gzip_bodies_are_charged_what_they_carry_against_max_in_flight_bytes(
    tmp_path: Path,
) -> None:
    pushed = Pushed(tmp_path, "  max_in_flight_bytes: 256KiB\n")
    # chunked: charged the bytes received so far (300 KiB), past the 256 KiB bound
    chunked = _send(pushed, f"POST /api/v1/logs HTTP/1.1\nHost: x\n{_auth()}"
                            "Transfer-Encoding: chunked\n", b"%x\r\n" % (300 * 1024)
                    + b"x" * 300 * 1024)  # fmt: skip
    assert wait_until(lambda: pushed.held() == 1, 30)
    refused = pushed.post(ndjson(10, 11), timeout=10)
    assert refused.status_code == 429 and "max_in_flight_bytes" in refused.text, refused.text
    chunked.close()
    assert wait_until(lambda: pushed.held() == 0, 30)
    # gzip: charged what it may inflate to (8x its 40 KiB), not the 40 KiB on the wire
    gzipped = _send(
        pushed,
        f"POST /api/v1/logs HTTP/1.1\nHost: x\n{_auth()}"
        f"Content-Encoding: gzip\nContent-Length: {40 * 1024}\n",
        b"x" * 30 * 1024,  # arriving fast: not doomed (a stalled one gives way to a push)
    )
    assert wait_until(lambda: pushed.held() == 1, 30)
    refused = pushed.post(ndjson(20, 21), timeout=10)
    assert refused.status_code == 429 and "max_in_flight_bytes" in refused.text, refused.text
    gzipped.close()
    assert wait_until(lambda: pushed.held() == 0, 30)
    assert pushed.post(ndjson(30, 31)).status_code == 200
    assert pushed.metric("lightbulb_push_refusals") == 2
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == ["m30", "m31"]


def test_bodies_slower_than_body_timeout_are_answered_408_and_their_slots_freed(
    tmp_path: Path,
) -> None:
    pushed = Pushed(tmp_path, "  max_in_flight: 2\n  body_timeout: 600\n")
    slow = [pushed.partial(ndjson(20 + n, 30 + n), 10) for n in range(2)]
    assert wait_until(lambda: pushed.held() == 2, 30)
    # a reload shortens the deadline, for the requests already arriving too, and says so
    config = tmp_path / "lightbulb.yaml"
    config.write_text(config.read_text().replace("body_timeout: 600", "body_timeout: 2"))
    pushed.daemon.signal(signal.SIGHUP)
    pushed.daemon.wait_for("logs settings changed: body_timeout")
    for sock in slow:  # answered at the deadline whether or not they trickle on
        status, text = _answer(sock)
        assert status == 408 and "logs.body_timeout" in text, text
    assert pushed.held() == 0
    assert pushed.post(ndjson(50, 51)).status_code == 200
    assert pushed.metric("lightbulb_push_rejections") == 2
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == ["m50", "m51"]


@pytest.mark.parametrize("path", ["/api/v1/logs", "/api/v1/silences"])
def test_a_request_with_both_transfer_encoding_and_content_length_is_refused_unread(
    tmp_path: Path, path: str
) -> None:
    # RFC 9112 6.3: the two framings disagree, so a proxy in front may see another request
    pushed = Pushed(tmp_path, "")
    body = ndjson(70, 71)
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    sock = _send(pushed, f"POST {path} HTTP/1.1\nHost: x\n{_auth()}Transfer-Encoding: chunked\n"
                         f"Content-Length: 4\n", chunked)  # fmt: skip
    status, text = _answer(sock)  # read to the close: the connection is not reused
    assert status == 400 and "Transfer-Encoding and Content-Length" in text, text
    assert "Retry-After" not in text
    plain = requests.post(pushed.url, data=body, headers=AUTH, timeout=15)
    assert plain.status_code == 200  # the same records, framed once, are taken
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == ["m70", "m71"]  # once: the refused request stored nothing


def test_the_unread_body_of_a_refused_push_is_never_served_as_requests(tmp_path: Path) -> None:
    pushed = Pushed(tmp_path, "")
    # a 401 from the headers: its body, sent at once, holds a whole push with a valid token
    smuggled = ndjson(80)
    inner = (f"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}"
             f"\r\nContent-Length: {len(smuggled)}\r\n\r\n").encode() + smuggled  # fmt: skip
    inner = b"NOT A REQUEST LINE\r\n\r\n" + inner  # unparseable, then a whole push
    sock = _send(pushed, f"POST /api/v1/logs HTTP/1.1\nHost: x\nContent-Length: {len(inner)}\n",
                 inner)  # fmt: skip
    status, text = _answer(sock)
    assert status == 401 and text.count("HTTP/1.1") == 1, text  # one answer, then closed
    garbage = _send(pushed, "GARBAGE\n")  # a request line waitress cannot parse: its own 400
    assert _answer(garbage)[0] == 400
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == []  # m80, inside the refused body, was not stored
    assert "uncaptured python exception" not in pushed.daemon.output


@pytest.mark.parametrize("first", [b"", b"P"], ids=["silent", "headers-trickling"])
def test_idle_connections_at_the_connection_limit_make_room_for_new_ones(
    tmp_path: Path, first: bytes
) -> None:
    pushed = Pushed(tmp_path, "  body_timeout: 600\n")  # only the room-making frees them
    idle = []
    for _ in range(CONNECTION_LIMIT + 20):
        sock = socket.create_connection(("127.0.0.1", pushed.port), timeout=10)
        sock.sendall(first)
        idle.append(sock)
    started = time.monotonic()
    answer = requests.post(pushed.url, data=ndjson(60, 61), headers=AUTH, timeout=15)
    assert answer.status_code == 200
    assert requests.get(f"http://127.0.0.1:{pushed.port}/healthz", timeout=15).ok
    assert time.monotonic() - started < 15
    for sock in idle:
        sock.close()
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == ["m60", "m61"]


class _Hoarder(threading.Thread):
    """``count`` idle connections from ``source``, each reopened as soon as the server
    closes it (the attacker's idle2.py): until :meth:`stop`."""

    def __init__(self, port: int, count: int, source: str) -> None:
        super().__init__(daemon=True)
        self.port, self.source, self.count = port, source, count
        self.selector = selectors.DefaultSelector()
        self.halt = threading.Event()
        self.opened = 0

    def _open(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10,
                                        source_address=(self.source, 0))  # fmt: skip
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ)
        self.opened += 1

    def run(self) -> None:
        for _ in range(self.count):
            self._open()
        while not self.halt.is_set():
            for key, _events in self.selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):
                    if sock.recv(4096):
                        continue
                self.selector.unregister(sock)
                sock.close()
                with contextlib.suppress(OSError):  # refused or reset: try again next turn
                    self._open()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"], ids=["same-address", "another"])
def test_connections_reopened_as_fast_as_closed_cannot_keep_clients_waiting(
    tmp_path: Path, source: str
) -> None:
    # the attacker's fault 4: 600 idle sockets reopened as closed made 4 of 5 pushes and
    # /healthz time out (3 s), their reconnects ahead of real clients in the listen backlog
    pushed = Pushed(tmp_path, "")
    hoarder = _Hoarder(pushed.port, CONNECTION_LIMIT + 100, source)
    hoarder.start()
    assert wait_until(lambda: hoarder.opened >= CONNECTION_LIMIT + 100, 60)
    for n in range(5):
        answer = requests.post(pushed.url, data=ndjson(90 + n), headers=AUTH, timeout=5)
        assert answer.status_code == 200
        assert requests.get(f"http://127.0.0.1:{pushed.port}/healthz", timeout=5).ok
    assert pushed.metric("lightbulb_connections_evicted") > 0
    hoarder.stop()
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == [f"m{90 + n}" for n in range(5)]
    assert "connection limit" not in pushed.daemon.output  # no log line per flap


class _Trickler(threading.Thread):
    """A token holder's connection trickling a ``Content-Length: 100000`` body ``chunk``
    bytes a ``pace`` s, reopened as soon as it is answered (the attacker's slowre.py)."""

    def __init__(self, port: int, pace: float, chunk: int = 1) -> None:
        super().__init__(daemon=True)
        self.port, self.pace, self.chunk = port, pace, chunk
        self.halt = threading.Event()
        self.answers: list[int] = []

    def run(self) -> None:
        while not self.halt.is_set():
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock,
            ):
                sock.sendall(f"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: "
                             f"{AUTH['Authorization']}\r\nContent-Length: 100000\r\n\r\n"
                             .encode())  # fmt: skip
                sock.settimeout(self.pace)
                while not self.halt.is_set():
                    try:
                        head = sock.recv(100)
                    except TimeoutError:
                        sock.sendall(b"x" * self.chunk)
                        continue
                    self.answers.append(int(head.split(b" ", 2)[1]) if head else 0)
                    break


def push_as_otlp_exporters_do(pushed: Pushed, body: bytes, tries: int = 3) -> list[int]:
    """The statuses of up to ``tries`` attempts, each after the last one's Retry-After."""
    statuses: list[int] = []
    for _ in range(tries):
        answer = pushed.post(body, timeout=10)
        statuses.append(answer.status_code)
        if answer.status_code != 429:
            break
        time.sleep(float(answer.headers["Retry-After"]))  # the client's own wait, as told
    return statuses


def test_bodies_trickled_by_a_token_holder_give_their_slots_to_pushes_that_arrive(
    tmp_path: Path,
) -> None:
    # the attacker's fault 6: 17 connections trickling a byte a second, each reopened as
    # answered, kept 13 of 14 real pushes out (429) for as long as they ran
    pushed = Pushed(tmp_path, "  max_in_flight: 4\n")
    tricklers = [_Trickler(pushed.port, 0.5) for _ in range(6)]
    for trickler in tricklers:
        trickler.start()
    assert wait_until(lambda: pushed.held() == 4, 30)  # every slot taken
    answers = [push_as_otlp_exporters_do(pushed, ndjson(100 + n)) for n in range(10)]
    for trickler in tricklers:
        trickler.halt.set()
    for trickler in tricklers:
        trickler.join(30)
    assert [a[-1] for a in answers] == [200] * 10, answers
    assert all(len(a) <= 2 for a in answers), answers  # in at the first retry at worst
    # trickled bodies gave way (408; their client may see a reset, still sending); the
    # ones reopened meanwhile are refused and hold nothing while they trickle on
    assert pushed.metric("lightbulb_push_rejections") >= 1
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == [f"m{100 + n}" for n in range(10)]


def _auth() -> str:
    return f"Authorization: {AUTH['Authorization']}\n"
