"""OTLP logs (JSON or protobuf) -> records in our NDJSON shape, per the OTLP spec.

Semantics (opentelemetry-proto ``logs.proto``, OTLP spec):

- ``severityNumber`` 0 (UNSPECIFIED) with no known ``severityText`` is stored
  with an empty ``log_level`` (unspecified, never counted as an error); a
  ``severityText`` we do not know is kept in ``context["otel.severity_text"]``
  and the level comes from the number.
- ``timeUnixNano`` 0 or missing falls back to ``observedTimeUnixNano``, and
  that (0 or missing) to the time the request was received. A time that is
  not an unsigned integer (JSON: a number or a decimal string) rejects its
  record, counted in the answer's ``partial_success.rejected_log_records``.
- No ``service.name`` resource attribute: the service is ``unknown_service``
  (``unknown_service:<process.executable.name>`` when that is known), as the
  OpenTelemetry semantic conventions tell SDKs to fall back.
- An ``AnyValue`` of a shape the spec does not allow (``kvlistValue: 1``,
  ``arrayValue: [null]``) is stored as null, never a failed request.

The protobuf path reads the message objects directly: converting a request
to a dict first (``MessageToDict``) cost more than all our validation. The
JSON path checks every level's shape and names the path of what is wrong
(``resourceLogs[0]: expected an object``): that is a 400 for the request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from server.core import levels
from server.core.text import clip
from server.logs import otlp_wire

MAX_DEPTH = 32  # nesting of attribute values (kvlist / array) we store
SEVERITY_BY_NUMBER = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"))
SEVERITY_NAMES = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
Record = tuple[dict[str, Any], Callable[[], str]]  # (our shape, raw text for the DLQ)
INVALID = "__invalid__"  # key of a record that could not be read, with the reason


class Malformed(ValueError):
    """The request's structure is not OTLP: a 400 naming where."""


class TooDeep(ValueError):
    """An attribute value nested deeper than :data:`MAX_DEPTH`."""


class BadTime(ValueError):
    """A ``*UnixNano`` field that is not an unsigned 64-bit integer."""


MAX_NANOS = 2**64 - 1  # fixed64


def level_for(number: int, text: str) -> tuple[str, str | None]:
    """(stored level, severity text to keep in context or None) for one record."""
    if len(text) <= 32:  # SDKs send a handful of short texts: remember them (bounded)
        return _level_cached(number, text)
    return _level_for(number, text)


def _level_for(number: int, text: str) -> tuple[str, str | None]:
    known = levels.normalise(text) if text else None
    if known is not None:
        return known, None
    if number > 0:
        name = next((n for top, n in SEVERITY_BY_NUMBER if number <= top), "FATAL")
        return name, text or None
    return "", text or None


_level_cached = functools.lru_cache(maxsize=1024)(_level_for)


def _severity_number(raw: Any) -> int:
    """An int per the spec; some senders write the enum name (SEVERITY_NUMBER_ERROR)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    try:
        return int(raw or 0)
    except (TypeError, ValueError):
        return next((n for name, n in SEVERITY_NAMES.items() if name in str(raw).upper()), 0)


def _nanos(raw: Any, name: str) -> int:
    """A ``*UnixNano`` field: int (protobuf), number or decimal string (JSON), 0 when unset.

    Raises :class:`BadTime` for anything else (OTLP/JSON encodes fixed64 as either).
    """
    if raw is None:
        return 0
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= MAX_NANOS:
        return raw
    raise BadTime(
        f"{name}: {clip(str(raw), 40)!r} is not an unsigned 64-bit integer of nanoseconds"
    )


def stamp(time_ns: int, observed_ns: int) -> int | None:
    """The record's time in ns: its own, else observed, else None (the receive time)."""
    return time_ns or observed_ns or None


# -- JSON ------------------------------------------------------------------------------------


