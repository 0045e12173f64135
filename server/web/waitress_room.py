"""Room at the connection limit: a new connection is always taken, an idle one goes.

waitress stops accepting at its connection limit and leaves newcomers in the kernel's
listen backlog until a connection closes. A client that opens hundreds of connections
and sends nothing (reopening each one closed) then keeps every real client waiting
behind its own reconnects in that backlog: an attacker with 600 such sockets made 4 of
5 pushes and ``/healthz`` time out for as long as it ran.

Here the server never stops accepting. At the limit (:data:`server.web.serve.
CONNECTION_LIMIT`) a newcomer is taken and one connection that is idle (no request, or
its headers still arriving) is closed to make room: one of the client address holding
the most connections, the one quiet longest of them. A client hoarding connections
loses its own first, and one address (a collector beside the daemon shares
``127.0.0.1`` with any local attacker) still sees its newest connection served before
its idle ones. The backlog drains at accept speed, so nobody waits in it. Only when no
connection is idle (every one busy with a request) is the newcomer closed at once, a
reset its client can retry, rather than an unanswered wait.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from waitress.channel import HTTPChannel


def readable(server: Any) -> bool:
    """waitress's ``BaseWSGIServer.readable`` (the periodic maintenance, then whether to
    accept) without its stop at the connection limit: room is made as connections come."""
    now = time.time()  # waitress's clock for its cleanup schedule
    if now >= server.next_channel_cleanup:
        server.next_channel_cleanup = now + server.adj.cleanup_interval
        server.maintenance(now)
    return bool(server.accepting)


def handle_accept(server: Any) -> None:
    """waitress's ``handle_accept``, making room first when the server is at its limit
    (see the module); counts the connections closed for room in ``server.door.stats``."""
    try:
        accepted = server.accept()
        if accepted is None:
            return
        conn, addr = accepted
        server.set_socket_options(conn)
    except OSError:  # as waitress: a socket the client already closed, say
        return
    addr = server.fix_addr(addr)
    if len(server._map) >= server.adj.connection_limit:
        victim = idlest(server._map.values())
        if victim is None:
            conn.close()  # every connection busy with a request: the newcomer retries
            server.door.stats.turned_away += 1
            return
        victim.will_close = True
        victim.handle_close()
        server.door.stats.evicted += 1
    server.channel_class(server, conn, addr, server.adj, map=server._map)


def idlest(dispatchers: Any) -> Any | None:
    """Of ``dispatchers`` (a server's map: its listening socket, channels), the idle
    channel to close for room: of the client address holding the most channels, the one
    quiet longest, those with no request before those whose headers are arriving; None
    when no channel is idle."""
    channels = [c for c in dispatchers if isinstance(c, HTTPChannel)]
    held = Counter(_host(c) for c in channels)
    idle = [c for c in channels
            if (c.request is None or not c.request.headers_finished) and not c.requests
            and not c.total_outbufs_len and not c.will_close]  # fmt: skip
    if not idle:
        return None
    return min(idle, key=lambda c: (-held[_host(c)], c.request is not None, c.last_activity))


def _host(channel: Any) -> str:
    addr = channel.addr
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
