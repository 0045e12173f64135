"""Follow a log file between checks and turn new lines into log entries.

Starts at the end of the file (history is not imported), notices truncation
and rotation (size smaller than our offset, or a new inode) and reads at most
``max_lines`` per call so one noisy file cannot stall a check.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from checkers.base import LogEntry

_LEVEL = re.compile(
    r"\b(CRITICAL|FATAL|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE)\b", re.IGNORECASE
)
_CANONICAL = {
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
    "error": "ERROR",
    "err": "ERROR",
    "warning": "WARN",
    "warn": "WARN",
    "notice": "INFO",
    "info": "INFO",
    "debug": "DEBUG",
    "trace": "DEBUG",
}


def parse_level(line: str) -> str:
    """Level from a JSON log record or the first level word in a text line; INFO otherwise."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            for key in ("level", "levelname", "severity", "log.level"):
                value = record.get(key)
                if isinstance(value, str) and value.lower() in _CANONICAL:
                    return _CANONICAL[value.lower()]
    match = _LEVEL.search(line[:200])
    return _CANONICAL[match.group(1).lower()] if match else "INFO"


class LogTail:
    def __init__(self, path: Path, max_lines: int = 1000) -> None:
        self.path = path
        self.max_lines = max_lines
        self._offset: int | None = None
        self._inode: int | None = None

    def read_new(self, source: str) -> list[LogEntry]:
        try:
            stat = self.path.stat()
        except OSError:
            return []
        if self._offset is None:
            self._offset, self._inode = stat.st_size, stat.st_ino
            return []
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._offset, self._inode = 0, stat.st_ino
        entries: list[LogEntry] = []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            while len(entries) < self.max_lines:
                raw = handle.readline()
                if not raw.endswith(b"\n"):
                    break  # a partial line waits for its end
                self._offset += len(raw)
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.strip():
                    entries.append(LogEntry(parse_level(line), line, source=source))
        return entries
