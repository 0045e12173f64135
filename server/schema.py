"""Render and apply the DDL in ``sql/``.

One set of files serves both backends: Jinja fills in the database, the
retention, ``ON CLUSTER <name>`` and the engine clause. For a cluster the
engine becomes its ``Replicated*`` twin with ``{shard}``/``{replica}`` macros;
nothing else in the text differs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import jinja2

from server.config.models import ClickHouseConfig
from server.core import status
from server.resources import sql_dir
from server.storage import Storage, StorageError
from server.storage.version import require_supported

GRANTS_FILE = "grants.sql"
_OBJECT = re.compile(
    r"CREATE\s+(DATABASE|TABLE|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS\s+([\w.]+)", re.I
)


# Tables with one service's rows per row: with sharding they live per shard
# (``<name>_local``) under a Distributed table of the plain name, sharded so a
# service's rows and its summaries share a shard. error_patterns is keyed by
# fingerprint; the rest (config, silences, reports, dead letters) is small and
# kept whole on every host.
SHARD_KEYS = {
    "service_status": "service_id", "service_metrics": "service_id",
    "service_logs": "service_id", "service_status_hourly": "service_id",
    "service_current": "service_id", "service_transitions": "service_id",
    "service_status_daily": "service_id", "alert_events": "service_id",
    "anomaly_baselines": "service_id", "error_patterns": "fingerprint",
}  # fmt: skip
SHARDINGS = ("none", "service_id")


# cluster names: the config admits letters, digits, _ and -; the others are backquoted
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Target:
    """Where and how to render: the database, the cluster (or None), retention, sharding."""

    database: str
    cluster: str | None = None
    retention_days: int = 90
    sharding: str = "none"  # "service_id": per-shard tables under Distributed ones

    @classmethod
    def of(cls, clickhouse: ClickHouseConfig) -> Target:
        """The target a configuration's ``clickhouse`` section describes."""
        cluster = clickhouse.cluster
        return cls(clickhouse.database, cluster.name if cluster else None,
                   clickhouse.retention_days, cluster.sharding if cluster else "none")  # fmt: skip

    @property
    def sharded(self) -> bool:
        return self.cluster is not None and self.sharding != "none"

    @property
    def cluster_sql(self) -> str:
        """The cluster's name as DDL text: plain, or in backquotes (``my-cluster``)."""
        name = self.cluster or ""
        return name if _PLAIN_NAME.fullmatch(name) else f"`{name}`"

    @property
    def on_cluster(self) -> str:
        """``ON CLUSTER <name>``, or empty without a cluster."""
        return f"ON CLUSTER {self.cluster_sql}" if self.cluster else ""


@dataclass(frozen=True)
class Statement:
    file: str
    sql: str
    kind: str  # "database", "table" or "materialized view"
    name: str  # unqualified object name

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


def _engine(target: Target, table: str, kind: str, *args: str) -> str:
    if target.cluster is None:
        return f"{kind}({', '.join(args)})" if args else kind
    if target.sharded and table in SHARD_KEYS:
        table = f"{table}_local"
    # unsharded tables of a sharded cluster: one replica set across all shards
    shard = "all" if target.sharded and table not in local_names() else "{shard}"
    zk_path = f"'/clickhouse/tables/{shard}/{target.database}/{table}'"
    replica = "'{replica}'"
    return f"Replicated{kind}({', '.join([zk_path, replica, *args])})"


