"""Pushed logs -> validated ``service_logs`` rows, or ``log_dlq`` rows with the reason.

Two wire formats share one validation: NDJSON (one object per line, our own
shape) and OTLP/HTTP logs (JSON or protobuf, as an OpenTelemetry Collector's
``otlphttp`` exporter sends; :mod:`server.logs.otlp`). Invalid records never
sink a request: they go to the dead-letter table and the valid ones of the
same request are stored. Every value a row holds is checked here, before the
request is answered, so nothing accepted can be refused later: strings are
valid UTF-8 (a JSON ``"\\ud800"`` escape is a lone surrogate and is refused),
times are within ClickHouse's ``DateTime64`` range and ours, nesting is bounded
(the checks of one field: :mod:`server.logs.fields`; here, a record's and a request's).

This is the ingest hot path (50,000 records/s on two cores): per-request
work is done once per request, and JSON is parsed by orjson.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from server.config.models import LogsConfig
from server.core import redact
from server.core.levels import ERROR_LEVELS
from server.logs.fields import (
    EPOCH,
    LAST_NANOS,
    LEVEL_OF,
    MAX_FUTURE,
    OLDEST,
    Invalid,
    context_value,
    level_of,
    micros,
    range_text,
    text_of,
    timestamp_of,
)
from server.logs.masking import MAX_CONTEXT_KEY, long_key, masked
from server.logs.otlp import INVALID, ProtoRaw, Record, TooDeep
from server.logs.patterns import pattern_of

MAX_SERVICE_ID = 200
BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark: taken off the start of a JSON body
BOM_LATER = ("starts with a byte order mark (U+FEFF, bytes EF BB BF): one is taken only at "
             "the very start of the body")  # fmt: skip
_NO_PATTERN = ("", 0)


@dataclass
class Outcome:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (index, reason, raw)
    unknown_services: set[str] = field(default_factory=set)

    def reject(self, index: int, reason: str, raw: str) -> None:
        """Dead-letter record ``index``: its ``reason`` is masked here (it may quote the
        record, as ``raw`` does: masked by the caller), once for the row and the answer."""
        self.rejected.append((index, redact.redact(reason), raw))

    @property
    def reasons(self) -> list[str]:
        return [f"record {i + 1}: {reason}" for i, reason, _ in self.rejected[:5]]


class Ingestor:
    """Validates one request's records; build one per request (it holds request constants)."""

    def __init__(
        self, config: LogsConfig, known_services: Iterable[str], retention_days: int | None = None
    ) -> None:
        """``retention_days``: the tables' TTL; records older than that are refused (a
        stored row would be dropped by the TTL after the client was told it was kept)."""
        self.config = config
        self.retention_days = retention_days
        self._oldest = OLDEST
        self.known = known_services if isinstance(known_services, set | frozenset) else set(
            known_services)  # fmt: skip
        self._stamp: dict[str, str] = {}
        self._now = datetime.now(UTC)
        self._window = (0.0, 0.0)  # epoch seconds a plain number may take (OLDEST .. now + a day)
        self._services: dict[str, bool] = {}  # valid service ids seen: id -> configured
        self._texts: list[str] = []  # every stored text of the request, for one secret scan

    def _begin(self, sender: str, now: datetime) -> None:
        self._now = now
        self._oldest = OLDEST
        if self.retention_days is not None:
            self._oldest = max(OLDEST, now - timedelta(days=self.retention_days))
        self._window = (self._oldest.timestamp(), (now + MAX_FUTURE).timestamp())
        self._stamp = {"received_at": now.isoformat(), "sender": sender}
        if self.config.environment:
            self._stamp["environment"] = self.config.environment

    # -- the shared record -> row step ---------------------------------------------------
    def record(self, out: Outcome, index: int, obj: Any, raw: str | Callable[[], str],
               size: int = 0, *, otlp: bool = False) -> None:  # fmt: skip
        """Validate one record into ``out.rows``, or its reason into ``out.rejected``.

        ``otlp``: ``obj`` comes from :mod:`server.logs.otlp` (level and time already
        read per the spec); a pushed NDJSON record is always checked in full, whatever
        its ``source`` says. Call :meth:`_mask` once the request's records are in.
        """
        try:
            if size > self.config.max_record:
                raise _too_large(self.config.max_record)
            out.rows.append(self._row(obj, out, otlp))
        except (Invalid, TooDeep) as exc:
            out.reject(index, str(exc), self._dead_letter(raw))

    def _dead_letter(self, raw: str | Callable[[], str]) -> str:
        """The record as received, for ``log_dlq.raw``: secrets masked, storable, cut to
        ``logs.dlq_raw_bytes``. A record too deep to re-encode is named, not re-encoded."""
        try:
            text = raw if isinstance(raw, str) else raw()
        except (RecursionError, TypeError, ValueError):
            text = "(not kept: nested too deep to re-encode)"
        return redact.redact(_printable(text))[: self.config.dlq_raw_bytes]

    def _service(self, obj: dict[str, Any]) -> tuple[str, bool]:
        """(service id, configured?); each distinct id is checked once per request."""
        service: Any = obj.get("service_id")
        known = self._services.get(service) if type(service) is str else None
        if known is None:
            service = text_of(obj, "service_id", required=True) or ""
            if len(service) > MAX_SERVICE_ID or not service.isprintable():
                raise Invalid("service_id: at most 200 printable characters")
            known = self._services[service] = service in self.known
        return service, known

    def _row(self, obj: Any, out: Outcome, otlp: bool) -> tuple[Any, ...]:  # noqa: PLR0912
        # The hot path (per record; its branches inlined on purpose): the common shapes
        # are checked inline, anything else goes through the general checks, which
        # raise the same reasons as before.
        if type(obj) is not dict:
            raise Invalid("expected a JSON object")
        if INVALID in obj:
            raise Invalid(obj[INVALID])
        get = obj.get
        service, known = self._service(obj)
        if otlp:
            level = obj["level"]
        else:
            raw_level = get("level")
            level = LEVEL_OF.get(raw_level) if type(raw_level) is str else None
            if level is None:
                level = level_of(raw_level)
        message = get("message")
        if type(message) is not str or not message:
            message = text_of(obj, "message", required=not otlp) or ""
        context_raw = get("context") or {}
        if type(context_raw) is not dict:
            raise Invalid("context: expected an object of strings")
        context = {(k if type(k) is str and len(k) <= MAX_CONTEXT_KEY else long_key(k)):
                   v if type(v) is str else context_value(v)
                   for k, v in context_raw.items()}  # fmt: skip
        if not known:
            if self.config.unknown_services == "reject":
                raise Invalid(f"service_id: unknown service {service!r}")
            context["unknown_service"] = "1"
            out.unknown_services.add(service)
        context.update(self._stamp)
        stamp = get("timestamp")
        if otlp:  # OTLP times were checked in otlp(); none means the receive time (the spec)
            at = self._now if stamp is None else stamp
        elif (type(stamp) is float or type(stamp) is int) and (
            self._window[0] <= stamp <= self._window[1]
        ):  # epoch seconds in range: what timestamp_of() would answer, without its checks
            at = datetime.fromtimestamp(stamp, UTC)
        else:
            at = timestamp_of(stamp, self._now, self._oldest)
        error_code = stack = None
        if get("error_code") is not None:
            error_code = text_of(obj, "error_code")
        if get("stack_trace") is not None:
            stack = text_of(obj, "stack_trace")
        source = get("source")
        if type(source) is not str or not source:
            source = text_of(obj, "source") or "push"
        texts = self._texts
        texts.extend((service, message, source, *context, *context.values()))
        if error_code is not None:
            texts.append(error_code)
        if stack is not None:
            texts.append(stack)
        pattern = pattern_of(level, message) if level in ERROR_LEVELS else _NO_PATTERN
        return (service, at, level, message, source, error_code, stack, context, *pattern)

    def _mask(self, out: Outcome) -> Outcome:
        """Pushed text may quote a secret: masked before it is stored, and the error
        pattern taken again from the masked text (the raw one would keep a mangled
        spelling). One scan of the whole request's text; only if it finds something
        is each row looked at (a row's own hit is always a hit of the whole)."""
        texts, self._texts = self._texts, []
        if not texts or not redact.hits("\x00".join(texts)):
            return out
        for i, row in enumerate(out.rows):
            service, at, level, message, source, error_code, stack, context, *_ = row
            masked_row = masked(service, message, error_code, stack, source, context)
            if masked_row != (service, message, error_code, stack, source, context):
                service, message, error_code, stack, source, context = masked_row
                pattern = pattern_of(level, message) if level in ERROR_LEVELS else _NO_PATTERN
                out.rows[i] = (service, at, level, message, source, error_code, stack, context,
                               *pattern)  # fmt: skip
        return out

    # -- NDJSON ------------------------------------------------------------------------------
    def ndjson(self, body: bytes, *, sender: str, now: datetime) -> Outcome:
        body = body.removeprefix(BOM)  # Windows tools start files with one: not a record's
        self._begin(sender, now)
        out = Outcome()
        lines = [(i, line) for i, line in enumerate(body.split(b"\n")) if line.strip()]
        try:  # one parse for the whole body; line by line only if something is wrong
            objs = orjson.loads(b"[" + b",".join(line for _, line in lines) + b"]")
            parsed = len(objs) == len(lines)
        except orjson.JSONDecodeError:
            parsed = False
        limit = self.config.max_record
        row, append = self._row, out.rows.append
        for n, (index, line) in enumerate(lines):
            if parsed:
                obj = objs[n]
            else:
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    why = BOM_LATER if line.lstrip().startswith(BOM) else _json_reason(exc)
                    out.reject(index, why, self._dead_letter(_lazy_text(line)()))
                    continue
            if len(line) > limit:
                self.record(out, index, obj, _lazy_text(line), len(line))
                continue
            try:  # record() inlined: this loop runs 50,000 times a second
                append(row(obj, out, False))
            except (Invalid, TooDeep) as exc:
                out.reject(index, str(exc), self._dead_letter(_lazy_text(line)))
        return self._mask(out)

    # -- OTLP ----------------------------------------------------------------------------------
    def otlp(
        self, records: Iterator[Record], *, sender: str, now: datetime, body_size: int = 0
    ) -> Outcome:
        """Records from :func:`server.logs.otlp.json_records` or ``proto_records``.

        ``body_size``: the request's bytes; only if it exceeds ``logs.max_record`` can a
        record, so only then is each record measured (its encoding, as received).
        """
        self._begin(sender, now)
        out = Outcome()
        limit = self.config.max_record
        measure = body_size > limit
        # oldest <= the time (whole microseconds) <= now + a day, as nanoseconds
        lowest = micros(self._oldest) * 1000
        highest = micros(now + MAX_FUTURE) * 1000 + 999
        row, append = self._row, out.rows.append
        for index, (obj, raw) in enumerate(records):
            nanos = obj.get("timestamp")
            if nanos is not None:
                at = EPOCH + timedelta(microseconds=min(nanos, LAST_NANOS) // 1000)
                if not lowest <= nanos <= highest:
                    out.reject(index, f"timeUnixNano: {at.isoformat()} is out of range "
                               f"{range_text(self._oldest)}", self._dead_letter(raw))  # fmt: skip
                    continue
                obj["timestamp"] = at
            try:  # record() inlined, as in ndjson()
                if measure and _size(raw) > limit:
                    raise _too_large(limit)
                append(row(obj, out, True))
            except (Invalid, TooDeep) as exc:
                out.reject(index, str(exc), self._dead_letter(raw))
        return self._mask(out)


def _too_large(limit: int) -> Invalid:
    return Invalid(f"record larger than logs.max_record ({limit} bytes)")


def _size(raw: Callable[[], str]) -> int:
    """A record's encoded size in bytes: a protobuf record's as received, a JSON one's
    re-encoded; 0 for one too deep to re-encode (refused later)."""
    if isinstance(raw, ProtoRaw):
        return raw.size()
    try:
        return len(raw().encode())
    except (RecursionError, TypeError, ValueError):
        return 0


def _lazy_text(line: bytes) -> Callable[[], str]:
    return lambda: line.decode("utf-8", errors="replace")


def _printable(text: str) -> str:
    """DLQ ``raw`` must itself be storable: lone surrogates become U+FFFD."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _json_reason(exc: orjson.JSONDecodeError) -> str:
    message = str(getattr(exc, "msg", exc))
    if "UTF-8" in message:  # raw bytes that are not UTF-8
        return "not valid UTF-8"
    if "surrogate" in message:  # a \\ud800 escape without its pair
        return "not valid Unicode: a lone UTF-16 surrogate escape (like \\ud800)"
    if "depth" in message or "recursion" in message:
        return "not JSON we take: nested deeper than 1024 levels"
    return f"not JSON: {message}"
