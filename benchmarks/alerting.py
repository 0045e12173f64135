"""Alert evaluation cost and failure-to-webhook latency.

    python benchmarks/alerting.py                          # 10,000 rules over 2,000 services
    python benchmarks/alerting.py --rules 10000 --services 2000 --kills 5 --interval 10

Part 1 (in process): the alert engine with N rules over M services (five
condition types: status, metric, avg metric over a window, consecutive
failures, log errors) is fed results the way the scheduler does. Prints the
evaluation time per results batch: one second's results (M / interval) and a
full sweep (one result per service), p50/p99/max, and the cost of a tick.

Part 2 (a real daemon): the same rules and services (tcp checks of a local
listener, plus a few `python_process` checks of spawned sleepers) in a
`lightbulb run` subprocess on embedded chDB with a webhook channel to a local
receiver. Sleepers are killed one by one at random points of their check
cycle; prints each kill-to-webhook latency against the target of one check
interval + 1 s (`for: 0`).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from checkers.base import CheckResult, LogEntry, Metric, Status  # noqa: E402
from server.alerting.engine import AlertEngine  # noqa: E402
from server.alerting.log import AlertLog  # noqa: E402
from server.notify.dispatcher import Dispatcher  # noqa: E402
from server.process import freeze_startup_objects  # noqa: E402
from server.validation import parse_config  # noqa: E402

CONDITIONS = (
    "status >= FAILED",
    "metric response_time_ms > threshold",
    "avg metric queue_depth > threshold",
    "consecutive_failures >= threshold",
    "log_errors > threshold",
)
THRESHOLDS = (0, 500, 100, 3, 5)
EVAL_TARGET_MS = 50.0


def rules_yaml(services: list[str], rules: int, channel: str) -> str:
    lines = ["alert_rules:"]
    for i in range(rules):
        sid = services[i % len(services)]
        kind = (i // len(services)) % len(CONDITIONS)
        lines.append(
            f'  - {{id: r{i}, service: {sid}, condition: "{CONDITIONS[kind]}", '
            f"threshold: {THRESHOLDS[kind]}, for: 30s, channels: [{channel}]}}"
            if kind in (2, 4)
            else f'  - {{id: r{i}, service: {sid}, condition: "{CONDITIONS[kind]}", '
            f"threshold: {THRESHOLDS[kind]}, channels: [{channel}]}}"
        )
    return "\n".join(lines) + "\n"


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 22, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()


class Sink:
    """The writer's part the alert log uses, counting rows."""

    def __init__(self) -> None:
        self.rows = 0

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows += 1

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.rows += len(rows)

    def durable(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        self.rows += sum(len(rows) for rows in tables.values())


def result(rng: random.Random, storm: bool) -> CheckResult:
    """A check result: steady (1% failing, latencies mostly under the threshold) or a storm.

    In a storm every value is drawn across the thresholds, so most results flip
    an alert: the worst case for transitions, rows and notices.
    """
    failing = rng.random() < (0.05 if storm else 0.01)
    latency = rng.randint(5, 900) if storm else int(rng.gauss(150, 60))
    queue = rng.uniform(0, 150) if storm else rng.gauss(40, 10)
    return CheckResult(
        Status.FAILED if failing else Status.OK,
        "down" if failing else "ok",
        response_time_ms=max(latency, 1),
        metrics=[Metric("queue_depth", queue)],
        logs=[LogEntry("ERROR", "boom")] if rng.random() < (0.1 if storm else 0.01) else [],
    )


def evaluation(n_services: int, n_rules: int, interval: float, rounds: int, storm: bool) -> None:
    services = [f"svc-{i}" for i in range(n_services)]
    text = "services:\n" + "".join(
        f"  - {{id: {s}, type: host, interval: {interval:g}s}}\n" for s in services
    )
    text += "channels:\n  hook: {type: webhook, url: 'http://127.0.0.1:9/'}\n"
    started = time.perf_counter()
    config = parse_config(text + rules_yaml(services, n_rules, "hook"), "bench.yaml", {})
    load_s = time.perf_counter() - started
    clock, sink, rng = Clock(), Sink(), random.Random(1)
    alert_log = AlertLog(sink, None, clock)
    # the real delivery stages, not started: news waits out group_wait in them
    dispatcher = Dispatcher(config, clock, alert_log)
    engine = AlertEngine(config, alert_log, dispatcher, clock)
    freeze_startup_objects()  # as the daemon does once it has started
    per_second = max(1, round(n_services / interval))
    second_ms, sweep_ms, tick_ms = [], [], []
    for _ in range(rounds):
        for start in range(0, n_services, per_second):
            batch = [
                (s, result(rng, storm), clock.at) for s in services[start : start + per_second]
            ]
            t0 = time.perf_counter()
            engine.observe_many(batch)
            second_ms.append((time.perf_counter() - t0) * 1000)
            clock.at += timedelta(seconds=1)
            t0 = time.perf_counter()
            engine.tick(clock.at)
            tick_ms.append((time.perf_counter() - t0) * 1000)
        batch = [(s, result(rng, storm), clock.at) for s in services]
        t0 = time.perf_counter()
        engine.observe_many(batch)
        sweep_ms.append((time.perf_counter() - t0) * 1000)
    mode = "storm (most results flip an alert)" if storm else "steady (1% failing)"
    print(f"== evaluation: {n_rules:,} rules over {n_services:,} services, {mode} ==")
    print(f"config load (parse + validate): {load_s:.2f} s")
    verdict = "met" if pct(second_ms, 0.99) < EVAL_TARGET_MS else "MISSED"
    print(
        f"batch of 1 s of results ({per_second} results): {summary(second_ms)}  "
        f"target < {EVAL_TARGET_MS:g} ms: {verdict}"
    )
    print(f"full sweep ({n_services:,} results):        {summary(sweep_ms)}")
    print(f"tick (timers, absent, repeats):      {summary(tick_ms)}")
    waiting = sum(len(w.groups) for w in dispatcher.workers.values())
    print(f"rows written {sink.rows:,}, notices waiting in group_wait {waiting:,}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms  "
        f"max {max(values):6.2f} ms"
    )


# -- part 2: a real daemon ---------------------------------------------------------------
class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                for alert in body["alerts"]:
                    if alert["status"] == "firing":
                        receiver.arrivals.setdefault(alert["service_id"], now)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)

    def accept() -> None:
        while True:
            conn, _ = sock.accept()
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return sock


