"""The one storage interface both backends implement, and its errors.

Queries use ClickHouse's own ``{name:Type}`` placeholders; values are never
formatted into SQL text. Rows come back as dicts with Python values (aware UTC
datetimes, ints, floats, dicts for ``Map``), the same from either backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from server.core.oserrors import NO_SPACE
from server.core.redact import redact
from server.core.text import clip

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


# Server error codes that say "not now" rather than "not this": the same statement
# may well succeed later (ClickHouse's src/Common/ErrorCodes.cpp names them).
TRANSIENT_CODES = {
    3,  # UNEXPECTED_END_OF_FILE
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    74,  # CANNOT_READ_FROM_FILE_DESCRIPTOR
    75,  # CANNOT_WRITE_TO_FILE_DESCRIPTOR
    159,  # TIMEOUT_EXCEEDED
    173,  # CANNOT_ALLOCATE_MEMORY
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    225,  # NO_ZOOKEEPER
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    243,  # NOT_ENOUGH_SPACE
    252,  # TOO_MANY_PARTS
    279,  # ALL_CONNECTION_TRIES_FAILED
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
}
# A missing table or database: someone dropped it, or the schema is not applied
# yet. Not the rows' fault: the writer applies the schema again and retries.
MISSING_CODES = {60, 81}  # UNKNOWN_TABLE, UNKNOWN_DATABASE
# ClickHouse's src/Common/ErrorCodes.cpp: M(243, NOT_ENOUGH_SPACE), a reservation on a
# disk refused ("Cannot reserve 1.00 MiB, not enough space", "Not enough space for merging")
NOT_ENOUGH_SPACE = 243
# A failed system call is reported with its errno ("Cannot write to file x.bin, errno: 28,
# strerror: No space left on device", code 74/75, whatever the call): the number first,
# strerror(ENOSPC) for messages that carry only the text
_ERRNO = re.compile(r"\berrno:?\s*(\d+)")
_NO_SPACE_TEXT = "No space left on device"
_TRANSIENT_TEXT = (_NO_SPACE_TEXT, "Too many parts")
_CODE = re.compile(r"Code:\s*(\d+)")


def error_code(text: str) -> int | None:
    """The ``Code: N`` a ClickHouse message starts with, if any."""
    match = _CODE.search(text)
    return int(match.group(1)) if match else None


def disk_full(code: int | None, text: str) -> bool:
    """Whether a ClickHouse error (its ``code`` and ``text``) says the disk is full: code
    NOT_ENOUGH_SPACE, or a system call's ``errno`` ENOSPC/EDQUOT."""
    if code == NOT_ENOUGH_SPACE or _NO_SPACE_TEXT in text:
        return True
    return any(int(n) in NO_SPACE for n in _ERRNO.findall(text))


def server_message(text: str) -> str:
    """``Code: 62. DB::Exception: Syntax error ... Stack trace: ...`` -> the sentence that matters.

    Drops the ``Code: N.`` prefix (kept as a number elsewhere), the
    ``DB::Exception:`` tag and anything after the first line (stack traces).
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    head = " ".join(lines[:2]) if lines and re.fullmatch(r"Code:\s*\d+\.?", lines[0]) else ""
    line = head or (lines[0] if lines else "")
    line = _CODE.sub("", line, count=1).lstrip(". ")
    line = line.replace("DB::Exception: ", "", 1).replace("DB::Exception:", "", 1).strip()
    return line.split(" Stack trace", 1)[0] or clip(text.strip(), 200)


def statement_head(sql: str) -> str:
    """The statement's first non-comment line, cut to 120 characters, for messages."""
    for line in sql.splitlines():
        if line.strip() and not line.strip().startswith("--"):
            text = line.strip()
            text = redact(text)
            return text if len(text) <= 120 else text[:117] + "..."
    return clip(sql.strip(), 120)


