"""How many services one daemon polls on this machine.

    python benchmarks/scale.py                     # 5,000 services, 10 s interval, 60 s
    python benchmarks/scale.py --services 2000 --duration 30
    python benchmarks/scale.py --search            # largest N meeting lag p99 < 250 ms

Half the services are `http` checks of a local HTTP server (in a separate
process), half `python_process` checks of spawned sleepers. The daemon runs as
a real subprocess on embedded chDB; we sample its CPU and RSS from outside and
read scheduling lag from its own `lightbulb` self-monitoring rows.
Prints: checks/s, lag p50/p99 (actual start minus planned start), CPU seconds
per 1,000 checks, daemon CPU cores, peak RSS, rows written/s.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.storage.embedded import EmbeddedStorage  # noqa: E402

LAG_TARGET_MS = 250.0
HTTP_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
s = ThreadingHTTPServer(("127.0.0.1", 0), H); s.daemon_threads = True
print(s.server_address[1], flush=True); s.serve_forever()
"""


@dataclass
class Outcome:
    services: int
    checks_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    cpu_s_per_1000: float
    cores: float
    rss_mb: float
    rows_per_s: float

    @property
    def meets_target(self) -> bool:
        return self.lag_p99_ms < LAG_TARGET_MS

    def __str__(self) -> str:
        return (
            f"services={self.services} checks/s={self.checks_per_s:.0f} "
            f"lag_p50={self.lag_p50_ms:.1f}ms lag_p99={self.lag_p99_ms:.1f}ms "
            f"cpu_s_per_1000_checks={self.cpu_s_per_1000:.2f} cores={self.cores:.2f} "
            f"rss={self.rss_mb:.0f}MB rows_written/s={self.rows_per_s:.0f}"
        )


def write_config(
    path: Path, services: int, interval: float, http_port: int, pidfiles: list[Path]
) -> None:
    lines = [
        "clickhouse:",
        f"  embedded_path: {path.parent / 'db'}",
        "scheduler:",
        f"  spool_dir: {path.parent / 'spool'}",
        "  max_workers: 32",
        "dashboard: {enabled: false}",
        "services:",
    ]
    for i in range(services):
        if i % 2 == 0:
            block = f"http: {{url: 'http://127.0.0.1:{http_port}/s{i}'}}"
            kind = "http"
        else:
            block = f"python_process: {{pidfile: '{pidfiles[i % len(pidfiles)]}'}}"
            kind = "python_process"
        lines.append(
            f"  - {{id: svc-{i:05d}, type: {kind}, stack: s{i % 20}, interval: {interval:g}s, "
            f"timeout: 5s, {block}}}"
        )
    path.write_text("\n".join(lines) + "\n")


def run(services: int, interval: float, duration: float) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="lb-scale-") as tmp:
        root = Path(tmp)
        http = subprocess.Popen(
            [sys.executable, "-c", HTTP_SERVER], stdout=subprocess.PIPE, text=True
        )
        sleepers = [
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(86400)"])
            for _ in range(20)
        ]
        try:
            port = int(http.stdout.readline())  # type: ignore[union-attr]
            pidfiles = []
            for n, proc in enumerate(sleepers):
                pidfile = root / f"sleeper-{n}.pid"
                pidfile.write_text(str(proc.pid))
                pidfiles.append(pidfile)
            config = root / "lightbulb.yaml"
            write_config(config, services, interval, port, pidfiles)
            return measure(config, root, services, duration)
        finally:
            for proc in [http, *sleepers]:
                proc.kill()
                proc.wait()


def measure(config: Path, root: Path, services: int, duration: float) -> Outcome:
    log = open(root / "daemon.log", "w")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "run",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc = psutil.Process(daemon.pid)
    time.sleep(5)  # start-up (imports, schema) is not steady state
    cpu_start = sum(proc.cpu_times()[:2])
    started = time.time()
    rss = 0
    while time.time() - started < duration:
        rss = max(rss, proc.memory_info().rss)
        time.sleep(0.5)
    cpu = sum(proc.cpu_times()[:2]) - cpu_start
    elapsed = time.time() - started
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(30)
    log.close()
    store = EmbeddedStorage(root / "db", "monitor")
    try:
        window = "timestamp >= now64(3) - toIntervalSecond({s:UInt32})"
        params = {"s": int(elapsed + 30)}
        checks = store.query(
            f"SELECT count() AS n FROM monitor.service_status WHERE service_id != 'lightbulb' "
            f"AND timestamp >= fromUnixTimestamp64Milli({int(started * 1000)})"
        )[0]["n"]
        rows = sum(
            store.query(f"SELECT count() AS n FROM monitor.{t} WHERE {window}", params)[0]["n"]
            for t in ("service_status", "service_metrics", "service_logs")
        )
        lag = {
            r["metric_name"]: r["v"]
            for r in store.query(
                "SELECT metric_name, argMax(metric_value, timestamp) AS v "
                "FROM monitor.service_metrics "
                "WHERE service_id = 'lightbulb' AND metric_name IN "
                "('scheduler_lag_p50_ms', 'scheduler_lag_p99_ms') GROUP BY metric_name"
            )
        }
    finally:
        store.close()
    return Outcome(
        services=services,
        checks_per_s=checks / elapsed,
        lag_p50_ms=lag.get("scheduler_lag_p50_ms", float("nan")),
        lag_p99_ms=lag.get("scheduler_lag_p99_ms", float("nan")),
        cpu_s_per_1000=cpu / max(checks, 1) * 1000,
        cores=cpu / elapsed,
        rss_mb=rss / 2**20,
        rows_per_s=rows / elapsed,
    )


def search(interval: float, duration: float) -> int:
    """Largest N (to 250) with lag p99 under target: double, then bisect."""
    good, bad = 0, None
    n = 2500
    while bad is None:
        outcome = run(n, interval, duration)
        print(outcome, "OK" if outcome.meets_target else "MISSES TARGET", flush=True)
        if outcome.meets_target:
            good, n = n, n * 2
        else:
            bad = n
    while bad - good > 250:
        mid = (good + bad) // 2 // 250 * 250
        outcome = run(mid, interval, duration)
        print(outcome, "OK" if outcome.meets_target else "MISSES TARGET", flush=True)
        good, bad = (mid, bad) if outcome.meets_target else (good, mid)
    return good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument(
        "--search", action="store_true", help="find the largest N meeting the lag target"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    if args.search:
        best = search(args.interval, args.duration)
        print(
            f"largest N with lag p99 < {LAG_TARGET_MS:.0f} ms "
            f"at {args.interval:g}s interval: {best}"
        )
    else:
        print(run(args.services, args.interval, args.duration))


if __name__ == "__main__":
    main()