def latency(n_services: int, n_rules: int, interval: float, kills: int) -> None:
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    tcp = listener()
    tcp_port = tcp.getsockname()[1]
    sleepers = {
        f"victim-{i}": subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(86400)", f"lb-bench-victim-{i}"]
        )
        for i in range(kills)
    }
    tcp_ids = [f"svc-{i}" for i in range(n_services - kills)]
    lines = ["services:"]
    lines += [
        f"  - {{id: {s}, type: tcp, interval: {interval:g}s, tcp: {{host: 127.0.0.1, "
        f"port: {tcp_port}}}}}"
        for s in tcp_ids
    ]
    lines += [
        f"  - {{id: {v}, type: python_process, interval: {interval:g}s, "
        f"python_process: {{cmdline: lb-bench-{v}}}}}"
        for v in sleepers
    ]
    with tempfile.TemporaryDirectory(prefix="lb-alert-bench-") as tmp:
        root = Path(tmp)
        text = "\n".join(lines) + "\n"
        text += f"clickhouse: {{embedded_path: {root / 'db'}}}\n"
        text += f"scheduler: {{spool_dir: {root / 'spool'}}}\n"
        text += "dashboard: {enabled: false}\n"
        text += f"channels:\n  hook: {{type: webhook, url: 'http://127.0.0.1:{receiver.server_port}/'}}\n"
        text += rules_yaml([*sleepers, *tcp_ids], n_rules, "hook")
        config = root / "lightbulb.yaml"
        config.write_text(text)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "run", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(interval * 2 + 5)  # every service checked at least twice
            rng = random.Random(3)
            killed: dict[str, float] = {}
            for victim, proc in sleepers.items():
                time.sleep(rng.uniform(0, interval))
                proc.kill()
                killed[victim] = time.time()
            deadline = time.time() + interval + 5
            while time.time() < deadline and len(receiver.arrivals) < len(killed):
                time.sleep(0.05)
        finally:
            daemon.terminate()
            daemon.wait(30)
            for proc in sleepers.values():
                proc.kill()
                proc.wait()
    target = interval + 1
    print(f"== kill-to-webhook latency: {n_services:,} services, {n_rules:,} rules, "
          f"interval {interval:g}s ==")  # fmt: skip
    measured = []
    for victim, at in killed.items():
        arrived = receiver.arrivals.get(victim)
        if arrived is None:
            print(f"{victim}: no notification within {interval + 5:g} s")
            continue
        measured.append(arrived - at)
        print(f"{victim}: {arrived - at:5.2f} s")
    if measured:
        verdict = "met" if len(measured) == len(killed) and max(measured) < target else "MISSED"
        print(f"max {max(measured):.2f} s, mean {statistics.mean(measured):.2f} s; "
              f"target < {target:g} s: {verdict}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--rules", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=10, help="evaluation: sweeps of all services")
    parser.add_argument("--kills", type=int, default=5, help="latency: processes killed")
    parser.add_argument("--skip-daemon", action="store_true", help="only part 1")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform()}")
    for storm in (False, True):
        evaluation(args.services, args.rules, args.interval, args.rounds, storm)
    if not args.skip_daemon:
        latency(args.services, args.rules, args.interval, args.kills)


def platform() -> str:
    import os

    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    main()
