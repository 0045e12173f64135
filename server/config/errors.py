"""Configuration problems, worded as the fix and located as ``file:line key.path``."""

from __future__ import annotations

from dataclasses import dataclass

from server.core.redact import redact


def format_path(path: tuple[str | int, ...]) -> str:
    """``("services", 2, "interval")`` -> ``services[2].interval``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class ConfigProblem:
    filename: str
    line: int | None
    path: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        return self._located(self.message)

    def as_warning(self) -> str:
        """``file:line key.path: warning: message``: valid, but likely a mistake."""
        return self._located(f"warning: {self.message}")

    def _located(self, message: str) -> str:
        where = self.filename if self.line is None else f"{self.filename}:{self.line}"
        key = format_path(self.path)
        return f"{where} {key}: {message}" if key else f"{where}: {message}"


class ConfigError(Exception):
    """Every problem found in one configuration file; raised only after all were collected."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line or 0, str(p)))
        super().__init__(self.report())

    def report(self, outcome: str = "nothing was started") -> str:
        """Every problem, one a line, then their count and ``outcome``: what happened
        because of them (a reload says the running config stays)."""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [redact(str(p)) for p in self.problems]  # a bad value may be a secret
        lines.append(f"{count} {noun} found; {outcome}.")
        return "\n".join(lines)
