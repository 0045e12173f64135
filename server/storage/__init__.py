"""Storage: one small interface, two backends (embedded chDB, ClickHouse cluster)."""

from __future__ import annotations

from server.config.models import ClickHouseConfig
from server.storage.base import (
    DiskFull,
    Row,
    Storage,
    StorageError,
    StorageLocked,
    StorageUnavailable,
)

__all__ = [
    "DiskFull",
    "Row",
    "Storage",
    "StorageError",
    "StorageLocked",
    "StorageUnavailable",
    "open_storage",
]


def open_storage(config: ClickHouseConfig) -> Storage:
    """The embedded store when ``hosts`` is empty, the cluster otherwise."""
    if config.embedded:
        from server.storage.embedded import EmbeddedStorage

        return EmbeddedStorage(config.embedded_path, config.database)
    from server.storage.cluster import ClusterStorage

    return ClusterStorage(config)
