"""Compare the live database with what ``sql/`` would create.

Rather than parse our own DDL, we let ClickHouse do it: the schema is rendered
into a scratch database ``<db>_schema_check`` on the same server (plain
engines, no ``ON CLUSTER``), and both are read back from ``system.tables`` and
``system.columns``. Types therefore compare exactly as the server normalises
them. The scratch database is dropped afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from server.schema import Target, apply_schema
from server.storage import Storage
from server.storage.version import require_supported

_TTL = re.compile(r"\bTTL\s+(.*?)(?:\s+SETTINGS\s|$)", re.S)


@dataclass
class TableShape:
    engine: str
    partition_key: str
    sorting_key: str
    ttl: str
    columns: dict[str, str] = field(default_factory=dict)
    # column -> its full definition (type, DEFAULT, CODEC), for ALTER TABLE ADD COLUMN
    definitions: dict[str, str] = field(default_factory=dict)


@dataclass
class Drift:
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_shapes(storage: Storage, database: str) -> dict[str, TableShape]:
    tables = storage.query(
        "SELECT name, engine, partition_key, sorting_key, engine_full "
        "FROM system.tables WHERE database = {db:String} AND NOT startsWith(name, '.inner')",
        {"db": database},
    )
    shapes = {}
    for row in tables:
        ttl = _TTL.search(row["engine_full"] or "")
        shapes[row["name"]] = TableShape(
            engine=row["engine"].removeprefix("Replicated"),
            partition_key=row["partition_key"],
            sorting_key=row["sorting_key"],
            ttl=(ttl.group(1).strip() if ttl else "").replace(database + ".", ""),
        )
    for col in storage.query(
        "SELECT table, name, type, default_kind, default_expression, compression_codec "
        "FROM system.columns WHERE database = {db:String} ORDER BY table, position",
        {"db": database},
    ):
        if col["table"] in shapes:
            shape = shapes[col["table"]]
            shape.columns[col["name"]] = col["type"]
            definition = col["type"]
            if col["default_kind"]:
                definition += f" {col['default_kind']} {col['default_expression']}"
            if col["compression_codec"]:
                definition += f" {col['compression_codec']}"
            shape.definitions[col["name"]] = definition
    return shapes


def expected_shapes(storage: Storage, target: Target) -> dict[str, TableShape]:
    scratch = f"{target.database}_schema_check"
    storage.execute(f"DROP DATABASE IF EXISTS {scratch}")
    try:
        apply_schema(storage, Target(scratch, None, target.retention_days))
        shapes = read_shapes(storage, scratch)
    finally:
        storage.execute(f"DROP DATABASE IF EXISTS {scratch}")
    for shape in shapes.values():
        shape.ttl = shape.ttl.replace(scratch + ".", "")
    return shapes


def compare(expected: dict[str, TableShape], live: dict[str, TableShape], database: str) -> Drift:
    drift = Drift()
    report = drift.problems.append
    for name in sorted(expected.keys() - live.keys()):
        report(f"{database}.{name}: missing ({expected[name].engine})")
    for name in sorted(live.keys() - expected.keys()):
        report(f"{database}.{name}: extra {live[name].engine}, not defined in sql/")
    for name in sorted(expected.keys() & live.keys()):
        want, have = expected[name], live[name]
        where = f"{database}.{name}"
        if want.engine != have.engine:
            report(f"{where}: engine is {have.engine}, expected {want.engine}")
        for attr, label in (("partition_key", "partition key"), ("sorting_key", "sort key")):
            if getattr(want, attr) != getattr(have, attr):
                got = getattr(have, attr) or "none"
                report(f"{where}: {label} is {got}, expected {getattr(want, attr)}")
        if want.ttl and not have.ttl:
            report(f"{where}: TTL missing, expected TTL {want.ttl}")
        elif want.ttl != have.ttl:
            report(f"{where}: TTL is {have.ttl or 'none'}, expected {want.ttl}")
        for column, kind in want.columns.items():
            if column not in have.columns:
                report(f"{where}: missing column {column} ({kind})")
            elif have.columns[column] != kind:
                report(f"{where}: column {column} has type {have.columns[column]}, expected {kind}")
        for column in have.columns.keys() - want.columns.keys():
            report(f"{where}: extra column {column} ({have.columns[column]})")
    return drift


def add_missing_columns(storage: Storage, target: Target, tables: list[str]) -> list[str]:
    """Add the columns sql/ declares and ``tables`` lack, in sql/'s order; returns the ALTERs.

    Additive only: a changed type or a dropped column is left for validate_schema
    to report, since rewriting data is not something to do silently at start.
    """
    expected = expected_shapes(storage, target)
    live = read_shapes(storage, target.database)
    on_cluster = f" {target.on_cluster}" if target.cluster else ""
    done = []
    for table in tables:
        want, have = expected.get(table), live.get(table)
        if want is None or have is None:
            continue
        previous = ""
        for column in want.columns:
            if column not in have.columns:
                after = f" AFTER {previous}" if previous else " FIRST"
                sql = (
                    f"ALTER TABLE {target.database}.{table}{on_cluster} ADD COLUMN IF NOT EXISTS "
                    f"{column} {want.definitions[column]}{after}"
                )
                storage.execute(sql)
                done.append(sql)
            previous = column
    return done


def check_schema(storage: Storage, target: Target) -> Drift:
    """Compare the live database with sql/; raises UnsupportedServer on a too-old server."""
    require_supported(storage)
    live = read_shapes(storage, target.database)
    return compare(expected_shapes(storage, target), live, target.database)
