"""Rows kept in memory: the writer's part a test needs (``add``, ``add_durable``,
``durable``), with one insert per table into a real store when the test says so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from server.storage import Storage
from server.tables import WRITTEN_TABLES


class MemoryRows:
    """``rows``: ``(table, row)`` in the order written; durable writes are no different."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows.append((table, row))

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.rows.extend((table, row) for row in rows)

    def durable(self, tables: Mapping[str, list[tuple[Any, ...]]]) -> None:
        for table, rows in tables.items():
            self.add_durable(table, rows)

    def insert_into(
        self, store: Storage, tables: Mapping[str, Sequence[str]] = WRITTEN_TABLES
    ) -> None:
        """Every row of ``tables`` (name -> columns) into ``store``, one insert per table,
        as the writer does; the rows are then gone from here."""
        for table, columns in tables.items():
            rows = [row for t, row in self.rows if t == table]
            if rows:
                store.insert(table, columns, rows)
        self.rows.clear()
