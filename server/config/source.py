"""Read a YAML file into plain data while remembering where every key came from.

Validation errors must quote ``file:line key.path``, so we walk PyYAML's node
tree ourselves instead of calling ``safe_load``: each mapping key and list item
records its line under its key path. ``${VAR}`` / ``${VAR:-default}`` are
expanded in scalar values *after* parsing, so an environment value can never
change the document's structure, and the unexpanded text is kept so secrets can
be stored as written (``${TOKEN}``) rather than as their values.

Hostile documents are refused with a located problem, in well under a second:
aliases (``*name``) may expand the document to at most :data:`MAX_VALUES`
values (a 400-byte "billion laughs" would otherwise take minutes and gigabytes),
an alias may not contain itself, and nesting is limited to :data:`MAX_DEPTH`.
Merge keys (``<<: *defaults``) work as in YAML 1.1: keys written in the mapping
win over merged ones, and earlier merged mappings win over later ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from server.config.errors import ConfigProblem
from server.core import numbers
from server.core.strict import EnvText

Path = tuple[str | int, ...]

# LibYAML's parser is ~4x faster and peaks far lower on big files (5,000 services);
# the pure-Python one is the fallback where PyYAML was built without it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_VALUES = 1_000_000  # values after alias expansion: 5,000 services use ~150,000
MAX_DEPTH = 64  # mappings and lists inside each other
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Tags of plain data: what YAML gives untagged values (and ``!!str`` & co. written out).
PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")
)

EMPTY_MESSAGE = (
    "empty configuration: the file holds no settings, only whitespace or comments "
    "(emptied or cut short?); restore it, or write `services: []` to run with no services"
)

# $$, then ${NAME} or ${NAME:-default}, then any other ${...}: a reference we refuse
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


@dataclass
class Source:
    """Parsed document plus the positions and raw text needed for good errors."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    # Paths whose value came (partly) from the environment, with the text as written.
    raw_text: dict[Path, str] = field(default_factory=dict)
    # Every value taken from an environment variable: secrets to mask (server.core.redact).
    env_values: set[str] = field(default_factory=set)
    # Unquoted scalars YAML typed as no string (numbers, flags, null), as written:
    # "quote it" errors show ``01234567``, not the octal number YAML made of it.
    written: dict[Path, str] = field(default_factory=dict)
    # Where each of them was used (an e-mail address is not a secret: server.validation).
    env_uses: dict[str, set[Path]] = field(default_factory=dict)
    # Keys refused as written (a tag on a key), by path, with the problem saying so.
    refused_keys: dict[Path, ConfigProblem] = field(default_factory=dict)

    def release(self) -> None:
        """Drop what only error reporting needed, once the file is valid.

        The parsed copy and the line of every key cost as much memory as the
        config itself; after validation only the ``${VAR}`` texts are used.
        """
        self.data = None
        self.lines = {}
        self.written = {}

    def follows_refused_key(self, problem: ConfigProblem) -> bool:
        """Whether ``problem`` lies at or below a refused key without being its refusal:
        a consequence ("unknown key", a bad value under it) of what was reported already."""
        path = problem.path
        for cut in range(len(path), 0, -1):
            refusal = self.refused_keys.get(path[:cut])
            if refusal is not None:
                return refusal is not problem
        return False

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
        problems.append(_yaml_problem(filename, text, exc))
        return source, problems
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (NUL, other controls)
        line = text.count("\n", 0, exc.position) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        what = f"character #x{code:04x}" if isinstance(code, int) else "a character"
        message = f"invalid YAML: {what} is not allowed (a control character); remove it"
        problems.append(ConfigProblem(filename, line, (), message))
        return source, problems
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises Marked errors for text
        problems.append(ConfigProblem(filename, None, (), f"invalid YAML: {exc}"))
        return source, problems
    if node is None:  # nothing but whitespace and comments: emptied or cut short
        problems.append(ConfigProblem(filename, None, (), EMPTY_MESSAGE))
        return source, problems
    refusal = _refuse_hostile(node, filename)
    if refusal is not None:
        problems.append(refusal)
        return source, problems
    walker = _Walker(source, env, problems)
    source.lines[()] = node.start_mark.line + 1
    source.data = walker.build(node, ())
    return source, problems


