"""Log ingestion endpoints: ``POST /api/v1/logs`` (NDJSON) and ``POST /v1/logs`` (OTLP/HTTP).

Auth: ``Authorization: Bearer <token>`` with a token from ``logs.tokens``.
Bodies may be gzip-compressed; size limits apply before and after
decompression (413 says which). A 200 means every accepted record (and every
dead-lettered one) is on disk in the writer's write-ahead log (fsync'd, shared
with the requests that arrived together): a ``kill -9`` right after the answer
loses none, and ClickHouse stores each exactly once.

Backpressure: when more than ``scheduler.max_queue_rows`` rows wait for
ClickHouse the answer is 429, when the spool's disk is full (or at
``scheduler.spool_max_bytes``) 503, both with ``Retry-After`` as the OTLP spec
asks; nothing of a refused request is kept, so the client's retry is no duplicate.
"""

from __future__ import annotations

import hmac
import zlib
from datetime import datetime

import orjson
from flask import Blueprint, Response, jsonify, request
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from server.config.types import format_size
from server.core.levels import ERROR_LEVELS
from server.core.text import clip
from server.logs.ingest import Ingestor, Outcome
from server.logs.otlp import Malformed, json_records, loads_lenient, proto_records
from server.storage.arrow import BadRow
from server.web.context import WebContext
from server.web.context import current as context
from server.web.errors import ApiError
from server.writer import Busy, Writer

ingest = Blueprint("ingest", __name__)
PROTOBUF = "application/x-protobuf"
# NDJSON's names, JSON, plain text, and curl's default for --data-binary (the README's
# example); anything else (protobuf, forms with files, images) is another format: 415
NDJSON_TYPES = frozenset({
    "", "application/x-ndjson", "application/ndjson", "application/jsonl",
    "application/json", "text/plain", "application/x-www-form-urlencoded",
})  # fmt: skip


def _authorised(ctx: WebContext) -> None:
    tokens = ctx.config.logs.tokens
    if not any(tokens.values()):
        raise ApiError(403, "log ingestion is off: set logs.tokens in the YAML")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        for secret in tokens.values():
            if secret and hmac.compare_digest(secret.reveal().encode(), token.strip().encode()):
                return
    raise ApiError(401, "a logs token is required (Authorization: Bearer <token>)",
                   {"WWW-Authenticate": 'Bearer realm="lightbulb-logs"'})  # fmt: skip


def _body(ctx: WebContext) -> bytes:
    limit = ctx.config.logs.max_body
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body larger than logs.max_body ({format_size(limit)})")
    request.max_content_length = limit
    data = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, limit + 1)
        except zlib.error:
            raise ApiError(400, "Content-Encoding: gzip, but the body is not gzip") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise ApiError(
                413, f"decompressed body larger than logs.max_body ({format_size(limit)})"
            )
    elif encoding not in ("", "identity"):
        raise ApiError(415, f"Content-Encoding {encoding!r}: only gzip is supported")
    return data


def _writer(ctx: WebContext) -> Writer:
    """The daemon's writer, or 409; 429/503 with Retry-After when it cannot take more."""
    if ctx.sink is None:
        raise ApiError(409, "log ingestion needs the daemon (this dashboard runs standalone)")
    busy = ctx.sink.busy()
    if busy is not None:
        _refuse(ctx.sink, busy)
    return ctx.sink


def _refuse(writer: Writer, busy: Busy) -> None:
    writer.stats.busy_refusals += 1
    raise ApiError(busy.status, str(busy), {"Retry-After": str(busy.retry_after)})


