"""CPU per check, Lightbulb against blackbox_exporter and monit, side by side.

    python benchmarks/peers.py                       # every scenario, 3 repeats
    python benchmarks/peers.py --scenario http-200 --repeats 1 --window 30
    git archive main | tar -x -C /tmp/base && python benchmarks/peers.py --baseline /tmp/base

Same loopback targets for both sides, same 10 s interval, run one after the
other and alternating which goes first, three repeats; medians printed with the
ratio Lightbulb / peer (below 1.0: we are cheaper). CPU is utime + stime of the
monitor's process (all threads) from /proc/<pid>/stat over the measured window;
checks are counted from what each side produced in that window.

- HTTP: Debian's ``prometheus-blackbox-exporter`` probed through ``/probe`` for
  every target every 10 s, spread over the interval as Prometheus spreads
  scrapes (the scraper is this process, like Prometheus it is not counted;
  Lightbulb's count includes writing every result to its embedded database).
- Processes: Debian's ``monit`` with ``set daemon 10``, ``check process … with
  pidfile`` or ``… matching``, against the same sleepers Lightbulb checks.

Install the peers with ``apt-get install prometheus-blackbox-exporter monit``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.targets import (  # noqa: E402
    cpu_seconds,
    http_targets,
    peak_rss_mb,
    sleepers,
    thread_ticks,
    url,
)

INTERVAL = 10.0
FLUSH = {"interval": ""}  # --flush-interval: scheduler.flush_interval for our side
BLACKBOX = shutil.which("prometheus-blackbox-exporter")
MONIT = shutil.which("monit")


OURS = {"lb-checks", "lightbulb-check", "lightbulb-dns", "python"}  # our Python threads;
# the rest of our process is the engine


@dataclass
class Side:
    name: str
    cpu_s: float
    checks: int
    rss_mb: float
    engine_s: float = 0.0  # of cpu_s, the embedded engine's threads (Lightbulb only)
    parts_per_min: float = 0.0  # data parts the engine created, over the daemon's life

    @property
    def ms_per_check(self) -> float:
        return self.cpu_s / max(self.checks, 1) * 1000


# -- Lightbulb ---------------------------------------------------------------------------
def lightbulb(
    root: Path, services: list[str], warm: float, window: float, tree: Path = REPO
) -> Side:
    """Our daemon from the source ``tree`` (this checkout, or ``--baseline``'s)."""
    config = root / "lightbulb.yaml"
    config.write_text(
        f"clickhouse: {{embedded_path: {root / 'db'}}}\n"
        f"scheduler: {{spool_dir: {root / 'spool'}"
        + (f", flush_interval: {FLUSH['interval']}" if FLUSH["interval"] else "")
        + "}\n"
        "dashboard: {enabled: false}\nreport: {enabled: false}\nservices:\n" + "\n".join(services)
    )
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "run",
            "--config",
            str(config),
            "--log-level",
            "ERROR",
        ],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    born = time.time()
    try:
        time.sleep(warm)
        ticks0, cpu0, t0 = thread_ticks(daemon.pid), cpu_seconds(daemon.pid), time.time()
        time.sleep(window)
        ticks1, cpu1, t1 = thread_ticks(daemon.pid), cpu_seconds(daemon.pid), time.time()
        rss = peak_rss_mb(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    lifetime = time.time() - born
    from server.spool import Spool
    from server.storage.embedded import EmbeddedStorage
    from server.tables import WRITTEN_TABLES
    from server.writer import Writer

    store = EmbeddedStorage(root / "db", "monitor")
    try:
        # What the daemon's stop grace (WRITE_GRACE) left in its log for the next
        # start is inserted now, as that start would: those checks were made too.
        Writer(store, Spool(root / "spool", 2**30), columns=WRITTEN_TABLES).flush()
        checks = store.query(
            "SELECT count() AS n FROM monitor.service_status WHERE service_id != 'lightbulb' "
            "AND timestamp >= fromUnixTimestamp64Milli({a:Int64}) "
            "AND timestamp < fromUnixTimestamp64Milli({b:Int64})",
            {"a": int(t0 * 1000), "b": int(t1 * 1000)},
        )[0]["n"]
        # Every insert into a table (its materialized views' targets included) takes
        # the table's next block number: the highest one is the parts it ever made.
        parts = store.query(
            "SELECT sum(m) AS n FROM (SELECT table, max(max_block_number) AS m "
            "FROM system.parts WHERE database = 'monitor' GROUP BY table)"
        )[0]["n"]
    finally:
        store.close()
    shutil.rmtree(root / "db", ignore_errors=True)
    delta = ticks1 - ticks0
    engine = sum(v for k, v in delta.items() if k not in OURS) / os.sysconf("SC_CLK_TCK")
    name = "lightbulb" if tree == REPO else "lightbulb-baseline"
    return Side(name, cpu1 - cpu0, int(checks), rss, engine, int(parts or 0) / lifetime * 60)


def http_services(ports: list[int], count: int) -> list[str]:
    return [
        f"  - {{id: h{n:05d}, type: http, interval: 10s, timeout: 5s,"
        f" http: {{url: '{url(ports, n)}'}}}}"
        for n in range(count)
    ]


def process_services(pidfiles: list[Path], markers: list[str], by: str) -> list[str]:
    lines = []
    for n, (pidfile, marker) in enumerate(zip(pidfiles, markers, strict=True)):
        block = f"pidfile: '{pidfile}'" if by == "pidfile" else f"cmdline: 'sleep {marker}$'"
        lines.append(
            f"  - {{id: p{n:05d}, type: python_process, interval: 10s, timeout: 5s,"
            f" python_process: {{{block}}}}}"
        )
    return lines


# -- blackbox_exporter -----------------------------------------------------------------
def blackbox(root: Path, targets: list[str], warm: float, window: float) -> Side:
    assert BLACKBOX, "apt-get install prometheus-blackbox-exporter"
    config = root / "blackbox.yml"
    config.write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
        "    http: {preferred_ip_protocol: ip4}\n"
    )
    from tests.conftest import free_port

    port = free_port()
    exporter = subprocess.Popen(
        [BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        counts = asyncio.run(_scrape(port, targets, warm, window, exporter.pid))
        rss = peak_rss_mb(exporter.pid)
    finally:
        exporter.kill()
        exporter.wait()
    cpu, ok, failed = counts
    if failed:
        print(f"  blackbox: {failed} probes failed", flush=True)
    return Side("blackbox_exporter", cpu, ok + failed, rss)


async def _scrape(
    port: int, targets: list[str], warm: float, window: float, pid: int
) -> tuple[float, int, int]:
    """Prometheus-like: each target's /probe every INTERVAL at a stable offset."""
    from checkers.httpclient import Request, fetch

    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    measure_from, measure_to = start + warm, start + warm + window
    ok = failed = 0
    cpu0 = cpu1 = 0.0

    async def one(target: str) -> None:
        nonlocal ok, failed
        offset = (zlib.crc32(target.encode()) % 10_000) / 10_000 * INTERVAL
        due = start + offset
        request = Request("GET", f"http://127.0.0.1:{port}/probe?module=http_2xx&target={target}")
        while due < measure_to:
            await asyncio.sleep(max(0.0, due - loop.time()))
            began = loop.time()
            response = await fetch(request, need_body=True)
            if measure_from <= began < measure_to:
                if b"probe_success 1" in response.body:
                    ok += 1
                else:
                    failed += 1
            due += INTERVAL

    async def meter() -> None:
        nonlocal cpu0, cpu1
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        cpu0 = cpu_seconds(pid)
        await asyncio.sleep(max(0.0, measure_to - loop.time()))
        cpu1 = cpu_seconds(pid)

    await asyncio.gather(meter(), *(one(t) for t in targets))
    return cpu1 - cpu0, ok, failed


# -- monit -----------------------------------------------------------------------------
def monit(
    root: Path, pidfiles: list[Path], markers: list[str], by: str, *, warm: float, window: float
) -> Side:
    assert MONIT, "apt-get install monit"
    rc = root / "monitrc"
    lines = [
        f"set daemon {INTERVAL:g}",
        f"set pidfile {root / 'monit.pid'}",
        f"set idfile {root / 'monit.id'}",
        f"set statefile {root / 'monit.state'}",
        f"set logfile {root / 'monit.log'}",
    ]
    for n, (pidfile, marker) in enumerate(zip(pidfiles, markers, strict=True)):
        how = f"with pidfile {pidfile}" if by == "pidfile" else f'matching "sleep {marker}$"'
        lines.append(f"check process p{n:05d} {how}")
    rc.write_text("\n".join(lines) + "\n")
    rc.chmod(0o600)
    proc = subprocess.Popen(
        [MONIT, "-I", "-c", str(rc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(warm)
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(window)
        cpu1 = cpu_seconds(proc.pid)
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    cycles = round(window / INTERVAL)
    return Side("monit", cpu1 - cpu0, cycles * len(pidfiles), rss)


# -- runs ------------------------------------------------------------------------------
Runner = Callable[[Path], Side]


def scenario(
    name: str, warm: float, window: float
) -> tuple[Callable[..., Side], Runner, Callable[[], object]]:
    """(our side, the peer, a context manager for the shared targets)."""
    kind, count = name.rsplit("-", 1)
    n = int(count)
    if kind == "http":
        holder: dict[str, list[int]] = {}

        def ours(root: Path, tree: Path = REPO) -> Side:
            return lightbulb(root, http_services(holder["ports"], n), warm, window, tree)

        def peer(root: Path) -> Side:
            return blackbox(root, [url(holder["ports"], i) for i in range(n)], warm, window)

        def targets() -> object:
            ctx = http_targets(min(n, 50))

            class Wrap:
                def __enter__(self) -> None:
                    holder["ports"] = ctx.__enter__()

                def __exit__(self, *exc: object) -> None:
                    ctx.__exit__(None, None, None)

            return Wrap()

        return ours, peer, targets
    by = kind.removeprefix("proc-")
    shared: dict[str, object] = {}

    def ours_p(root: Path, tree: Path = REPO) -> Side:
        pidfiles, markers = shared["pidfiles"], shared["markers"]
        services = process_services(pidfiles, markers, by)  # type: ignore[arg-type]
        return lightbulb(root, services, warm, window, tree)

    def peer_p(root: Path) -> Side:
        return monit(root, shared["pidfiles"], shared["markers"], by, warm=warm, window=window)  # type: ignore[arg-type]

    def targets_p() -> object:
        tmp = Path(tempfile.mkdtemp(prefix="lb-peers-sleepers-"))
        ctx = sleepers(n, tmp)

        class Wrap:
            def __enter__(self) -> None:
                _pids, shared["pidfiles"], shared["markers"] = ctx.__enter__()

            def __exit__(self, *exc: object) -> None:
                ctx.__exit__(None, None, None)
                shutil.rmtree(tmp, ignore_errors=True)

        return Wrap()

    return ours_p, peer_p, targets_p


SCENARIOS = ("http-200", "http-1000", "proc-pidfile-200", "proc-cmdline-200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument(
        "--flush-interval", default="", help="scheduler.flush_interval for Lightbulb (e.g. 5s)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another source tree of Lightbulb (e.g. `git archive main`) run in the same "
        "rotation: before and after side by side with the peer, in one run",
    )
    args = parser.parse_args()
    FLUSH["interval"] = args.flush_interval
    print(f"machine: {os.cpu_count()} cores; load {Path('/proc/loadavg').read_text().strip()}")
    for name in args.scenario or SCENARIOS:
        ours, peer, targets = scenario(name, args.warm, args.window)
        sides: list[tuple[str, Runner]] = [("ours", ours), ("peer", peer)]
        if args.baseline:
            base = args.baseline.resolve()
            sides.insert(0, ("base", functools.partial(ours, tree=base)))
        results: dict[str, list[Side]] = {key: [] for key, _ in sides}
        with targets():  # type: ignore[attr-defined]
            for repeat in range(args.repeats):
                shift = repeat % len(sides)  # rotate who goes first
                order = sides[shift:] + sides[:shift]
                for key, run in order:
                    with tempfile.TemporaryDirectory(prefix="lb-peers-") as tmp:
                        side = run(Path(tmp))
                    results[key].append(side)
                    engine = ""
                    if side.name.startswith("lightbulb"):
                        per_check = side.engine_s / max(side.checks, 1) * 1000
                        engine = (
                            f" (engine {per_check:.3f} ms/check, "
                            f"{side.parts_per_min:.0f} parts/min)"
                        )
                    print(
                        f"  {name} #{repeat + 1} {side.name}: {side.checks} checks, "
                        f"{side.cpu_s:.2f} CPU-s, {side.ms_per_check:.3f} ms/check{engine}, "
                        f"peak RSS {side.rss_mb:.0f} MB; load "
                        f"{Path('/proc/loadavg').read_text().split()[0]}",
                        flush=True,
                    )
        theirs = statistics.median(s.ms_per_check for s in results["peer"])
        for key in [k for k in ("base", "ours") if k in results]:
            mine = statistics.median(s.ms_per_check for s in results[key])
            print(
                f"{name}: {results[key][0].name} {mine:.3f} ms/check, "
                f"{results['peer'][0].name} {theirs:.3f} ms/check, ratio {mine / theirs:.2f} "
                f"(median of {args.repeats}; peak RSS "
                f"{statistics.median(s.rss_mb for s in results[key]):.0f} MB)",
                flush=True,
            )


if __name__ == "__main__":
    main()
