"""Cluster backend: clickhouse-driver over the native protocol, with host failover.

The driver tries ``hosts`` in order on connect (``alt_hosts``) and reconnects
on the next call after a dropped connection; we retry a call once so a server
restart costs one slow call instead of one error.

A ``clickhouse_driver.Client`` is one connection and not thread-safe (its docs
say so); the writer, the web threads and the alert engine all query at once.
So each call borrows a client from a small pool and returns it afterwards: a
thread never shares a connection mid-query, and idle connections are reused.

A server that accepts connections but never answers (hung, or a wrong port
that swallows bytes) must not hold our threads: queries (dashboard pages,
alert and report reads) wait at most ``read_timeout`` (10 s; the server itself
stops them at ``max_execution_time``), writes and DDL ``send_receive_timeout``
(60 s). A call that timed out is not retried, and for ``QUIET_AFTER_TIMEOUT``
seconds after it every call fails at once (``StorageUnavailable``) instead
of tying up another thread on the same silent server. Until a call has gone
through (at start, after a failure) one caller at a time asks; the others
fail at once rather than all wait on a server that may never answer.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from clickhouse_driver import Client, errors

from server.config.models import ClickHouseConfig
from server.config.types import split_host_port
from server.storage.arrow import to_columns
from server.storage.base import (
    Params,
    Row,
    StorageError,
    StorageUnavailable,
    check_name,
    first_line,
    insert_into,
    refusal,
    statement_head,
)

# ClickHouse's own placeholder ``{name:Type}``; the driver wants ``%(name)s``.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^{}]+\}")
# WRONG_PASSWORD, UNKNOWN_USER (old servers), AUTHENTICATION_FAILED (20.x+)
_AUTH_CODES = {192, 193, 516}
_NETWORK_ERRORS = (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError)
POOL_SIZE = 8  # connections at most: 4 web threads, the writer, alerting, reports, baselines
POOL_WAIT = 10.0  # seconds a caller waits for a free connection before giving up
READ_TIMEOUT = 10.0  # seconds a query may wait on the server (dashboard threads are few)
PROBE_WAIT = 2.0  # s a call waits for another to find out whether the server answers
QUIET_AFTER_TIMEOUT = 5.0  # seconds calls fail fast after the server let one time out
# The driver logs every failed connect as a warning with a traceback; we say what
# failed ourselves, once per change of state (server.inserter), without one.
logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)


def to_driver_params(sql: str) -> str:
    """Rewrite placeholders for the driver, which then escapes each value itself."""
    return _PLACEHOLDER.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))


class ClusterStorage:
    kind = "cluster"

    def __init__(
        self,
        config: ClickHouseConfig,
        *,
        connect_timeout: float = 5,
        send_receive_timeout: float = 60,
        read_timeout: float = READ_TIMEOUT,
        pool_size: int = POOL_SIZE,
    ) -> None:
        if not config.hosts:
            raise StorageError("clickhouse.hosts is empty; the cluster backend needs a host")
        self.database = check_name(config.database)
        self.cluster: str | None = config.cluster.name if config.cluster else None
        # sharded: inserts go to Distributed tables; wait until the shards have the
        # rows (and carry the dedup token to them) instead of queueing on this host
        self._insert_settings: dict[str, Any] = (
            {"insert_distributed_sync": 1}
            if config.cluster and config.cluster.sharding != "none"
            else {}
        )
        self.user = config.user
        self.hosts = list(config.hosts)
        host, port = split_host_port(self.hosts[0])
        self._options: dict[str, Any] = {
            "host": host,
            "port": port,
            "alt_hosts": ",".join(self.hosts[1:]) or None,
            "user": config.user,
            "password": config.password.reveal(),
            "database": "default",  # ours may not exist yet; every statement names it
            "secure": config.secure,
            "verify": config.secure,
            "ca_certs": config.ca_cert,
            "compression": "lz4",
            "connect_timeout": connect_timeout,
            "send_receive_timeout": send_receive_timeout,
            "settings": {"max_block_size": 100_000},
        }
        self.read_timeout = read_timeout
        self._read_options = {**self._options, "send_receive_timeout": read_timeout}
        self._idle: dict[bool, queue.LifoQueue[Client]] = {
            True: queue.LifoQueue(), False: queue.LifoQueue()
        }  # fmt: skip
        self._slots = threading.BoundedSemaphore(pool_size)
        self._all: list[Client] = []
        self._all_lock = threading.Lock()
        self._quiet_until = 0.0  # monotonic: until then, fail fast (the server hung)
        self._answering = False  # a call went through since the last failure
        self._probe = threading.Lock()  # while not answering: one caller finds out, alone

    @contextmanager
    def _client(self, read: bool) -> Iterator[Client]:
        """A connection of our own for one call; at most ``pool_size`` exist at once.

        ``read``: a connection with the short ``read_timeout``.
        """
        self._fail_fast()
        if not self._slots.acquire(timeout=POOL_WAIT):
            raise StorageUnavailable(
                f"{self.describe()}: all {len(self._all)} connections busy for {POOL_WAIT:.0f} s"
            )
        try:
            try:
                client = self._idle[read].get_nowait()
            except queue.Empty:
                client = Client(**(self._read_options if read else self._options))
                with self._all_lock:
                    self._all.append(client)
            try:
                yield client
            finally:
                self._idle[read].put(client)
        finally:
            self._slots.release()

    def _fail_fast(self) -> None:
        left = self._quiet_until - time.monotonic()
        if left > 0:
            raise StorageUnavailable(
                f"{self.describe()} accepted a connection but did not answer in time; "
                f"not asked again for {left:.0f} s"
            )

    def describe(self) -> str:
        return f"ClickHouse at {', '.join(self.hosts)} (database {self.database})"

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._call(sql, params)

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        rows, columns = self._call(sql, params, with_column_types=True, read=True)
        names = [name for name, _ in columns]
        return [{n: _normalise(v) for n, v in zip(names, row, strict=True)} for row in rows]

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
        sql = insert_into(self.database, table, columns) + " VALUES"
        settings = (
            {
                "insert_deduplication_token": dedup_token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            }
            if dedup_token
            else None
        )
        self._call(sql, list(rows), settings=settings, insert=True)
        return len(rows)

    def stored_mask(self, table: str, data: pa.Table) -> list[bool] | None:
        """None: trust the token. The server is not killed with the daemon, so its
        deduplication log entry and the part it names are committed together."""
        return None

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        if not data.num_rows:
            return 0
        sql = insert_into(self.database, table, data.column_names) + " VALUES"
        settings = dict(self._insert_settings)
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
            settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
        self._call(sql, to_columns(data), settings=settings or None, insert=True, columnar=True)
        return int(data.num_rows)

    def yield_cpu(self, on: bool) -> None:
        """Nothing: the inserts run on the cluster's servers, not on this process's CPU."""

    def close(self) -> None:
        with self._all_lock:
            for client in self._all:
                client.disconnect()

    def _call(
        self,
        sql: str,
        params: Any,
        *,
        with_column_types: bool = False,
        settings: dict[str, Any] | None = None,
        insert: bool = False,
        columnar: bool = False,
        read: bool = False,
    ) -> Any:
        text = sql if insert or not params else to_driver_params(sql)
        args = params if insert else (dict(params) if params else None)
        if read:  # the server stops it before our socket gives up: a reason, not a hang
            settings = {
                **(settings or {}),
                "max_execution_time": max(1, int(self.read_timeout) - 1),
            }
        probing = False
        if not self._answering:
            if not self._probe.acquire(timeout=PROBE_WAIT):
                raise StorageUnavailable(
                    f"{self.describe()} has not answered since it was last unreachable; "
                    "another call is finding out"
                )
            if self._answering:  # the call we waited for went through
                self._probe.release()
            else:
                probing = True
        try:
            result = self._attempts(text, args, sql, with_column_types=with_column_types,
                                    settings=settings, columnar=columnar, read=read)  # fmt: skip
        except StorageUnavailable:
            self._answering = False
            raise
        finally:
            if probing:
                self._probe.release()
        self._answering = True
        return result

    def _attempts(
        self,
        text: str,
        args: Any,
        sql: str,
        *,
        with_column_types: bool,
        settings: dict[str, Any] | None,
        columnar: bool,
        read: bool,
    ) -> Any:
        for attempt in (1, 2):
            with self._client(read) as client:
                try:
                    return client.execute(
                        text,
                        args,
                        with_column_types=with_column_types,
                        settings=settings,
                        columnar=columnar,
                    )
                except errors.ServerException as exc:
                    if exc.code in _AUTH_CODES:
                        raise StorageError(
                            f"{self.describe()} refused user {self.user!r}: authentication "
                            "failed; check clickhouse.user and clickhouse.password "
                            "(or CLICKHOUSE_USER / CLICKHOUSE_PASSWORD)"
                        ) from None
                    raise refusal(self.describe(), sql, exc.message, exc.code) from None
                except (errors.SocketTimeoutError, TimeoutError) as exc:
                    client.disconnect()  # hung: asking again would only wait as long again
                    timeout = self.read_timeout if read else self._options["send_receive_timeout"]
                    self._quiet_until = time.monotonic() + QUIET_AFTER_TIMEOUT
                    raise StorageUnavailable(
                        f"{self.describe()} accepted the connection but did not answer within "
                        f"{timeout:.0f} s ({first_line(exc)})"
                    ) from None
                except _NETWORK_ERRORS as exc:
                    client.disconnect()
                    if attempt == 2:
                        raise StorageUnavailable(
                            f"{self.describe()} is unreachable: {first_line(exc)}"
                        ) from None
                except (errors.Error, TypeError, ValueError, OverflowError) as exc:
                    # the driver could not encode a value: the data is refused, not the server
                    client.disconnect()
                    raise StorageError(
                        f"{self.describe()}: cannot send `{statement_head(sql)}`: {first_line(exc)}"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover


def _normalise(value: Any) -> Any:
    """Naive datetimes from the driver are in the server's zone; ours is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value
