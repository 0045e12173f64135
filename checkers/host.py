"""``host``: the machine the daemon runs on — CPU, memory, swap, disks, load, network."""

from __future__ import annotations

import os
import time

import psutil
from pydantic import Field

from checkers.base import (
    CheckContext,
    Checker,
    CheckResult,
    Metric,
    Settings,
    Status,
    over_thresholds,
)


class HostThresholds(Settings):
    cpu_percent: float | None = Field(None, ge=0, le=100)
    memory_percent: float | None = Field(None, ge=0, le=100)
    swap_percent: float | None = Field(None, ge=0, le=100)
    disk_percent: float | None = Field(None, ge=0, le=100)
    load_per_cpu: float | None = Field(None, ge=0, le=1000)


class HostSettings(Settings):
    thresholds: HostThresholds | None = None
    #: Mount points to report; default: every physical file system.
    mounts: list[str] | None = None


class HostChecker(Checker[HostSettings]):
    Settings = HostSettings

    def __init__(self, settings: HostSettings) -> None:
        super().__init__(settings)
        psutil.cpu_percent(None)  # primes the counter: each check reads the time since the last

    def check(self, ctx: CheckContext) -> CheckResult:
        cpu = psutil.cpu_percent(None)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        load1, load5, load15 = os.getloadavg()
        cpus = psutil.cpu_count() or 1
        net = psutil.net_io_counters()
        metrics = [
            Metric("cpu_percent", cpu, "percent"),
            Metric("memory_percent", memory.percent, "percent"),
            Metric("memory_available_bytes", memory.available, "bytes"),
            Metric("swap_percent", swap.percent, "percent"),
            Metric("load1", load1),
            Metric("load5", load5),
            Metric("load15", load15),
            Metric("net_bytes_sent", net.bytes_sent, "bytes"),
            Metric("net_bytes_recv", net.bytes_recv, "bytes"),
            Metric("uptime_seconds", round(time.time() - psutil.boot_time()), "seconds"),
        ]
        worst_disk = 0.0
        for mount in self._mounts():
            try:
                usage = psutil.disk_usage(mount)
            except OSError:
                continue
            worst_disk = max(worst_disk, usage.percent)
            metrics.append(Metric("disk_used_percent", usage.percent, "percent", {"mount": mount}))
            metrics.append(Metric("disk_free_bytes", usage.free, "bytes", {"mount": mount}))
        values = {
            "cpu_percent": cpu,
            "memory_percent": memory.percent,
            "swap_percent": swap.percent,
            "disk_percent": worst_disk,
            "load_per_cpu": round(load1 / cpus, 2),
        }
        breaches = over_thresholds(values, self.settings.thresholds)
        status = Status.DEGRADED if breaches else Status.OK
        message = (
            "; ".join(breaches)
            if breaches
            else f"cpu {cpu:.0f}%, memory {memory.percent:.0f}%, load {load1:.2f}"
        )
        return CheckResult(status, message, values, None, cpu, memory.percent, metrics)

    def _mounts(self) -> list[str]:
        if self.settings.mounts is not None:
            return self.settings.mounts
        return sorted({p.mountpoint for p in psutil.disk_partitions(all=False)}) or ["/"]
