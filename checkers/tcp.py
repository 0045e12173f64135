"""``tcp``: a port accepts connections (and optionally answers as expected), with latency.

Runs on the event loop under the check's deadline: a half-open peer, a
blackhole that accepts and never answers, or a hung TLS handshake ends as
FAILED "timed out after 3.0 s". With ``expect``, at most ``MAX_EXPECT_BYTES``
are read (an endless stream cannot grow memory), decoded as UTF-8 with
replacement characters.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import Field, field_validator

from checkers.base import CheckContext, Checker, CheckResult, Metric, Settings, Status
from checkers.netio import (
    connect,
    connect_only,
    hostport,
    normalise_host,
    os_reason,
    tls_context,
)
from server.core.text import clip

MAX_EXPECT_BYTES = 64 * 1024


class TcpSettings(Settings):
    host: str
    port: int = Field(ge=1, le=65535)
    send: str | None = None
    expect: str | None = None
    tls: bool = False
    degraded_over_ms: int | None = Field(None, ge=1, le=3_600_000)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return normalise_host(value)


class _Reader(asyncio.Protocol):
    """Collects up to MAX_EXPECT_BYTES and wakes the check when ``expect`` arrives."""

    def __init__(self, expect: bytes | None) -> None:
        self.expect = expect
        self.received = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        room = MAX_EXPECT_BYTES - len(self.received)
        self.received += data[:room]
        found = self.expect is not None and self.expect in self.received
        if found or len(self.received) >= MAX_EXPECT_BYTES:
            self._finish()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class TcpChecker(Checker[TcpSettings]):
    Settings = TcpSettings
    timeout_status = Status.FAILED

    def __init__(self, settings: TcpSettings) -> None:
        super().__init__(settings)
        self._expect = settings.expect.encode() if settings.expect is not None else None
        self._target = hostport(settings.host, settings.port)

    def describe(self) -> str:
        return self._target

    async def check_async(self, ctx: CheckContext) -> CheckResult:
        s = self.settings
        started = time.perf_counter()
        if not s.tls and s.send is None and self._expect is None:
            try:
                await connect_only(s.host, s.port)
            except OSError as exc:
                return self._failed(f"{self._target}: {os_reason(exc)}", started)
            return self._connected(started, b"")
        tls = tls_context(True, None) if s.tls else None
        try:
            transport, proto = await connect(s.host, s.port, lambda: _Reader(self._expect), tls)
        except OSError as exc:
            return self._failed(f"{self._target}: {os_reason(exc)}", started)
        reader: _Reader = proto  # type: ignore[assignment]
        try:
            if s.send is not None:
                transport.write(s.send.encode())
            if self._expect is not None:
                await reader.done
        finally:
            transport.close()
        return self._connected(started, bytes(reader.received))

    def _connected(self, started: float, received: bytes) -> CheckResult:
        s = self.settings
        elapsed = int((time.perf_counter() - started) * 1000)
        metrics = [Metric("connect_time_ms", elapsed, "ms")]
        if self._expect is not None and self._expect not in received:
            answer = received.decode("utf-8", errors="replace")
            shown = clip(answer, 80) or "nothing"
            return CheckResult(
                Status.FAILED,
                f"{self._target}: expected {s.expect!r}, got {shown!r}",
                {},
                elapsed,
                metrics=metrics,
            )
        if s.degraded_over_ms is not None and elapsed > s.degraded_over_ms:
            return CheckResult(
                Status.DEGRADED, f"{self._target}: slow, {elapsed} ms", {}, elapsed, metrics=metrics
            )
        return CheckResult(
            Status.OK, f"{self._target}: connected in {elapsed} ms", {}, elapsed, metrics=metrics
        )

    @staticmethod
    def _failed(message: str, started: float) -> CheckResult:
        elapsed = int((time.perf_counter() - started) * 1000)
        return CheckResult(Status.FAILED, message, {}, elapsed)
