"""Overload and stopping at the web server's door, with a real daemon, waitress and worker:
every request held anywhere counts, pushes past the bound get a quick 429 (counted, nothing
kept), and SIGTERM answers every request it holds instead of dropping the connection."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]
AUTH = {"Authorization": "Bearer t0k3n"}


def ndjson(*ids: int) -> bytes:
    """Records ``m<id>``; more than 512 bytes for two or more, so a worker prepares them."""
    return b"\n".join(json.dumps({
        "timestamp": "2026-11-22T11:59:00Z", "service_id": "api", "level": "INFO",
        "message": f"m{n}", "context": {"pad": "x" * 300},
    }).encode() for n in ids)  # fmt: skip


class Pushed:
    """A real daemon with one ingest worker, pushed to over HTTP."""

    def __init__(self, tmp_path: Path, logs: str) -> None:
        self.port = free_port()
        config = write_config(tmp_path, "  - {id: api, type: host, interval: 1h}\n",
                              port=self.port, extra="logs:\n  tokens: {t: t0k3n}\n"
                              "  workers: 1\n" + logs)  # fmt: skip
        self.tmp_path = tmp_path
        self.daemon = DaemonProcess(config, tmp_path)
        self.daemon.wait_for("dashboard and API")
        self.url = f"http://127.0.0.1:{self.port}/api/v1/logs"
        assert self.post(ndjson(0, 1)).status_code == 200  # starts the worker
        parent = psutil.Process(self.daemon.proc.pid)

        def workers() -> list[psutil.Process]:
            return [p for p in parent.children()
                    if "server.logs.worker" in " ".join(p.cmdline())]  # fmt: skip

        assert wait_until(lambda: len(workers()) == 1, 60), self.daemon.output[-3000:]
        (self.worker,) = workers()
        # until it is ready requests are prepared in the daemon: push until it took one
        assert wait_until(lambda: self.post(ndjson(0, 1)).status_code == 200
                          and self.metric("lightbulb_ingest_worker_jobs") > 0, 60)  # fmt: skip
        assert wait_until(lambda: self.held() == 0, 30)

    def post(self, body: bytes, timeout: float = 60) -> requests.Response:
        return requests.post(self.url, data=body, headers=AUTH, timeout=timeout)

    def post_in_thread(self, body: bytes) -> list[Any]:
        answers: list[Any] = []

        def run() -> None:
            try:
                answers.append(self.post(body))
            except requests.RequestException as exc:  # a dropped connection: the finding
                answers.append(exc)

        threading.Thread(target=run, daemon=True).start()
        return answers

    def held(self) -> int:
        """Requests the daemon holds, less the scrape asking."""
        return int(self.metric("lightbulb_requests_held")) - 1

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        match = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.M)
        assert match, f"{name} not on /metrics"
        return float(match.group(1))

    def partial(self, body: bytes, sent: int) -> socket.socket:
        """A push whose body is still arriving: headers and ``sent`` bytes of ``body``."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        head = (
            f"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k3n\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:sent])
        return sock

    def stored(self) -> list[str]:
        """Messages in service_logs but the warm-ups' (m0, m1), after the daemon stopped
        (chDB is one process's)."""
        rows = query(self.tmp_path, "SELECT message FROM monitor.service_logs "
                                    "WHERE message NOT IN ('m0', 'm1')")  # fmt: skip
        return sorted(r["message"] for r in rows)


def _status(sock: socket.socket) -> int:
    """The status of the answer on ``sock``; a refusal must say when to retry."""
    head = sock.recv(4096).decode()
    status = int(head.split(" ", 2)[1])
    assert status == 200 or "\r\nRetry-After: 1\r\n" in head, head
    return status


