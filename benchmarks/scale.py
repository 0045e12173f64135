"""How many services one daemon polls on this machine, every check on time.

    python benchmarks/scale.py                         # 10,000 services, 10 s interval, 60 s
    python benchmarks/scale.py --services 1000 --duration 40
    python benchmarks/scale.py --search                # largest N meeting every target

The services, half HTTP and half TCP or process:

- 50% ``http``: each its own URL (``/t/<n>``) on one of up to 100 ports of a
  loopback HTTP/1.1 server (a separate process): many distinct targets;
- 25% ``tcp``: connects to those ports;
- 25% ``python_process``: pidfile checks of 500 spawned sleepers.

The daemon runs as a real subprocess on embedded chDB. From outside we read its
CPU per thread (/proc/<pid>/task/*/stat: the check loop ``lb-checks``, the
other Python threads, and the engine's threads) and its resident memory; from
its own rows, the lag p50/p99 (actual start minus planned start) and, per
service, how many results landed in the measured window. "On time" means every
service has a result for every interval of the window (at most one short, for
where the window cuts an interval) and every result is OK (a check that ran
late past its timeout would say so).
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

from benchmarks.targets import (  # noqa: E402
    http_targets,
    peak_rss_mb,
    rss_mb,
    sleepers,
    thread_ticks,
    url,
)
from server.storage.embedded import EmbeddedStorage  # noqa: E402

LAG_TARGET_MS = 250.0
OURS = {"lb-checks", "python"}  # Python threads; the rest of the process is the engine


@dataclass
class Outcome:
    services: int
    checks_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    cpu_ms_per_check: float
    cores: float
    cores_by_thread: dict[str, float]
    rss_mb: float
    peak_rss_mb: float
    missed: int  # services with fewer results than intervals in the window
    not_ok: int  # results that were not OK (the targets are healthy)

    @property
    def meets_target(self) -> bool:
        return self.lag_p99_ms < LAG_TARGET_MS and self.missed == 0 and self.not_ok == 0

    def __str__(self) -> str:
        ours = sum(v for k, v in self.cores_by_thread.items() if k in OURS)
        engine = self.cores - ours
        top = ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(self.cores_by_thread.items(), key=lambda i: -i[1])[:5]
        )
        return (
            f"services={self.services} checks/s={self.checks_per_s:.0f} "
            f"lag_p50={self.lag_p50_ms:.1f}ms lag_p99={self.lag_p99_ms:.1f}ms "
            f"cpu_ms_per_check={self.cpu_ms_per_check:.3f} cores={self.cores:.2f} "
            f"(ours {ours:.2f}, engine {engine:.2f}: {top}) rss={self.rss_mb:.0f}MB "
            f"peak={self.peak_rss_mb:.0f}MB missed={self.missed} not_ok={self.not_ok}"
        )


def write_config(root: Path, services: int, interval: float, ports: list[int],
                 pidfiles: list[Path]) -> Path:  # fmt: skip
    lines = [
        f"clickhouse: {{embedded_path: {root / 'db'}}}",
        f"scheduler: {{spool_dir: {root / 'spool'}}}",
        "dashboard: {enabled: false}",
        "report: {enabled: false}",
        "services:",
    ]
    for i in range(services):
        if i % 2 == 0:
            kind, block = "http", f"http: {{url: '{url(ports, i)}'}}"
        elif i % 4 == 1:
            kind, block = "tcp", f"tcp: {{host: 127.0.0.1, port: {ports[i % len(ports)]}}}"
        else:
            kind, block = (
                "python_process",
                f"python_process: {{pidfile: '{pidfiles[i % len(pidfiles)]}'}}",
            )
        lines.append(
            f"  - {{id: svc-{i:05d}, type: {kind}, stack: s{i % 20}, interval: {interval:g}s, "
            f"timeout: 5s, {block}}}"
        )
    path = root / "lightbulb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(services: int, interval: float, duration: float, warm: float = 20.0) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="lb-scale-") as tmp:
        root = Path(tmp)
        with (
            http_targets(min(100, max(1, services // 2))) as ports,
            sleepers(min(500, max(1, services // 4)), root) as (_pids, pidfiles, _markers),
        ):
            config = write_config(root, services, interval, ports, pidfiles)
            return measure(config, root, services, interval=interval, duration=duration, warm=warm)


def measure(
    config: Path, root: Path, services: int, *, interval: float, duration: float, warm: float
) -> Outcome:
    log = open(root / "daemon.log", "w")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "run", "--config", str(config), "--log-level",
         "WARNING"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    clock = os.sysconf("SC_CLK_TCK")
    try:
        time.sleep(warm)  # start-up (imports, schema, first interval) is not steady state
        before, started = thread_ticks(daemon.pid), time.time()
        time.sleep(duration)
        after, ended = thread_ticks(daemon.pid), time.time()
        rss, peak = rss_mb(daemon.pid), peak_rss_mb(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
    elapsed = ended - started
    by_thread = {name: (after[name] - before.get(name, 0)) / clock / elapsed for name in after}
    by_thread = {k: v for k, v in by_thread.items() if v > 0.005}
    cores = sum(by_thread.values())
    store = EmbeddedStorage(root / "db", "monitor")
    try:
        window = {"a": int(started * 1000), "b": int(ended * 1000)}
        rows = store.query(
            "SELECT service_id, count() AS n, countIf(status_code != 0) AS bad "
            "FROM monitor.service_status WHERE service_id != 'lightbulb' "
            "AND timestamp >= fromUnixTimestamp64Milli({a:Int64}) "
            "AND timestamp < fromUnixTimestamp64Milli({b:Int64}) GROUP BY service_id",
            window,
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
    counts = {r["service_id"]: int(r["n"]) for r in rows}
    expected = int(elapsed // interval)
    missed = sum(1 for i in range(services) if counts.get(f"svc-{i:05d}", 0) < expected - 1)
    checks = sum(counts.values())
    return Outcome(
        services=services,
        checks_per_s=checks / elapsed,
        lag_p50_ms=lag.get("scheduler_lag_p50_ms", float("nan")),
        lag_p99_ms=lag.get("scheduler_lag_p99_ms", float("nan")),
        cpu_ms_per_check=cores * elapsed / max(checks, 1) * 1000,
        cores=cores,
        cores_by_thread=by_thread,
        rss_mb=rss,
        peak_rss_mb=peak,
        missed=missed,
        not_ok=sum(int(r["bad"]) for r in rows),
    )


def engine_baseline_mb() -> float:
    """RSS of a process that only imports chDB and opens an embedded store: the engine's floor."""
    code = (
        "import sys, tempfile; sys.path.insert(0, sys.argv[1])\n"
        "from server.storage.embedded import EmbeddedStorage\n"
        "d = tempfile.mkdtemp(); s = EmbeddedStorage(d + '/db', 'monitor')\n"
        "s.query('SELECT 1')\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return int(done.stdout.strip()) / 1024


def search(interval: float, duration: float) -> int:
    """Largest N (to 500) meeting every target: double from 2,500, then bisect."""
    good, bad = 0, None
    n = 2500
    while bad is None and n <= 40_000:
        outcome = run(n, interval, duration)
        print(outcome, "OK" if outcome.meets_target else "MISSES TARGET", flush=True)
        if outcome.meets_target:
            good, n = n, n * 2
        else:
            bad = n
    while bad is not None and bad - good > 500:
        mid = (good + bad) // 2 // 500 * 500
        outcome = run(mid, interval, duration)
        print(outcome, "OK" if outcome.meets_target else "MISSES TARGET", flush=True)
        good, bad = (mid, bad) if outcome.meets_target else (good, mid)
    return good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--search", action="store_true", help="largest N meeting every target")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"load {Path('/proc/loadavg').read_text().strip()}; "
        f"engine alone: {engine_baseline_mb():.0f} MB RSS",
        flush=True,
    )
    if args.search:
        best = search(args.interval, args.duration)
        print(f"largest N meeting every target at {args.interval:g}s interval: {best}")
    else:
        outcome = run(args.services, args.interval, args.duration)
        print(outcome, "OK" if outcome.meets_target else "MISSES TARGET")
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
