"""Room at the connection limit: a new connection is always taken, a loitering one goes.

waitress stops accepting at its connection limit and leaves newcomers in the kernel's
listen backlog until a connection closes. A client that opens hundreds of connections
and sends nothing (reopening each one closed) then keeps every real client waiting
behind its own reconnects in that backlog: an attacker with 600 such sockets made 4 of
5 pushes and ``/healthz`` time out for as long as it ran.

Here the server never stops accepting. At the limit (:data:`server.web.serve.
CONNECTION_LIMIT`) a newcomer is taken and one connection that is *loitering* is closed
to make room: one of the client address holding the most connections, the one quiet
longest of them. Loitering (:func:`kind`): sending nothing (no request, or an idle
kept-alive connection), its headers still arriving, or its body arriving slower than
:data:`~server.web.admission.MIN_RATE` (a push held or refused alike), each judged once
it is :data:`~server.web.admission.MEASURE_AFTER` s old. A connection too young to judge,
or whose body arrives at speed, goes only when no connection loiters; one being served
(a request complete, an answer being written) never does.

Bodies trickled a byte a second by a token holder, reopened as each was closed, once
kept every slot (only connections sending nothing could go): each newcomer then closed
the newest connection, not yet read, which was as often a real client's (a reset, its
request unread: every probe failed at 1,000 such connections). A fresh connection is
the last of its address to go: its request is read in the next turn of the loop.

The room keeps each address's connections in the order they were last heard from
(:meth:`Room.touch`) and the addresses by how many they hold, so finding the one to
close looks at the first few connections of the biggest holder, not all of them.

Connections are accepted up to :data:`ACCEPT_BATCH` a turn of the loop (nginx's
``multi_accept``): a turn costs a look at every connection, so one accept a turn left
newcomers waiting in the backlog behind a flood's reconnects. The backlog itself is
the kernel's most (``net.core.somaxconn``, :func:`listen_backlog`). Only when no
connection can go (every one busy with a request) is the newcomer closed at once, a
reset its client can retry, rather than an unanswered wait.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from server.web.admission import MEASURE_AFTER, MIN_RATE

# Newcomers accepted in one turn of the I/O loop at most: enough to drain a flood's
# reconnects from the backlog between two looks at every connection, few enough that
# the connections already open are read between batches.
ACCEPT_BATCH = 32
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
DEFAULT_BACKLOG = 4096  # Linux's somaxconn since 5.4, when it cannot be read


def listen_backlog(path: Path = SOMAXCONN) -> int:
    """The listen backlog to ask for: the kernel's most (``path``, somaxconn; it caps any
    larger value anyway), so a burst of connects waits to be accepted rather than has its
    SYNs dropped (retried after 1 s, then 3 s: a probe's timeout)."""
    try:
        return max(int(path.read_text()), 128)
    except (OSError, ValueError):
        return DEFAULT_BACKLOG


class Kind(enum.IntEnum):
    """What a connection is doing, for the room: which may be closed, and which first."""

    LOITERING = 0  # silent, or its request arriving slower than MIN_RATE: closed first
    ARRIVING = 1  # too young to judge, or its request arriving at speed; not a held push
    # a push the door holds, loitering: it gives its slot to a push arriving at speed
    # (Door.doomed); closed, its slot would only go to the next of a flood's pushes, too
    # young to be judged in turn
    HOLDING = 2
    SENDING = 3  # a push the door holds, too young to judge or arriving at speed
    BUSY = 4  # a request being served or its answer being written: never closed


def kind(channel: Any, heard: float, now: float) -> Kind:
    """``channel``'s :class:`Kind` at ``now`` (``time.monotonic()``), last heard from at
    ``heard``."""
    if channel.requests or channel.total_outbufs_len or channel.will_close:
        return Kind.BUSY
    request = channel.request
    took = now - (heard if request is None else request.started)
    held = request is not None and request.charged is not None
    if took < MEASURE_AFTER:
        return Kind.SENDING if held else Kind.ARRIVING
    if request is None or not request.headers_finished:
        return Kind.LOITERING  # nothing sent, or headers a real client sends in one go
    if request.body_bytes_received >= MIN_RATE * took:
        return Kind.SENDING if held else Kind.ARRIVING
    return Kind.HOLDING if held else Kind.LOITERING


class Room:
    """One server's connections by client address, each address's in the order they were
    last heard from, and the addresses by how many they hold (counts kept as connections
    come and go: :meth:`enter`, :meth:`leave`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a connection may close in a thread serving it
        self._hosts: dict[str, OrderedDict[Any, float]] = {}  # address -> {channel: heard}
        self._holding: list[set[str]] = [set()]  # [n]: the addresses holding n connections
        self._top = 0  # the most any address holds

    def __len__(self) -> int:
        return sum(len(channels) for channels in self._hosts.values())

    def held(self, host: str) -> int:
        """Connections of address ``host`` now."""
        return len(self._hosts.get(host, ()))

    def enter(self, channel: Any, now: float | None = None) -> None:
        """``channel`` is open (heard from at ``now``, ``time.monotonic()``)."""
        host = host_of(channel)
        with self._lock:
            channels = self._hosts.setdefault(host, OrderedDict())
            if channel in channels:
                return
            self._move(host, len(channels), len(channels) + 1)
            channels[channel] = time.monotonic() if now is None else now

    def leave(self, channel: Any) -> None:
        """``channel`` is closed; once however often called."""
        host = host_of(channel)
        with self._lock:
            channels = self._hosts.get(host)
            if channels is None or channels.pop(channel, None) is None:
                return
            self._move(host, len(channels) + 1, len(channels))
            if not channels:
                del self._hosts[host]

    def touch(self, channel: Any, now: float | None = None) -> None:
        """``channel`` was heard from (bytes read) at ``now``: last of its address to go."""
        with self._lock:
            channels = self._hosts.get(host_of(channel))
            if channels is not None and channel in channels:
                channels[channel] = time.monotonic() if now is None else now
                channels.move_to_end(channel)

    def victim(self, now: float) -> Any | None:
        """The connection to close for room at ``now`` (``time.monotonic()``): the first
        loitering one (:func:`kind`) of the addresses holding the most, the one quiet
        longest of an address first; else the first of the next :class:`Kind` in the
        same order; None when every connection is busy.

        Loitering connections are the quiet ones, at the front of their address's order,
        so the search usually ends within a few; it reads every connection only when
        none loiters."""
        first: list[Any] = [None] * Kind.BUSY  # the first found of each kind but BUSY
        with self._lock:
            for count in range(self._top, 0, -1):
                for host in self._holding[count]:
                    for channel, heard in self._hosts[host].items():
                        found = kind(channel, heard, now)
                        if found is Kind.LOITERING:
                            return channel
                        if found is not Kind.BUSY and first[found] is None:
                            first[found] = channel
        return next((channel for channel in first if channel is not None), None)

    def _move(self, host: str, old: int, new: int) -> None:
        """``host`` now holds ``new`` connections, not ``old`` (hold ``self._lock``)."""
        if old:
            self._holding[old].discard(host)
        if new:
            if new == len(self._holding):
                self._holding.append(set())
            self._holding[new].add(host)
        self._top = max(self._top, new)
        while self._top and not self._holding[self._top]:
            self._top -= 1


def host_of(channel: Any) -> str:
    """The client address of ``channel`` (its ``addr``: a (host, port) tuple, or a Unix
    socket's path)."""
    addr = channel.addr
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


def readable(server: Any) -> bool:
    """waitress's ``BaseWSGIServer.readable`` (the periodic maintenance, then whether to
    accept) without its stop at the connection limit: room is made as connections come."""
    now = time.time()  # waitress's clock for its cleanup schedule
    if now >= server.next_channel_cleanup:
        server.next_channel_cleanup = now + server.adj.cleanup_interval
        server.maintenance(now)
    return bool(server.accepting)


def handle_accept(server: Any) -> None:
    """waitress's ``handle_accept``, up to :data:`ACCEPT_BATCH` connections a call, making
    room first when the server is at its limit (see the module); counts the connections
    closed for room in ``server.door.stats``."""
    for _ in range(ACCEPT_BATCH):
        if not server.accepting:
            return  # the door closed (WebServer.close_door, another thread) under the loop
        try:
            accepted = server.accept()
            if accepted is None:
                return  # none waiting
            conn, addr = accepted
            server.set_socket_options(conn)
        except OSError:  # as waitress: a socket the client already closed, say
            continue
        except AttributeError:  # the listener closed between the look and the accept
            return
        addr = server.fix_addr(addr)
        if len(server._map) >= server.adj.connection_limit:
            victim = server.room.victim(time.monotonic())
            if victim is None:
                conn.close()  # every connection busy with a request: the newcomer retries
                server.door.stats.turned_away += 1
                continue
            victim.will_close = True
            victim.handle_close()
            server.door.stats.evicted += 1
        server.channel_class(server, conn, addr, server.adj, map=server._map)
