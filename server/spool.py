"""A bounded on-disk queue of batches waiting for ClickHouse.

Each batch is one file, named by a sequence number so replay keeps order, and
written to a temporary name then renamed so a crash never leaves half a batch.
The file holds the batch id, which becomes the insert's deduplication token:
a batch replayed after a crash between "inserted" and "deleted" is dropped by
the server instead of stored twice.

When the spool would pass ``max_bytes`` the oldest batches are dropped (and
counted): during a long outage the newest state of the fleet matters most.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from server.storage.values import to_json

log = logging.getLogger("lightbulb.spool")
SUFFIX = ".batch"


@dataclass(frozen=True)
class Batch:
    id: str
    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class Spool:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.dropped_rows = 0
        self._lock = threading.Lock()
        files = sorted(self.directory.glob(f"*{SUFFIX}"))
        self._seq = int(files[-1].stem) + 1 if files else 0
        self._bytes = sum(f.stat().st_size for f in files)
        # Counted in memory: the writer asks on every flush, and an empty spool
        # (the normal case) must cost no directory listing.
        self._count = len(files)

    def pending(self) -> list[Path]:
        """Spooled batch files, oldest first."""
        if not self._count:
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def append(self, batch: Batch) -> None:
        times = (
            [i for i, v in enumerate(batch.rows[0]) if isinstance(v, datetime)]
            if batch.rows
            else []
        )
        header = {
            "id": batch.id,
            "table": batch.table,
            "columns": batch.columns,
            "datetime_columns": times,
        }
        lines = [json.dumps(header)] + [json.dumps(to_json(list(row))) for row in batch.rows]
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            path = self.directory / f"{self._seq:016d}{SUFFIX}"
            self._seq += 1
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.rename(path)
            self._bytes += len(data)
            self._count += 1
            if self._bytes > self.max_bytes:
                self._enforce_bound()

    def load(self, path: Path) -> Batch:
        with open(path, encoding="utf-8") as handle:
            header = json.loads(handle.readline())
            times = set(header["datetime_columns"])
            rows = []
            for line in handle:
                values = json.loads(line)
                rows.append(
                    tuple(
                        datetime.fromisoformat(v + "+00:00")
                        if i in times and isinstance(v, str)
                        else v
                        for i, v in enumerate(values)
                    )
                )
        return Batch(header["id"], header["table"], tuple(header["columns"]), rows)

    def remove(self, path: Path) -> None:
        with self._lock:
            self._drop(path, None)

    def set_aside(self, path: Path) -> Path:
        """Move a batch the server keeps refusing to ``rejected/`` for a human to look at."""
        rejected = self.directory / "rejected"
        rejected.mkdir(exist_ok=True)
        with self._lock:
            self._drop(path, rejected / path.name)
        return rejected / path.name

    def _drop(self, path: Path, move_to: Path | None) -> bool:
        """Take one batch out of the spool (delete or move it); False if already gone."""
        try:
            size = path.stat().st_size
            if move_to is None:
                path.unlink()
            else:
                path.rename(move_to)
        except FileNotFoundError:
            return False
        self._bytes -= size
        self._count -= 1
        return True

    def _enforce_bound(self) -> None:
        files = self.pending()
        while self._bytes > self.max_bytes and len(files) > 1:
            oldest = files.pop(0)
            try:
                with open(oldest, encoding="utf-8") as handle:
                    rows = sum(1 for _ in handle) - 1
            except FileNotFoundError:
                continue
            if not self._drop(oldest, None):
                continue
            self.dropped_rows += rows
            log.error(
                "spool is over %d bytes: dropped the oldest batch (%d rows); "
                "ClickHouse has been unreachable for too long",
                self.max_bytes,
                rows,
            )
