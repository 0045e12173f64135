"""A real daemon's log damaged between runs: every acknowledged push outside the damage
is stored once, the damage is said and counted, nothing vanishes silently.

Three runs take acknowledged pushes while ClickHouse is away (all of them wait in
the log, in 128 KiB segments: each start begins a new one) and are killed. Then
four segments that are not the newest are damaged: the last frame of one flipped,
another cut mid-frame, one emptied, one deleted; and the rows of a fifth are put
into the database by hand (stored, their mark lost). The last run has the
embedded database and stores what the log holds.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import requests

from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.wal import Record, Wal
from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]
PAD = "x" * 400  # ~20 KiB a request: six to a 128 KiB segment, 0.6 MiB in all
RUNS, REQUESTS, PER_REQUEST = 3, 10, 50
SERVICE = "  - {id: s0, type: host, interval: 60s}\n"
LOGS = "logs:\n  tokens: {t: t0k3n}\n"


def push_all(url: str, run: int) -> list[int]:
    """Push REQUESTS requests of uniquely numbered records; the numbers acknowledged."""
    acked: list[int] = []
    with requests.Session() as session:
        for request in range(run * REQUESTS, (run + 1) * REQUESTS):
            ids = range(request * PER_REQUEST, (request + 1) * PER_REQUEST)
            body = "\n".join(json.dumps({"service_id": "s0", "level": "INFO", "message":
                                         f"p{n} {PAD}", "timestamp": time.time()})
                             for n in ids)  # fmt: skip
            answer = session.post(url, data=body.encode(), timeout=30,
                                  headers={"Authorization": "Bearer t0k3n"})  # fmt: skip
            assert answer.status_code == 200 and answer.json()["accepted"] == PER_REQUEST, (
                answer.text
            )
            acked.extend(ids)
    return acked


def pushed_in(wal: Wal, record: Record) -> list[int]:
    data = wal.load(record)
    return [int(m.split(" ", 1)[0][1:]) for m in data.column("message").to_pylist()
            if m.startswith("p")]  # fmt: skip


def segment_of(spool: Path, record: Record) -> Path:
    return spool / "wal" / f"{record.segment:012d}.wal"


def metrics(port: int) -> dict[str, float]:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return {}
    # unlabelled figures only
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+) (\S+)$", text, re.M)}


def spooled(tmp_path: Path, runs: int) -> tuple[int, list[int], Wal, list[Record], list[Path]]:
    """``runs`` daemons (killed -9 each) take acknowledged pushes while ClickHouse is
    away, into 128 KiB segments; returns the dashboard port, the pushes acknowledged,
    the log read back (read-only), every record waiting in it, and its segment files."""
    port = free_port()
    down = f"'127.0.0.1:{free_port()}'"
    config = write_config(tmp_path, SERVICE, hosts=down, extra=LOGS, port=port)
    small = config.read_text().replace("scheduler:\n", "scheduler:\n  spool_max_bytes: 1MiB\n")
    config.write_text(small)  # 128 KiB segments: several to a run
    acked: list[int] = []
    for run in range(runs):
        daemon = DaemonProcess(config, tmp_path)
        daemon.wait_for("dashboard and API")
        acked += push_all(f"http://127.0.0.1:{port}/api/v1/logs", run)
        daemon.kill()
    wal = Wal(tmp_path / "spool" / "wal", 0, readonly=True)
    pending, open_batches = wal.recover()
    records = [*pending, *(r for b in open_batches for r in b.records)]
    return port, acked, wal, records, sorted((tmp_path / "spool" / "wal").glob("*.wal"))


def test_damaged_older_segments_lose_only_their_own_records_and_say_so(tmp_path: Path) -> None:
    port, acked, wal, records, files = spooled(tmp_path, RUNS)
    spool = tmp_path / "spool"
    last = {}  # segment file -> the push record that ends it
    for record in records:
        path = segment_of(spool, record)
        if record.table == "service_logs" and record.offset + record.length == path.stat().st_size:
            last[path] = record
    chosen = [p for p in files[:-1] if p in last]  # never the newest: its end may be torn
    assert len(chosen) >= 5, (len(files), len(last))
    # never two neighbours emptied and deleted: they would be one gap, one place
    flipped, cut, emptied, stored_by_hand, deleted = chosen[:5]
    in_segment = {p: [n for r in records if segment_of(spool, r) == p
                      and r.table == "service_logs" for n in pushed_in(wal, r)]
                  for p in chosen[:5]}  # fmt: skip
    lost = {*pushed_in(wal, last[flipped]), *pushed_in(wal, last[cut]), *in_segment[emptied],
            *in_segment[deleted]}  # fmt: skip

    record = last[flipped]
    data = bytearray(flipped.read_bytes())
    data[record.offset + record.length // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    record = last[cut]
    os.truncate(cut, record.offset + record.length // 2)
    os.truncate(emptied, 0)
    deleted.unlink()
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:  # stored, and the mark saying so lost: must not be stored again
        apply_schema(store, Target("monitor"))
        for r in records:
            if segment_of(spool, r) == stored_by_hand and r.table == "service_logs":
                store.insert_arrow("service_logs", wal.load(r))
    finally:
        store.close()

    config = write_config(tmp_path, SERVICE, extra=LOGS, port=port)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    assert wait_until(lambda: metrics(port).get("lightbulb_write_queue_rows") == 0, 60)
    figures = metrics(port)
    code, _ = daemon.stop()
    assert code == 0, daemon.output

    rows = query(tmp_path, "SELECT splitByChar(' ', message)[1] AS id, count() AS n FROM "
                           "monitor.service_logs GROUP BY id")  # fmt: skip
    stored = {int(r["id"][1:]): int(r["n"]) for r in rows if r["id"].startswith("p")}
    assert sorted(set(acked) - set(stored)) == sorted(lost)  # the damaged ones, no other
    assert [n for n, count in stored.items() if count > 1] == []
    assert figures["lightbulb_spool_damage_found_total"] == 4
    errors = [line for line in daemon.lines if " ERROR " in line]
    for path in (flipped, cut):
        assert sum(path.name in line and "damaged bytes" in line for line in errors) == 1, errors
    for path in (emptied, deleted):
        assert sum(f"segment {int(path.stem)} " in line for line in errors) == 1, errors
    quarantined = sorted(p.stat().st_size for p in (spool / "quarantine").iterdir())
    assert sum(quarantined) == figures["lightbulb_spool_damaged_bytes_total"]
    assert len(quarantined) == 2 and in_segment[stored_by_hand]
