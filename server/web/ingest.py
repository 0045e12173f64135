"""Log ingestion endpoints: ``POST /api/v1/logs`` (NDJSON) and ``POST /v1/logs`` (OTLP/HTTP).

Auth: ``Authorization: Bearer <token>`` with a token from ``logs.tokens``.
Bodies may be gzip-compressed; size limits apply before and after
decompression (413 says which). Records go through the daemon's writer, so a
ClickHouse outage spools them like check results: an accepted log is never lost.
"""

from __future__ import annotations

import hmac
import json
import zlib
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from server.config.types import format_size
from server.logs.ingest import Ingestor, Outcome
from server.web.context import WebContext
from server.web.context import current as context
from server.web.errors import ApiError

ingest = Blueprint("ingest", __name__)
PROTOBUF = "application/x-protobuf"


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


def _store(ctx: WebContext, out: Outcome, endpoint: str, sender: str, now: datetime) -> None:
    if ctx.sink is None:
        raise ApiError(409, "log ingestion needs the daemon (this dashboard runs standalone)")
    for row in out.rows:
        ctx.sink.add("service_logs", row)
    for _, reason, raw in out.rejected:
        ctx.sink.add("log_dlq", (now, sender, endpoint, reason, raw))
    if ctx.alerts is not None:
        ctx.alerts.note_logs((row[0], row[1], row[2], row[-1]) for row in out.rows)


def _count_limit(ctx: WebContext, count: int) -> None:
    if count > ctx.config.logs.max_records:
        raise ApiError(413, f"{count} records in one request; logs.max_records is "
                            f"{ctx.config.logs.max_records}")  # fmt: skip


def _ingestor(ctx: WebContext) -> Ingestor:
    known = [s.id for s in ctx.config.services]
    return Ingestor(ctx.config.logs, known)


@ingest.post("/api/v1/logs")
def ndjson() -> tuple[Response, int]:
    ctx = context()
    _authorised(ctx)
    body = _body(ctx)
    _count_limit(ctx, sum(1 for line in body.split(b"\n") if line.strip()))
    now, sender = ctx.clock.now(), request.remote_addr or ""
    out = _ingestor(ctx).ndjson(body, sender=sender, now=now)
    _store(ctx, out, "ndjson", sender, now)
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
    body = _body(ctx)
    binary = request.mimetype == PROTOBUF
    doc: dict[str, Any]
    if binary:
        try:
            message = ExportLogsServiceRequest.FromString(body)
        except DecodeError:
            raise ApiError(400, "body is not an OTLP ExportLogsServiceRequest (protobuf)") from None
        doc = MessageToDict(message, use_integers_for_enums=True)
    elif request.mimetype == "application/json":
        try:
            doc = json.loads(body)
        except ValueError:
            raise ApiError(400, "body is not OTLP JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "body is not OTLP JSON")
    else:
        raise ApiError(415, f"Content-Type must be application/json or {PROTOBUF}")
    records = sum(
        len(scope.get("logRecords") or [])
        for resource in doc.get("resourceLogs") or []
        for scope in resource.get("scopeLogs") or []
    )
    _count_limit(ctx, records)
    now, sender = ctx.clock.now(), request.remote_addr or ""
    out = _ingestor(ctx).otlp(doc, sender=sender, now=now, binary_ids=binary)
    _store(ctx, out, "otlp", sender, now)
    response = ExportLogsServiceResponse()
    if out.rejected:
        response.partial_success.rejected_log_records = len(out.rejected)
        response.partial_success.error_message = "; ".join(out.reasons)
    if binary:
        return Response(response.SerializeToString(), content_type=PROTOBUF)
    return jsonify(MessageToDict(response))