def test_pushes_past_the_requests_held_anywhere_get_a_quick_counted_429_and_nothing_kept(
    tmp_path: Path,
) -> None:
    pushed = Pushed(tmp_path, "  max_in_flight: 4\n  max_in_flight_bytes: 256KiB\n")
    os.kill(pushed.worker.pid, signal.SIGSTOP)  # A is held at the worker, B and C behind it
    held = [pushed.post_in_thread(ndjson(10 + n, 20 + n)) for n in range(3)]
    assert wait_until(lambda: pushed.held() == 3, 30)
    # the 4th: in waitress, its body still arriving, fast (a stalled one would give its
    # slot to a newcomer: test_door_attacks' trickled bodies)
    late = ndjson(30, 31) + b"\n" + b" " * 200 * 1024
    arriving = pushed.partial(late, len(late) - 100)
    assert wait_until(lambda: pushed.held() == 4, 30)
    for n in range(3):
        started = time.monotonic()
        refused = pushed.post(ndjson(40 + n, 50 + n) * 50, timeout=10)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert "nothing of this request was kept" in refused.json()["error"]
        assert time.monotonic() - started < 5
    assert pushed.metric("lightbulb_push_refusals") == 3
    os.kill(pushed.worker.pid, signal.SIGCONT)
    arriving.sendall(late[-100:])
    assert _status(arriving) == 200
    assert wait_until(lambda: all(held), 60)
    assert [a.status_code for a in (h[0] for h in held)] == [200, 200, 200]
    # the bytes the held requests carry count too: 300 KiB arriving, past 256 KiB held
    # (once the answered ones are let go: a thread pops its request just after writing)
    assert wait_until(lambda: pushed.held() == 0, 30)
    big = pushed.partial(b"x" * 300 * 1024, 200 * 1024)  # arriving fast: not doomed
    assert wait_until(lambda: pushed.held() == 1, 30)
    refused = pushed.post(ndjson(60, 61), timeout=10)
    assert refused.status_code == 429 and "max_in_flight_bytes" in refused.text
    big.close()
    assert wait_until(lambda: pushed.held() == 0, 30)
    assert pushed.post(ndjson(70, 71)).status_code == 200
    assert pushed.metric("lightbulb_push_refusals") == 4
    # a worker killed while idle: the next push is taken, not a 503, and /metrics says so
    pushed.worker.kill()
    assert wait_until(lambda: pushed.worker.status() == psutil.STATUS_ZOMBIE, 30)
    after_kill = pushed.post(ndjson(80, 81))
    assert after_kill.status_code == 200, (after_kill.text, pushed.daemon.output[-2000:])
    assert pushed.metric("lightbulb_ingest_worker_exits") == 1
    assert pushed.metric("lightbulb_ingest_worker_start_failures") == 0
    assert pushed.metric("lightbulb_push_refusals") == 4
    code, _took = pushed.daemon.stop()
    assert code == 0
    accepted = [10, 11, 12, 20, 21, 22, 30, 31, 70, 71, 80, 81]
    assert pushed.stored() == sorted(f"m{n}" for n in accepted)


def test_a_push_whose_client_left_before_it_was_stored_is_not_stored_and_is_counted(
    tmp_path: Path,
) -> None:
    # only the 200 acknowledges: a client that timed out waiting sends the push again, so
    # storing the first too would store it twice
    pushed = Pushed(tmp_path, "")
    os.kill(pushed.worker.pid, signal.SIGSTOP)  # the push waits at the worker
    left = ndjson(10, 11)
    client = pushed.partial(left, len(left))  # sent whole
    assert wait_until(lambda: pushed.held() == 1, 30)
    client.close()  # its timeout: it gives up and closes the connection
    os.kill(pushed.worker.pid, signal.SIGCONT)
    assert wait_until(lambda: pushed.metric("lightbulb_push_abandoned") == 1, 30)
    assert wait_until(lambda: pushed.held() == 0, 30)
    assert pushed.post(ndjson(20, 21)).status_code == 200  # a client that stays is stored
    assert pushed.metric("lightbulb_push_abandoned") == 1
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert pushed.stored() == ["m20", "m21"]


def test_sigterm_answers_every_request_it_holds_stored_200_else_503_and_exits_in_time(
    tmp_path: Path,
) -> None:
    # the attacker's finding: in-flight requests lost their connection at SIGTERM though
    # their records were stored (a retrying client duplicates them)
    pushed = Pushed(tmp_path, "")
    os.kill(pushed.worker.pid, signal.SIGSTOP)  # A at the worker, B and C waiting for it
    held = [pushed.post_in_thread(ndjson(10 + n, 20 + n)) for n in range(3)]
    late = ndjson(30, 31)
    arriving = pushed.partial(late, 100)  # received, not yet served
    assert wait_until(lambda: pushed.held() == 4, 30)
    started = time.monotonic()
    pushed.daemon.proc.send_signal(signal.SIGTERM)
    pushed.daemon.wait_for("stopping: waiting for")
    arriving.sendall(late[100:])
    assert _status(arriving) == 503  # refused whole: nothing of it is stored
    try:
        refused_at_once = socket.create_connection(("127.0.0.1", pushed.port), timeout=5)
    except ConnectionRefusedError:
        refused_at_once = None
    assert refused_at_once is None, "a new connection was taken while stopping"
    os.kill(pushed.worker.pid, signal.SIGCONT)
    code = pushed.daemon.proc.wait(15)
    took = time.monotonic() - started
    assert code == 0 and took < 10, (code, took)
    assert wait_until(lambda: all(held), 10), held
    answers = [h[0] for h in held]
    # each gets its answer: 200 and stored, or (past the 3 s for requests being served
    # on a slow machine) 503 with Retry-After and nothing stored; never a dropped connection
    assert all(isinstance(a, requests.Response) for a in answers), answers
    assert all(a.status_code == 200 or (a.status_code == 503 and a.headers["Retry-After"] == "1")
               for a in answers), [(a.status_code, a.text) for a in answers]  # fmt: skip
    taken = [n for n, a in enumerate(answers) if a.status_code == 200]
    assert taken, "no request held at the worker was answered 200 after SIGCONT"
    assert pushed.stored() == sorted(f"m{m}" for n in taken for m in (10 + n, 20 + n))
