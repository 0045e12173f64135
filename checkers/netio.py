"""Network plumbing shared by the async checkers: names, lookups, connections.

Name lookups do not use asyncio's ``getaddrinfo``, which runs on the loop's
small default executor: a few lookups hanging on a dead DNS server would hold
every other lookup behind them. Ours run in their own :class:`DeadlinePool`
(a hung lookup lends the pool a thread), one lookup per name at a time however
many checks want it, answers kept for ``DNS_TTL`` seconds. IP literals are never
looked up. Every await here sits under the caller's deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from functools import lru_cache
from typing import Any, TypeVar

from checkers.base import invalid
from server.core.files import read_whole
from server.core.pool import DeadlinePool
from server.core.text import clip

T = TypeVar("T")
DNS_TTL = 30.0  # seconds an answer is reused: getaddrinfo does not tell us the record's TTL
DNS_THREADS = 4
DNS_EXTRA_THREADS = 60  # lent to lookups that hang; bounded by the names that hang at once
DNS_SLOW = 0.5  # seconds after which a lookup is written off and the pool lends a thread
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)

Address = tuple[int, tuple[Any, ...]]  # (family, sockaddr)


def normalise_host(value: str) -> str:
    """A host name or IP literal; ``[::1]`` -> ``::1``. Raises a config error otherwise."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        try:
            ipaddress.IPv6Address(text.split("%")[0])
        except ValueError:
            raise invalid("expected an IPv6 address inside [ ]") from None
        return text
    if ":" in text:
        try:
            ipaddress.IPv6Address(text.split("%")[0])
        except ValueError:
            raise invalid("expected a host name or IP address (no port: use `port`)") from None
        return text
    if not _HOSTNAME.match(text):
        raise invalid("expected a host name or IP address")
    return text


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets: ``[::1]:8080``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    return True


# -- per-loop state ---------------------------------------------------------------------
class LoopState:
    """Objects that live as long as one event loop (connection pools, lookups in flight)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.closers: list[Callable[[], Awaitable[None]]] = []


_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
    weakref.WeakKeyDictionary()
)


def loop_local(key: str, factory: Callable[[], T]) -> T:
    """The running loop's ``key`` object, made by ``factory`` on first use."""
    state = _STATES.setdefault(asyncio.get_running_loop(), LoopState())
    if key not in state.values:
        value = factory()
        state.values[key] = value
        close = getattr(value, "aclose", None)
        if close is not None:
            state.closers.append(close)
    return state.values[key]  # type: ignore[no-any-return]


async def close_loop_resources() -> None:
    """Close what :func:`loop_local` made for the running loop (idle connections …)."""
    state = _STATES.pop(asyncio.get_running_loop(), None)
    if state is not None:
        for close in state.closers:
            await close()


# -- lookups ----------------------------------------------------------------------------
_dns_pool: DeadlinePool | None = None


def dns_pool() -> DeadlinePool:
    global _dns_pool  # noqa: PLW0603 - one pool per process, made on first lookup
    if _dns_pool is None:
        _dns_pool = DeadlinePool(DNS_THREADS, "lightbulb-dns", DNS_EXTRA_THREADS)
    return _dns_pool


class Resolver:
    """Cached, single-flight ``getaddrinfo`` on :func:`dns_pool` (one per loop)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, list[Address]]] = {}
        self._inflight: dict[tuple[str, int], asyncio.Future[list[Address]]] = {}

    async def resolve(self, host: str, port: int) -> list[Address]:
        """Addresses of ``host`` (IPv4 and IPv6), raising ``OSError`` as getaddrinfo would."""
        if is_ip(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            return [(family, (host, port))]
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        shared = self._inflight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._lookup(host, port))
            self._inflight[key] = shared
            shared.add_done_callback(lambda _f: self._inflight.pop(key, None))
        return await asyncio.shield(shared)

    async def _lookup(self, host: str, port: int) -> list[Address]:
        work: Future[Any] = dns_pool().submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        # Nobody cancels this coroutine (callers wait on it through shield). A slow lookup
        # lends the pool a thread so lookups queued behind it go on; one outliving
        # DNS_TTL is given up so the next check of the name asks again.
        answer = asyncio.wrap_future(work)
        try:
            done, _pending = await asyncio.wait({answer}, timeout=DNS_SLOW)
            if not done:
                dns_pool().overdue(work)
            infos = await asyncio.wait_for(answer, DNS_TTL)
        except TimeoutError:
            raise OSError(f"name lookup of {host} hung for {DNS_TTL:g} s") from None
        except socket.gaierror as exc:
            raise OSError(exc.strerror or str(exc)) from None
        addresses = [(info[0], info[4]) for info in infos]
        self._cache[(host, port)] = (time.monotonic() + DNS_TTL, addresses)
        return addresses


def resolver() -> Resolver:
    return loop_local("resolver", Resolver)


async def connect(
    host: str,
    port: int,
    factory: Callable[[], asyncio.Protocol],
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """A connection to the first address of ``host`` that accepts; raises ``OSError``."""
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for family, sockaddr in await resolver().resolve(host, port):
        try:
            transport, protocol = await loop.create_connection(
                factory,
                host=sockaddr[0],
                port=port,
                family=family,
                ssl=tls,
                server_hostname=(server_hostname or host) if tls else None,
            )
        except OSError as exc:
            error = exc
            continue
        return transport, protocol
    raise error or OSError(f"no address for {host}")


async def connect_only(host: str, port: int) -> None:
    """Open and close a TCP connection (no transport, no protocol: the cheapest "it accepts")."""
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for family, sockaddr in await resolver().resolve(host, port):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            error = exc
            continue
        finally:
            sock.close()
        return
    raise error or OSError(f"no address for {host}")


CA_CERT_MAX = 4 * 2**20  # bytes of a ca_cert file read (Debian's whole bundle is ~220 KB)


@lru_cache(maxsize=64)
def tls_context(verify: bool, ca_cert: str | None) -> ssl.SSLContext:
    """One client context per (verify, CA file): loading the trust store costs milliseconds.

    The CA file is read as every local file is (:mod:`server.core.files`): it runs on the
    event loop, so a FIFO or a device there must not block or flood it. Raises OSError
    (``ca_cert … is not a regular file (a FIFO)``, too large, missing) or ssl.SSLError.
    """
    if ca_cert:
        data = read_whole(ca_cert, CA_CERT_MAX, "ca_cert")
        pem = b"-----BEGIN" in data
        context = ssl.create_default_context(cadata=data.decode("latin-1") if pem else data)
    else:
        context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def os_reason(exc: BaseException) -> str:
    """A short reason for a failed connection: ``connection refused``, ``TLS error: …``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS error: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return clip(f"TLS error: {exc.reason or exc}", 200)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError):
        return clip(str(exc.strerror or exc), 200)
    return clip(str(exc), 200)
