"""Log levels: the names stored in ``service_logs.log_level`` and the aliases accepted.

Stored levels, least to most severe: TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL,
FATAL. Other spellings seen in the wild (syslog's ``err``/``crit``/``emerg``,
Python's ``WARNING``, OpenTelemetry's ``INFO2``…) map onto them through
:data:`ALIASES`. ERROR and above count as errors (error patterns, ``log_errors``).
"""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "CRITICAL", "FATAL")
ALIASES: dict[str, str] = {
    "WARNING": "WARN",
    "ERR": "ERROR",
    "CRIT": "CRITICAL",
    "EMERG": "FATAL",
    "EMERGENCY": "FATAL",
    "PANIC": "FATAL",
    "ALERT": "CRITICAL",
    "NOTICE": "INFO",
    "INFORMATION": "INFO",
    "INFORMATIONAL": "INFO",
    "VERBOSE": "DEBUG",
}
ERROR_LEVELS: frozenset[str] = frozenset({"ERROR", "CRITICAL", "FATAL"})
_RANK = {name: rank for rank, name in enumerate(LEVELS)}


def normalise(raw: object) -> str | None:
    """The stored level for ``raw`` (any case, alias or not), or None if it is none."""
    if not isinstance(raw, str):
        return None
    name = raw.strip().upper()
    name = ALIASES.get(name, name)
    return name if name in _RANK else None


def is_error(level: str) -> bool:
    """True for ERROR, CRITICAL and FATAL (any case or alias)."""
    return normalise(level) in ERROR_LEVELS


def rank(level: str) -> int:
    """0 for TRACE … 6 for FATAL; raises ``ValueError`` for an unknown level."""
    name = normalise(level)
    if name is None:
        raise ValueError(f"unknown log level {level!r}")
    return _RANK[name]
