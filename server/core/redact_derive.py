"""Secrets a config holds without naming them, and the spellings the daemon makes of secrets.

A password written in a URL's userinfo (``http://alice:pw@host``) is a secret although
no setting says so; the checker sends it, and a target may echo it back decoded
(``pw``), as written (``p%40ss``), as the ``user:pass`` pair, or as the
``Authorization: Basic`` token requests builds from it. :func:`userinfo_values` finds
every such spelling in any text of the config (a check URL, a command's argument, a
header, an Apprise URL). :func:`encoded_values` gives the base64 spellings the daemon
itself produces from a secret (a Basic token, an SMTP ``AUTH``), so an echo of one
is masked as well.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable
from urllib.parse import unquote

TOKEN_LENGTH = 8  # a userinfo without a password this long is taken for a token
# scheme://userinfo@ anywhere in a text: a URL may sit inside a command line or a header
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^\s/?#@\"'<>]+)@")


def _decoded(text: str) -> set[str]:
    """``text`` as written and percent-decoded (UTF-8, and Latin-1 where that differs)."""
    return {text, unquote(text), unquote(text, encoding="latin-1")}


def _b64(text: str) -> set[str]:
    """The base64 spellings of ``text``: standard, URL-safe, with and without padding,
    of its UTF-8 and (where it has one) Latin-1 bytes (requests encodes Basic in Latin-1)."""
    spellings = set()
    encodings = [text.encode("utf-8")]
    with contextlib.suppress(UnicodeEncodeError):
        encodings.append(text.encode("latin-1"))
    for raw in encodings:
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            token = encode(raw).decode("ascii")
            spellings |= {token, token.rstrip("=")}
    return {s for s in spellings if s}


def userinfo_values(texts: Iterable[str]) -> set[str]:
    """Every spelling of each URL credential in ``texts``, to be masked at any length.

    For ``scheme://user:password@`` that is the password and the ``user:password``
    pair, each as written and percent-decoded, and the base64 (Basic) tokens of the
    pair; for ``scheme://token@`` (no password: the user is the credential, as in
    ``https://<token>@github.com``) the token likewise when it has
    :data:`TOKEN_LENGTH` characters or more (``ssh://git@`` names a user). User names
    beside a password are not secrets by themselves and are not included; an empty
    password gives nothing.
    """
    found: set[str] = set()
    for text in texts:
        if "://" not in text or "@" not in text:
            continue
        for match in _USERINFO.finditer(text):
            user, colon, password = match.group(1).partition(":")
            if not colon:  # a token (long) or a plain user name (ssh://git@, admin@)
                if len(unquote(user)) >= TOKEN_LENGTH:
                    found |= _decoded(user)
                continue
            if not password:  # user:@host: no password, nothing secret
                continue
            found |= _decoded(password) | _decoded(f"{user}:{password}")
            for pair in (f"{unquote(user)}:{unquote(password)}", f"{user}:{password}"):
                found |= _b64(pair)
    return {v for v in found if v and v != ":"}


def encoded_values(values: Iterable[str], shortest: int) -> set[str]:
    """The base64 spellings of each of ``values`` of ``shortest`` characters or more
    (a shorter one's base64 is a few letters that would hide ordinary text)."""
    return {token for value in values if len(value) >= shortest for token in _b64(value)}
