"""HTTP request parts as config values: URLs, methods, header names and header values.

A method or header holding CR/LF could split the request (header injection) and
ends in a run-time error whose text echoes the value; these types refuse such
values at load, worded as the fix. Syntax from RFC 9110: a method and a field
name are tokens (section 5.6.2); a field value has no CR, LF or NUL (section 5.5).
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("lightbulb", message)


def check_method(value: Any) -> str:
    """``GET``, ``POST`` ... any RFC 9110 token; returned upper-cased."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise _fail("expected an HTTP method such as GET, HEAD or POST")
    return value.upper()


def check_header_name(value: Any) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise _fail("expected a header name of letters, digits and -, such as X-Api-Key")
    return value


def check_header_value(value: Any) -> Any:
    """Text (or a secret's text) without CR, LF or NUL; returns ``value`` unchanged."""
    text = value.reveal() if hasattr(value, "reveal") else value
    if not isinstance(text, str) or _BAD_VALUE.search(text) or len(text) > 8192:
        # the value itself is not quoted back: header values are often credentials
        raise PydanticCustomError(
            "lightbulb_secret", "expected a header value on one line (no CR, LF or NUL)"
        )
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_HOST = re.compile(r"[\s\x00-\x1f\x7f<>\"\\^`{|}%]")
# What a request target keeps as written (RFC 3986 reserved and unreserved, and "%"
# of an escape already made); anything else (a space, non-ASCII) is percent-encoded.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


def http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched (worded as the fix), or None.

    An http(s) scheme, a host without spaces, a port 1 to 65535 if given, and no
    control character anywhere (CR/LF would split the request: header injection).
    """
    expected = "expected an http:// or https:// URL"
    if _CONTROL.search(url):
        return f"{expected} without control characters (CR, LF, tab, NUL)"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [IPv6] bracket
        return f"{expected} with a valid host"
    try:
        port = parts.port
    except ValueError:  # beyond 65535, or not a number
        return f"{expected} with a port 1 to 65535"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return expected
    if _BAD_HOST.search(parts.hostname):
        return f"{expected} with a host name of letters, digits, dots and dashes"
    if port == 0:
        return f"{expected} with a port 1 to 65535"
    return None


def check_http_url(value: Any) -> str:
    """An URL :func:`http_url_problem` finds nothing wrong with."""
    if not isinstance(value, str):
        raise _fail("expected an http:// or https:// URL")
    problem = http_url_problem(value)
    if problem is not None:
        raise _fail(problem)
    return value


def request_target(path: str, query: str) -> str:
    """The request line's target for a URL's ``path`` and ``query``: a space or non-ASCII
    character percent-encoded (as UTF-8), so it can neither split nor garble the line."""
    target = (path or "/") + (f"?{query}" if query else "")
    return quote(target, safe=_TARGET_SAFE)


HttpUrl = Annotated[str, BeforeValidator(check_http_url)]
HttpMethod = Annotated[str, BeforeValidator(check_method)]
HeaderName = Annotated[str, BeforeValidator(check_header_name)]
HeaderValue = Annotated[str, BeforeValidator(check_header_value)]