def refusal(where: str, sql: str, text: str, code: int | None = None) -> StorageError:
    """The error for a statement the server answered with an exception.

    The message names the server (``where``), the statement's first line and the
    server's own words with its code, e.g. ``ClickHouse at h:9000 refused
    `SELECT x FROM t`: Code 47: Unknown expression identifier `x` ...``. Returns
    :class:`DiskFull` for a full disk (:func:`disk_full`; its message says so first:
    ``<where>: disk full; ...``), :class:`StorageUnavailable` for the other "not now"
    errors (too many parts, memory, timeouts),
    :class:`StorageMissing` for a missing table or database, :class:`StorageError`
    otherwise (the statement or its data is refused).
    """
    code = code if code is not None else error_code(text)
    said = f"Code {code}: {server_message(text)}" if code is not None else server_message(text)
    message = f"{where} refused `{statement_head(sql)}`: {said}"
    if disk_full(code, text):
        return DiskFull(f"{where}: disk full; {message}")
    if code in TRANSIENT_CODES or any(t in text for t in _TRANSIENT_TEXT):
        return StorageUnavailable(message)
    if code in MISSING_CODES:
        return StorageMissing(message)
    return StorageError(message)


class StorageError(Exception):
    """A query or insert the server refused; retrying the same call will not help."""


class StorageUnavailable(StorageError):
    """The database cannot take this right now (unreachable, disk full, overloaded); retry."""


class DiskFull(StorageUnavailable):
    """The database's disk is full (``ENOSPC``/``EDQUOT``, or ClickHouse's
    NOT_ENOUGH_SPACE): retried like any unavailability, and told as what it is."""


class DescriptorsShort(StorageUnavailable):
    """This process is nearly out of file descriptors: the embedded engine is not entered
    (an ``EMFILE`` inside a chDB query can wedge it for good; :mod:`server.core.descriptors`)."""


def staging_failed(where: str, path: object, exc: OSError) -> StorageUnavailable:
    """The error for a batch file that could not be written at ``path``: :class:`DiskFull`
    for ``ENOSPC``/``EDQUOT``, else :class:`StorageUnavailable` (not now either way)."""
    if exc.errno in NO_SPACE:
        return DiskFull(f"{where}: disk full; could not stage a batch at {path}: "
                        f"{exc.strerror or exc}")  # fmt: skip
    return StorageUnavailable(f"{where}: could not stage a batch at {path}: {exc.strerror or exc}")


class StorageMissing(StorageError):
    """The table or database is not there: apply the schema, then retry."""


class StorageLocked(StorageError):
    """The embedded database is owned by another process."""


class Storage(Protocol):
    database: str
    #: ``"embedded"`` or ``"cluster"``, for messages and for DDL rendering.
    kind: str
    #: The ClickHouse cluster whose replicas hold the tables (``clickhouse.cluster.name``),
    #: None on a single server or the embedded engine: what reads of ``system`` tables
    #: that must see every replica go through (:func:`server.storage.changes.part_tokens`).
    cluster: str | None

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

    def stored_mask(self, table: str, data: Any) -> list[bool] | None:
        """For each row of the Arrow table ``data``: is an equal row stored in ``table``?

        None: cannot tell, trust the insert's deduplication token. Asked before a
        batch from a previous run is inserted again (see :mod:`server.inserter`).
        """

    def insert_arrow(self, table: str, data: Any, *, dedup_token: str | None = None) -> int:
        """Insert an Arrow table (column names = the table's columns) in one block.

        The writer's path: batches are Arrow tables from the write-ahead log.
        Raises like :meth:`insert`.
        """

    def yield_cpu(self, on: bool) -> None:
        """Run later inserts at a lower CPU priority (``on``) or the normal one.

        The inserter yields while it keeps up (:meth:`server.inserter.Inserter._yield_cpu`).
        Only the embedded engine shares this process's CPU with the pushes; a cluster's
        inserts run on its servers, so there it does nothing.
        """

    def close(self) -> None: ...

    def describe(self) -> str:
        """Where this storage points, for messages (never includes a password)."""
