"""Error patterns: the variable parts of a message replaced by placeholders.

``"timeout after 5000 ms talking to 10.0.0.7:5432"`` and ``"timeout after 3000 ms
talking to 10.0.0.9:5432"`` are one pattern, ``"timeout after <num> ms talking
to <ip>"``, with one fingerprint. Replacements run most specific first, so a
UUID is not mistaken for numbers and hex, or an e-mail for a path.
"""

from __future__ import annotations

import functools
import hashlib
import re

from server.core.levels import ERROR_LEVELS

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    # IPv6: hex groups and at least two colons, with a letter or "::" (so 10:30:00 stays a time)
    (re.compile(r"(?<![\w:])(?=[0-9a-fA-F:]*:[0-9a-fA-F]*:)(?=[0-9:]*[a-fA-F]|[0-9a-fA-F:]*::)"
                r"[0-9a-fA-F:]{3,39}(?![\w:])"), "<ip>"),
    (re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`"), "<str>"),
    (re.compile(r"(?:(?<=\s)|^)(?:[A-Za-z]:)?(?:[\\/][\w.@~-]+){2,}[\\/]?"), "<path>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*(?=[a-zA-Z%]*\b)"), "<num>"),
)  # fmt: skip
_SPACES = re.compile(r"\s+")
MAX_PATTERN = 500


def normalise(message: str) -> str:
    """The message's pattern: first line only, variable parts as placeholders."""
    text = message.strip().split("\n", 1)[0]
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return _SPACES.sub(" ", text).strip()[:MAX_PATTERN]


def fingerprint(pattern: str) -> int:
    """A stable 64-bit id for a pattern (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(pattern.encode(), digest_size=8).digest(), "big")


def pattern_of(level: str, message: str) -> tuple[str, int]:
    """(pattern, fingerprint) for ERROR and above; ('', 0) for other levels."""
    if level.upper() not in ERROR_LEVELS:
        return "", 0
    return _pattern(message)


@functools.lru_cache(maxsize=4096)
def _pattern(message: str) -> tuple[str, int]:
    """Memoised: the recorder, the alert history and the engine all ask for the same
    error line, and a failing service repeats its messages; ten regexes run once."""
    pattern = normalise(message)
    return pattern, fingerprint(pattern)
