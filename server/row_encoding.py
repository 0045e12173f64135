"""Rows the daemon writes, encoded as the log stores them: Arrow tables of each table's
declared schema.

A row is a tuple in its table's column order (:data:`server.recorder.TABLE_COLUMNS`);
its types are the ones ``sql/`` declares (:func:`server.schema.declared_types`). Two
ways in: all or nothing, for records acknowledged to a client (a bad row refuses the
request), and keeping the good, for the daemon's own buffered rows (a bad row is
handed back with its reason, for the writer to set aside).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from server.schema import declared_types
from server.storage.arrow import BadRow, schema_of, to_arrow

Row = tuple[Any, ...]


class Encoder:
    """``columns``: table -> its column names, for every table written. ``schemas``:
    table -> Arrow schema, for the tables ``sql/`` declares. Each schema's converters are
    built here, once, at start (:mod:`server.storage.arrow` keeps pyarrow from importing
    pandas on its first conversion)."""

    def __init__(self, columns: Mapping[str, tuple[str, ...]]) -> None:
        types = declared_types()
        self.schemas = {
            table: schema_of(cols, [types[table][c] for c in cols])
            for table, cols in columns.items()
            if table in types
        }
        for schema in self.schemas.values():
            to_arrow(schema, [])

    def all_or_nothing(
        self, tables: Mapping[str, list[Row] | pa.Table]
    ) -> list[tuple[str, pa.Table]]:
        """Every table's rows encoded, in order, empty ones left out; an Arrow table given
        is taken as it is (encoded already, by an ingest worker). Raises :class:`BadRow`
        with ``table`` and ``index`` of the first row that cannot be encoded."""
        encoded = []
        for table, rows in tables.items():
            if isinstance(rows, pa.Table):
                if rows.num_rows:
                    encoded.append((table, rows))
            elif rows:
                try:
                    encoded.append((table, to_arrow(self.schemas[table], rows)))
                except BadRow as bad:
                    bad.table = table
                    raise
        return encoded

    def keeping_good(
        self, table: str, rows: list[Row]
    ) -> tuple[list[pa.Table], list[tuple[Row, str]]]:
        """The rows that can be encoded (one Arrow table, or none), and each that cannot
        with the reason."""
        bad_rows: list[tuple[Row, str]] = []
        while rows:
            try:
                return [to_arrow(self.schemas[table], rows)], bad_rows
            except BadRow as bad:
                bad_rows.append((rows[bad.index], bad.reason))
                rows = rows[: bad.index] + rows[bad.index + 1 :]
        return [], bad_rows