def _store(  # noqa: PLR0917 - one call site per endpoint, all six needed
    writer: Writer, ctx: WebContext, out: Outcome, endpoint: str, sender: str, now: datetime
) -> None:
    """Records and dead letters on disk before we answer (one group-committed fsync)."""
    while True:
        dlq = [(now, sender, endpoint, reason, raw) for _, reason, raw in out.rejected]
        try:
            writer.durable({"service_logs": out.rows, "log_dlq": dlq})
            break
        except BadRow as bad:  # a value validation let through: that record alone is refused
            if bad.table != "service_logs":
                raise
            row = out.rows.pop(bad.index)
            out.reject(-1, f"cannot store: {bad.reason}", clip(repr(row), 4096))
        except Busy as busy:
            _refuse(writer, busy)
    if ctx.alerts is not None:  # only errors (and patterns) matter to it: skip the rest here
        ctx.alerts.note_logs((row[0], row[1], row[2], row[-1], row[-2]) for row in out.rows
                             if row[-1] or row[2] in ERROR_LEVELS)  # fmt: skip


def _count_limit(ctx: WebContext, count: int) -> None:
    if count > ctx.config.logs.max_records:
        raise ApiError(413, f"{count} records in one request; logs.max_records is "
                            f"{ctx.config.logs.max_records}")  # fmt: skip


def _ingestor(ctx: WebContext) -> Ingestor:
    known = {s.id for s in ctx.config.services}
    return Ingestor(ctx.config.logs, known, ctx.config.clickhouse.retention_days)


@ingest.post("/api/v1/logs")
def ndjson() -> tuple[Response, int]:
    ctx = context()
    _authorised(ctx)
    if request.mimetype not in NDJSON_TYPES:
        raise ApiError(415, f"Content-Type {request.mimetype!r}: send NDJSON as "
                            "application/x-ndjson (OTLP goes to /v1/logs)")  # fmt: skip
    writer = _writer(ctx)
    body = _body(ctx)
    if body.count(b"\n") >= ctx.config.logs.max_records:  # else under the limit, blank or not
        _count_limit(ctx, sum(1 for line in body.split(b"\n") if line.strip()))
    now, sender = ctx.clock.now(), request.remote_addr or ""
    out = _ingestor(ctx).ndjson(body, sender=sender, now=now)
    _store(writer, ctx, out, "ndjson", sender, now)
    status = 400 if out.rejected and not out.rows else 200
    return jsonify({
        "accepted": len(out.rows),
        "rejected": len(out.rejected),
        "errors": out.reasons,
        "unknown_services": sorted(out.unknown_services),
    }), status  # fmt: skip


@ingest.post("/v1/logs")
def otlp() -> Response:
    ctx = context()
    _authorised(ctx)
    writer = _writer(ctx)
    body = _body(ctx)
    binary = request.mimetype == PROTOBUF
    if binary:
        try:
            message = ExportLogsServiceRequest.FromString(body)
        except (DecodeError, RecursionError):
            raise ApiError(400, "body is not an OTLP ExportLogsServiceRequest (protobuf)") from None
        count = sum(len(scope.log_records) for resource in message.resource_logs
                    for scope in resource.scope_logs)  # fmt: skip
        _count_limit(ctx, count)
        records = proto_records(message)
    elif request.mimetype == "application/json":
        try:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if "UTF-8" not in str(exc) and "surrogate" not in str(exc):
                    raise ApiError(400, f"body is not OTLP JSON: {exc}") from None
                doc = loads_lenient(body)  # bad text replaced, the records kept
            listed = list(json_records(doc))
        except Malformed as exc:
            raise ApiError(400, f"body is not OTLP JSON: {exc}") from None
        _count_limit(ctx, len(listed))
        records = iter(listed)
    else:
        raise ApiError(415, f"Content-Type must be application/json or {PROTOBUF}")
    now, sender = ctx.clock.now(), request.remote_addr or ""
    try:
        out = _ingestor(ctx).otlp(records, sender=sender, now=now, body_size=len(body))
    except Malformed as exc:
        raise ApiError(400, f"body is not OTLP: {exc}") from None
    _store(writer, ctx, out, "otlp", sender, now)
    response = ExportLogsServiceResponse()
    if out.rejected:
        response.partial_success.rejected_log_records = len(out.rejected)
        response.partial_success.error_message = "; ".join(out.reasons)
    if binary:
        return Response(response.SerializeToString(), content_type=PROTOBUF)
    return jsonify(MessageToDict(response))
