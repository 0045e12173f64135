"""Temporal's words made readable: a visibility query checked at load, errors reworded.

:func:`query_problem` is a light syntax check of a visibility query (Temporal's
SQL-like list filter, docs.temporal.io/list-filter): quotes closed, parentheses
balanced, no ``AND``/``OR`` or comparison left without an operand. It does not
parse the language; the server stays the judge of names and types, and its error
is shown without the ``at position N`` that refers to the query as the server
rewrote it (not as written in the config). :func:`connect_reason` turns the
SDK's ``tonic::transport::Error(...)`` debug text into a sentence.
"""

from __future__ import annotations

import re

from checkers.base import timed_out_message

_OPERATOR_AT_END = re.compile(
    r"(?:\b(?:and|or|not|in|like|between|starts_with|is)|=|!=|<>|<=|>=|<|>)\s*$", re.IGNORECASE
)
_OPERATOR_AT_START = re.compile(r"^\s*(?:\b(?:and|or)\b|=|!=|<>|<=|>=|<|>)", re.IGNORECASE)
_POSITION = re.compile(r"\s*(?:at|near)?\s*\(?\bposition\s+\d+\)?", re.IGNORECASE)


def query_problem(query: str) -> str | None:
    """What makes ``query`` surely not a visibility query, or None when it may be one."""
    depth = 0
    quote = ""
    outside: list[str] = []
    chars = iter(query)
    for char in chars:
        if quote:
            if char == "\\":
                next(chars, "")
            elif char == quote:
                quote = ""
            continue
        if char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "a ')' closes no '('"
        outside.append(char)
    if quote:
        return f"a {quote} quote is not closed"
    if depth:
        return f"{depth} '(' not closed"
    bare = "".join(outside)
    if _OPERATOR_AT_END.search(bare) or _OPERATOR_AT_START.search(bare):
        return "an operator (AND, OR, =, …) has no operand"
    if re.search(r"\(\s*\)", bare):
        return "empty parentheses"
    return None


def server_query_error(message: str) -> str:
    """The server's query error without positions in its rewritten query."""
    return _POSITION.sub("", message).strip()


def connect_reason(address: str, text: str, timeout: float, tls: bool = False) -> str:
    """A readable reason for a failed connection, from the SDK's error text (``timeout``:
    the check's, in seconds, named when the connection timed out; ``tls``: whether the
    client spoke TLS, so that a failure the SDK words only as "Server connection
    error" is named as the handshake it was)."""
    lowered = text.lower()
    if "connectionrefused" in lowered or "connection refused" in lowered:
        return f"cannot connect to {address}: connection refused"
    if "dns error" in lowered or "failed to lookup address" in lowered:
        return f"cannot connect to {address}: the host name does not resolve"
    if "timed out" in lowered or "timedout" in lowered or "deadline" in lowered:
        return f"cannot connect to {address}: {timed_out_message(timeout)}"
    if "invalidcontenttype" in lowered or "invalidmessage" in lowered:
        return (
            f"TLS handshake failed with {address}: the server did not answer in TLS "
            "(a plain-text server? set tls: false)"
        )
    found = re.search(
        r"(invalid peer certificate[^)\"]*|certificate[^)\"]*|handshake[^)\"]*)", text
    )
    if found or "tls" in lowered or "rustls" in lowered:
        detail = found.group(1).strip() if found else "see the server's certificate and tls setting"
        return f"TLS handshake failed with {address}: {detail}"
    os_message = re.search(r'message: "([^"]+)"', text)
    plain = re.sub(r"tonic::transport::Error\(.*", "", text).strip(" :")
    reason = (os_message.group(1).lower() if os_message else plain) or "transport error"
    if tls:  # the SDK says no more than "Server connection error" for a refused certificate
        return (
            f"TLS handshake failed with {address}: {reason} (a private CA? set "
            "tls.ca_cert; a plain-text server? set tls: false)"
        )
    return f"cannot connect to {address}: {reason} (a TLS server? set tls: true)"
