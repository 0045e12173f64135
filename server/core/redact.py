"""Secrets never leave: the one function that masks them wherever text is shown or stored.

:func:`redact` replaces, in any text, with :data:`MASK`:

- every secret value the loaded config holds (:func:`learn`): each value that came
  from a ``${ENV}`` variable (6 characters or more: shorter ones, such as a port,
  would mask ordinary text) and each value of a secret-typed setting (passwords,
  tokens, webhook and Slack URLs, 4 characters or more), each in every escaped
  spelling a message may give it (:func:`escaped_forms`: repr, JSON, HTML, URL);
- the ``Authorization: Basic`` token of a URL with userinfo (:func:`basic_credentials`);
- the userinfo of any URL (``https://user:pass@host`` -> ``https://<secret>@host``);
- the value of any URL query parameter named like a credential
  (:data:`SECRET_QUERY_NAMES`: ``?token=…``, ``&api_key=…``, ``&sig=…``).

It is applied at the choke points rather than in each checker or channel: results
on their way to rows and alerts, every row written, every notice the dispatcher
queues, every log record (:class:`LoggingFilter`), every page and JSON answer, and
what the CLI prints. Learned values are kept for the life of the process (a reload adds, never
forgets: old secrets may still sit in queued text).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import re
import shlex
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from server.core.secret import Secret

MASK = "<secret>"
MIN_ENV_LENGTH = 6
MIN_SECRET_LENGTH = 4
SECRET_QUERY_NAMES = (
    "token", "access_token", "refresh_token", "id_token", "api_key", "apikey", "key",
    "password", "passwd", "pwd", "secret", "client_secret", "signature", "sig", "auth",
    "authorization", "session", "sessionid", "private_token", "routing_key",
)  # fmt: skip
_USERINFO = re.compile(r"(?<=://)[^\s/?#@]+@")
_QUERY = re.compile(r"(?i)([?&;](?:" + "|".join(SECRET_QUERY_NAMES) + r")=)[^&#\s\"'<>]+")


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


def escaped_forms(secret: str) -> set[str]:
    """``secret`` and every spelling of it the escapes of :data:`ESCAPES` give, one or two
    deep (a repr inside JSON, a URL-quoted value in a repr); a plain word gives itself."""
    forms = {secret}
    for _depth in range(2):
        forms |= {escape(form) for form in forms for escape in ESCAPES}
    return forms


def basic_credentials(value: Any) -> set[str]:
    """The ``Authorization: Basic`` token (base64 of ``user:password``) of every URL with
    userinfo among the strings inside ``value``: what a receiver echoing the request
    header would show (requests sends a URL's userinfo that way)."""
    found: set[str] = set()
    for item in _leaves(value):
        text = item.reveal() if isinstance(item, Secret) else item
        if not isinstance(text, str) or "@" not in text or "://" not in text:
            continue
        try:
            parts = urlsplit(text.strip())
            user, password = parts.username, parts.password
        except ValueError:  # not a URL after all (a bad port or bracket)
            continue
        if user is not None:
            pair = f"{unquote(user)}:{unquote(password or '')}"
            found.add(base64.b64encode(pair.encode("latin-1", "replace")).decode())
    return found


class Redactor:
    """Masks learned secret values and URL credentials; thread-safe, cheap when idle."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def learn(self, values: Iterable[str]) -> None:
        """Add secret values to mask from now on, with every escaped spelling of each
        (:func:`escaped_forms`); values too short to be safe are skipped."""
        with self._lock:
            fresh = {
                form for v in values if len(v) >= MIN_SECRET_LENGTH for form in escaped_forms(v)
            } - self._values
            if not fresh:
                return
            self._values |= fresh
            # longest first, so a secret containing another is masked whole
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def text(self, text: str) -> str:
        """``text`` with every secret value and URL credential replaced by :data:`MASK`."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "://" in text:
            text = _USERINFO.sub(MASK + "@", text)
        if "=" in text:
            text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
        return text

    def value(self, value: Any) -> Any:
        """``value`` with :meth:`text` applied to every string inside it.

        Walks strings, lists, tuples, dicts (keys too) and dataclass instances (a
        copy with redacted fields); anything else comes back as it is. The input is
        never changed.
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self.value(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init
            }
            return dataclasses.replace(value, **changes)
        return value


_default = Redactor()
learn = _default.learn
redact = _default.text
redact_value = _default.value


def env_secrets(values: Iterable[str]) -> set[str]:
    """The ``${ENV}`` values worth masking: long enough not to hit ordinary text."""
    return {v for v in values if len(v) >= MIN_ENV_LENGTH}


def secrets_in(value: Any) -> set[str]:
    """The revealed text of every :class:`Secret` inside ``value`` (models, dicts, lists)."""
    return {item.reveal() for item in _leaves(value) if isinstance(item, Secret) and item.reveal()}


def _leaves(value: Any) -> Iterable[Any]:
    """Everything inside ``value`` that is not a model, dict or collection."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__pydantic_fields__") and not isinstance(item, Secret):
            stack.extend(getattr(item, name) for name in type(item).__pydantic_fields__)
            stack.extend((getattr(item, "__pydantic_extra__", None) or {}).values())
        else:
            yield item


def finalize(value: Any) -> Any:
    """Jinja ``finalize`` hook: every ``{{ expression }}`` of a page, notice or report.

    Markup (charts, the stored report) keeps being markup, with an escaped mask.
    """
    if not isinstance(value, str):
        return value
    if hasattr(value, "__html__"):
        masked = redact(str(value)).replace(MASK, "&lt;secret&gt;")
        return type(value)(masked) if masked != str(value) else value
    return redact(value)


class LoggingFilter(logging.Filter):
    """Put on a handler: the record's message and traceback leave redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingSink:
    """Wraps a row sink (the writer): every string in every row is redacted first."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def add(self, table: str, row: Any) -> None:
        self._sink.add(table, redact_value(row))

    def add_durable(self, table: str, rows: Any) -> Any:
        return self._sink.add_durable(table, redact_value(rows))

    def durable(self, tables: Any) -> Any:
        return self._sink.durable(redact_value(tables))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


class RedactingListener:
    """Wraps the recorder's result listener (the alert engine): results arrive redacted."""

    def __init__(self, listener: Any) -> None:
        self._listener = listener

    def observe(self, service_id: str, result: Any, at: Any) -> None:
        self._listener.observe(service_id, redact_value(result), at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listener, name)


class RedactingStream:
    """Wraps ``sys.stdout``/``sys.stderr`` of a command: whatever it prints is redacted."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
