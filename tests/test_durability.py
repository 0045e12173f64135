"""kill -9 a real daemon many times mid-stream and count rows against what clients were told."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]
PAD = "x" * 1000  # 50 KiB a request: a 1 MiB spool rotates its segments many times a run
SERVICES = "".join(f"  - {{id: s{i}, type: host, interval: 1s}}\n" for i in range(10))


class Pusher(threading.Thread):
    """Pushes NDJSON batches of uniquely numbered records; remembers what got a 200."""

    def __init__(self, url: str, start_at: int) -> None:
        super().__init__(daemon=True)
        self.url, self.next = url, start_at
        self.acked: list[int] = []
        self.refused: list[int] = []  # answered 429/503: must not be stored
        self.sent: list[int] = []
        self.answers: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            ids = list(range(self.next, self.next + 50))
            self.next += 50
            body = "\n".join(json.dumps({"service_id": "s0", "level": "INFO",
                                         "message": f"p{n} {PAD}", "timestamp": time.time()})
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
            elif answer.status_code in (429, 503):
                self.refused.extend(ids)
                self.stop.wait(0.1)  # pacing the client, as Retry-After asks (shortened)


@pytest.mark.parametrize(
    ("kills", "spool_max_bytes"),
    [(5, ""), (10, "1MiB")],  # 1 MiB: 128 KiB segments, rotated and deleted under the stream
)
def test_kill_9_mid_stream_loses_no_acknowledged_record_and_duplicates_none(
    tmp_path: Path, kills: int, spool_max_bytes: str
) -> None:
    port = free_port()
    config = write_config(tmp_path, SERVICES, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    if spool_max_bytes:
        text = config.read_text().replace("scheduler:\n", f"scheduler:\n  spool_max_bytes: "
                                                          f"{spool_max_bytes}\n")  # fmt: skip
        config.write_text(text)
    url = f"http://127.0.0.1:{port}/api/v1/logs"
    acked: list[int] = []
    refused: list[int] = []
    sent: list[int] = []
    rng = random.Random(12)
    for run in range(kills + 1):
        daemon = DaemonProcess(config, tmp_path)
        daemon.wait_for("dashboard and API")
        pusher = Pusher(url, run * 1_000_000)
        pusher.start()
        # a stream in full flow, cut after a random number of acknowledged requests
        target = 50 * rng.randint(10, 60)  # up to 3 MiB of records a run
        assert wait_until(lambda p=pusher, t=target: len(p.acked) >= t or not p.is_alive(), 60)  # type: ignore[misc]
        if run < kills:
            daemon.kill()
        else:
            pusher.stop.set()
            pusher.join(10)
            # the runs before may all have been cut before a check ended (a loaded machine):
            # this one stops only after checks ran, so their rows must be stored
            assert wait_until(lambda: _checks_run(port) >= 10, 60), daemon.output
            code, took = daemon.stop()
            assert code == 0 and took < 10, daemon.output
        pusher.stop.set()
        pusher.join(10)
        assert pusher.acked, f"run {run}: none acknowledged: {pusher.answers[:3]} {daemon.output}"
        acked += pusher.acked
        refused += pusher.refused
        sent += pusher.sent
    rows = query(tmp_path, "SELECT splitByChar(' ', message)[1] AS id, count() AS n FROM "
                           "monitor.service_logs WHERE source = 'push' GROUP BY id")  # fmt: skip
    stored = {int(r["id"][1:]): int(r["n"]) for r in rows}
    lost = sorted(set(acked) - set(stored))
    duplicated = sorted(n for n, count in stored.items() if count > 1)
    refused_but_stored = sorted(set(refused) & set(stored))
    assert (len(lost), len(duplicated), len(refused_but_stored)) == (0, 0, 0), (
        lost[:10], duplicated[:10], refused_but_stored[:10])  # fmt: skip
    assert set(stored) <= set(sent)  # nothing stored that was never sent
    # check results: every kill cost at most the rows buffered since the last commit,
    # and nothing was stored twice
    checks = query(tmp_path, "SELECT service_id, count() AS n, uniqExact(timestamp) AS u "
                             "FROM monitor.service_status GROUP BY service_id")  # fmt: skip
    assert checks and all(r["n"] == r["u"] for r in checks)
    spool = sum(p.stat().st_size for p in (tmp_path / "spool" / "wal").glob("*.wal"))
    assert spool < 2**20  # all stored: the log gave its room back


def _checks_run(port: int) -> float:
    """``lightbulb_checks_total`` from the daemon's ``/metrics`` (0 while it cannot answer)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return 0
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("lightbulb_checks_total"))  # fmt: skip