def _environment() -> jinja2.Environment:
    # SQL, not HTML: escaping is off; every value rendered is a validated identifier,
    # an integer, or (in grants) a literal quoted by sql_string().
    return jinja2.Environment(  # noqa: S701
        loader=jinja2.FileSystemLoader(str(sql_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_file(name: str, target: Target, **extra: object) -> list[str]:
    template = _environment().get_template(name)
    text = template.render(
        db=target.database,
        on_cluster=target.on_cluster,
        retention_days=target.retention_days,
        engine=lambda table, kind, *args: _engine(target, table, kind, *args),
        status_up=status.sql_up,
        **extra,
    )
    return split_statements(text)


def split_statements(text: str) -> list[str]:
    """Statements end with ``;`` at the end of a line; comment-only chunks are dropped."""
    out = []
    for chunk in re.split(r";\s*$", text, flags=re.M):
        code = "\n".join(
            line
            for line in chunk.splitlines()
            if line.strip() and not line.strip().startswith("--")
        )
        if code.strip():
            out.append(chunk.strip())
    return out


def schema_files() -> list[str]:
    return sorted(p.name for p in sql_dir().glob("[0-9]*.sql"))


def local_names() -> set[str]:
    return {f"{name}_local" for name in SHARD_KEYS}


def shard_statements(sql: str, target: Target) -> list[str]:
    """One statement of the unsharded text -> what a sharded cluster runs instead.

    A table of :data:`SHARD_KEYS` becomes ``<name>_local`` plus a Distributed
    ``<name>`` over it; a materialized view reads and writes the local tables,
    so each shard aggregates its own rows. Reads keep using the plain names.
    """
    db, cluster = target.database, target.cluster_sql
    match = _OBJECT.search(sql)
    if match is None:
        return [sql]
    kind = " ".join(match.group(1).upper().split())
    name = match.group(2).rpartition(".")[2]
    if kind == "TABLE" and name in SHARD_KEYS:
        local = sql.replace(f"{db}.{name} ", f"{db}.{name}_local ", 1)
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {db}.{name} ON CLUSTER {cluster}\n"
            f"AS {db}.{name}_local\n"
            f"ENGINE = Distributed({cluster}, {db}, {name}_local, "
            f"cityHash64({SHARD_KEYS[name]}))"
        )
        return [local, distributed]
    if kind == "MATERIALIZED VIEW":
        for table in SHARD_KEYS:
            sql = re.sub(rf"\b(TO|FROM)\s+{db}\.{table}\b", rf"\1 {db}.{table}_local", sql)
    return [sql]


def render_schema(target: Target) -> list[Statement]:
    statements = []
    for name in schema_files():
        rendered = render_file(name, target)
        if target.sharded:
            rendered = [out for sql in rendered for out in shard_statements(sql, target)]
        for sql in rendered:
            match = _OBJECT.search(sql)
            if not match:
                raise ValueError(f"{name}: statement creates no named object: {sql[:60]}")
            kind = " ".join(match.group(1).lower().split())
            statements.append(Statement(name, sql, kind, match.group(2).rpartition(".")[2]))
    return statements


def existing_objects(storage: Storage, database: str) -> set[str]:
    rows = storage.query(
        "SELECT name FROM system.databases WHERE name = {db:String}", {"db": database}
    )
    if not rows:
        return set()
    tables = storage.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": database}
    )
    return {database} | {row["name"] for row in tables}


_COLUMN_LINE = re.compile(r"^\s{4}([a-z_][a-z0-9_]*)\s+[A-Z]", re.M)


def declared_columns(statement: Statement) -> list[str]:
    """Column names of a CREATE TABLE, read off our one-column-per-line DDL layout."""
    body = (
        statement.sql.split("(", 1)[1].split("\nENGINE", 1)[0] if statement.kind == "table" else ""
    )
    return [name for name in _COLUMN_LINE.findall(body) if name not in ("index",)]


_COLUMN_TYPE = re.compile(
    r"^\s{4}([a-z_][a-z0-9_]*)\s+([A-Z][^\n]*?)"
    r"(?:\s+(?:CODEC|DEFAULT|MATERIALIZED)\b[^\n]*?)?,?[ \t]*$",
    re.M,
)


@functools.lru_cache(maxsize=1)
def declared_types() -> dict[str, dict[str, str]]:
    """Table -> column -> ClickHouse type, as sql/ declares them (for the writer's batches).

    Read from the DDL so the writer can encode rows before ClickHouse is reachable.
    """
    out: dict[str, dict[str, str]] = {}
    for statement in render_schema(Target("monitor")):
        if statement.kind != "table":
            continue
        body = statement.sql.split("(", 1)[1].split("\nENGINE", 1)[0]
        out[statement.name] = dict(_COLUMN_TYPE.findall(body))
    return out


def tables_missing_columns(
    storage: Storage, target: Target, existing: set[str], statements: list[Statement]
) -> list[str]:
    """Existing tables that lack a column sql/ declares (an older Lightbulb made them)."""
    live: dict[str, set[str]] = {}
    for row in storage.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String}",
        {"db": target.database},
    ):
        live.setdefault(row["table"], set()).add(row["name"])
    return [
        s.name
        for s in statements
        if s.kind == "table" and s.name in existing
        and set(declared_columns(s)) - live.get(s.name, set())
    ]  # fmt: skip


def require_cluster(storage: Storage, target: Target) -> None:
    """Raise StorageError unless the server knows ``target.cluster`` (``system.clusters``).

    The message names the clusters it does know, or says it has none, so a typo
    is one look away; without a cluster in the target this does nothing.
    """
    if target.cluster is None:
        return
    rows = storage.query("SELECT DISTINCT cluster FROM system.clusters")
    known = sorted(str(row["cluster"]) for row in rows)
    if target.cluster in known:
        return
    listed = ", ".join(known) if known else "none (its remote_servers section is empty)"
    raise StorageError(
        f"clickhouse.cluster.name {target.cluster!r} is not a cluster of {storage.describe()}; "
        f"the clusters it knows: {listed}"
    )


def apply_schema(storage: Storage, target: Target) -> list[tuple[Statement, bool]]:
    """Create what is missing; return each object with whether it was created now.

    Tables an older release created get the columns added since (``ALTER TABLE
    ... ADD COLUMN``, defaults from sql/) before any view that reads them is created.
    """
    require_supported(storage)
    require_cluster(storage, target)
    before = existing_objects(storage, target.database)
    statements = render_schema(target)
    outdated = tables_missing_columns(storage, target, before, statements) if before else []
    if outdated:
        from server.schema_check import add_missing_columns

        add_missing_columns(storage, target, outdated)
    results = []
    for statement in statements:
        storage.execute(statement.sql)
        results.append((statement, statement.name not in before))
    return results


def sql_string(value: str) -> str:
    """A ClickHouse string literal, for the one place a value cannot be a parameter."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def apply_grants(
    storage: Storage, target: Target, user: str, password: str, profile: str | None
) -> list[str]:
    """Create ``user`` with access to the database; run as an admin."""
    statements = render_file(
        GRANTS_FILE,
        target,
        user=_quoted_identifier(user),
        password=sql_string(password),
        profile=sql_string(profile) if profile else None,
    )
    for sql in statements:
        storage.execute(sql)
    return statements


def _quoted_identifier(name: str) -> str:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", name):
        raise ValueError(f"invalid ClickHouse user name {name!r}")
    return f"`{name}`"
