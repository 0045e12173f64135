"""Whether stored data changed since an answer was worked out from it, and what it read.

ClickHouse changes a table's contents only by changing its active parts: every
insert adds a part of a block number never used before (higher than any in the
table), a mutation (``ALTER … DELETE``, a lightweight ``DELETE``) gives its parts a
data version past their first block, and a TTL deletion or a dropped part leaves
fewer rows. A merge changes none of these: it replaces parts by one covering the
same blocks with the same rows. So per partition the first and last block, the
rows and the newest mutation (:func:`part_tokens`, one hash per table, one statement
of ``system.parts``) say whether anything in it may have changed: equal hashes,
equal contents, and a background merge leaves kept answers kept (each insert is
followed by merges: with part names they cost a second recomputation). A merge
that folds rows (Replacing, Aggregating: fewer rows, same contents) changes the
hash without changing the contents, which costs a recomputation, never a stale
answer. On a cluster the parts of every
replica are hashed (``clusterAllReplicas``): a read may go to any of them, and a
replica that fetches a part it lacked changes the hash too. Sharded tables hold
their parts in ``<name>_local``; :func:`same` looks under both names.

:class:`Recording` is a storage that notes the tables each query names, so a cache
knows which tables an answer depends on (whatever the code that read them).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from server.storage.base import Params, Row, Storage

_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]+")  # what clickhouse.cluster.name admits
LOCAL = "_local"  # a sharded table's parts live in <name>_local (server.schema)

Tokens = Mapping[str, int]  # table name -> hash of its partitions' blocks, rows, mutations


def part_tokens(storage: Storage, tables: Collection[str]) -> dict[str, int]:
    """One hash per table of ``tables`` (or its ``_local`` twin) in ``storage.database``
    that has parts: of each partition's first and last block, rows and newest
    mutation over its active parts (every replica's on a cluster; see the module's
    docstring). Read *before* what it vouches for: a part added in between makes the
    next comparison differ (a recomputation), never the reverse. Raises StorageError."""
    cluster = storage.cluster
    source = "system.parts"
    if cluster:
        if not _CLUSTER_NAME.fullmatch(cluster):
            raise ValueError(f"cluster name {cluster!r}: letters, digits, _ and - only")
        source = f"clusterAllReplicas('{cluster}', system.parts)"
    # an unmutated part's data version is its first block; a mutated one's is past it
    rows = storage.query(
        "SELECT table, cityHash64(arraySort(groupArray((partition_id, lo, hi, n, v)))) AS parts "
        "FROM (SELECT table, partition_id, min(min_block_number) AS lo, "
        "max(max_block_number) AS hi, sum(rows) AS n, "
        "max(if(data_version = min_block_number, 0, data_version)) AS v "
        f"FROM {source} WHERE database = {{db:String}} AND active "
        "AND table IN {tables:Array(String)} GROUP BY table, partition_id) GROUP BY table"
        + (" SETTINGS skip_unavailable_shards = 1" if cluster else ""),
        {"db": storage.database, "tables": [n for t in tables for n in (t, t + LOCAL)]},
    )
    return {r["table"]: int(r["parts"]) for r in rows}


def of(tokens: Tokens, tables: Collection[str]) -> dict[str, int | None]:
    """The hashes of ``tables`` (each under its name and its ``_local`` one; None: no
    parts), to hold beside an answer read from them."""
    return {name: tokens.get(name) for t in tables for name in (t, t + LOCAL)}


def same(held: Mapping[str, int | None], tokens: Tokens) -> bool:
    """Whether every table of ``held`` (:func:`of`) has the same parts in ``tokens``."""
    return all(tokens.get(name) == token for name, token in held.items())


class Recording:
    """``storage`` itself, noting in :attr:`tables` the tables of its database that each
    query or statement names (``<database>.<table>``). Writes pass through unnoted."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.database = storage.database
        self.kind = storage.kind
        self.cluster = storage.cluster
        self.tables: set[str] = set()
        self._named = re.compile(rf"\b{re.escape(storage.database)}\.(\w+)")

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        self.tables.update(self._named.findall(sql))
        return self.storage.query(sql, params)

    def execute(self, sql: str, params: Params | None = None) -> None:
        self.tables.update(self._named.findall(sql))
        self.storage.execute(sql, params)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               dedup_token: str | None = None) -> int:  # fmt: skip
        return self.storage.insert(table, columns, rows, dedup_token=dedup_token)

    def stored_mask(self, table: str, data: Any) -> list[bool] | None:
        return self.storage.stored_mask(table, data)

    def insert_arrow(self, table: str, data: Any, *, dedup_token: str | None = None) -> int:
        return self.storage.insert_arrow(table, data, dedup_token=dedup_token)

    def yield_cpu(self, on: bool) -> None:
        self.storage.yield_cpu(on)

    def close(self) -> None:
        self.storage.close()

    def describe(self) -> str:
        return self.storage.describe()
