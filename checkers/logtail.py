"""Follow a log file between checks and turn new lines into log entries.

Starts at the end of the file (history is not imported), notices truncation
and rotation (size smaller than our offset, or a new inode) and reads at most
``max_lines`` lines and ``MAX_READ`` bytes per call, so one noisy file cannot
stall a check or fill memory. A line longer than ``MAX_LINE`` bytes is kept cut
there, marked ``… [line truncated at 16384 bytes]``; the rest of it is skipped
(up to ``MAX_SKIP`` bytes per call, without keeping them). The file is opened
without blocking and only if it is a regular file (:mod:`server.core.files`); a
FIFO or device is reported once as a WARN entry and not read.

A line that is a JSON object is read as a log record: its message, level, error
code and stack trace come from the usual keys (:data:`MESSAGE_KEYS` …), the
other keys are kept as context, so error patterns group by message, not by the
shape of the record.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from checkers.base import LogEntry
from server.core import levels
from server.core.files import NotRegularFile, open_regular
from server.core.text import clip

_LEVEL = re.compile(
    r"\b(CRITICAL|FATAL|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE)\b", re.IGNORECASE
)
# The usual keys of JSON log records, first match wins: Python's logging and
# python-json-logger, structlog, Bunyan/pino, logrus, zap, Elastic Common Schema,
# GELF, journald's export, OpenTelemetry's log data model.
MESSAGE_KEYS = ("message", "msg", "@message", "event", "short_message", "MESSAGE", "body", "log")
LEVEL_KEYS = ("level", "levelname", "severity", "log.level", "lvl", "loglevel", "severityText",
              "level_name", "@level", "PRIORITY")  # fmt: skip
CODE_KEYS = ("error_code", "error.code", "errorCode", "code", "error.type", "err.type",
             "exception.type", "exc_type")  # fmt: skip
STACK_KEYS = ("stack_trace", "stacktrace", "error.stack_trace", "exception.stacktrace", "exc_info",
              "traceback", "stack", "err.stack", "exception")  # fmt: skip
TIME_KEYS = frozenset({"time", "timestamp", "@timestamp", "ts", "asctime", "t"})
# Bunyan/pino numbers and syslog priorities (journald's PRIORITY) as levels.
BUNYAN = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}
SYSLOG = ("FATAL", "CRITICAL", "CRITICAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")
MAX_CONTEXT_KEYS = 50
MAX_CONTEXT_VALUE = 1000
MAX_LINE = 16 * 1024  # bytes of a line kept (syslog's RFC 5424 asks receivers for 2 KiB+)
MAX_READ = 1024 * 1024  # bytes read per call for lines
MAX_SKIP = 64 * 1024 * 1024  # bytes of an over-long line skipped per call, read in MAX_READ
TRUNCATED = f" … [line truncated at {MAX_LINE} bytes]"


def parse_level(line: str) -> str:
    """The first level word in a text line (any alias); INFO when there is none."""
    match = _LEVEL.search(line[:200])
    return levels.normalise(match.group(1)) or "INFO" if match else "INFO"


def _lookup(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or for a dotted key the nested value (``error.code``)."""
    if key in record:
        return record[key]
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        value = _lookup(record, key)
        if value not in (None, "", [], {}):
            return key, value
    return None, None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)  # a traceback as a list of lines
    return json.dumps(value, default=str, ensure_ascii=False)


def _level(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = int(value)
        if number in BUNYAN:
            return BUNYAN[number]
        return SYSLOG[number] if 0 <= number < len(SYSLOG) else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return _level(int(value))
    return levels.normalise(value)


def parse_json_record(record: dict[str, Any], line: str, source: str) -> LogEntry:
    """A log entry from a JSON record: message, level, error code and stack trace from
    their usual keys, every other key (but the time) kept as context."""
    used: set[str] = set()
    key, message = _first(record, MESSAGE_KEYS)
    if key:
        used.add(key.split(".")[0])
    level_key, raw_level = _first(record, LEVEL_KEYS)
    level = _level(raw_level) if level_key else None
    if level_key and level:
        used.add(level_key.split(".")[0])
    code_key, code = _first(record, CODE_KEYS)
    stack_key, stack = _first(record, STACK_KEYS)
    for found in (code_key, stack_key):
        if found and "." not in found:
            used.add(found)
    context: dict[str, str] = {}
    for name, value in record.items():
        if name in used or name in TIME_KEYS or len(context) >= MAX_CONTEXT_KEYS:
            continue
        context[clip(str(name), 100)] = clip(_text(value), MAX_CONTEXT_VALUE)
    text = _text(message) if key else line
    return LogEntry(
        level or parse_level(text),
        text,
        source,
        clip(_text(code), 200) if code_key else None,
        _text(stack) if stack_key and stack is not True else None,
        context,
    )


def parse_line(line: str, source: str) -> LogEntry:
    """A log entry from one line: a JSON record's fields, or a text line as it is."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return parse_json_record(record, line, source)
    return LogEntry(parse_level(line), line, source=source)


class LogTail:
    """New lines of one file since the last call, bounded in lines, bytes and line length."""

    def __init__(self, path: Path, max_lines: int = 1000) -> None:
        self.path = path
        self.max_lines = max_lines
        self._offset: int | None = None
        self._inode: int | None = None
        self._skipping = False  # inside an over-long line already reported
        self._refused: str | None = None  # the kind of non-regular file last reported

    def read_new(self, source: str) -> list[LogEntry]:
        """Entries for the complete lines added since the last call (none on the first)."""
        try:
            fd = open_regular(str(self.path))
        except NotRegularFile as exc:
            if self._refused == exc.kind:
                return []
            self._refused = exc.kind
            return [LogEntry("WARN", f"log_file {exc}: not read", source="lightbulb.checker")]
        except OSError:
            return []
        self._refused = None
        try:
            return self._read(fd, source)
        finally:
            os.close(fd)

    def _read(self, fd: int, source: str) -> list[LogEntry]:
        stat = os.fstat(fd)
        if self._offset is None:
            self._offset, self._inode = stat.st_size, stat.st_ino
            return []
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._offset, self._inode, self._skipping = 0, stat.st_ino, False
        if self._skipping and not self._skip(fd):
            return []
        data = os.pread(fd, MAX_READ, self._offset)
        entries: list[LogEntry] = []
        start = 0
        while len(entries) < self.max_lines:
            end = data.find(b"\n", start)
            if end < 0:
                rest = len(data) - start
                if rest > MAX_LINE:  # too long to wait for: keep its start, skip the rest
                    entries.append(self._entry(data[start : start + MAX_LINE], source, cut=True))
                    self._offset += rest
                    self._skipping = True
                break
            raw = data[start:end]
            self._offset += end + 1 - start
            start = end + 1
            if raw.strip():
                entries.append(self._entry(raw[:MAX_LINE], source, cut=len(raw) > MAX_LINE))
        return entries

    def _skip(self, fd: int) -> bool:
        """Read on to the end of the over-long line (True) or give up for now (False)."""
        assert self._offset is not None
        for _ in range(MAX_SKIP // MAX_READ):
            chunk = os.pread(fd, MAX_READ, self._offset)
            if not chunk:
                return False
            end = chunk.find(b"\n")
            if end >= 0:
                self._offset += end + 1
                self._skipping = False
                return True
            self._offset += len(chunk)
        return False

    @staticmethod
    def _entry(raw: bytes, source: str, cut: bool) -> LogEntry:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if cut:  # a cut JSON record would not parse: keep it as text
            return LogEntry(parse_level(line), line + TRUNCATED, source=source)
        return parse_line(line, source)
