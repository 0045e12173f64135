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
import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from server.core.files import read_capped

MAX_STDOUT = 64 * 1024  # as Nagios 4's plugin output limit
MAX_STDERR = 8 * 1024
STAT_MAX = 4096  # bytes of /proc/<pid>/stat read
ENVIRON_MAX = 4 * 1024 * 1024  # bytes of /proc/<pid>/environ searched for the cookie
COOKIE = "LIGHTBULB_PLUGIN_RUN"
PR_SET_CHILD_SUBREAPER = 36
REAP_DELAYS = (0.05, 0.2, 1.0, 3.0)  # seconds after the kill to collect adopted zombies

_runs = itertools.count(1)
_leaders: set[int] = set()  # plugins still running: never reaped or killed as strays
_strays: set[int] = set()  # killed strays not reaped yet
MAX_KILL_ROUNDS = 10
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


class _Plugin(asyncio.SubprocessProtocol):
    """Keeps the first bytes of stdout/stderr, counts the rest; tells exit and pipe close apart.

    ``Process.wait()`` would also wait for the pipes to close, which a stray holding
    them open (``sleep 900 &``) would put off until the deadline.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.dropped = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        kept, limit = (self.stdout, MAX_STDOUT) if fd == 1 else (self.stderr, MAX_STDERR)
        room = min(max(0, limit - len(kept)), len(data))
        kept += data[:room]
        self.dropped += len(data) - room

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def run_plugin(argv: list[str], env: dict[str, str]) -> PluginRun:
    """Run ``argv``; raises ``OSError`` if it cannot start. Cancelling it kills the tree."""
    become_subreaper()
    if _strays:
        reap_strays()
    cookie = f"{os.getpid()}.{next(_runs)}"
    loop = asyncio.get_running_loop()
    transport, proto = await loop.subprocess_exec(
        _Plugin,
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, COOKIE: cookie},
        start_new_session=True,
    )
    pid = transport.get_pid()
    _leaders.add(pid)
    finished = False
    try:
        await proto.exited
        # Strays holding our pipes open would keep them so: kill them, then read to EOF.
        kill_tree(pid, cookie)
        await proto.drained
        finished = True
    finally:
        _leaders.discard(pid)
        if not finished:
            kill_tree(pid, cookie)
        transport.close()
    code = transport.get_returncode()
    return PluginRun(
        -1 if code is None else code, bytes(proto.stdout), bytes(proto.stderr), proto.dropped
    )


def _stat(pid: int) -> tuple[int, int, int, bool] | None:
    """(ppid, process group, session, is a zombie) of ``pid`` from /proc; None if gone."""
    try:
        data, _more = read_capped(f"/proc/{pid}/stat", STAT_MAX)
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[2]), int(fields[3]), fields[0] == b"Z"


def _has_cookie(pid: int, cookie: str) -> bool:
    try:
        environ, _more = read_capped(f"/proc/{pid}/environ", ENVIRON_MAX)
    except OSError:
        return False
    return f"{COOKIE}={cookie}".encode() in environ.split(b"\0")


def processes_of(leader: int, cookie: str) -> dict[int, bool]:
    """Pid -> is a zombie, for the run led by ``leader``: its session and group, their
    descendants, and adopted strays carrying ``cookie`` (with their descendants).
    """
    me = os.getpid()
    table: dict[int, tuple[int, int, int, bool]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                table[int(entry.name)] = found
    members = {
        pid
        for pid, (ppid, group, session, zombie) in table.items()
        if pid != me
        and (
            leader in (session, group)
            or (ppid == me and not zombie and pid not in _leaders and _has_cookie(pid, cookie))
        )
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in members and child != me:
                members.add(child)
                stack.append(child)
    return {pid: table[pid][3] for pid in members}


def kill_tree(leader: int, cookie: str) -> int:
    """SIGKILL every process of the run (see :func:`processes_of`); returns how many.

    Scans again after each round of kills: a process that forked between the scan
    and its kill has a child the first scan did not see. A process with SIGKILL
    pending cannot fork again, so this ends.
    """
    killed: set[int] = set()
    seen: set[int] = set()
    for _round in range(MAX_KILL_ROUNDS):
        found = processes_of(leader, cookie)
        seen.update(found)
        fresh = [pid for pid, zombie in found.items() if not zombie and pid not in killed]
        if not fresh:
            break
        for pid in fresh:
            killed.add(pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    strays = seen - {leader}
    if strays:
        _strays.update(strays)
        _reap_later()
    return len(killed)


def _reap(pids: set[int]) -> set[int]:
    """waitpid the ones that died as our children; return those that may still become so."""
    left = set()
    for pid in pids - _leaders:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not (yet) ours: its parent, also killed, may die after it and hand it to us.
            found = _stat(pid)
            if found is not None and found[0] in pids:
                left.add(pid)
            continue
        if done == 0:
            left.add(pid)
    return left


def reap_strays() -> None:
    """Collect the exit status of strays that died as our (adopted) children."""
    left = _reap(set(_strays))
    _strays.intersection_update(left)


def _reap_later() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        reap_strays()
        return

    def step(delays: tuple[float, ...]) -> None:
        reap_strays()
        if _strays and delays:
            loop.call_later(delays[0], step, delays[1:])

    loop.call_later(REAP_DELAYS[0], step, REAP_DELAYS[1:])
