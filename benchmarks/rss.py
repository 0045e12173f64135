"""Where a daemon's resident memory goes, at N services (the mix of ``scale.py``).

    python benchmarks/rss.py                          # 1,000 services, 40 s warm
    python benchmarks/rss.py --services 1000 --tracemalloc 25
    python benchmarks/rss.py --env JE_MALLOC_CONF=narenas:1 --env MALLOC_ARENA_MAX=2
    python benchmarks/rss.py --tree /tmp/base         # another checkout, same targets

Starts the targets and the daemon as ``scale.py`` does (half ``http``, a quarter
``tcp``, a quarter ``python_process``; embedded chDB; dashboard off), waits
``--warm`` seconds, then reads ``/proc/<pid>/status``, ``smaps_rollup`` and
``smaps`` and prints RSS (and PSS, USS) split by what holds it:

- each mapped file (chDB's ``_chdb.abi3.so`` by segment: text, read-only data
  and relocations, RELRO, data/bss), Python, pyarrow's libraries, the rest;
- anonymous memory: the brk heap (glibc malloc: Python's large objects),
  thread stacks (an anonymous mapping right after a guard page), and the other
  anonymous mappings (jemalloc's extents for chDB, Python's 1 MiB obmalloc
  arenas, glibc's per-thread malloc arenas), by size.

Then, inside the daemon (a wrapper thread, after smaps was read): glibc malloc,
pymalloc, pyarrow's pool and chDB's jemalloc figures, and object counts. With
``--tracemalloc N`` the daemon runs with tracemalloc on and prints its N
largest allocation sites (tracemalloc's own bookkeeping inflates the RSS of
that run: read the RSS from a run without it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# the daemon's environment as the caller gave it: importing ``server`` below sets
# ARROW_DEFAULT_MEMORY_POOL, which would reach a --tree daemon that does not set it
ENVIRON = dict(os.environ)

from benchmarks.scale import write_config  # noqa: E402
from benchmarks.targets import cpu_seconds, http_targets, sleepers  # noqa: E402

MB = 1024.0  # smaps figures are in kB
HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+\s*(.*)$")
# The daemon runs under this wrapper: once the benchmark has read smaps from outside
# (and touches ``go``), one thread writes what the allocators inside hold to ``out``.
PROBE = r"""
import ctypes, gc, json, os, re, runpy, sys, tempfile, threading, time, tracemalloc
out, go, top = sys.argv.pop(1), sys.argv.pop(1), int(sys.argv.pop(1))
if top:
    tracemalloc.start(1)

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]

def probe():
    while not os.path.exists(go):
        time.sleep(0.2)
    lines = []
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    mi = libc.mallinfo2()
    lines.append(f"glibc malloc: brk arena {mi.arena / 2**20:.1f} MiB, mmapped blocks "
                 f"{mi.hblkhd / 2**20:.1f} MiB ({mi.hblks}), in use {mi.uordblks / 2**20:.1f} MiB, "
                 f"free in arenas {mi.fordblks / 2**20:.1f} MiB")
    with tempfile.TemporaryFile("w+") as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        text = err.read()
    arenas = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    if arenas and used:  # pymalloc says nothing while tracemalloc wraps it
        lines.append(f"pymalloc: {arenas.group(1)} arenas of 1 MiB mapped, "
                     f"{int(used.group(1).replace(',', '')) / 2**20:.1f} MiB in blocks")
    try:
        import pyarrow as pa
        pool = pa.default_memory_pool()
        lines.append(f"pyarrow pool {pool.backend_name}: {pool.bytes_allocated() / 2**20:.1f} MiB "
                     f"allocated, peak {pool.max_memory() / 2**20:.1f} MiB")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"pyarrow: {exc}")
    from server.storage.embedded import EmbeddedStorage
    gc.unfreeze()  # the daemon froze its start-up objects, the store among them
    stores = [o for o in gc.get_objects() if isinstance(o, EmbeddedStorage)]
    gc.freeze()
    for store in stores[:1]:
        stats = store.query("SELECT * FROM system.jemalloc_stats")[0]["stats"]
        head = re.search(r"Allocated: .*", stats)
        lines.append("chDB jemalloc: " + (head.group(0) if head else "?"))
        for row in store.query("SELECT metric, value FROM system.metrics "
                               "WHERE metric = 'MemoryTracking'"):
            lines.append(f"chDB {row['metric']}: {int(row['value']) / 2**20:.1f} MiB")
    counts = {}
    for o in gc.get_objects():
        counts[type(o).__name__] = counts.get(type(o).__name__, 0) + 1
    lines.append(f"modules {len(sys.modules)}; frozen by gc.freeze {gc.get_freeze_count()}; "
                 f"gc-tracked objects {sum(counts.values())}: "
                 + ", ".join(f"{k} {v}" for k, v in
                             sorted(counts.items(), key=lambda kv: -kv[1])[:12]))
    if top:
        snap = tracemalloc.take_snapshot()
        stats = snap.statistics("lineno")
        total = sum(s.size for s in stats) / 2**20
        lines.append(f"tracemalloc: {total:.1f} MiB in {len(stats)} sites")
        for s in stats[:top]:
            lines.append(f"  {s.size / 2**20:7.2f} MiB {s.count:8d} blocks  {s.traceback[0]}")
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(out + ".tmp", out)

