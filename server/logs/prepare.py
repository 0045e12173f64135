"""One pushed request -> what the writer stores and what the client is told.

Decoding, validation, masking and Arrow encoding of a request's records: the
~13 µs of Python a record that needs nothing of the daemon but its config and
its secret values (benchmarks/RESULTS.md, "ingest.py, round 3"). So it runs
the same in the daemon's request thread (small requests) and in an ingest
worker process (:mod:`server.logs.workers`): :func:`prepare` is the one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from server.config.models import Config, LogsConfig
from server.core.levels import ERROR_LEVELS
from server.core.text import clip
from server.logs import otlp_wire
from server.logs.ingest import BOM, Ingestor, Outcome
from server.logs.otlp import (
    Malformed,
    Record,
    json_records,
    loads_lenient,
    proto_groups,
    proto_records,
)
from server.storage.arrow import BadRow, from_ipc, to_arrow, to_ipc

PROTOBUF = "application/x-protobuf"
NDJSON, OTLP = "ndjson", "otlp"
# (service id, time, level, pattern hash, pattern) of a stored row the alert engine is told of
Note = tuple[str, datetime, str, int, str]
DeadLetter = tuple[datetime, str, str, str, str]  # log_dlq: received_at, sender, endpoint, ...


class Refused(Exception):
    """The whole request is refused: answer ``status`` with ``message`` (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Settings:
    """What preparing a request needs of the daemon's config (picklable, sent to workers).

    ``schema``: the Arrow schema of ``service_logs`` (the writer's, from ``sql/``).
    """

    logs: LogsConfig
    known_services: frozenset[str]
    retention_days: int | None
    schema: pa.Schema

    @classmethod
    def of(cls, config: Config, schema: pa.Schema) -> Settings:
        """What ``config`` says of pushed logs, with ``service_logs``' ``schema``."""
        known = frozenset(s.id for s in config.services)
        return cls(config.logs, known, config.clickhouse.retention_days, schema)


@dataclass(frozen=True)
class Job:
    """One request's body and what the handler read of it (``now``: the receive time)."""

    endpoint: str  # NDJSON or OTLP
    body: bytes
    mimetype: str
    sender: str
    now: datetime


@dataclass
class Prepared:
    """A prepared request: rows as Arrow (``service_logs``), dead letters as row tuples.

    ``ipc``: the same rows as an Arrow IPC stream when they crossed a process
    boundary (the write-ahead log stores these bytes as they are); else None.
    """

    rows: pa.Table
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # the first five, for the answer
    unknown_services: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    ipc: bytes | None = None

    @property
    def accepted(self) -> int:
        return int(self.rows.num_rows)

    def for_daemon(self) -> Prepared:
        """This, with its rows as an IPC stream too: what a worker sends the daemon."""
        return Prepared(self.rows, self.dead_letters, self.reasons, self.unknown_services,
                        self.notes, ipc=to_ipc(self.rows))  # fmt: skip

    def __reduce__(self) -> tuple[Any, ...]:
        # across the process boundary the rows travel once, as the IPC stream the
        # write-ahead log stores as it is; the table is read back from those bytes
        fields = (self.dead_letters, self.reasons, self.unknown_services, self.notes)
        if self.ipc is None:
            return (Prepared, (self.rows, *fields))
        return (_from_ipc, (self.ipc, *fields))

    @property
    def rejected(self) -> int:
        return len(self.dead_letters)


def _from_ipc(ipc: bytes, dead_letters: list[DeadLetter], reasons: list[str],
              unknown_services: list[str], notes: list[Note]) -> Prepared:  # fmt: skip
    """A :class:`Prepared` unpickled: its table read back from its IPC stream."""
    return Prepared(from_ipc(ipc), dead_letters, reasons, unknown_services, notes, ipc=ipc)


def prepare(job: Job, settings: Settings) -> Prepared:
    """Decode, validate, mask and encode ``job``'s records.

    Raises :class:`Refused` for a request that is not the format it claims or holds
    more than ``logs.max_records`` records. Records that fail validation (or
    cannot be encoded) become dead letters; nothing here writes anything.
    Secrets are masked with the values :mod:`server.core.redact` holds in this process.
    """
    ingestor = Ingestor(settings.logs, settings.known_services, settings.retention_days)
    if job.endpoint == NDJSON:
        if job.body.count(b"\n") >= settings.logs.max_records:  # else under it, blank or not
            count_limit(sum(1 for line in job.body.split(b"\n") if line.strip()), settings.logs)
        out = ingestor.ndjson(job.body, sender=job.sender, now=job.now)
    else:
        try:
            out = ingestor.otlp(_otlp_records(job, settings.logs), sender=job.sender,
                                now=job.now, body_size=len(job.body))  # fmt: skip
        except Malformed as exc:
            raise Refused(400, f"body is not OTLP: {exc}") from None
    rows = _encode(out, settings.schema)
    return Prepared(
        rows,
        [(job.now, job.sender, job.endpoint, reason, raw) for _, reason, raw in out.rejected],
        out.reasons,
        sorted(out.unknown_services),
        [(r[0], r[1], r[2], r[-1], r[-2]) for r in out.rows if r[-1] or r[2] in ERROR_LEVELS],
    )


def count_limit(count: int, config: LogsConfig) -> None:
    """Raises :class:`Refused` (413) for more than ``logs.max_records`` records."""
    if count > config.max_records:
        raise Refused(413, f"{count} records in one request; logs.max_records is "
                           f"{config.max_records}")  # fmt: skip


def _otlp_records(job: Job, config: LogsConfig) -> Iterator[Record]:
    if job.mimetype == PROTOBUF:
        try:
            message = ExportLogsServiceRequest.FromString(job.body)
        except (DecodeError, RecursionError):
            # too deep for protobuf as a whole (or not protobuf): record by record
            try:
                groups = otlp_wire.salvage(job.body)
            except otlp_wire.NotProtobuf:
                raise Refused(400, "body is not an OTLP ExportLogsServiceRequest "
                                   "(protobuf)") from None  # fmt: skip
            count_limit(otlp_wire.count(groups), config)
            return proto_records(groups)
        count_limit(sum(len(scope.log_records) for resource in message.resource_logs
                        for scope in resource.scope_logs), config)  # fmt: skip
        return proto_records(proto_groups(message))
    try:
        body = job.body.removeprefix(BOM)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "UTF-8" not in str(exc) and "surrogate" not in str(exc):
                raise Refused(400, f"body is not OTLP JSON: {exc}") from None
            doc = loads_lenient(body)  # bad text replaced, the records kept
        listed = list(json_records(doc))
    except Malformed as exc:
        raise Refused(400, f"body is not OTLP JSON: {exc}") from None
    count_limit(len(listed), config)
    return iter(listed)


def _encode(out: Outcome, schema: pa.Schema) -> pa.Table:
    """The rows as Arrow; a value validation let through refuses that record alone."""
    while True:
        try:
            return to_arrow(schema, out.rows)
        except BadRow as bad:
            row: Any = out.rows.pop(bad.index)
            out.reject(-1, f"cannot store: {bad.reason}", clip(repr(row), 4096))
