"""How a ClickHouse error reaches the user: kind (retry or not) and words."""

from __future__ import annotations

import pytest

from server.storage.base import DiskFull, StorageError, StorageUnavailable, refusal

# The server's own texts (ClickHouse 24.x / 18.16), as the driver and chDB raise them.
DISK_FULL = [
    "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)",
    "Code: 243. DB::Exception: Not enough space for merging parts",
    "Code: 74. DB::Exception: Cannot write to file /var/lib/clickhouse/data/x.bin, "
    "errno: 28, strerror: No space left on device",
    # the errno decides, not strerror's words (a localised C library words it otherwise)
    "Code: 75. DB::ErrnoException: Cannot write to file /var/lib/clickhouse/data/x.bin, "
    "errno: 28, strerror: Kein Platz mehr auf dem Gerät",
    "Code: 75. DB::ErrnoException: Cannot write to file x.bin, errno: 122, strerror: Disk quota "
    "exceeded",
]


@pytest.mark.parametrize("text", DISK_FULL)
def test_a_full_server_disk_is_said_as_disk_full_and_retried(text: str) -> None:
    error = refusal("ClickHouse at db:9000", "INSERT INTO monitor.service_logs (a) VALUES", text)
    assert isinstance(error, DiskFull)  # a StorageUnavailable: retried
    assert str(error).startswith("ClickHouse at db:9000: disk full; ")
    assert "INSERT INTO monitor.service_logs" in str(error)


def test_other_refusals_do_not_claim_a_full_disk() -> None:
    error = refusal("ClickHouse at db:9000", "SELECT x", "Code: 47. DB::Exception: Unknown x")
    assert type(error) is StorageError
    assert "disk full" not in str(error)
    timeout = refusal("chDB", "INSERT", "Code: 209. DB::NetException: Timeout (errno: 110)")
    assert type(timeout) is StorageUnavailable and "disk full" not in str(timeout)
    parts = refusal("chDB", "INSERT", "Code: 252. DB::Exception: Too many parts (300)")
    assert isinstance(parts, StorageUnavailable)
    assert "disk full" not in str(parts)
