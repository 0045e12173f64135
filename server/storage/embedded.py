"""Embedded backend: chDB (the ClickHouse engine in-process) on a local directory.

chDB allows one data directory per process and its files must not be shared
between processes, so we take an exclusive ``flock`` on ``lightbulb.lock`` in
the directory first. A second process gets a :class:`StorageLocked` naming the
holder instead of corrupting the store.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from server.core import descriptors
from server.storage.arrow import schema_of, to_arrow, write_ipc
from server.storage.base import (
    DescriptorsShort,
    Params,
    Row,
    StorageError,
    StorageLocked,
    StorageMissing,
    check_name,
    first_line,
    insert_into,
    refusal,
    staging_failed,
)
from server.storage.library_pages import release_clean_pages
from server.storage.priority import ENGINE_SETTING, INSERT_NICE, Unnice
from server.storage.values import converter, keep

_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
LOCK_NAME = "lightbulb.lock"
BATCH_NAME = "lightbulb-insert.arrow"
# Server settings of the embedded engine (chDB takes them in the connection string).
# Its memory worker re-reads the process's memory every 50-100 ms by default: ~2 ms
# of CPU a second doing nothing for a monitor writing a batch every few seconds.
# Each MergeTree table's background task looks for work every 0.1 s when it found
# none, and its cleanup (every 1 s, merge_tree_clear_old_parts_interval_seconds)
# counts as work, so with our ~20 tables the engine woke ~110 times a second:
# ~3 ms of CPU a second idle (0.15 ms per check at 200 checks per 10 s). Looking
# every 5 s: ~8 wake-ups and ~0.6 ms a second; merges still start at once, since
# every insert wakes its table's task (benchmarks/engine_rounds.py, variant idle5).
ENGINE_SETTINGS = "&".join(
    (
        "memory_worker_period_ms=1000",
        "background_processing_pool_thread_sleep_seconds_if_nothing_to_do=5",
        ENGINE_SETTING,  # merges yield the CPU to the pushes (server.storage.priority)
    )
)


class EmbeddedStorage:
    kind = "embedded"
    cluster: str | None = None  # one engine, in this process

    def __init__(self, path: str | os.PathLike[str], database: str) -> None:
        from chdb import _chdb, session

        self.path = Path(path).resolve()
        self.database = check_name(database)
        self._insert_nice = 0  # the inserter turns it on: yield_cpu()
        self._unnice = Unnice()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file: IO[str] | None = _acquire_lock(self.path)
        try:
            self._session = session.Session(f"{self.path}?{ENGINE_SETTINGS}")
        except Exception as exc:
            self._release()
            raise StorageLocked(
                f"cannot open the embedded database at {self.path}: {first_line(exc)} "
                "(one process can open only one embedded database)"
            ) from None
        # the library's pages that only loading and starting the engine read (~35 MB)
        release_clean_pages(_chdb.__file__)
        # chDB sessions are not safe for concurrent use; checks, writer and dashboard share one.
        self._mutex = threading.Lock()
        self._types: dict[str, dict[str, str]] = {}
        self._batch_file = self.path / BATCH_NAME  # the batch being inserted (under _mutex)

    def describe(self) -> str:
        return f"embedded chDB at {self.path} (database {self.database})"

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._run(sql, "CSV", params)

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        text = self._run(sql, "JSONCompact", params)
        if not text.strip():
            return []
        doc = json.loads(text)
        names = [col["name"] for col in doc["meta"]]
        rows: list[Row] = [dict(zip(names, row, strict=True)) for row in doc["data"]]
        # only the columns whose text needs converting, each in one pass: a page's 1,000
        # rows converted cell by cell through a Python call each cost ~3 ms more
        converted = set()  # a name twice (``SELECT x, x``): its last column's value, once
        for col in reversed(doc["meta"]):
            name, convert = col["name"], converter(col["type"])
            if convert is not keep and name not in converted:
                converted.add(name)
                for row in rows:
                    row[name] = convert(row[name])
        return rows

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        if not rows:
            return 0
        types = self._column_types(table)
        sql = insert_into(self.database, table, columns)
        missing = [c for c in columns if c not in types]
        if missing:
            self._types.pop(table, None)
            raise StorageMissing(f"{self.describe()} refused `{sql}`: no column "
                                 f"{', '.join(missing)} in {self.database}.{table}")  # fmt: skip
        try:
            data = to_arrow(schema_of(columns, [types[c] for c in columns]), rows)
        except ValueError as exc:
            raise StorageError(f"{self.describe()} refused `{sql}`: {exc}") from None
        return self.insert_arrow(table, data, dedup_token=dedup_token)

    def yield_cpu(self, on: bool) -> None:
        """Inserts from now on at ``INSERT_NICE`` (``on``) or at the normal priority.

        The inserter yields while it keeps up; behind, or when the daemon stops, it
        does not (:meth:`server.inserter.Inserter._yield_cpu`).
        """
        self._insert_nice = INSERT_NICE if on else 0

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        if not data.num_rows:
            return 0
        settings = ["max_insert_threads = 1", f"os_thread_priority = {self._insert_nice}"]
        if dedup_token is not None:
            if not _TOKEN.match(dedup_token):
                raise StorageError(f"invalid deduplication token {dedup_token!r}")
            settings += [
                f"insert_deduplication_token = '{dedup_token}'",
                "deduplicate_blocks_in_dependent_materialized_views = 1",
            ]
        # The batch goes to the engine as an Arrow IPC file it reads with file():
        # values travel as data, never as SQL text. Not chDB's Python() table
        # function: it needs pandas importable (its type checks import it), which
        # costs ~55 MB of RSS per process for the same CPU per insert
        # (benchmarks/RESULTS.md, "insert encodings").
        sql = (
            f"{insert_into(self.database, table, data.column_names)} "
            f"SETTINGS {', '.join(settings)} "
            f"SELECT * FROM file({{batch:String}}, 'ArrowStream')"
        )
        with self._mutex:
            self._enter()
            try:
                with open(self._batch_file, "wb") as out:
                    write_ipc(data, out)
            except OSError as exc:  # the disk is full: not now, retry later
                raise staging_failed(self.describe(), self._batch_file, exc) from None
            try:
                self._session.query(sql, "CSV", params={"batch": str(self._batch_file)})
            except Exception as exc:
                if "UNKNOWN_TABLE" in str(exc) or "NO_SUCH_COLUMN" in str(exc):
                    self._types.pop(table, None)
                raise refusal(self.describe(), sql, str(exc)) from None
            finally:
                self._unnice(self._insert_nice)
        return int(data.num_rows)

    def stored_mask(self, table: str, data: pa.Table) -> list[bool] | None:
        """For each row of ``data``, in order: is an equal row in ``database.table``?

        Rows compare whole, by a hash of their text. For a batch replayed after a
        crash: the engine runs in our process, so a ``kill -9`` between its
        deduplication log entry and the rename of the new part leaves the token
        naming a part that was never stored, and a replay under that token would be
        silently dropped; the inserter asks this instead of trusting the token.
        Reads the table once: only the batch's time range when both have a
        ``timestamp`` column (the big tables' sort key), else all of it; raises
        like :meth:`insert`.
        """
        if not data.num_rows:
            return []
        types = self._column_types(table)
        # as text: a NULL would make the hash NULL, and NULL is in no set
        cols = f"toString(tuple({', '.join(check_name(c) for c in data.column_names)}))"
        shape = ", ".join(f"{check_name(c)} {types.get(c, 'String')}"
                          for c in data.column_names)  # fmt: skip
        batch = "file({batch:String}, 'ArrowStream', {shape:String})"
        # rows compare whole, timestamp included: only the batch's time range of the
        # table can hold them, and the bounds (constant subqueries) prune partitions
        # and primary-key granules instead of reading the whole history
        within = (
            f" WHERE timestamp >= (SELECT min(timestamp) FROM {batch})"
            f" AND timestamp <= (SELECT max(timestamp) FROM {batch})"
            if "timestamp" in data.column_names and "timestamp" in types
            else ""
        )
        sql = (
            f"SELECT cityHash64({cols}) IN (SELECT cityHash64({cols}) "
            f"FROM {check_name(self.database)}.{check_name(table)}{within}) AS stored "
            f"FROM {batch} "
            "SETTINGS max_threads = 1"  # rows come back in the file's order
        )
        with self._mutex:
            self._enter()
            try:
                with open(self._batch_file, "wb") as out:
                    write_ipc(data, out)
            except OSError as exc:
                raise staging_failed(self.describe(), self._batch_file, exc) from None
            try:
                result = self._session.query(
                    sql, "JSONCompact", params={"batch": str(self._batch_file), "shape": shape}
                )
            except Exception as exc:
                raise refusal(self.describe(), sql, str(exc)) from None
        rows = json.loads(result.bytes())["data"]
        if len(rows) != data.num_rows:
            raise StorageError(f"{self.describe()} answered {len(rows)} rows for "
                               f"{data.num_rows} in `{sql}`")  # fmt: skip
        return [bool(r[0]) for r in rows]

    def _column_types(self, table: str) -> dict[str, str]:
        """Column name -> ClickHouse type of our ``table``, asked once and kept."""
        if table not in self._types:
            rows = self.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = {db:String} AND table = {t:String}",
                {"db": self.database, "t": table},
            )
            self._types[table] = {r["name"]: r["type"] for r in rows}
        return self._types[table]

    def close(self) -> None:
        with self._mutex:
            try:
                self._session.close()
            finally:
                self._release()

    def _run(self, sql: str, fmt: str, params: Params | None) -> str:
        with self._mutex:
            self._enter()
            try:
                sql, bound = _bind(sql, params) if params else (sql, None)
                result = self._session.query(sql, fmt, params=bound)
            except Exception as exc:
                raise refusal(self.describe(), sql, str(exc)) from None
        return str(result.bytes().decode("utf-8")) if result is not None else ""

    def _enter(self) -> None:
        """Raise :class:`DescriptorsShort` rather than enter chDB short of descriptors."""
        why = descriptors.short()
        if why is not None:
            raise DescriptorsShort(f"{self.describe()} not entered: {why}")

    def _release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def _acquire_lock(path: Path) -> IO[str]:
    lock_path = path / LOCK_NAME
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the storage's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StorageLocked(
            f"the embedded database at {path} is in use by {holder}; "
            "stop that process, or set clickhouse.embedded_path to another directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} ({' '.join(sys.argv)[:200]})")
    handle.flush()
    return handle


def _bind(sql: str, params: Params) -> tuple[str, dict[str, Any]]:
    """The statement and its parameters as chDB reads them.

    A non-empty list of strings used only as ``{name:Array(String)}`` is sent as one
    String joined by :data:`_SEP` and split in the statement (``splitByChar``, a
    constant: sets and the primary key work as before). chDB parses an Array(String)
    parameter slowly: 1,000 service ids cost ~6 ms of CPU per query, the joined
    String ~0.5 ms. A list holding the separator keeps the Array form."""
    bound = {}
    for name, value in params.items():
        token = f"{{{name}:Array(String)}}"
        if (isinstance(value, list | tuple) and value and token in sql
                and all(isinstance(v, str) and _SEP not in v for v in value)
                and sql.count(f"{{{name}:") == sql.count(token)):  # fmt: skip
            sql = sql.replace(token, f"splitByChar('\\x1f', {{{name}:String}})")
            bound[name] = _SEP.join(value).translate(_ESCAPES)
        else:
            bound[name] = _param(value)
    return sql, bound


_SEP = "\x1f"  # ASCII unit separator: not in ids or names (a list holding it is sent as is)


def _param(value: Any) -> Any:
    """chDB parses parameters from text: datetimes as naive UTC with milliseconds,
    arrays in ClickHouse's quoted literal form, strings with TSV-style escapes
    (a tab or newline in a search box must not turn into a 503)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, list | tuple):
        return "[" + ",".join(_element(v) for v in value) + "]"
    if isinstance(value, str):
        # parameters are read in ClickHouse's escaped text format, like a TSV field
        return value.translate(_ESCAPES)
    return value


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _element(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    raw = value if isinstance(value, str) else str(_param(value))  # datetimes as text
    return "'" + raw.translate(_ESCAPES).replace("'", "\\'") + "'"
