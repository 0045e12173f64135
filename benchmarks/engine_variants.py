"""Variants of the embedded insert path compared by ``benchmarks/engine_rounds.py``.

Each entry takes a fresh :class:`EmbeddedStorage` with ``sql/`` applied, changes
what the variant changes, and returns ``insert(table, data)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pyarrow as pa

from server.storage.arrow import write_ipc
from server.storage.embedded import EmbeddedStorage

Insert = Callable[[str, pa.Table], None]
MVS = ("service_status_summary", "service_current_mv", "service_status_daily_mv")


def _raw(store: EmbeddedStorage, settings: list[str], structure: bool = False,
         token: bool = True) -> Insert:  # fmt: skip
    """An insert like ``insert_arrow``'s with other settings (and optionally file()'s structure)."""
    path = store.path / "bench-batch.arrow"

    def insert(table: str, data: pa.Table) -> None:
        extra = list(settings)
        if token:
            extra += [f"insert_deduplication_token = '{uuid.uuid4().hex}'",
                      "deduplicate_blocks_in_dependent_materialized_views = 1"]  # fmt: skip
        shape = ""
        if structure:
            types = store._column_types(table)
            shape = ", '" + ", ".join(f"{c} {types[c]}" for c in data.column_names) + "'"
        cols = ", ".join(data.column_names)
        with open(path, "wb") as out:
            write_ipc(data, out)
        store._session.query(
            f"INSERT INTO monitor.{table} ({cols}) SETTINGS {', '.join(extra)} "
            f"SELECT * FROM file('{path}', 'ArrowStream'{shape})"
        )

    return insert


def base(store: EmbeddedStorage) -> Insert:
    return lambda table, data: (
        store.insert_arrow(table, data, dedup_token=uuid.uuid4().hex) and None
    )


def nomv(store: EmbeddedStorage) -> Insert:
    for view in MVS:
        store.execute(f"DROP VIEW monitor.{view}")
    return base(store)


def onemv(store: EmbeddedStorage) -> Insert:
    for view in MVS[1:]:
        store.execute(f"DROP VIEW monitor.{view}")
    return base(store)


def notoken(store: EmbeddedStorage) -> Insert:
    return _raw(store, ["max_insert_threads = 1"], token=False)


def oldanalyzer(store: EmbeddedStorage) -> Insert:
    return _raw(store, ["max_insert_threads = 1", "allow_experimental_analyzer = 0"])


def structure(store: EmbeddedStorage) -> Insert:
    return _raw(store, ["max_insert_threads = 1"], structure=True)


def threads1(store: EmbeddedStorage) -> Insert:
    return _raw(store, ["max_insert_threads = 1", "max_threads = 1"])


def nooptimize(store: EmbeddedStorage) -> Insert:
    return _raw(store, ["max_insert_threads = 1", "optimize_on_insert = 0"])


def nomerge(store: EmbeddedStorage) -> Insert:
    store.execute("SYSTEM STOP MERGES")
    return base(store)


def idle5(store: EmbeddedStorage) -> Insert:
    return base(store)


def idle1(store: EmbeddedStorage) -> Insert:
    return base(store)


# engine (server) settings of a variant, added to the connection string before it opens
ENGINE = {
    "idle5": ("background_processing_pool_thread_sleep_seconds_if_nothing_to_do=5",),
    "idle1": ("background_processing_pool_thread_sleep_seconds_if_nothing_to_do=1",),
}

VARIANTS: dict[str, Callable[[EmbeddedStorage], Insert]] = {
    f.__name__: f
    for f in (
        base,
        nomv,
        onemv,
        notoken,
        oldanalyzer,
        structure,
        threads1,
        nooptimize,
        nomerge,
        idle5,
        idle1,
    )
}
