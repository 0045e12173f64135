"""Secrets never leave: the one function that masks them wherever text is shown or stored.

:func:`redact` replaces, in any text, with :data:`MASK`:

- every secret value of the loaded config (:meth:`Redactor.load`): each value that
  came from a ``${ENV}`` variable (6 characters or more: shorter ones, such as a port,
  would mask ordinary text) and each value of a secret-typed setting (passwords,
  tokens, webhook and Slack URLs, 4 characters or more), each in every escaped
  spelling a message may give it (:func:`server.core.redact_escape.escaped_forms`:
  repr, JSON, HTML, URL);
  values under 8 characters only as a whole word (:mod:`server.core.redact_match`);
- each credential written in a URL's userinfo, at any length (:func:`url_credentials`):
  the password, the ``user:password`` pair and its ``Authorization: Basic`` token;
- the base64 spellings of each value (:func:`server.core.redact_derive.encoded_values`);
- the userinfo of any URL (``https://user:pass@host`` -> ``https://<secret>@host``);
- the value of any URL query parameter named like a credential
  (:data:`SECRET_QUERY_NAMES`: ``?token=…``, ``&api_key=…``, ``&sig=…``).

It is applied at the choke points rather than in each checker or channel: results
on their way to rows and alerts, every row written, every notice the dispatcher
queues, every log record (:class:`LoggingFilter`), every page and JSON answer, and
what the CLI prints. Each config load replaces the values of the one before, so a
config loaded in one test or command masks nothing in the next; a daemon takes a
:class:`Hold`, which keeps its values across reloads (a reload adds, never forgets:
old secrets may still sit in queued text) until the daemon is gone.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from server.core.redact_derive import encoded_values, userinfo_values
from server.core.redact_escape import escaped_forms
from server.core.redact_match import Matcher, matcher
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


def url_credentials(value: Any) -> set[str]:
    """Every spelling of each URL credential among the strings inside ``value`` (secret
    settings revealed): :func:`server.core.redact_derive.userinfo_values`. These are
    masked at any length (:meth:`Redactor.load`'s ``credentials``)."""
    texts = (item.reveal() if isinstance(item, Secret) else item for item in _leaves(value))
    return userinfo_values(t for t in texts if isinstance(t, str))


class Masked(NamedTuple):
    """What a :class:`Redactor` masks at one moment (:meth:`Redactor.masked`)."""

    generation: int  # changes whenever the values change (a load, a hold kept or released)
    values: frozenset[str]


class Redactor:
    """Masks secret values and URL credentials; thread-safe, cheap when idle.

    Values are scoped: :meth:`load` replaces the values of the previous config load
    (a config loaded in one test, or by ``lightbulb config check``, stops masking
    text once another config is loaded), :meth:`learn` adds to them, and a
    :class:`Hold` (what a daemon takes) keeps values masked for as long as it lives.
    Values of :data:`MIN_SUBSTRING_LENGTH` characters or more are masked wherever
    they appear; shorter ones only as a whole word (:func:`server.core.redact_match.matcher`).
    """

    def __init__(self) -> None:
        self._loaded: frozenset[str] = frozenset()
        self._held: dict[int, frozenset[str]] = {}
        self._matcher: Matcher | None = None
        self._lock = threading.Lock()
        self.generation = 0  # changes whenever the values masked change

    def learn(self, values: Iterable[str], credentials: Iterable[str] = ()) -> None:
        """Add secret values to mask from now on, with every escaped spelling of each
        (``credentials``, from a URL's userinfo, at any length: :func:`_accepted`)."""
        with self._lock:
            self._loaded |= _accepted(values, credentials)
            self._rebuild()

    def load(self, values: Iterable[str], credentials: Iterable[str] = ()) -> None:
        """Mask ``values`` (and ``credentials``) instead of those of the previous load
        (not those held)."""
        with self._lock:
            self._loaded = _accepted(values, credentials)
            self._rebuild()

    def masked(self) -> Masked:
        """Every value masked now (loaded and held, base64 spellings included: what
        :meth:`mask_exactly` takes in another process to mask the same) with its
        generation, read together: a reload between two reads would pair the values
        of one load with the generation of another."""
        with self._lock:
            return Masked(self.generation, self._loaded.union(*self._held.values()))

    def active(self) -> frozenset[str]:
        """The values of :meth:`masked` alone; a caller that keys them by generation
        takes both from :meth:`masked`."""
        return self.masked().values

    def mask_exactly(self, values: Iterable[str]) -> None:
        """Mask ``values`` as they are (an :meth:`active` set of another redactor: already
        filtered and derived), instead of those of the previous load."""
        with self._lock:
            self._loaded = frozenset(values)
            self._rebuild()

    def reset(self) -> None:
        """Forget every value that no :class:`Hold` keeps."""
        self.load(())

    def hold(self) -> Hold:
        """A handle keeping the values loaded now masked until it is released or dropped."""
        return Hold(self)

    def _keep(self, key: int, values: frozenset[str]) -> None:
        with self._lock:
            self._held[key] = self._held.get(key, frozenset()) | values
            self._rebuild()

    def _release(self, key: int) -> None:
        with self._lock:
            if self._held.pop(key, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        self.generation += 1
        active = self._loaded.union(*self._held.values())
        self._matcher = matcher(active, escaped_forms) if active else None

    def text(self, text: str) -> str:
        """``text`` with every secret value and URL credential replaced by :data:`MASK`."""
        found = self._matcher
        if found is not None:
            text = found.mask(text, MASK)
        if "://" in text:
            text = _USERINFO.sub(MASK + "@", text)
        if "=" in text:
            text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
        return text

    def hits(self, text: str) -> bool:
        """Whether :meth:`text` would change ``text``: one scan, nothing copied."""
        found = self._matcher
        return bool(
            (found is not None and found.search(text))
            or ("://" in text and _USERINFO.search(text))
            or ("=" in text and _QUERY.search(text))
        )

    def value(self, value: Any) -> Any:
        """``value`` with :meth:`text` applied to every string inside it.

        Walks strings, lists, tuples, dicts (keys too) and dataclass instances (a
        copy with redacted fields); anything else comes back as it is. The input is
        never changed; when no string inside holds anything to mask (one scan of
        them all joined, the common case) the input itself is returned.
        """
        strings = _strings(value)
        if not strings or not self.hits("\x00".join(strings)):
            return value
        return self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._value(v) for v in value)
        if isinstance(value, dict):
            return {self._value(k): self._value(v) for k, v in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self._value(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init
            }
            return dataclasses.replace(value, **changes)
        return value


def _accepted(values: Iterable[str], credentials: Iterable[str]) -> frozenset[str]:
    """``values`` of :data:`MIN_SECRET_LENGTH` characters or more, with their base64
    spellings, and ``credentials`` of any length: a password its owner wrote into a URL
    is one even when short (masked as a whole word, :mod:`server.core.redact_match`)."""
    kept = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
    kept |= encoded_values(kept, MIN_SECRET_LENGTH) | {v for v in credentials if v}
    return frozenset(kept)


class Hold:
    """Keeps secret values masked while it lives (a daemon's, across its reloads)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._key = id(self)
        redactor._keep(self._key, redactor._loaded)
        self._finalizer = weakref.finalize(self, redactor._release, self._key)

    def keep(self) -> None:
        """Add the values loaded now (a reload: old secrets may still sit in queued text)."""
        self._redactor._keep(self._key, self._redactor._loaded)

    def release(self) -> None:
        """Stop keeping them (values loaded since stay until the next load)."""
        self._finalizer()


def _strings(value: Any) -> list[str]:
    """Every string :meth:`Redactor.value` would redact inside ``value``.

    Runs once per check result (with its metrics and logs, ~60 values), so the
    common leaves are settled by their exact type first.
    """
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            found.append(item)
        elif kind in _SCALARS:
            continue
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, str):
            found.append(item)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif hasattr(kind, "__dataclass_fields__") and not isinstance(item, type):
            fields = _init_fields(kind)
            if fields:
                stack.extend(fields(item))
        # numbers, None, enums, datetimes: nothing to mask
    return found


_SCALARS = frozenset({int, float, bool, type(None)})
_FIELDS: dict[Any, Callable[[Any], tuple[Any, ...]] | None] = {}


def _init_fields(kind: Any) -> Callable[[Any], tuple[Any, ...]] | None:
    """A getter of a dataclass's ``__init__`` field values as a tuple (made once per class)."""
    if kind not in _FIELDS:
        names = [f.name for f in dataclasses.fields(kind) if f.init]
        getter: Callable[[Any], tuple[Any, ...]] | None = None
        if len(names) == 1:
            one = operator.attrgetter(names[0])
            getter = lambda item: (one(item),)  # noqa: E731 - attrgetter of one name: no tuple
        elif names:
            getter = operator.attrgetter(*names)
        _FIELDS[kind] = getter
    return _FIELDS[kind]


_default = Redactor()
learn = _default.learn
load = _default.load
reset = _default.reset
hold = _default.hold
redact = _default.text
redact_value = _default.value
hits = _default.hits
active = _default.active
mask_exactly = _default.mask_exactly


masked = _default.masked


def generation() -> int:
    """Changes whenever the values masked change (a reload, a hold released); a caller
    that also reads the values takes both from :func:`masked`."""
    return _default.generation


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


class RedactingStream:
    """Wraps ``sys.stdout``/``sys.stderr`` of a command: whatever it prints is redacted."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
