"""Every spelling a message, page, answer or config error may give a secret value.

A secret is masked in each of them (:func:`server.core.redact.redact`), not only as
written: an error quoting it through ``repr``, a JSON body, a URL or an HTML page
spells it otherwise (a doubled backslash, ``\\u00e9`` for ``é``, ``%2F``, ``&amp;``).
"""

from __future__ import annotations

import functools
import html
import json
import re
import shlex
from collections.abc import Callable
from urllib.parse import quote, quote_plus

_HEX = re.compile(r"(%|\\x)([0-9A-Fa-f]{2})|(\\u)([0-9A-Fa-f]{4})")


def _hex_case(upper: bool) -> Callable[[str], str]:
    """``%2F``/``\\u00E9`` spelled in the other case: encoders differ on it."""

    def spell(match: re.Match[str]) -> str:
        lead, digits = match.group(1) or match.group(3), match.group(2) or match.group(4)
        return lead + (digits.upper() if upper else digits.lower())

    return lambda text: _HEX.sub(spell, text)


# Each way a message, page, answer or config error may spell a secret: Python's repr
# (``\\``, ``\'``, ``\t``, ``\x00``, ``\u2028``), JSON (``\"``, ``\u00e9``, ``\/``, the
# HTML-safe ``\u003c`` of Jinja's tojson), URL-encoding (path, query, form), HTML
# entities (stdlib and markupsafe spellings) and shell quoting.
ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda t: repr(t)[1:-1],
    lambda t: t.replace("'", "\\'"),
    lambda t: t.replace('"', '\\"'),
    lambda t: t.encode("unicode_escape").decode("ascii"),
    lambda t: json.dumps(t)[1:-1],
    lambda t: json.dumps(t, ensure_ascii=False)[1:-1],
    lambda t: json.dumps(t)[1:-1].replace("/", "\\/"),
    lambda t: (
        json.dumps(t)[1:-1]
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
    ),
    lambda t: quote(t, safe=""),
    quote,
    quote_plus,
    lambda t: quote(t, safe="/:@!$&'()*+,;="),  # what a URL keeps in its path
    html.escape,
    lambda t: html.escape(t, quote=False),
    lambda t: html.escape(t).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
    shlex.quote,
    _hex_case(upper=False),
    _hex_case(upper=True),
)


@functools.lru_cache(maxsize=65536)
def escaped_forms(secret: str) -> frozenset[str]:
    """``secret`` and every spelling of it the escapes of :data:`ESCAPES` give, one or two
    deep (a repr inside JSON, a URL-quoted value in a repr); a plain word gives itself."""
    forms = {secret}
    for _depth in range(2):
        forms |= {escape(form) for form in forms for escape in ESCAPES}
    return frozenset(forms)