threading.Thread(target=probe, daemon=True, name="rss-probe").start()
sys.argv = ["lightbulb"] + sys.argv[1:]
runpy.run_module("server.cli", run_name="__main__")
"""


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    path: str
    fields: dict[str, int] = field(default_factory=dict)

    @property
    def size_kb(self) -> int:
        return (self.end - self.start) // 1024


def read_smaps(pid: int) -> list[Mapping]:
    maps: list[Mapping] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = HEADER.match(line)
        if head:
            start, end, perms, offset, path = head.groups()
            maps.append(Mapping(int(start, 16), int(end, 16), perms, int(offset, 16), path))
        elif maps and line.endswith(" kB"):
            name, value = line.split(":", 1)
            maps[-1].fields[name] = int(value.split()[0])
    return maps


def status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        out[name] = value.strip()
    return out


def rollup(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        out[name] = int(value.split()[0])
    return out


def classify(maps: list[Mapping]) -> dict[str, list[Mapping]]:  # noqa: PLR0912 - one branch a kind
    """Group mappings by what holds them (see the module docstring)."""
    groups: dict[str, list[Mapping]] = defaultdict(list)
    previous: Mapping | None = None
    for m in maps:
        path = m.path
        if path.endswith("_chdb.abi3.so"):
            seg = {"r--p": "rodata+rela", "r-xp": "text", "rw-p": "data/bss"}.get(m.perms, m.perms)
            if m.perms == "r--p" and m.offset > 0:
                seg = "RELRO (.data.rel.ro, got)"
            key = f"chdb .so {seg}"
        elif path.startswith("/") and ("pyarrow" in path or "libarrow" in path):
            key = "pyarrow libraries"
        elif "site-packages/" in path:
            key = "extension modules: " + path.split("site-packages/")[1].split("/")[0]
        elif path.startswith("/") and ("lib-dynload" in path):
            key = "stdlib extension modules"
        elif path.startswith("/") and ("/python3" in path or "libpython" in path):
            key = "python binary/libpython"
        elif path.startswith("/"):
            key = "other files: " + Path(path).name
        elif path == "[heap]":
            key = "anon: brk heap (glibc malloc)"
        elif path == "[stack]":
            key = "anon: main thread stack"
        elif path.startswith("["):
            key = "kernel " + path
        elif m.perms == "---p":
            key = "anon: guard/reserved (---p)"
        elif (
            previous is not None
            and previous.perms == "---p"
            and previous.end == m.start
            and previous.size_kb <= 64
            and 64 <= m.size_kb <= 16 * 1024
        ):
            key = f"anon: thread stacks ({m.size_kb} KiB each)"
        elif m.size_kb >= 64 * 1024:
            key = "anon: >= 64 MiB mappings (malloc arenas, jemalloc)"
        elif m.size_kb >= 1024:
            key = "anon: 1-64 MiB mappings (obmalloc arenas, jemalloc extents)"
        else:
            key = "anon: < 1 MiB mappings"
        groups[key].append(m)
        previous = m
    return groups


def report(pid: int) -> None:
    st, roll, maps = status(pid), rollup(pid), read_smaps(pid)
    print(
        f"VmRSS {st['VmRSS']} (peak VmHWM {st['VmHWM']}): RssAnon {st['RssAnon']}, "
        f"RssFile {st['RssFile']}, RssShmem {st['RssShmem']}; threads {st['Threads']}"
    )
    uss = roll.get("Private_Clean", 0) + roll.get("Private_Dirty", 0)
    print(
        f"smaps_rollup: Rss {roll['Rss'] / MB:.1f} MB, Pss {roll['Pss'] / MB:.1f} MB, "
        f"USS {uss / MB:.1f} MB, Pss_Anon {roll.get('Pss_Anon', 0) / MB:.1f}, "
        f"Pss_File {roll.get('Pss_File', 0) / MB:.1f}"
    )
    groups = classify(maps)
    print(f"{'what':64} {'n':>4} {'Rss MB':>8} {'Pss MB':>8} {'dirty':>7} {'virt MB':>9}")
    order = sorted(groups.items(), key=lambda kv: -sum(m.fields.get("Rss", 0) for m in kv[1]))
    for key, ms in order:
        rss = sum(m.fields.get("Rss", 0) for m in ms)
        if rss < 256:
            continue
        pss = sum(m.fields.get("Pss", 0) for m in ms)
        dirty = sum(m.fields.get("Private_Dirty", 0) + m.fields.get("Shared_Dirty", 0) for m in ms)
        virt = sum(m.size_kb for m in ms)
        print(
            f"{key[:64]:64} {len(ms):4d} {rss / MB:8.1f} {pss / MB:8.1f} {dirty / MB:7.1f} "
            f"{virt / MB:9.1f}"
        )
    threads = Path(f"/proc/{pid}/task")
    names: dict[str, int] = defaultdict(int)
    for task in threads.iterdir():
        with contextlib.suppress(OSError):
            names[(task / "comm").read_text().strip()] += 1
    print(
        "threads by name:",
        ", ".join(f"{k} {v}" for k, v in sorted(names.items(), key=lambda kv: -kv[1])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=40.0)
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="TOP")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose daemon runs")
    args = parser.parse_args()
    env = dict(ENVIRON)
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    print(f"load {Path('/proc/loadavg').read_text().strip()}; env {args.env}; tree {args.tree}")
    n = args.services
    with tempfile.TemporaryDirectory(prefix="lb-rss-") as tmp:
        root = Path(tmp)
        with (
            http_targets(min(100, max(1, n // 2))) as ports,
            sleepers(min(500, max(1, n // 4)), root) as (_pids, pidfiles, _markers),
        ):
            config = write_config(root, n, args.interval, ports, pidfiles)
            out, go = root / "probe.txt", root / "probe.go"
            cmd = [sys.executable, "-c", PROBE, str(out), str(go), str(args.tracemalloc)]
            cmd += ["run", "--config", str(config), "--log-level", "WARNING"]
            with open(root / "daemon.log", "w") as log:
                daemon = subprocess.Popen(
                    cmd, cwd=args.tree, stdout=log, stderr=subprocess.STDOUT, env=env
                )
                try:
                    time.sleep(args.warm / 2)
                    cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
                    time.sleep(args.warm / 2)
                    cpu = (cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0)
                    print(f"CPU over the second half of the warm-up: {cpu:.3f} cores")
                    if daemon.poll() is not None:
                        sys.exit(f"daemon exited: {(root / 'daemon.log').read_text()[-2000:]}")
                    report(daemon.pid)
                    go.touch()
                    deadline = time.monotonic() + 60
                    while not out.exists() and time.monotonic() < deadline:
                        time.sleep(0.2)
                    print(out.read_text() if out.exists() else "(no probe output)", end="")
                    if not out.exists():
                        print((root / "daemon.log").read_text()[-3000:])
                finally:
                    daemon.send_signal(signal.SIGTERM)
                    daemon.wait(60)
    print(f"load after {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
