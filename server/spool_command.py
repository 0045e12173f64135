"""``lightbulb spool list|replay|drop``: what waits in the spool, and refused batches.

``list`` reads the write-ahead log read-only (safe beside a running daemon)
and lists the set-aside batches with ClickHouse's reason, and the log's damaged
bytes kept in ``quarantine/``. ``replay`` inserts set-aside batches again (after
the cause is fixed: a column added, a constraint dropped), each under its own id
so a replay twice stores once; ``drop`` deletes them, and quarantined files by
name or ``--quarantined``. ``replay`` needs the database (and so the whole
configuration, its ``${VAR}`` secrets set): against the embedded one, stop the
daemon first (it holds the database). ``list`` and ``drop`` read only the
``scheduler`` settings: in an outage, on a machine without the daemon's secrets in
its environment, they still run (problems elsewhere in the file are counted, not
fatal).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime

from server.config import ConfigError, read_file
from server.config.models import SchedulerConfig
from server.schema import Target, apply_schema
from server.spool import SetAside, Spool
from server.storage import StorageError, open_storage
from server.validation import load_config
from server.wal import Wal


def scheduler_settings(path: str) -> SchedulerConfig:
    """The ``scheduler`` section of the file at ``path``, checked on its own: problems
    elsewhere (an unset ``${VAR}``, a bad service) are counted on stderr, not fatal.

    Raises ConfigError with the problems of that section or of the whole file (not
    YAML, not a mapping)."""
    draft = read_file(path)
    own = [p for p in draft.problems if not p.path or p.path[0] == "scheduler"]
    if own:
        raise ConfigError(own)
    if draft.problems:
        count = len(draft.problems)
        print(f"note: {count} problem{'s' if count > 1 else ''} elsewhere in {path} "
              "(`lightbulb config check` lists them); the spool's settings are fine",
              file=sys.stderr)  # fmt: skip
    return draft.config.scheduler


def _spool(settings: SchedulerConfig) -> Spool:
    return Spool(settings.spool_dir, settings.spool_max_bytes)


def _chosen(spool: Spool, ids: list[str], every: bool) -> list[SetAside]:
    entries = spool.rejected()
    if every:
        if not entries:
            print(f"no batches set aside in {spool.rejected_dir}: nothing to do")
        return entries
    if not ids:
        raise SystemExit("error: name the batches (ids from `lightbulb spool list`) or use --all")
    chosen = [e for e in entries if e.id in set(ids)]
    missing = set(ids) - {e.id for e in chosen}
    if missing:
        raise SystemExit(f"error: no set-aside batch or quarantined file "
                         f"{', '.join(sorted(missing))} (see `lightbulb spool list`)")  # fmt: skip
    return chosen


def cmd_list(args: argparse.Namespace) -> int:
    settings = scheduler_settings(args.config)
    directory = settings.spool_dir
    wal = Wal(f"{directory}/wal", 0, readonly=True)
    pending, open_batches = wal.recover()
    waiting: Counter[str] = Counter()
    for record in [*pending, *(r for b in open_batches for r in b.records)]:
        waiting[record.table] += record.rows
    print(f"Spool {directory}: {sum(waiting.values())} rows wait for ClickHouse "
          f"({wal.size} bytes)")  # fmt: skip
    for table, rows in sorted(waiting.items()):
        print(f"  {table}: {rows} rows")
    if wal.damage_found:
        print(f"  damaged: {wal.damage_found} places, {wal.damaged_bytes} bytes (set aside "
              "at the daemon's next start)")  # fmt: skip
    spool = _spool(settings)
    entries = spool.rejected()
    print(f"{len(entries)} batches set aside (refused by ClickHouse for their content):")
    for entry in entries:
        print(f"  {entry.id}  {entry.table}  {entry.rows} rows  {entry.at}\n    {entry.reason}")
    strays = spool.strays()
    if strays:
        print(f"{len(strays)} files in {spool.rejected_dir} are no set-aside batch (left alone):")
        for path, why in strays:
            print(f"  {path.name}: {why}")
    quarantined = spool.wal.quarantine.entries()
    if quarantined:
        print(f"{len(quarantined)} files in {spool.wal.quarantine.directory} "
              f"({sum(q.size for q in quarantined)} bytes): damaged bytes of the log, kept to "
              "look at (`lightbulb spool drop NAME|--quarantined` deletes them):")  # fmt: skip
        for q in quarantined:
            at = datetime.fromtimestamp(q.at, UTC).isoformat(timespec="seconds")
            print(f"  {q.path.name}  {q.size} bytes  {at}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    spool = _spool(config.scheduler)
    chosen = _chosen(spool, args.ids, args.all)
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
    spool = _spool(scheduler_settings(args.config))
    quarantine = spool.wal.quarantine
    kept = {q.path.name: q for q in quarantine.entries()}
    files = list(kept.values()) if args.quarantined else [kept[i] for i in args.ids if i in kept]
    ids = [i for i in args.ids if i not in kept]
    if args.quarantined and not files:
        print(f"nothing in {quarantine.directory}: nothing to do")
    named = ids or args.all or not (files or args.quarantined)  # else only quarantined files
    for entry in _chosen(spool, ids, args.all) if named else []:
        spool.drop_rejected(entry)
        print(f"{entry.id}: dropped ({entry.rows} rows of {entry.table})")
    for q in files:
        quarantine.drop(q)
        print(f"{q.path.name}: dropped ({q.size} bytes of the log found damaged)")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], default: str) -> None:
    """Register ``spool list|replay|drop`` on the CLI's sub-commands."""
    spool = sub.add_parser("spool", help="what waits in the spool; refused batches")
    actions = spool.add_subparsers(dest="spool_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("list", cmd_list, "rows waiting for ClickHouse and batches set aside, with the reason"),
        ("replay", cmd_replay, "insert set-aside batches again (after fixing the cause)"),
        ("drop", cmd_drop, "delete set-aside batches or quarantined files"),
    ):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("--config", default=default, help=f"YAML file (default {default})")
        if name != "list":
            what = "set-aside batch ids" + (", quarantined file names" if name == "drop" else "")
            p.add_argument("ids", nargs="*", metavar="ID", help=what)
            p.add_argument("--all", action="store_true", help="every set-aside batch")
        if name == "drop":
            p.add_argument("--quarantined", action="store_true",
                           help="every file in quarantine/ (damaged bytes of the log)")  # fmt: skip
        p.set_defaults(func=func)
