"""Finding many secret spellings in text at once: one compiled trie per secret set.

A set of secret values, each in every escaped spelling (~100 per value), becomes one
regular expression shaped as a trie (``tok(?:en1|en2)``): the engine skips positions
whose character starts no spelling and, where one does, follows a single branch, so a
scan costs about as much per character whatever the number of secrets. A plain
alternation of the same spellings tries each in turn at every position: at 1,000
secrets that was ~370 us per message (benchmarks/RESULTS.md, "Redaction").

The rule for short values: a value of :data:`MIN_SUBSTRING_LENGTH` characters or more
is masked wherever it appears, inside a word too; a shorter one (a password
``none``) only as a whole word, not next to a letter or digit (an escape such as
``\\n``, ``%0A`` or ``\\u00e9`` before it counts as a separator), so that ``none``
is masked in ``password none`` but ``nonempty`` stays readable.

Overlapping spellings are masked as their union: a short secret matching just before
a long one that overlaps it cannot leave the long one's tail visible.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

MIN_SUBSTRING_LENGTH = 8
_CACHE = 8  # secret sets kept compiled: a reload, or tests switching between configs

# Not after a letter or digit (or after an escape that ends in one): checked once the
# first character (a newline too) is consumed, so the engine can still skip on it.
_BEFORE = (
    r"(?:(?<![^\W_][\s\S])|(?<=\\[abfnrtv0][\s\S])|(?<=\\x[0-9A-Fa-f]{2}[\s\S])"
    r"|(?<=\\u[0-9A-Fa-f]{4}[\s\S])|(?<=\\U[0-9A-Fa-f]{8}[\s\S])|(?<=%[0-9A-Fa-f]{2}[\s\S]))"
)
_AFTER = r"(?![^\W_])"


class Matcher:
    """The spellings of one secret set, compiled; immutable, so shared between threads."""

    def __init__(self, anywhere: set[str], words: set[str]) -> None:
        try:
            self._compile(anywhere, words, _trie)
        except RecursionError:  # thousands of values each a prefix of the next
            self._compile(anywhere, words, _flat)

    def _compile(
        self, anywhere: set[str], words: set[str], build: Callable[[Iterable[str], str], str]
    ) -> None:
        parts = [build(anywhere, "")] if anywhere else []
        if words:
            parts.append("(?:" + build(words, _BEFORE) + ")" + _AFTER)
        body = "|".join(f"(?:{p})" for p in parts)
        self._first = re.compile(body)
        self._every = re.compile(f"(?=({body}))")

    def search(self, text: str) -> bool:
        """Whether any spelling is in ``text``."""
        return self._first.search(text) is not None

    def mask(self, text: str, mask: str) -> str:
        """``text`` with every span any spelling covers replaced by ``mask`` (once per run)."""
        if self._first.search(text) is None:
            return text
        spans: list[list[int]] = []
        for match in self._every.finditer(text):
            start, end = match.span(1)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        out, at = [], 0
        for start, end in spans:
            out += [text[at:start], mask]
            at = end
        out.append(text[at:])
        return "".join(out)


@functools.lru_cache(maxsize=_CACHE)
def _compiled(values: frozenset[str], forms: Callable[[str], Iterable[str]]) -> Matcher:
    anywhere: set[str] = set()
    words: set[str] = set()
    for value in values:
        (anywhere if len(value) >= MIN_SUBSTRING_LENGTH else words).update(forms(value))
    return Matcher(anywhere, words - anywhere)


def matcher(values: Iterable[str], forms: Callable[[str], Iterable[str]]) -> Matcher:
    """The :class:`Matcher` of ``values``, each in every spelling ``forms`` gives; built
    once per set (the last few sets are cached)."""
    return _compiled(frozenset(values), forms)


def _trie(words: Iterable[str], after_first: str = "") -> str:
    """One regular expression matching any of ``words``, longest first at a position.

    Chains without a branch are written as one literal, so nesting grows with the
    branching points only; ``after_first`` goes after each word's first character.
    """
    root: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _emit(root, after_first)


def _flat(words: Iterable[str], after_first: str = "") -> str:
    """The same as :func:`_trie` as a plain alternation, longest first (slower to scan)."""
    ordered = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(w[0]) + after_first + re.escape(w[1:]) for w in ordered)


def _emit(node: dict[str, dict], after_first: str = "") -> str:  # type: ignore[type-arg]
    branches = []
    for first in sorted(k for k in node if k):
        child, chain = node[first], first
        while len(child) == 1 and "" not in child:
            ((char, child),) = child.items()
            chain += char
        head = re.escape(chain[0]) + after_first + re.escape(chain[1:])
        branches.append(head + _emit(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body
