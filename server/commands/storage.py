"""``lightbulb bootstrap`` and ``lightbulb validate-schema``: the database against ``sql/``.

``bootstrap`` creates the database, tables and views (and, with ``--grants``,
the user and its grants on a cluster) and syncs the config tables;
``validate-schema`` reports how the live database differs from ``sql/``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from server.commands import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from server.config import Config
from server.core.secret import Secret
from server.schema import Target, apply_grants, apply_schema
from server.schema_check import check_schema
from server.storage import open_storage
from server.sync import sync_config_tables
from server.validation import load_config


def cmd_bootstrap(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    target = Target.of(config.clickhouse)
    if args.grants:
        grant_status = _grants(args, config, target)
        if grant_status != EXIT_OK:
            return grant_status
    storage = open_storage(config.clickhouse)
    try:
        print(f"Using {storage.describe()}")
        for statement, created in apply_schema(storage, target):
            print(f"{'created' if created else 'found'} {statement.label}")
        for result in sync_config_tables(storage, config, datetime.now(UTC)):
            print(f"synced {result}")
    finally:
        storage.close()
    print("Schema ready.")
    return EXIT_OK


def _grants(args: argparse.Namespace, config: Config, target: Target) -> int:
    if config.clickhouse.embedded:
        print(
            "error: --grants needs a ClickHouse server (clickhouse.hosts); "
            "the embedded database has no users",
            file=sys.stderr,
        )
        return EXIT_USAGE
    admin = config.clickhouse.model_copy(
        update={
            "user": args.admin_user,
            "password": Secret(os.environ.get("CLICKHOUSE_ADMIN_PASSWORD", "")),
        }
    )
    storage = open_storage(admin)
    try:
        for sql in apply_grants(
            storage,
            target,
            config.clickhouse.user,
            config.clickhouse.password.reveal(),
            args.profile,
        ):
            print(f"applied {sql.split(' IDENTIFIED ')[0]}")
    finally:
        storage.close()
    return EXIT_OK


def cmd_validate_schema(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    target = Target.of(config.clickhouse)
    storage = open_storage(config.clickhouse)
    try:
        drift = check_schema(storage, target)
    finally:
        storage.close()
    if drift.ok:
        print(f"Schema of {target.database} matches sql/.")
        return EXIT_OK
    print(f"Schema of {target.database} differs from sql/:")
    for problem in drift.problems:
        print(f"  - {problem}")
    print(
        f"{len(drift.problems)} differences; run `python bootstrap.py` to create missing objects."
    )
    return EXIT_PROBLEM
