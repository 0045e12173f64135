"""The oldest ClickHouse the schema runs on, and the check that refuses older ones.

Each feature is listed with the release that brought it (ClickHouse changelog),
so a refusal names exactly what the server lacks, not just a number.
"""

from __future__ import annotations

import re

from server.storage.base import Storage, StorageError

# (release, feature) for everything in sql/ or the writer that old servers lack.
FEATURES: tuple[tuple[tuple[int, int], str], ...] = (
    ((19, 3), "LowCardinality columns"),
    ((19, 6), "TTL"),
    ((19, 10), "column codecs (DoubleDelta, Gorilla, T64)"),
    ((19, 11), "tokenbf_v1 skipping indexes"),
    ((20, 1), "DateTime64"),
    ((21, 1), "Map"),
    ((22, 2), "insert_deduplication_token"),
)
MINIMUM = (22, 3)  # the first long-term-support release with all of the above


class UnsupportedServer(StorageError):
    """The server is older than :data:`MINIMUM`; the message names both and what is missing."""


def parse_version(text: str) -> tuple[int, ...]:
    """``"22.3.15.33"`` -> ``(22, 3, 15, 33)``; unparseable parts end the tuple."""
    parts = []
    for piece in text.strip().split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def missing_features(version: tuple[int, ...]) -> list[str]:
    """Features of :data:`FEATURES` that ``version`` predates, each with its release."""
    return [f"{name} ({major}.{minor})" for (major, minor), name in FEATURES
            if version[:2] < (major, minor)]  # fmt: skip


def require_supported(storage: Storage) -> str:
    """Read the server's version; return it, or raise :class:`UnsupportedServer`.

    Raises StorageUnavailable (from the query) when the server cannot be reached.
    """
    rows = storage.query("SELECT version() AS version")
    text = str(rows[0]["version"]) if rows else ""
    version = parse_version(text)
    if version[:2] < MINIMUM:
        missing = missing_features(version) or ["a release this old is not tested"]
        raise UnsupportedServer(
            f"{storage.describe()} runs ClickHouse {text or 'of unknown version'}; Lightbulb "
            f"needs {MINIMUM[0]}.{MINIMUM[1]} or newer. Missing: {', '.join(missing)}. "
            "Upgrade the server (or leave clickhouse.hosts empty for the embedded database)"
        )
    return text
