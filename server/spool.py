"""The writer's directory: its write-ahead log and the batches ClickHouse refused.

``<spool_dir>/wal/`` is the write-ahead log (:mod:`server.wal`): every row
waits there until ClickHouse has it, through outages and restarts.
``<spool_dir>/rejected/`` holds rows ClickHouse refused *for their content*
(a value it cannot store), one JSON-lines file per set-aside batch with the
server's reason; ``lightbulb spool list|replay|drop`` works on them. Nothing
is set aside for an outage or a full disk: those are retried.
``<spool_dir>/quarantine/`` holds bytes of the log found damaged at a start
(:mod:`server.wal_repair`), for a human to look at: bounded, listed by ``spool
list`` and removed by ``spool drop`` (:mod:`server.wal_quarantine`).

``*.batch`` files in the directory itself come from releases before the
write-ahead log; the writer takes them over at start (:func:`legacy_batches`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.core.files import own_directory
from server.storage.values import to_json
from server.wal import Wal

LEGACY_SUFFIX = ".batch"
REJECTED = "rejected"


@dataclass(frozen=True)
class Batch:
    """Rows of one table under one id (the insert's deduplication token)."""

    id: str
    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class SetAside:
    """A refused batch on disk: what, how many, and the server's reason."""

    id: str
    table: str
    rows: int
    reason: str
    at: str
    path: Path


class Spool:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        # on a full disk the log starts without its directory, and makes it once it can
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.wal = Wal(self.directory / "wal", max_bytes)

    @property
    def rejected_dir(self) -> Path:
        return self.directory / REJECTED

    # -- set aside -------------------------------------------------------------------------
    def set_aside(self, batch: Batch, reason: str) -> Path:
        """Write a refused batch to ``rejected/<id>.json`` (fsync'd); raises OSError if not."""
        own_directory(self.rejected_dir)
        header = {
            "id": batch.id,
            "table": batch.table,
            "columns": list(batch.columns),
            "rows": len(batch.rows),
            "reason": reason,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "datetime_columns": _datetime_columns(batch.rows),
        }
        # ensure_ascii: a lone surrogate (the very thing refused, perhaps) stays \udxxx text
        lines = [json.dumps(header)] + [json.dumps(to_json(list(r))) for r in batch.rows]
        path = self.rejected_dir / f"{_safe(batch.id)}.json"
        _write_durably(path, ("\n".join(lines) + "\n").encode())
        return path

    def rejected(self) -> list[SetAside]:
        """Set-aside batches, oldest first (files in ``rejected/`` that are none:
        :meth:`strays`)."""
        return sorted((e for e in self._scan() if isinstance(e, SetAside)),
                      key=lambda s: (s.at, s.id))  # fmt: skip

    def strays(self) -> list[tuple[Path, str]]:
        """Files in ``rejected/`` that are no set-aside batch, with why, by name: left
        alone (never replayed nor dropped), listed so nothing there goes unseen."""
        return sorted((e for e in self._scan() if isinstance(e, tuple)), key=lambda e: e[0])

    def _scan(self) -> Iterator[SetAside | tuple[Path, str]]:
        if not self.rejected_dir.is_dir():
            return
        for path in self.rejected_dir.iterdir():
            if path.is_symlink():  # never followed: it may lead anywhere (atk21)
                yield path, "a symbolic link, not followed (not a set-aside batch)"
                continue
            if path.suffix != ".json":
                yield path, "not a set-aside batch (*.json)"
                continue
            if not path.is_file():
                yield path, "not a regular file (not a set-aside batch)"
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    header = json.loads(handle.readline())
                yield SetAside(header["id"], header["table"], int(header["rows"]),
                               header["reason"], header["at"], path)  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError) as exc:
                yield path, f"unreadable ({type(exc).__name__}: {exc})"

    def load_rejected(self, entry: SetAside) -> Batch:
        return load_batch(entry.path)

    def drop_rejected(self, entry: SetAside) -> None:
        entry.path.unlink(missing_ok=True)

    # -- batches of releases before the write-ahead log ---------------------------------
    def legacy_batches(self) -> Iterator[tuple[Path, Batch]]:
        """``*.batch`` files an older release spooled, oldest first."""
        for path in sorted(self.directory.glob(f"*{LEGACY_SUFFIX}")):
            yield path, load_batch(path)
        for path in self.directory.glob("*.tmp"):  # an older release's half-written files
            path.unlink(missing_ok=True)


def load_batch(path: Path) -> Batch:
    """A JSON-lines batch file (set aside, or spooled by an older release)."""
    with open(path, encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        times = set(header.get("datetime_columns", []))
        rows = []
        for line in handle:
            values = json.loads(line)
            rows.append(
                tuple(
                    datetime.fromisoformat(v + "+00:00") if i in times and isinstance(v, str) else v
                    for i, v in enumerate(values)
                )
            )
    return Batch(header["id"], header["table"], tuple(header["columns"]), rows)


def _datetime_columns(rows: list[tuple[Any, ...]]) -> list[int]:
    return [i for i, v in enumerate(rows[0]) if isinstance(v, datetime)] if rows else []


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]


def _write_durably(path: Path, data: bytes) -> None:
    """Write under a temporary name, fsync, rename; on failure leave nothing behind."""
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.rename(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
