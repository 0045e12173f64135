"""Read a YAML file into plain data while remembering where every key came from.

Validation errors must quote ``file:line key.path``, so we walk PyYAML's node
tree ourselves instead of calling ``safe_load``: each mapping key and list item
records its line under its key path. ``${VAR}`` / ``${VAR:-default}`` are
expanded in scalar values *after* parsing, so an environment value can never
change the document's structure, and the unexpanded text is kept so secrets can
be stored as written (``${TOKEN}``) rather than as their values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from server.config.errors import ConfigProblem

Path = tuple[str | int, ...]

# LibYAML's parser is ~4x faster and peaks far lower on big files (5,000 services);
# the pure-Python one is the fallback where PyYAML was built without it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Source:
    """Parsed document plus the positions and raw text needed for good errors."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    # Paths whose value came (partly) from the environment, with the text as written.
    raw_text: dict[Path, str] = field(default_factory=dict)

    def release(self) -> None:
        """Drop what only error reporting needed, once the file is valid.

        The parsed copy and the line of every key cost as much memory as the
        config itself; after validation only the ``${VAR}`` texts are used.
        """
        self.data = None
        self.lines = {}

    def line_of(self, path: Path) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(path[:cut])
            if line is not None:
                return line
        return None

    def raw(self, path: Path, value: Any) -> Any:
        """``value`` with every env-expanded scalar below ``path`` put back as written."""
        if path in self.raw_text:
            return self.raw_text[path]
        if isinstance(value, Mapping):
            return {k: self.raw((*path, k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.raw((*path, i), v) for i, v in enumerate(value)]
        return value


def load_source(
    text: str, filename: str, environ: Mapping[str, str] | None = None
) -> tuple[Source, list[ConfigProblem]]:
    """Parse ``text``; return the source and every problem found while reading it."""
    env = os.environ if environ is None else environ
    source = Source(filename=filename, data=None)
    problems: list[ConfigProblem] = []
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "malformed document"
        problems.append(ConfigProblem(filename, line, (), f"invalid YAML: {what}"))
        return source, problems
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises Marked errors for text
        problems.append(ConfigProblem(filename, None, (), f"invalid YAML: {exc}"))
        return source, problems
    if node is None:
        source.data = {}
        return source, problems
    walker = _Walker(source, env, problems)
    source.lines[()] = node.start_mark.line + 1
    source.data = walker.build(node, ())
    return source, problems


class _Walker:
    def __init__(
        self, source: Source, env: Mapping[str, str], problems: list[ConfigProblem]
    ) -> None:
        self.source = source
        self.env = env
        self.problems = problems
        self.constructor = yaml.SafeLoader("")  # reused only to resolve scalar tags

    def problem(self, path: Path, message: str) -> None:
        line = self.source.line_of(path)
        self.problems.append(ConfigProblem(self.source.filename, line, path, message))

    def build(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, child in enumerate(node.value):
                self.source.lines[(*path, index)] = child.start_mark.line + 1
                items.append(self.build(child, (*path, index)))
            return items
        assert isinstance(node, yaml.ScalarNode)
        value = self._scalar(node)
        if isinstance(value, str) and "$" in value:
            return self._expand(value, path)
        return value

    def _scalar(self, node: yaml.Node) -> Any:
        value = self.constructor.construct_object(node, deep=True)
        # PyYAML caches every constructed node (and so every position mark) for
        # anchors; we resolve aliases from the node tree ourselves, so drop the
        # cache or a 5,000-service file keeps ~35 MB of marks alive.
        self.constructor.constructed_objects.clear()
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in out:
                first = self.source.lines.get(child)
                self.problems.append(
                    ConfigProblem(
                        self.source.filename,
                        line,
                        child,
                        f"duplicate key (first set at line {first}); keep one",
                    )
                )
                continue
            self.source.lines[child] = line
            out[key] = self.build(value_node, child)
        return out

    def _expand(self, text: str, path: Path) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.problem(
                path,
                f'environment variable {name} is not set (set it, or write "${{{name}:-default}}")',
            )
            return ""

        expanded = _ENV_RE.sub(replace, text)
        if expanded != text:
            self.source.raw_text[path] = text
        return expanded
