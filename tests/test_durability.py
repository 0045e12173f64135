"""kill -9 a real daemon many times mid-stream and count rows against what clients were told."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import requests

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]
KILLS = 5
SERVICES = "".join(f"  - {{id: s{i}, type: host, interval: 1s}}\n" for i in range(10))


class Pusher(threading.Thread):
    """Pushes NDJSON batches of uniquely numbered records; remembers what got a 200."""

    def __init__(self, url: str, start_at: int) -> None:
        super().__init__(daemon=True)
        self.url, self.next = url, start_at
        self.acked: list[int] = []
        self.sent: list[int] = []
        self.answers: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            ids = list(range(self.next, self.next + 50))
            self.next += 50
            body = "\n".join(json.dumps({"service_id": "s0", "level": "INFO",
                                         "message": f"p{n}", "timestamp": time.time()})
                             for n in ids)  # fmt: skip
            self.sent.extend(ids)
            try:
                answer = session.post(self.url, data=body.encode(), timeout=5,
                                      headers={"Authorization": "Bearer t0k3n"})  # fmt: skip
            except requests.RequestException as exc:
                self.answers.append(f"{type(exc).__name__}: {exc}")
                return  # the daemon died under us: this batch was never acknowledged
            self.answers.append(f"{answer.status_code} {answer.text[:200]}")
            if answer.status_code == 200 and answer.json()["accepted"] == 50:
                self.acked.extend(ids)


def test_kill_9_mid_stream_loses_no_acknowledged_record_and_duplicates_none(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(tmp_path, SERVICES, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    url = f"http://127.0.0.1:{port}/api/v1/logs"
    acked: list[int] = []
    sent: list[int] = []
    rng = random.Random(12)
    for run in range(KILLS + 1):
        daemon = DaemonProcess(config, tmp_path)
        daemon.wait_for("dashboard and API")
        pusher = Pusher(url, run * 1_000_000)
        pusher.start()
        assert wait_until(lambda p=pusher: p.acked or not p.is_alive(), 30)  # type: ignore[misc]
        if run < KILLS:
            time.sleep(rng.uniform(0.2, 1.2))  # a stream in full flow, cut at a random point
            daemon.kill()
        else:
            time.sleep(1.0)
            pusher.stop.set()
            pusher.join(10)
            code, took = daemon.stop()
            assert code == 0 and took < 10, daemon.output
        pusher.stop.set()
        pusher.join(10)
        assert pusher.acked, f"run {run}: none acknowledged: {pusher.answers[:3]} {daemon.output}"
        acked += pusher.acked
        sent += pusher.sent
    rows = query(tmp_path, "SELECT message, count() AS n FROM monitor.service_logs "
                           "WHERE source = 'push' GROUP BY message")  # fmt: skip
    stored = {int(r["message"][1:]): int(r["n"]) for r in rows}
    lost = sorted(set(acked) - set(stored))
    duplicated = sorted(n for n, count in stored.items() if count > 1)
    assert (len(lost), len(duplicated)) == (0, 0), (lost[:10], duplicated[:10])
    assert set(stored) <= set(sent)  # nothing stored that was never sent
    # check results: every kill cost at most the rows buffered since the last commit,
    # and nothing was stored twice
    checks = query(tmp_path, "SELECT service_id, count() AS n, uniqExact(timestamp) AS u "
                             "FROM monitor.service_status GROUP BY service_id")  # fmt: skip
    assert checks and all(r["n"] == r["u"] for r in checks)
