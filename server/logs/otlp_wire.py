"""An OTLP protobuf request taken apart record by record, when protobuf refuses it whole.

protobuf's decoder stops at 100 nested messages, and an attribute nested in
key-value lists costs three each, inside a request's four: a record with an
attribute 32 levels deep (which the OTLP JSON path stores; past 32 it refuses
that record alone) made ``ExportLogsServiceRequest.FromString`` refuse the
whole request, its sibling records lost. So when the whole request does not
decode, :func:`salvage` walks its wire format down to the log records (only
length-delimited fields are opened) and decodes each record by itself: one that
still does not decode is refused alone, with the reason; the rest are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

# resource and scope as protobuf messages; each record decoded, or why it is refused. As
# server.logs.otlp.proto_records takes them: anything iterable once (proto_groups gives
# generators over a decoded request)
Scope = tuple[InstrumentationScope, Iterable[LogRecord | str]]
Group = tuple[Resource, Iterable[Scope]]
# as salvage gives them: lists, so they can be counted (count) and then read
SalvagedScope = tuple[InstrumentationScope, list[LogRecord | str]]
Salvaged = tuple[Resource, list[SalvagedScope]]
T = TypeVar("T", Resource, InstrumentationScope)
LEN = 2  # wire type of a length-delimited field (messages, strings, bytes)
# protobuf's limit is reached only past 32 levels (3 messages a key-value level, 2 an array's)
TOO_DEEP = "attribute values nested deeper than 32 levels (beyond protobuf's decoder)"


class NotProtobuf(ValueError):
    """The body's wire format is broken (a truncated field, an unknown wire type)."""


def count(groups: Sequence[Salvaged]) -> int:
    """Records in ``groups`` (as :func:`salvage` gives them), without consuming them."""
    return sum(len(records) for _, scopes in groups for _, records in scopes)


def salvage(body: bytes) -> list[Salvaged]:
    """The request's resources, scopes and records, each record decoded alone.

    Raises :class:`NotProtobuf` when the wire format itself is broken, or a resource
    or scope does not decode (what they hold applies to all their records).
    """
    groups: list[Salvaged] = []
    for field, value in _fields(body):
        if field == 1:  # ExportLogsServiceRequest.resource_logs
            groups.append(_resource_logs(value))
    return groups


def _resource_logs(data: bytes) -> Salvaged:
    resource, scopes = Resource(), list[SalvagedScope]()
    for field, value in _fields(data):
        if field == 1:
            resource = _decode(Resource, value, "resource")
        elif field == 2:  # scope_logs
            scopes.append(_scope_logs(value))
    return resource, scopes


def _scope_logs(data: bytes) -> SalvagedScope:
    scope, records = InstrumentationScope(), list[LogRecord | str]()
    for field, value in _fields(data):
        if field == 1:
            scope = _decode(InstrumentationScope, value, "scope")
        elif field == 2:  # log_records
            try:
                records.append(LogRecord.FromString(value))
            except (DecodeError, RecursionError) as exc:
                records.append(TOO_DEEP if "Depth" in str(exc) else
                               "not an OTLP LogRecord (protobuf)")  # fmt: skip
    return scope, records


def _decode(kind: type[T], data: bytes, what: str) -> T:
    try:
        return kind.FromString(data)
    except (DecodeError, RecursionError):
        raise NotProtobuf(f"a {what} that does not decode") from None


def _fields(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(field number, bytes)`` of each length-delimited field of one message; other
    fields are skipped."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == LEN:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise NotProtobuf("a field runs past the end of the body")
            yield field, data[pos : pos + length]
            pos += length
        else:
            raise NotProtobuf(f"wire type {wire}")
        if pos > end or field == 0:
            raise NotProtobuf("a field runs past the end of the body")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise NotProtobuf("a varint runs past the end of the body")
