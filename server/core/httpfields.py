"""HTTP request parts as config values: methods, header names and header values.

A method or header holding CR/LF could split the request (header injection) and
ends in a run-time error whose text echoes the value; these types refuse such
values at load, worded as the fix. Syntax from RFC 9110: a method and a field
name are tokens (section 5.6.2); a field value has no CR, LF or NUL (section 5.5).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

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


HttpMethod = Annotated[str, BeforeValidator(check_method)]
HeaderName = Annotated[str, BeforeValidator(check_header_name)]
HeaderValue = Annotated[str, BeforeValidator(check_header_value)]
