"""Text from outside (a Temporal id, a plugin's output, an HTTP body) made safe to show.

A workflow id may hold a newline, a NUL or U+202E (right-to-left override): shown
raw, it forges a second line in a log or the CLI, breaks an HTML attribute or
reverses the text around it. :func:`printable` replaces every control character
(Unicode category Cc: C0, DEL, C1), the bidirectional controls (Unicode's
Bidi_Control property, UAX #9) and the line and paragraph separators with a
visible escape (``\\n``, ``\\x00``, ``\\u202e``); :func:`shown` also shortens.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup
from markupsafe import escape as markup_escape

from server.core.redact import redact

# Cc, the Bidi_Control set (U+061C, U+200E-F, U+202A-E, U+2066-9), U+2028-9.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
ELLIPSIS = "\u2026"
SHOWN_CHARS = 80  # an id in a message: enough to tell ids apart, short enough to read


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control, bidi and separator characters as visible escapes."""
    return _UNSAFE.sub(_escape, text)


# What neither an HTML page nor an XML 1.0 feed may hold: NUL and the C0 controls but
# tab, newline and CR, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def displayable(text: str) -> str:
    """``text`` with each character a page or feed cannot carry (NUL, ``\x01``, ESC …)
    as U+FFFD, the replacement character; newlines and tabs stay (a note keeps its
    lines). Secrets are not this function's business (:func:`clip`, the pages' hook)."""
    return _NOT_XML.sub("\ufffd", text)


def escape(value: object) -> Markup:
    """``value`` for a page we build in Python (a tile, an SVG ``<title>``, an attribute):
    :func:`displayable` (NUL, BEL, ESC … as U+FFFD), then HTML-escaped, quotes included.

    The one rule Jinja's ``finalize`` applies to ``{{ … }}``: markup written in Python
    passes no template hook, so every module that builds markup escapes through this,
    never through ``markupsafe.escape`` alone. Markup we built already passes as it is.
    """
    if hasattr(value, "__html__"):
        return markup_escape(value)
    return markup_escape(displayable(str(value)))


def clip(text: str, limit: int) -> str:
    """``text`` with its secrets masked, then cut to ``limit`` characters.

    Masking comes first: a cut through a secret leaves a head that no longer matches
    it and would be shown as it is. Use it wherever outside text is cut.
    """
    return redact(text)[:limit]


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` masked (:func:`clip`) and cut to ``limit`` characters, the last one an
    ellipsis when cut."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """An outside name (an id, a type) for a message: printable, then shortened."""
    return shorten(printable(text), limit)


def printable_tree(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with every string printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value
