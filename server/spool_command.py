"""``lightbulb spool list|replay|drop``: what waits in the spool, and refused batches.

``list`` reads the write-ahead log read-only (safe beside a running daemon)
and lists the set-aside batches with ClickHouse's reason. ``replay`` inserts
set-aside batches again (after the cause is fixed: a column added, a
constraint dropped), each under its own id so a replay twice stores once;
``drop`` deletes them. Both need the database: against the embedded one, stop
the daemon first (it holds the database).
"""

from __future__ import annotations

import argparse
from collections import Counter

from server.config import Config
from server.schema import Target, apply_schema
from server.spool import SetAside, Spool
from server.storage import StorageError, open_storage
from server.validation import load_config
from server.wal import Wal


def _spool(config: Config) -> Spool:
    sched = config.scheduler
    return Spool(sched.spool_dir, sched.spool_max_bytes)


def _chosen(spool: Spool, args: argparse.Namespace) -> list[SetAside]:
    entries = spool.rejected()
    if args.all:
        return entries
    if not args.ids:
        raise SystemExit("error: name the batches (ids from `lightbulb spool list`) or use --all")
    chosen = [e for e in entries if e.id in set(args.ids)]
    missing = set(args.ids) - {e.id for e in chosen}
    if missing:
        raise SystemExit(f"error: no set-aside batch {', '.join(sorted(missing))} "
                         "(see `lightbulb spool list`)")  # fmt: skip
    return chosen


def cmd_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    directory = config.scheduler.spool_dir
    wal = Wal(f"{directory}/wal", 0, readonly=True)
    pending, open_batches = wal.recover()
    waiting: Counter[str] = Counter()
    for record in [*pending, *(r for b in open_batches for r in b.records)]:
        waiting[record.table] += record.rows
    print(f"Spool {directory}: {sum(waiting.values())} rows wait for ClickHouse "
          f"({wal.size} bytes)")  # fmt: skip
    for table, rows in sorted(waiting.items()):
        print(f"  {table}: {rows} rows")
    entries = Spool(directory, config.scheduler.spool_max_bytes).rejected()
    print(f"{len(entries)} batches set aside (refused by ClickHouse for their content):")
    for entry in entries:
        print(f"  {entry.id}  {entry.table}  {entry.rows} rows  {entry.at}\n    {entry.reason}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    spool = _spool(config)
    chosen = _chosen(spool, args)
    storage = open_storage(config.clickhouse)
    failed = 0
    try:
        apply_schema(storage, Target.of(config.clickhouse))  # as the daemon does first
        for entry in chosen:
            batch = spool.load_rejected(entry)
            try:
                storage.insert(batch.table, batch.columns, batch.rows, dedup_token=entry.id)
            except StorageError as exc:
                failed += 1
                print(f"{entry.id}: still refused: {exc}")
                continue
            spool.drop_rejected(entry)
            print(f"{entry.id}: {len(batch.rows)} rows stored in {batch.table}")
    finally:
        storage.close()
    return 1 if failed else 0


def cmd_drop(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    spool = _spool(config)
    for entry in _chosen(spool, args):
        spool.drop_rejected(entry)
        print(f"{entry.id}: dropped ({entry.rows} rows of {entry.table})")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], default: str) -> None:
    """Register ``spool list|replay|drop`` on the CLI's sub-commands."""
    spool = sub.add_parser("spool", help="what waits in the spool; refused batches")
    actions = spool.add_subparsers(dest="spool_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("list", cmd_list, "rows waiting for ClickHouse and batches set aside, with the reason"),
        ("replay", cmd_replay, "insert set-aside batches again (after fixing the cause)"),
        ("drop", cmd_drop, "delete set-aside batches"),
    ):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("--config", default=default, help=f"YAML file (default {default})")
        if name != "list":
            p.add_argument("ids", nargs="*", metavar="ID", help="set-aside batch ids")
            p.add_argument("--all", action="store_true", help="every set-aside batch")
        p.set_defaults(func=func)
