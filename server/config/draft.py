"""A config file read section by section and item by item: what parsed, and every problem.

A bad value costs only itself: a section or list item with a bad field is kept with
that field at its default (:func:`_salvaged`), so the checks within and across
sections (:mod:`server.config.checks`, :mod:`server.validation`: pairs of fields,
references, conditions, channel and checker settings) still run on everything else,
and one pass reports every problem in the file. A check reading a value that failed
skips itself (:meth:`Draft.parsed`): it would judge the default, not the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from server.config.errors import ConfigError, ConfigProblem
from server.config.models import Config
from server.config.pydantic_errors import translate
from server.config.salvage import salvage
from server.config.source import Path, Source
from server.core.units import format_duration

# Sections whose entries are checked one by one (a list, or a mapping of names).
LIST_SECTIONS = ("services", "relations", "alert_rules", "silences")
MAP_SECTIONS = ("channels",)


@dataclass(frozen=True)
class WrittenService:
    """A service as written (:meth:`Draft.services_written`): its item's path, its id and
    stack (``"default"`` when none is written, or not as text), whether ``enabled`` is
    not ``false`` and whether it writes an ``slo``."""

    path: Path
    id: str
    stack: str
    enabled: bool
    slo: bool


@dataclass
class Draft:
    """The outcome of reading one file, before the cross-section checks.

    ``config`` holds the sections and items that parsed (defaults for sections that
    did not); ``kept[section]`` maps each of its list positions back to the
    position in the file, so problems found later quote the right ``key.path``.
    """

    source: Source
    data: dict[str, Any]
    config: Config
    problems: list[ConfigProblem]
    kept: dict[str, list[int]] = field(default_factory=dict)
    # values of secret-typed settings found by the checks above (checker and channel
    # settings), with the config's own: what server.core.redact masks
    secrets: set[str] = field(default_factory=set)
    warnings: list[ConfigProblem] = field(default_factory=list)
    # parsed()'s index: paths with a problem, every prefix of them, problems indexed
    _bad: set[Path] = field(default_factory=set, repr=False)
    _bad_below: set[Path] = field(default_factory=set, repr=False)
    _indexed: int = 0

    def report(self, path: Path, message: str) -> None:
        """Add a problem at ``path`` (its line looked up in the file)."""
        line = self.source.line_of(path)
        self.problems.append(ConfigProblem(self.source.filename, line, path, message))

    def warn(self, path: Path, message: str) -> None:
        """Note what is valid but likely a mistake at ``path``: it does not stop the
        load; ``lightbulb config check`` prints it and the daemon logs it at start."""
        line = self.source.line_of(path)
        self.warnings.append(ConfigProblem(self.source.filename, line, path, message))

    def parsed(self, *paths: Path) -> bool:
        """Whether each of ``paths`` holds what the file says: no problem was reported
        at it, above it (its section or item) or below it. A check comparing values
        asks first, so a bad value replaced by its default is not judged again.

        Costs O(depth) per path, not O(problems): a file with N bad services is
        checked in O(N) (attack report 2, item 4: scanning every problem per service
        took 314 s for 20,000 of them)."""
        self._index_problems()
        for path in paths:
            if path in self._bad_below or any(path[:cut] in self._bad for cut in range(len(path))):
                return False
        return True

    def _index_problems(self) -> None:
        """Index problems added since the last call (``problems`` only grows)."""
        for problem in self.problems[self._indexed :]:
            bad = problem.path
            self._bad.add(bad)
            self._bad_below.update(bad[:cut] for cut in range(len(bad) + 1))
        self._indexed = len(self.problems)

    def as_written(self, path: Path, value: timedelta) -> str:
        """The duration at ``path`` as the file wrote it (``1440m``, not ``1d``; ``${WINDOW}``
        for text from the environment), for a report to quote; ``value`` formatted when
        the file holds no text there (a default)."""
        if path in self.source.raw_text:
            return self.source.raw_text[path]
        written = self.value_at(path)
        return written.strip() if isinstance(written, str) else format_duration(value)

    def value_at(self, path: Path) -> Any:
        """The value at ``path`` as read from the file (after ``${VAR}``), or None."""
        current: Any = self.data
        for part in path:
            held = isinstance(current, dict) and part in current
            held |= isinstance(current, list) and isinstance(part, int) and part < len(current)
            if not held:
                return None
            current = current[part]
        return current

    def items(self, section: str) -> Iterator[tuple[Path, Any]]:
        """``(path, model)`` for each item of a list section that parsed."""
        positions = self.kept.get(section, [])
        for position, item in zip(positions, getattr(self.config, section), strict=True):
            yield (section, position), item

    def raw_items(self, section: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        """``(path, mapping)`` for each item of a list section as written, parsed or not."""
        value = self.data.get(section)
        for position, item in enumerate(value if isinstance(value, list) else []):
            if isinstance(item, dict):
                yield (section, position), item

    def services_written(self) -> list[WrittenService]:
        """Every service as the file writes it, parsed or not: what references (rules,
        relations, groups, ``slo_burn``) and duplicate ids are judged against, so a
        service with another problem (a bad interval) does not also make each place
        naming it look wrong.

        ``id: 5`` unquoted is refused at the id ("quote it":
        :func:`server.config.types.check_service_id`), yet meant ``"5"``: it counts here
        as its text as written (``0x1F``, ``1e3``, ``017``), so quoting it is the one fix.
        A service without a text or number id is left out (the model reported it)."""
        found = []
        for path, raw in self.raw_items("services"):
            sid, stack = raw.get("id"), raw.get("stack", "default")
            if isinstance(sid, int | float) and not isinstance(sid, bool):
                sid = self.source.written.get((*path, "id"), str(sid))
            if isinstance(sid, str):
                found.append(
                    WrittenService(
                        path,
                        sid,
                        stack if isinstance(stack, str) else "default",
                        enabled=raw.get("enabled") is not False,
                        slo=raw.get("slo") is not None,
                    )
                )
        return found

    def finish(self) -> Config:
        """The config, or :class:`ConfigError` with every problem collected."""
        problems = [p for p in self.problems if not self.source.follows_refused_key(p)]
        if problems:
            raise ConfigError(problems)
        self.source.release()
        self.config._source = self.source
        self.config._warnings = list(self.warnings)
        return self.config


def build(data: dict[str, Any], source: Source, problems: list[ConfigProblem]) -> Draft:
    """Validate each section of ``data`` on its own, and list sections item by item."""
    kept: dict[str, list[int]] = {}
    fields: dict[str, Any] = {}
    # x-* keys are the file's own (YAML anchors for merge keys, as in Compose files)
    unknown = {
        k: v for k, v in data.items() if k not in Config.model_fields and not k.startswith("x-")
    }
    if unknown:
        problems.extend(_validate(unknown, source)[1])
    for name in Config.model_fields:
        if name not in data:
            continue
        model, errors = _validate({name: data[name]}, source)
        problems.extend(errors)
        if model is None and (name in LIST_SECTIONS or name in MAP_SECTIONS):
            entries, kept[name] = _entries(name, data[name], problems, source)
            model = _validate({name: entries}, source)[0] if entries is not None else None
        elif model is None:
            section, hidden = _salvaged(name, data[name], item=False)
            problems.extend(translate(hidden, source, Config))
            model = None if section is None else _validate({name: section}, source)[0]
        if model is not None:
            fields[name] = getattr(model, name)
    # every field was validated above: assemble without validating the file twice
    config = Config.model_construct(**fields)
    for name in LIST_SECTIONS:
        kept.setdefault(name, list(range(len(getattr(config, name)))))
    return Draft(source, data, config, problems, kept)


def _validate(data: dict[str, Any], source: Source) -> tuple[Config | None, list[ConfigProblem]]:
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:
        return None, translate(exc, source, Config)


def _entries(
    name: str, value: Any, errors: list[ConfigProblem], source: Source
) -> tuple[Any, list[int]]:
    """The entries of a list or mapping section without the ones that had a problem;
    a list entry's bad keys are left out instead, and ``errors`` gets what that reveals."""
    bad = {p.path[1] for p in errors if len(p.path) > 1 and p.path[0] == name}
    if isinstance(value, list):
        entries, positions = [], []
        for position, written in enumerate(value):
            entry = written
            if position in bad:
                entry, hidden = _salvaged(name, written, item=True)
                for error in hidden:
                    error["loc"] = (name, position, *error["loc"][2:])
                errors.extend(translate(hidden, source, Config))
            if entry is None:
                continue  # a required key is what failed: nothing to check it by
            entries.append(entry)
            positions.append(position)
        return entries, positions
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in bad}, []
    return None, []


def _salvaged(name: str, value: Any, *, item: bool) -> tuple[Any, list[ErrorDetails]]:
    """Section ``name`` (or one ``item`` of it) without the keys that fail validation, so
    they take their defaults, or None when what fails is no key (the value itself, a
    required key, a rule spanning fields); with the errors that only then appear
    (:func:`server.config.salvage.salvage`)."""

    def validate(current: Any) -> Config:
        return Config.model_validate({name: [current] if item else current})

    try:
        validate(value)
    except ValidationError as exc:
        return salvage(validate, value, exc, skip=2 if item else 1)
    return value, []
