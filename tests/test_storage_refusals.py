"""How a ClickHouse error reaches the user: kind (retry or not) and words."""

from __future__ import annotations

import pytest

from server.storage.base import StorageError, StorageUnavailable, refusal

# The server's own texts (ClickHouse 24.x / 18.16), as the driver and chDB raise them.
DISK_FULL = [
    "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)",
    "Code: 243. DB::Exception: Not enough space for merging parts",
    "Code: 74. DB::Exception: Cannot write to file /var/lib/clickhouse/data/x.bin, "
    "errno: 28, strerror: No space left on device",
]


@pytest.mark.parametrize("text", DISK_FULL)
def test_a_full_server_disk_is_said_as_disk_full_and_retried(text: str) -> None:
    error = refusal("ClickHouse at db:9000", "INSERT INTO monitor.service_logs (a) VALUES", text)
    assert isinstance(error, StorageUnavailable)
    assert str(error).startswith("ClickHouse at db:9000: disk full; ")
    assert "INSERT INTO monitor.service_logs" in str(error)


def test_other_refusals_do_not_claim_a_full_disk() -> None:
    error = refusal("ClickHouse at db:9000", "SELECT x", "Code: 47. DB::Exception: Unknown x")
    assert type(error) is StorageError
    assert "disk full" not in str(error)
    parts = refusal("chDB", "INSERT", "Code: 252. DB::Exception: Too many parts (300)")
    assert isinstance(parts, StorageUnavailable)
    assert "disk full" not in str(parts)
