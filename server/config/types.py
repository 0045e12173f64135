"""Value types of the config models: names and addresses (durations, sizes and secrets
live in :mod:`server.core`, re-exported here).

Each validator raises ``PydanticCustomError("lightbulb", ...)`` with a message
that says what was expected; the loader appends the offending value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from server.core.secret import SecretStr
from server.core.strict import EnvText, env_flag
from server.core.units import (
    ByteSize,
    Duration,
    WaitDuration,
    format_duration,
    format_size,
    parse_duration,
    parse_duration_or_zero,
    parse_size,
)

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(value: Any) -> str:
    """Database and cluster names go into DDL text, so only plain identifiers pass."""
    if not isinstance(value, str) or not _IDENT_RE.fullmatch(value):
        raise _fail("expected a name of letters, digits and _ not starting with a digit")
    return str(value)


_CLUSTER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,199}")


def check_cluster_name(value: Any) -> str:
    """A cluster of the server's ``remote_servers``: letters, digits, _ and - (``prod-eu``).

    The DDL backquotes a name with ``-`` (:attr:`server.schema.Target.cluster_sql`).
    """
    if not isinstance(value, str) or not _CLUSTER_RE.fullmatch(value):
        raise _fail("expected a cluster name of letters, digits, _ and - not starting "
                    "with a digit or -, as in the server's remote_servers")  # fmt: skip
    return str(value)


# fullmatch, not match with $: "$" also matches before a trailing newline
SERVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,199}")


def check_service_id(value: Any) -> str:
    """An id as text; ``id: 5`` unquoted (a YAML number) is refused as a string setting
    given a number is, with its "quote it" fix."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("string_type", "expected a string (quote it)")
    if not isinstance(value, str) or not SERVICE_ID_RE.fullmatch(value):
        raise _fail(
            "expected an id of lowercase letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 200 characters"
        )
    return value


_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")  # ASCII port


def check_host_port(value: Any) -> str:
    match = _HOST_RE.fullmatch(value) if isinstance(value, str) else None
    if not match or not 0 < int(match.group(2)) < 65536:
        raise _fail('expected "host:port" like "ch1.example.com:9000"')
    return match.group(0)


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


_CLOCK_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")  # \d also takes "٠٢:٣٠"


def check_clock_time(value: Any) -> str:
    """``"HH:MM"`` on a 24-hour clock (``"02:00"``, ``"23:59"``)."""
    if not isinstance(value, str) or not _CLOCK_TIME.fullmatch(value):
        raise _fail('expected a time of day like "02:00" (00:00 to 23:59)')
    return value


_PUBLIC_URL_FIX = (
    'expected an absolute http(s) address like "https://status.example.com" or '
    '"https://example.com/lightbulb" (a path prefix), without "?" or "#"'
)


def check_public_url(value: Any) -> str:
    """The dashboard's public address (``alerting.dashboard_url``), the base every link in
    notices and the public feed starts with: ``http``/``https``, a host, an optional path
    prefix; no query or fragment (``/sub/?x=1`` + ``/status`` is no link), no
    ``user:password@`` (it would be published in every link, so never quoted back).
    ``""`` (unset) passes."""
    if not isinstance(value, str):
        raise _fail(_PUBLIC_URL_FIX)
    if value == "":
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not digits
    except ValueError:
        raise _fail(_PUBLIC_URL_FIX) from None
    if "@" in parts.netloc:
        raise PydanticCustomError(
            "lightbulb_secret",
            "holds a user name or password (user:password@host): every link in notices and "
            "the public status feed would publish it; take it out (the dashboard asks for "
            "sign-in itself)",
        )
    plain = value.isascii() and value.isprintable() and " " not in value
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in value
        or "#" in value
        or not plain
    ):
        raise _fail(_PUBLIC_URL_FIX)
    return value


def _strict_bool(value: Any) -> bool:
    """YAML already gives real booleans; text only from the environment (``${VAR}``):
    a quoted ``"yes"`` in the file is a string, refused like in any other flag."""
    if isinstance(value, bool):
        return value
    flag = env_flag(value) if isinstance(value, EnvText) else None
    if flag is None:
        raise _fail("expected true or false")
    return flag


def check_type_name(value: Any) -> str:
    """A service or channel type's name; whether it is registered is checked above."""
    if not isinstance(value, str) or not value or len(value) > 100:
        raise _fail("expected a type name such as http or webhook")
    return value


Identifier = Annotated[str, BeforeValidator(check_identifier)]
ClusterName = Annotated[str, BeforeValidator(check_cluster_name)]
TypeName = Annotated[str, BeforeValidator(check_type_name)]
ServiceId = Annotated[str, BeforeValidator(check_service_id)]
HostPort = Annotated[str, BeforeValidator(check_host_port)]
Flag = Annotated[bool, BeforeValidator(_strict_bool)]
ClockTime = Annotated[str, BeforeValidator(check_clock_time)]
PublicUrl = Annotated[str, BeforeValidator(check_public_url)]


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("lightbulb", message)


__all__ = [
    "ByteSize",
    "ClockTime",
    "Duration",
    "Flag",
    "HostPort",
    "Identifier",
    "PublicUrl",
    "SecretStr",
    "ServiceId",
    "TypeName",
    "WaitDuration",
    "check_host_port",
    "check_identifier",
    "check_service_id",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_duration_or_zero",
    "parse_size",
    "split_host_port",
]