def _yaml_problem(filename: str, text: str, exc: yaml.MarkedYAMLError) -> ConfigProblem:
    """A parse error at the line to fix: where an unclosed quote, bracket or brace was
    opened, not the end of the file where the parser ran out of text."""
    what = exc.problem or exc.context or "malformed document"
    mark = exc.problem_mark or exc.context_mark
    at_end = exc.problem_mark is not None and exc.problem_mark.index >= len(text.rstrip())
    if at_end and exc.context_mark is not None and exc.context:
        end = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        opened = exc.context.removeprefix("while scanning ").removeprefix("while parsing ")
        what = f"{opened} opened here is never closed: {what}{end}; close it"
        mark = exc.context_mark
    line = mark.line + 1 if mark else None
    return ConfigProblem(filename, line, (), f"invalid YAML: {what}")


def _refuse_hostile(root: yaml.Node, filename: str) -> ConfigProblem | None:
    """A problem if aliases make ``root`` recursive, too big once expanded, or too deep,
    at the line of the value that does it (the alias that contains itself, the first
    value that expands past :data:`MAX_VALUES`, the mapping or list one level too deep).

    Sizes and heights are counted over the node graph with a memo (each distinct node
    once), without recursion, so the count takes time linear in the file however far
    aliases multiply it and however deep it nests.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            heights[key] = 1 + max((heights[id(c)] for c in children), default=0)
            if sizes[key] > MAX_VALUES:
                return ConfigProblem(
                    filename, node.start_mark.line + 1, (),
                    f"aliases expand this value to {sizes[key]:,} values, more than "
                    f"{MAX_VALUES:,}; write repeated blocks out or share fewer aliases",
                )  # fmt: skip
            continue
        if key in sizes:
            continue
        if key in on_path:
            return ConfigProblem(
                filename, node.start_mark.line + 1, (),
                "an alias refers to a value that contains it (recursive alias); "
                "write the value out instead",
            )  # fmt: skip
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
    if heights[id(root)] > MAX_DEPTH:
        node = root
        for _level in range(MAX_DEPTH):  # down the deepest branch to the 65th level
            node = max(_children(node), key=lambda c: heights[id(c)])
        line = node.start_mark.line + 1
        return ConfigProblem(filename, line, (), f"nested deeper than {MAX_DEPTH} levels")
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def env_names(text: str) -> list[str]:
    """The variables ``text`` refers to (``${NAME}``, ``${NAME:-default}``), in order."""
    return [m.group(1) for m in _ENV_RE.finditer(text) if m.group(1)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _Walker:
    def __init__(
        self, source: Source, env: Mapping[str, str], problems: list[ConfigProblem]
    ) -> None:
        self.source = source
        self.env = env
        self.problems = problems
        self.constructor = yaml.SafeLoader("")  # reused only to resolve scalar tags
        self._refused: dict[int, ConfigProblem] = {}  # tagged keys, by offset in the text

    def problem(self, path: Path, message: str) -> None:
        line = self.source.line_of(path)
        self.problems.append(ConfigProblem(self.source.filename, line, path, message))

    def build(self, node: yaml.Node, path: Path) -> Any:
        if node.tag not in PLAIN_TAGS:
            # !!python/... on a list or mapping, !!binary, !!set, !custom: the README
            # promises plain data only, whatever the safe loader would have made of it
            line = node.start_mark.line + 1
            message = f"unsupported tag {node.tag}; write a plain value"
            self.problems.append(ConfigProblem(self.source.filename, line, path, message))
            # the text as written, or an empty one of its kind: no second problem
            if isinstance(node, yaml.MappingNode):
                return {}
            return [] if isinstance(node, yaml.SequenceNode) else node.value
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, child in enumerate(node.value):
                self.source.lines[(*path, index)] = child.start_mark.line + 1
                items.append(self.build(child, (*path, index)))
            return items
        assert isinstance(node, yaml.ScalarNode)
        value = self._scalar(node, path)
        if isinstance(value, str) and not node.style and "$" not in value:  # plain: unquoted
            read = numbers.read_plain(value)  # 1e3; None: not a plain number
            value = value if read is None else read
        if not isinstance(value, str):
            self.source.written[path] = node.value
        if isinstance(value, str) and "$" in value:
            value = self._expand(value, path)
        if isinstance(value, str) and not _is_utf8(value):
            # an environment value of bytes that are not UTF-8 arrives as lone surrogates:
            # no table, page or log line can hold them
            self.problem(path, "expected UTF-8 text (an environment variable holds other bytes)")
            return value.encode("utf-8", "replace").decode("utf-8")
        return value

    def _scalar(self, node: yaml.Node, path: Path = ()) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError:  # a tag the safe loader refuses (!!python/..., !custom)
            line = node.start_mark.line + 1
            message = f"unsupported tag {node.tag}; write a plain value"
            self.problems.append(ConfigProblem(self.source.filename, line, path, message))
            return node.value  # the text as written: no second problem about its type
        except ValueError:  # an int of over 4300 digits: refused as written where it is used
            value = node.value
        # PyYAML caches every constructed node (and so every position mark) for
        # anchors; we resolve aliases from the node tree ourselves, so drop the
        # cache or a 5,000-service file keeps ~35 MB of marks alive.
        self.constructor.constructed_objects.clear()
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, path)
            if key is None:  # refused, and said so: its value has no key path to check
                continue
            child = (*path, key)
            if key in out:
                first = self.source.lines.get(child)
                message = f"duplicate key (first set at line {first}); keep one"
                line = key_node.start_mark.line + 1
                self.problems.append(ConfigProblem(self.source.filename, line, child, message))
                continue
            self.source.lines[child] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, child)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, out, key_node.start_mark.line + 1)
        return out

    def _key(self, node: yaml.Node, path: Path) -> str | None:
        """The key ``node`` of the mapping at ``path`` as text; None for a list or mapping
        as key (refused, and the pair skipped). A tagged key is refused too but kept as
        written, so what the file meant is still checked; problems the checks find at or
        below it are dropped as its consequences (:meth:`Source.follows_refused_key`)."""
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            message = f"a key must be a plain value, not {kind}; write a plain key"
            self.problems.append(ConfigProblem(self.source.filename, line, path, message))
            return None
        if node.tag in PLAIN_TAGS:
            key = self._scalar(node, path)
            # as written: `null:` and `true:` are names here, not None and True
            return key if isinstance(key, str) else str(node.value)
        # once per key as written: an anchored block merged twice holds it once
        refusal = self._refused.get(node.start_mark.index)
        if refusal is None:
            message = f"unsupported tag {node.tag} on a key; write the key without it"
            refusal = ConfigProblem(self.source.filename, line, (*path, node.value), message)
            self._refused[node.start_mark.index] = refusal
            self.problems.append(refusal)
        self.source.refused_keys.setdefault((*path, node.value), refusal)
        return str(node.value)

    def _merge(self, value_node: yaml.Node, path: Path, out: dict[str, Any], line: int) -> None:
        """``<<: *a`` or ``<<: [*a, *b]``: add the keys ``out`` does not have yet.

        A merged key's line is where it is written (in the anchored mapping), so an
        error in a shared block points at the block.
        """
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if not all(isinstance(source, yaml.MappingNode) for source in sources):
            message = "a merge key (<<) takes a mapping or a list of mappings"
            self.problems.append(ConfigProblem(self.source.filename, line, path, message))
            return
        for source in sources:
            pairs = [(k, v) for k, v in source.value if k.tag != _MERGE_TAG]
            for key_node, child_node in pairs:
                key = self._key(key_node, path)
                if key is None or key in out:
                    continue
                child = (*path, key)
                self.source.lines[child] = key_node.start_mark.line + 1
                out[key] = self.build(child_node, child)
            for key_node, child_node in source.value:
                if key_node.tag == _MERGE_TAG:
                    self._merge(child_node, path, out, key_node.start_mark.line + 1)

    def _expand(self, text: str, path: Path) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name is None:
                self.problem(
                    path,
                    f'"{match.group(0)}" is no variable reference: write ${{NAME}} with a name '
                    'of letters, digits and _ not starting with a digit, or "$${" for a '
                    'literal "${"',
                )
                return match.group(0)
            if name in self.env:
                self.source.env_values.add(self.env[name])
                self.source.env_uses.setdefault(self.env[name], set()).add(path)
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
            return EnvText(expanded)
        return expanded