def _any_json(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise TooDeep(f"attribute values nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):
        return None
    for key in ("stringValue", "boolValue", "intValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    if "arrayValue" in value:
        items = _values(value["arrayValue"])
        return [_any_json(v, depth + 1) for v in items] if isinstance(items, list) else None
    if "kvlistValue" in value:
        return _attributes_json(_values(value["kvlistValue"]), depth + 1)
    return None


def _values(container: Any) -> Any:
    """``{"values": [...]}`` of an array or kvlist value; None for any other shape."""
    return container.get("values") if isinstance(container, dict) else None


def _attributes_json(items: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {str(item.get("key", "")): _any_json(item.get("value"), depth)
            for item in items if isinstance(item, dict)}  # fmt: skip


def _objects(doc: Any, key: str, path: str) -> list[dict[str, Any]]:
    items = doc.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise Malformed(f"{path}{key}: expected an array")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Malformed(f"{path}{key}[{index}]: expected an object")
    return items


def loads_lenient(body: bytes) -> Any:
    """OTLP JSON that orjson refuses for its text alone: bytes that are not UTF-8, or a
    lone surrogate escape (``"\\ud800"``). Bad text becomes U+FFFD, the rest is kept.

    Raises :class:`Malformed` if it is not JSON for another reason.
    """
    try:
        doc = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not JSON: {first_line(str(exc))}") from None
    return _clean(doc)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def json_records(doc: Any) -> Iterator[Record]:
    """``resourceLogs`` -> ``scopeLogs`` -> ``logRecords`` of an OTLP JSON document.

    Raises :class:`Malformed` (before yielding anything) if the structure is wrong.
    """
    if not isinstance(doc, dict):
        raise Malformed("expected an object with resourceLogs")
    groups = []
    for r, resource_logs in enumerate(_objects(doc, "resourceLogs", "")):
        path = f"resourceLogs[{r}]."
        resource = resource_logs.get("resource")
        resource = {} if resource is None else resource
        if not isinstance(resource, dict):
            raise Malformed(f"{path}resource: expected an object")
        for s, scope_logs in enumerate(_objects(resource_logs, "scopeLogs", path)):
            scope = scope_logs.get("scope")
            scope = {} if scope is None else scope
            if not isinstance(scope, dict):
                raise Malformed(f"{path}scopeLogs[{s}].scope: expected an object")
            records = _objects(scope_logs, "logRecords", f"{path}scopeLogs[{s}].")
            try:
                attributes = _attributes_json(resource.get("attributes"))
            except TooDeep as exc:
                raise Malformed(f"{path}resource.attributes: {exc}") from None
            groups.append((_group(attributes, scope.get("name")), records))
    for group, records in groups:
        for record in records:
            try:
                shape = _json_record(record, group)
            except (TooDeep, BadTime) as exc:
                shape = {INVALID: str(exc)}
            yield shape, _raw_json(record)


def _raw_json(record: dict[str, Any]) -> Callable[[], str]:
    return lambda: orjson.dumps(record, default=str).decode()


def _json_record(record: dict[str, Any], group: Group) -> dict[str, Any]:
    attrs = _attributes_json(record.get("attributes"))
    number = _severity_number(record.get("severityNumber"))
    text = record.get("severityText")
    level, kept = level_for(number, text if isinstance(text, str) else "")
    body = _any_json(record.get("body"))
    ids = {}
    for key, name in (("traceId", "trace_id"), ("spanId", "span_id")):
        value = record.get(key)
        if isinstance(value, str) and value:
            ids[name] = value.lower()
    return _shape(group, attrs, level, kept, body, ids,
                  stamp(_nanos(record.get("timeUnixNano"), "timeUnixNano"),
                        _nanos(record.get("observedTimeUnixNano"),
                               "observedTimeUnixNano")))  # fmt: skip


# -- protobuf ----------------------------------------------------------------------------------


def _any_pb(value: AnyValue, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise TooDeep(f"attribute values nested deeper than {MAX_DEPTH} levels")
    text = value.string_value  # most values are strings: one access, no WhichOneof
    if text:
        return text
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_pb(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes_pb(value.kvlist_value.values, depth + 1)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _attributes_pb(items: Any, depth: int = 0) -> dict[str, Any]:
    if depth > MAX_DEPTH:  # as _any_pb would say of the first value
        return {item.key: _any_pb(item.value, depth) for item in items}
    out: dict[str, Any] = {}
    item: KeyValue
    # a slice, not the repeated field itself: upb's iterator costs more than the list
    for item in items[:]:
        value = item.value
        # _any_pb's string case inlined: upb makes every field access a call, and
        # most attribute values are strings (an empty one takes the long way)
        out[item.key] = value.string_value or _any_pb(value, depth)
    return out


def proto_groups(message: ExportLogsServiceRequest) -> Iterator[otlp_wire.Group]:
    """A decoded request as :func:`proto_records` takes it (as :func:`otlp_wire.salvage`
    gives an undecodable one)."""
    return ((r.resource, ((s.scope, s.log_records) for s in r.scope_logs))
            for r in message.resource_logs)  # fmt: skip


def proto_records(groups: Iterable[otlp_wire.Group]) -> Iterator[Record]:
    """The log records of a protobuf request (:func:`proto_groups`); a record that did not
    decode is refused alone (``INVALID``, with why)."""
    for index, (resource_pb, scopes) in enumerate(groups):
        try:
            resource = _attributes_pb(resource_pb.attributes)
        except TooDeep as exc:
            raise Malformed(f"resourceLogs[{index}].resource.attributes: {exc}") from None
        for scope, records in scopes:
            group = _group(resource, scope.name)
            for record in records:
                if isinstance(record, str):
                    yield {INVALID: record}, _raw_undecoded
                    continue
                try:
                    shape = _proto_record(record, group)
                except TooDeep as exc:
                    shape = {INVALID: str(exc)}
                yield shape, ProtoRaw(record)


def _raw_undecoded() -> str:
    return "(a LogRecord protobuf could not decode)"


class ProtoRaw:
    """A protobuf record as received: called, its text for ``log_dlq.raw`` (made only for
    a dead letter); :meth:`size`, its encoding's bytes, as ``logs.max_record`` counts."""

    __slots__ = ("record",)

    def __init__(self, record: LogRecord) -> None:
        self.record = record

    def __call__(self) -> str:
        return str(self.record)

    def size(self) -> int:
        """Bytes of the record's wire encoding: what the client sent (its text form, with
        escapes, is up to four times that)."""
        return int(self.record.ByteSize())


def _proto_record(record: LogRecord, group: Group) -> dict[str, Any]:
    attrs = _attributes_pb(record.attributes)
    level, kept = level_for(record.severity_number, record.severity_text)
    body: Any = record.body.string_value  # the common case, without HasField and _any_pb
    if not body:
        body = _any_pb(record.body) if record.HasField("body") else None
    ids = {}
    if record.trace_id:
        ids["trace_id"] = binascii.hexlify(record.trace_id).decode()
    if record.span_id:
        ids["span_id"] = binascii.hexlify(record.span_id).decode()
    return _shape(group, attrs, level, kept, body, ids,
                  stamp(record.time_unix_nano, record.observed_time_unix_nano))  # fmt: skip


# -- common -----------------------------------------------------------------------------------


def service_of(resource: dict[str, Any]) -> str:
    """``service.name``, else the semantic conventions' ``unknown_service[:<executable>]``."""
    name = resource.get("service.name")
    if isinstance(name, str) and name:
        return name
    executable = resource.get("process.executable.name")
    return f"unknown_service:{executable}" if isinstance(executable, str) and executable else (
        "unknown_service")  # fmt: skip


Group = tuple[str, dict[str, Any], Any]  # (service id, resource context, scope name)


def _group(resource: dict[str, Any], scope: Any) -> Group:
    """What the records of one resource and scope share, worked out once for all of them."""
    context = {f"resource.{k}": v for k, v in resource.items() if k != "service.name"}
    return service_of(resource), context, scope


def _shape(  # noqa: PLR0917 - the fields of one record, from two decoders
    group: Group,
    attrs: dict[str, Any],
    level: str,
    severity_text: str | None,
    body: Any,
    ids: dict[str, str],
    nanos: int | None,
) -> dict[str, Any]:
    service, resource_context, scope = group
    context = resource_context.copy()
    context.update(attrs)
    if scope:
        context["otel.scope"] = scope
    if severity_text:
        context["otel.severity_text"] = severity_text
    context.update(ids)
    message = body if isinstance(body, str) or body is None else orjson.dumps(body).decode()
    return {
        "service_id": service,
        "timestamp": nanos,  # None: the receive time (spec: observed time, else now)
        "level": level,
        "message": message,
        "source": "otlp",
        "stack_trace": attrs.get("exception.stacktrace"),
        "error_code": attrs.get("exception.type"),
        "context": context,
    }
