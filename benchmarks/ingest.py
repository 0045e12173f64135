"""Log ingestion throughput: records/s *stored* (counted in ClickHouse), p99, peak RSS, lost.

Starts a real daemon (embedded chDB) in a temporary directory, pushes
1,000-record requests from client threads for ``--duration`` seconds, stops
the daemon with SIGTERM, then counts the rows in ClickHouse. Figures:

- accepted/s: records answered 200; stored/s: rows in ``service_logs`` over the
  same push window (everything accepted must be stored; ``lost`` says if not);
- stored without a 200: rows beyond those answered 200, what a retrying client
  duplicates; should be 0. Only the 200 acknowledges: a push whose client gave up
  (``--timeout``) before it was written is not stored ("abandoned", the daemon's
  ``lightbulb_push_abandoned``); one whose client gave up after the fsync is, and
  shows here (the window no server can close);
- p50/p99 request latency of the 200s; 429/503 answers (backpressure);
- peak RSS of the daemon; CPU seconds it used, per record stored and by thread
  (Python threads are "python"; the engine's threads carry their pool names,
  MergeMutate being background merges); seconds SIGTERM took.

    .venv/bin/python benchmarks/ingest.py [--format ndjson|otlp|both] [--duration 30]
        [--clients 4] [--workers N] [--gzip] [--against OTHER_TREE --rounds 2]

``--gzip`` sends every body gzip-compressed (``Content-Encoding: gzip``), compressed
once before the run: the daemon's inflating is measured, not the clients' deflating.

With ``--against main`` (a git revision, exported with ``git archive``, or a directory)
each round runs that tree's daemon and this one's, alternating which goes first, so
both see the same machine; a table of both closes the output. The lead's run:

    .venv/bin/python benchmarks/ingest.py --format both --duration 15 --against main
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs  # noqa: E402
from opentelemetry.proto.resource.v1.resource_pb2 import Resource  # noqa: E402

from benchmarks.thread_nice import NiceSampler  # noqa: E402
from server.storage.embedded import EmbeddedStorage  # noqa: E402
from server.wal import Wal  # noqa: E402

RECORDS = 1000
SERVICES = 20


def ndjson_body(seq: int) -> bytes:
    now = time.time()
    lines = []
    for i in range(RECORDS):
        level = "ERROR" if i % 20 == 0 else "INFO"
        lines.append(json.dumps({
            "timestamp": now, "service_id": f"svc{i % SERVICES}", "level": level,
            "message": f"request {seq}-{i} handled in {i % 97} ms for user {i % 13}",
            "context": {"path": f"/api/v1/items/{i % 50}", "status": "200"},
        }))  # fmt: skip
    return "\n".join(lines).encode()


def otlp_body(seq: int) -> bytes:
    now = time.time_ns()
    records = []
    for i in range(RECORDS):
        records.append(LogRecord(
            time_unix_nano=now, severity_number=17 if i % 20 == 0 else 9,
            body=AnyValue(string_value=f"request {seq}-{i} handled in {i % 97} ms"),
            attributes=[KeyValue(key="path", value=AnyValue(string_value=f"/api/{i % 50}"))],
        ))  # fmt: skip
    groups = []
    for s in range(SERVICES):
        resource = Resource(
            attributes=[KeyValue(key="service.name", value=AnyValue(string_value=f"svc{s}"))]
        )
        groups.append(ResourceLogs(resource=resource, scope_logs=[ScopeLogs(
            log_records=records[s::SERVICES])]))  # fmt: skip
    return ExportLogsServiceRequest(resource_logs=groups).SerializeToString()


class Client(threading.Thread):
    """Posts bodies until ``until``: back to back, or (``every`` s) on a fixed schedule.

    On a schedule, latency counts from when the request was due, not when it went
    out: a daemon that falls behind shows as latency, not as a slower client.
    """

    def __init__(self, port: int, path: str, ctype: str, bodies: list[bytes], until: float, *,
                 every: float = 0.0, offset: float = 0.0,
                 timeout: float = 30.0, gzip: bool = False) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.timeout = timeout
        self.gzip = gzip
        self.port, self.path, self.ctype, self.bodies, self.until = port, path, ctype, bodies, until
        self.every, self.offset = every, offset
        self.accepted = 0
        self.latencies: list[float] = []
        self.due: list[float] = []  # when each 200's request was due (perf_counter = monotonic)
        self.refused: dict[int, int] = {}
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Authorization": "Bearer bench", "Content-Type": self.ctype}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        n = 0
        start = time.perf_counter() + self.offset
        while time.monotonic() < self.until:
            body = self.bodies[n % len(self.bodies)]
            due = start + n * self.every
            n += 1
            if self.every:
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            started = due if self.every else time.perf_counter()
            try:
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                answer.read()
            except OSError:
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                continue
            took = time.perf_counter() - started
            if answer.status == 200:
                self.accepted += RECORDS
                self.latencies.append(took)
                self.due.append(started)
            else:
                self.refused[answer.status] = self.refused.get(answer.status, 0) + 1
                time.sleep(float(answer.getheader("Retry-After") or 1))


def secret(i: int) -> str:
    return f"bench-secret-{i:04d}-x9Qv"


def redaction_cost(bodies: list[bytes], fmt: str, secrets: int) -> str:
    """In this process: validating the benchmark's bodies with the daemon's secrets
    loaded, against none loaded; the difference is the secret scan's cost."""
    from datetime import UTC, datetime

    from server.config.models import LogsConfig
    from server.core import redact
    from server.logs.ingest import Ingestor
    from server.logs.otlp import proto_groups, proto_records

    config = LogsConfig(tokens={"bench": "bench"}, max_records=10_000)
    known = {f"svc{i}" for i in range(SERVICES)}

    def once(n: int) -> float:
        body, now = bodies[n % len(bodies)], datetime.now(UTC)
        started = time.process_time()
        if fmt == "ndjson":
            Ingestor(config, known).ndjson(body, sender="b", now=now)
        else:
            message = ExportLogsServiceRequest.FromString(body)
            Ingestor(config, known).otlp(proto_records(proto_groups(message)), sender="b", now=now)
        return (time.process_time() - started) / RECORDS * 1e6

    values = ["bench", *(secret(i) for i in range(secrets))]
    times: dict[bool, list[float]] = {False: [], True: []}
    for n in range(200):  # interleaved, so that the machine's load hits both alike
        redact.load(values if n % 2 else [])
        times[bool(n % 2)].append(once(n // 2))
    redact.load([])
    bare, masked = (sorted(times[k])[len(times[k]) // 4] for k in (False, True))  # lower quartile
    return (
        f"validation {masked:.2f} µs/record with {secrets + 1} secrets, {bare:.2f} without: "
        f"the secret scan costs {masked - bare:.2f} µs/record (in-process, lower quartile)"
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def thread_cpu(proc: psutil.Process) -> dict[int, tuple[str, float]]:
    """Thread id -> (kernel name, CPU seconds): Python threads are "python", the engine's named."""
    out = {}
    for t in proc.threads():
        try:
            name = Path(f"/proc/{proc.pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            continue
        out[t.id] = (name, t.user_time + t.system_time)
    return out


def by_kind(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> str:
    """CPU seconds per thread name over the window, largest first (engine pools merged)."""
    kinds: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        spent = seconds - before.get(tid, (name, 0.0))[1]
        key = name.rstrip("0123456789_-") or name
        kinds[key] = kinds.get(key, 0.0) + spent
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:8]
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in top if seconds >= 0.05)


def run_once(tree: Path, args: argparse.Namespace, fmt: str) -> dict[str, float]:  # noqa: PLR0915
    """One daemon from ``tree`` (its own ``server`` package), pushed for ``args.duration`` s.

    Prints the run's figures; returns them. CPU is the daemon process's and, apart,
    its ingest workers' (children, where the tree has them).
    """
    root = Path(tempfile.mkdtemp(prefix="lb-ingest-"))
    port = free_port()
    services = "".join(f"  - {{id: svc{i}, type: host, interval: 1h}}\n" for i in range(SERVICES))
    extra_tokens = "".join(f", t{i}: {secret(i)}" for i in range(args.secrets))
    workers = "" if args.workers is None else f"  workers: {args.workers}\n"
    config = root / "lightbulb.yaml"
    config.write_text(
        f"clickhouse:\n  embedded_path: {root / 'db'}\nscheduler:\n  spool_dir: {root / 'spool'}\n"
        f"dashboard:\n  port: {port}\nlogs:\n  tokens: {{bench: bench{extra_tokens}}}\n"
        f"  max_records: 10000\n{workers}"
        f"report:\n  enabled: false\nservices:\n{services}"
    )
    env = dict(os.environ)
    trace = None
    if args.trace:  # benchmarks/ingest_trace: the daemon and its workers log their timings
        trace = Path(tempfile.mkdtemp(prefix="trace-", dir=args.trace))
        env["LB_TRACE"] = str(trace)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "benchmarks" / "ingest_trace"), env.get("PYTHONPATH")) if p
        )
    daemon = subprocess.Popen([sys.executable, "-m", "server.cli", "run", "--config", str(config),
                               "--log-level", "WARNING"], cwd=tree, env=env)  # fmt: skip
    proc = psutil.Process(daemon.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(2)  # schema ready
    warm_up(port, proc, tree, 2 if args.workers is None else args.workers)  # 2: the default
    make = ndjson_body if fmt == "ndjson" else otlp_body
    bodies = [make(i) for i in range(20)]
    plain = len(bodies[0])
    if args.gzip:
        bodies = [gzip.compress(b) for b in bodies]
    path, ctype = (("/api/v1/logs", "application/x-ndjson") if fmt == "ndjson"
                   else ("/v1/logs", "application/x-protobuf"))  # fmt: skip
    kids = Children(proc)
    cpu0 = sum(proc.cpu_times()[:2])
    threads0 = thread_cpu(proc)
    load0 = Path("/proc/loadavg").read_text().strip()
    started = time.monotonic()
    until = started + args.duration
    every = args.clients * RECORDS / args.rate if args.rate else 0.0
    clients = [Client(port, path, ctype, bodies, until, every=every, timeout=args.timeout,
                      gzip=args.gzip,
                      offset=every * k / args.clients) for k in range(args.clients)]  # fmt: skip
    me = psutil.Process()
    own0 = sum(me.cpu_times()[:2])
    nices = NiceSampler(daemon.pid)
    nices.start()
    for c in clients:
        c.start()
    peak = peak_all = 0
    while any(c.is_alive() for c in clients):
        rss = proc.memory_info().rss
        peak, peak_all = max(peak, rss), max(peak_all, rss + kids.sample())
        time.sleep(0.2)
    window = time.monotonic() - started
    nices.stop()
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    kids.sample()
    kids_cpu = kids.cpu()
    own = sum(me.cpu_times()[:2]) - own0
    threads1 = thread_cpu(proc)
    abandoned = metric(port, "lightbulb_push_abandoned")
    stop_started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(60)
    stop_took = time.monotonic() - stop_started
    orphans = kids.alive()
    # what the daemon had not inserted before exit is in its log: one more start stores it
    store = EmbeddedStorage(root / "db", "monitor")
    stored_at_exit = int(store.query("SELECT count() AS n FROM monitor.service_logs "
                                     "WHERE service_id != 'warmup'")[0]["n"])  # fmt: skip
    store.close()
    pending, open_batches = Wal(root / "spool" / "wal", 0, readonly=True).recover()
    in_spool = sum(r.rows for r in pending if r.table == "service_logs") + sum(
        r.rows for b in open_batches for r in b.records if r.table == "service_logs"
    )
    shutil.rmtree(root, ignore_errors=True)  # a run's database is tens of MB
    accepted = sum(c.accepted for c in clients)
    latencies = sorted(x for c in clients for x in c.latencies)
    refused: dict[int, int] = {}
    for c in clients:
        for status, n in c.refused.items():
            refused[status] = refused.get(status, 0) + n

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0
        )

    load = Path("/proc/loadavg").read_text().strip()
    offered = f"offered {args.rate:,.0f}/s" if args.rate else "back to back"
    lost = max(accepted - stored_at_exit - in_spool, 0)
    print(f"== tree {tree}: format {fmt}, {args.clients} clients ({offered}), {RECORDS}-record "
          f"requests, {window:.1f} s, {args.secrets + 1} secrets; machine {os.cpu_count()} cores; "
          f"load before {load0}, after {load}")  # fmt: skip
    unanswered = max(stored_at_exit + in_spool - accepted, 0)  # a retry would duplicate them
    print(
        f"accepted {accepted} ({accepted / window:,.0f}/s); stored {stored_at_exit} "
        f"({stored_at_exit / window:,.0f}/s); in the spool at exit {in_spool}; lost {lost}; "
        f"stored without a 200 {unanswered}; abandoned (client gone, not stored) "
        f"{abandoned}; body {plain:,} B"
        + (f" ({len(bodies[0]):,} B gzip-compressed)" if args.gzip else "")
    )
    print(
        f"latency p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms; refused {refused or 'none'}; "
        f"client errors {sum(c.errors for c in clients)}"
    )
    print(
        f"daemon: peak RSS {peak / 2**20:.0f} MB ({peak_all / 2**20:.0f} MB with its workers), "
        f"CPU {cpu:.1f} s ({cpu / window:.2f} cores), workers CPU {kids_cpu:.1f} s "
        f"({kids_cpu / window:.2f} cores), SIGTERM took {stop_took:.1f} s, "
        f"workers left after exit {orphans}"
    )
    per = max(stored_at_exit, 1)
    print(
        f"CPU per record: daemon process {cpu / per * 1e6:.1f} µs, "
        f"workers {kids_cpu / per * 1e6:.1f} µs, "
        f"total {(cpu + kids_cpu) / per * 1e6:.1f} µs; daemon by thread (s): "
        f"{by_kind(threads0, threads1)}; load generator {own / window:.2f} cores"
    )
    print(f"daemon by thread@nice (s, sampled): {nices.summary()}")
    if args.redaction:
        print(redaction_cost(bodies, fmt, args.secrets))
    if trace is not None:
        print(f"trace ({trace}):")
        print(summarise(trace, started, started + window))
        slowest = sorted((x, d) for c in clients for x, d in zip(c.latencies, c.due, strict=True))
        (trace / "client.txt").write_text("".join(f"{d:.4f} {x * 1e3:.2f}\n" for x, d in slowest))
        print(
            "  client's slowest 1%: "
            + ", ".join(
                f"{x * 1e3:.0f} ms due +{d - started:.2f} s"
                for x, d in slowest[::-1][: len(slowest) // 100]
            )
        )
    return {"stored/s": stored_at_exit / window, "p50": pct(0.5), "p99": pct(0.99),
            "daemon µs": cpu / per * 1e6, "workers µs": kids_cpu / per * 1e6,
            "lost": lost, "refused": sum(refused.values()), "sigterm s": stop_took,
            "rss MB": peak_all / 2**20, "orphans": orphans}  # fmt: skip


def metric(port: int, name: str) -> str:
    """A counter from the daemon's /metrics (``-`` if it has none: an older tree)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith((f"{name} ", f"{name}_total ")):
            return str(int(float(line.split()[1])))
    return "-"


def summarise(trace: Path, start: float, end: float) -> str:
    """Percentiles of the traced phases within [start, end] (monotonic s), and what
    overlapped the slowest 1% of requests (see benchmarks/ingest_trace)."""
    from benchmarks.ingest_trace.summary import summary

    return summary(trace, start, end)


def warm_up(port: int, proc: psutil.Process, tree: Path, workers: int) -> None:
    """One small push (service ``warmup``, not counted) that starts a tree's ingest
    workers, and the wait for them, so the measured window starts with them running."""
    body = "\n".join(json.dumps({"timestamp": time.time(), "service_id": "warmup",
                                 "level": "INFO", "message": "warm-up " * 20})
                      for _ in range(5))  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/v1/logs", body=body.encode(),
                 headers={"Authorization": "Bearer bench"})  # fmt: skip
    conn.getresponse().read()
    if not (tree / "server" / "logs" / "workers.py").exists():
        return  # a tree from before the workers
    deadline = time.monotonic() + 60
    while len(proc.children()) < workers and time.monotonic() < deadline:
        time.sleep(0.2)


class Children:
    """The daemon's child processes (ingest workers): CPU seen and RSS now."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.procs: dict[int, psutil.Process] = {}
        self.sample()

    def sample(self) -> int:
        """Record every child's CPU; returns their RSS summed."""
        rss = 0
        for child in self.proc.children(recursive=True):
            try:
                spent = sum(child.cpu_times()[:2])
                rss += child.memory_info().rss
            except psutil.Error:
                continue
            self.procs.setdefault(child.pid, child)
            self.first.setdefault(child.pid, spent)
            self.last[child.pid] = spent
        return rss

    def cpu(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)

    def alive(self) -> int:
        """Children still running (after the daemon exited: orphans)."""
        return sum(1 for p in self.procs.values() if p.is_running() and p.status() != "zombie")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--format", choices=["ndjson", "otlp", "both"], default="ndjson")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--records", type=int, default=1000, help="records per request")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30,
        help="client timeout, s (a request past it counts as a client error)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="records/s offered on a fixed schedule (0: as fast as answered)",
    )
    parser.add_argument("--secrets", type=int, default=0,
                        help="more logs tokens in the config: secret values every pushed "
                             "text is scanned for")  # fmt: skip
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="logs.workers for the daemon (default: the tree's default)",
    )
    parser.add_argument(
        "--against",
        default=None,
        help="another tree to compare with: a directory, or a git revision of this "
        "repository (exported with `git archive`); each round runs it and this tree, "
        "alternating which goes first, and a table of both ends the output",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds with --against")
    parser.add_argument("--gzip", action="store_true",
                        help="send the bodies gzip-compressed (Content-Encoding)")  # fmt: skip
    parser.add_argument("--trace", default=None, metavar="DIR",
                        help="log per-request timings inside the daemon and its workers "
                             "(benchmarks/ingest_trace) under DIR, and summarise them")  # fmt: skip
    parser.add_argument("--redaction", action="store_true",
                        help="also measure the secret scan's cost in-process")  # fmt: skip
    args = parser.parse_args()
    global RECORDS  # noqa: PLW0603 - the body builders and clients read it
    RECORDS = args.records
    formats = ["ndjson", "otlp"] if args.format == "both" else [args.format]
    if args.against is None:
        for fmt in formats:
            run_once(ROOT, args, fmt)
        return 0
    other = Path(args.against)
    if not other.is_dir():
        other = Path(tempfile.mkdtemp(prefix="lb-ingest-tree-"))
        git = shutil.which("git") or "git"
        archive = subprocess.run([git, "-C", str(ROOT), "archive", args.against],
                                 check=True, capture_output=True).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(other, filter="data")
        print(f"{args.against} exported to {other}")
    table = []
    for n in range(args.rounds):
        for fmt in formats:
            order = [other, ROOT] if n % 2 == 0 else [ROOT, other]
            for tree in order:
                table.append((n + 1, fmt, tree, run_once(tree, args, fmt)))
    if other != Path(args.against):
        shutil.rmtree(other, ignore_errors=True)
    keys = list(table[0][3])
    print("\n| round | format | tree | " + " | ".join(keys) + " |")
    print("|---" * (3 + len(keys)) + "|")
    for n, fmt, tree, got in table:
        print(f"| {n} | {fmt} | {tree} | " + " | ".join(f"{got[k]:,.1f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
