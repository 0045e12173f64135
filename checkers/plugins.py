"""Run a plugin so that it, and everything it starts, ends with the check.

Each run gets a session of its own (``setsid``) and a cookie in its
environment. When the plugin exits, or the check's deadline cancels the run,
every process of that session, every descendant of one, and every process the
daemon adopted that carries the cookie is killed with SIGKILL (as Nagios kills
a timed-out check's process group). The daemon makes itself a child subreaper
(``PR_SET_CHILD_SUBREAPER``, Linux), so a grandchild that double-forked or
called ``setsid`` is re-parented to us rather than to init: we still see it,
kill it and reap it. The cookie is how Jenkins' ProcessTreeKiller finds a
build's strays; here it only tells our adopted strays apart from another
running plugin's.

Output is read up to ``MAX_STDOUT``/``MAX_STDERR`` bytes; the rest is drained and
counted, so a plugin printing megabytes neither grows memory nor blocks on a
full pipe.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_STDOUT = 64 * 1024  # as Nagios 4's plugin output limit
MAX_STDERR = 8 * 1024
COOKIE = "LIGHTBULB_PLUGIN_RUN"
PR_SET_CHILD_SUBREAPER = 36
REAP_DELAYS = (0.05, 0.2, 1.0, 3.0)  # seconds after the kill to collect adopted zombies

_runs = itertools.count(1)
_leaders: set[int] = set()  # plugins still running: never reaped or killed as strays
_subreaper: bool | None = None


@dataclass
class PluginRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    dropped: int  # output bytes past the limits, read and thrown away


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); True if we are a subreaper. Done once."""
    global _subreaper  # noqa: PLW0603 - a property of the whole process
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper = False
    return _subreaper


async def _read(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, int]:
    kept, dropped = bytearray(), 0
    if stream is None:
        return b"", 0
    while chunk := await stream.read(65536):
        room = max(0, limit - len(kept))
        kept += chunk[:room]
        dropped += len(chunk) - min(room, len(chunk))
    return bytes(kept), dropped


async def run_plugin(argv: list[str], env: dict[str, str]) -> PluginRun:
    """Run ``argv``; raises ``OSError`` if it cannot start. Cancelling it kills the tree."""
    become_subreaper()
    cookie = f"{os.getpid()}.{next(_runs)}"
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, COOKIE: cookie},
        start_new_session=True,
    )
    _leaders.add(proc.pid)
    reads = asyncio.gather(_read(proc.stdout, MAX_STDOUT), _read(proc.stderr, MAX_STDERR))
    try:
        code = await proc.wait()
        # Strays that kept our pipes open would hold the reads forever: kill them first.
        kill_tree(proc.pid, cookie)
        (out, dropped_out), (err, dropped_err) = await reads
    finally:
        _leaders.discard(proc.pid)
        if proc.returncode is None or not reads.done():
            kill_tree(proc.pid, cookie)
            reads.cancel()
    return PluginRun(code, out, err, dropped_out + dropped_err)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, process group, session) of ``pid`` from /proc, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[2]), int(fields[3])


def _has_cookie(pid: int, cookie: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{COOKIE}={cookie}".encode() in environ.split(b"\0")


def processes_of(leader: int, cookie: str) -> set[int]:
    """Pids of the run led by ``leader``: its session and group, their descendants, and
    adopted strays carrying ``cookie`` (with their descendants). The leader itself included.
    """
    me = os.getpid()
    table: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                table[int(entry.name)] = found
    members = {
        pid
        for pid, (ppid, group, session) in table.items()
        if pid != me
        and (
            leader in (session, group)
            or (ppid == me and pid not in _leaders and _has_cookie(pid, cookie))
        )
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _group, _session) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in members and child != me:
                members.add(child)
                stack.append(child)
    return members


def kill_tree(leader: int, cookie: str) -> int:
    """SIGKILL every process of the run (see :func:`processes_of`); returns how many."""
    victims = processes_of(leader, cookie)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    strays = victims - {leader}
    if strays:
        _reap_later(strays)
    return len(victims)


def _reap(pids: set[int]) -> set[int]:
    """waitpid the ones that became our (dead) children; the rest are left to retry."""
    left = set()
    for pid in pids:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not (yet) ours: its parent, also killed, may die after it and hand it to us.
            if os.path.exists(f"/proc/{pid}"):
                left.add(pid)
            continue
        if done == 0:
            left.add(pid)
    return left


def _reap_later(pids: set[int]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _reap(pids)
        return

    def step(remaining: set[int], delays: tuple[float, ...]) -> None:
        left = _reap(remaining)
        if left and delays:
            loop.call_later(delays[0], step, left, delays[1:])

    loop.call_later(REAP_DELAYS[0], step, pids, REAP_DELAYS[1:])
