"""The one storage interface both backends implement, and its errors.

Queries use ClickHouse's own ``{name:Type}`` placeholders; values are never
formatted into SQL text. Rows come back as dicts with Python values (aware UTC
datetimes, ints, floats, dicts for ``Map``), the same from either backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Row = dict[str, Any]
Params = Mapping[str, Any]


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> str:
    """Table and column names are interpolated into SQL, so only identifiers pass."""
    if not _NAME.match(name):
        raise StorageError(f"invalid identifier {name!r}")
    return name


def insert_into(database: str, table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO db.table (a, b)`` with every name checked; the data follows separately."""
    cols = ", ".join(check_name(c) for c in columns)
    return f"INSERT INTO {check_name(database)}.{check_name(table)} ({cols})"


def first_line(exc: BaseException) -> str:
    """The part of a ClickHouse exception worth showing: its first line, no stack trace."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StorageError(Exception):
    """A query or insert the server refused; retrying the same call will not help."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now; the caller may retry or spool."""


class StorageLocked(StorageError):
    """The embedded database is owned by another process."""


class Storage(Protocol):
    database: str
    #: ``"embedded"`` or ``"cluster"``, for messages and for DDL rendering.
    kind: str

    def execute(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, SYSTEM)."""

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run a SELECT and return its rows."""

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        """Insert ``rows`` (tuples in ``columns`` order) into ``database.table`` in one block.

        ``dedup_token`` makes a retried insert of the same batch a no-op on the
        server (``insert_deduplication_token``). Returns the rows sent.
        """

    def close(self) -> None: ...

    def describe(self) -> str:
        """Where this storage points, for messages (never includes a password)."""
