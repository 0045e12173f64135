"""Loopback targets shared by the benchmarks: HTTP on many ports, and sleeper processes.

    with http_targets(ports=50) as ports: ...      # an HTTP/1.1 server on 50 ports
    with sleepers(200, tmp) as (pids, pidfiles, markers): ...

The HTTP server is a separate process (asyncio, keep-alive, a 2-byte body), so
its CPU is never counted as the monitor's. Every service gets its own URL
(``/t/<n>``), spread over the ports: distinct targets, not one URL hit N times.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

SLEEP = shutil.which("sleep") or "/bin/sleep"
SERVER = r"""
import asyncio, sys

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: 2\r\n\r\nok")

async def main(count):
    loop = asyncio.get_running_loop()
    ports = []
    for _ in range(count):
        server = await loop.create_server(Http, "127.0.0.1", 0, backlog=1024)
        ports.append(server.sockets[0].getsockname()[1])
    print(" ".join(map(str, ports)), flush=True)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


@contextlib.contextmanager
def http_targets(ports: int = 50) -> Iterator[list[int]]:
    """Start the target server on ``ports`` loopback ports; yields the port numbers."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ports)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield [int(p) for p in proc.stdout.readline().split()]
    finally:
        proc.kill()
        proc.wait()


def url(ports: list[int], n: int) -> str:
    return f"http://127.0.0.1:{ports[n % len(ports)]}/t/{n}"


@contextlib.contextmanager
def sleepers(count: int, root: Path) -> Iterator[tuple[list[int], list[Path], list[str]]]:
    """``count`` idle processes with distinct command lines (``sleep 86400.000n``) and pidfiles."""
    procs = []
    markers = [f"86400.{n:05d}" for n in range(count)]
    try:
        for marker in markers:
            procs.append(subprocess.Popen([SLEEP, marker]))
        pidfiles = []
        for n, proc in enumerate(procs):
            path = root / f"sleeper-{n}.pid"
            path.write_text(str(proc.pid))
            pidfiles.append(path)
        yield [p.pid for p in procs], pidfiles, markers
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) from /proc/<pid>/stat."""
    import os

    data = Path(f"/proc/{pid}/stat").read_text()
    fields = data[data.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> Counter[str]:
    """CPU ticks (utime + stime) per thread name of ``pid``; a thread gone while read
    is left out."""
    ticks: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks[name] += int(fields[11]) + int(fields[12])
    return ticks


def peak_rss_mb(pid: int) -> float:
    """VmHWM of ``pid``: its resident peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
