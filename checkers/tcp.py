"""``tcp``: a port accepts connections (and optionally answers as expected), with latency."""

from __future__ import annotations

import socket
import ssl
import time

from pydantic import Field

from checkers.base import CheckContext, Checker, CheckResult, Metric, Settings, Status


class TcpSettings(Settings):
    host: str
    port: int = Field(ge=1, le=65535)
    send: str | None = None
    expect: str | None = None
    tls: bool = False
    degraded_over_ms: int | None = Field(None, ge=1, le=3_600_000)


class TcpChecker(Checker[TcpSettings]):
    Settings = TcpSettings

    def check(self, ctx: CheckContext) -> CheckResult:
        s = self.settings
        target = f"{s.host}:{s.port}"
        started = time.perf_counter()
        try:
            answer = self._exchange(ctx.timeout)
        except TimeoutError:
            return self._failed(f"{target}: timed out", started)
        except ConnectionRefusedError:
            return self._failed(f"{target}: connection refused", started)
        except (OSError, ssl.SSLError) as exc:
            return self._failed(f"{target}: {exc.strerror or exc}", started)
        elapsed = int((time.perf_counter() - started) * 1000)
        metrics = [Metric("connect_time_ms", elapsed, "ms")]
        if s.expect is not None and s.expect not in answer:
            shown = answer[:80] or "nothing"
            return CheckResult(
                Status.FAILED,
                f"{target}: expected {s.expect!r}, got {shown!r}",
                {},
                elapsed,
                metrics=metrics,
            )
        if s.degraded_over_ms is not None and elapsed > s.degraded_over_ms:
            return CheckResult(
                Status.DEGRADED, f"{target}: slow, {elapsed} ms", {}, elapsed, metrics=metrics
            )
        return CheckResult(
            Status.OK, f"{target}: connected in {elapsed} ms", {}, elapsed, metrics=metrics
        )

    def _exchange(self, timeout: float) -> str:
        s = self.settings
        deadline = time.monotonic() + timeout
        with socket.create_connection((s.host, s.port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if s.tls:
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=s.host)
            if s.send is not None:
                sock.sendall(s.send.encode())
            if s.expect is None:
                return ""
            received = b""
            while s.expect.encode() not in received:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    break  # peer closed
                received += chunk
            return received.decode("utf-8", errors="replace")

    @staticmethod
    def _failed(message: str, started: float) -> CheckResult:
        elapsed = int((time.perf_counter() - started) * 1000)
        return CheckResult(Status.FAILED, message, {}, elapsed)
