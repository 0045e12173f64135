"""Log ingestion endpoints: ``POST /api/v1/logs`` (NDJSON) and ``POST /v1/logs`` (OTLP/HTTP).

Auth: ``Authorization: Bearer <token>`` with a token from ``logs.tokens``
(:mod:`server.logs.tokens`; the web server's door asks the same before any body is read).
Bodies may be gzip-compressed; size limits apply before and after
decompression (413 says which). A 200 means every accepted record (and every
dead-lettered one) is on disk in the writer's write-ahead log (fsync'd, shared
with the requests that arrived together): a ``kill -9`` right after the answer
loses none, and ClickHouse stores each exactly once.

Only the 200 acknowledges: a push whose client has closed its connection by the time
its records would be written (it timed out waiting) is not stored (counted in
``pushes_abandoned``), since its client, never told, sends it again. One whose client
leaves after the write is stored, and the retry stores it twice (at least once).

Backpressure: when more than ``scheduler.max_queue_rows`` rows wait for
ClickHouse the answer is 429, when the spool's disk is full (or at
``scheduler.spool_max_bytes``) 503, both with ``Retry-After`` as the OTLP spec
asks; nothing of a refused request is kept, so the client's retry is no duplicate.

Before any of that, the web server's door (:mod:`server.web.admission`) answers
429 to a push that finds ``logs.max_in_flight`` requests (or
``logs.max_in_flight_bytes`` of bodies) held, and 503 while the daemon stops;
such a request never reaches these handlers.

Records are validated, masked and encoded by the daemon's ingest workers
(:mod:`server.logs.workers`): every worker busy and ``logs.worker_queue``
requests waiting, the answer is 429; a worker lost mid-request, 503; a worker's
own failure, 500. Each with nothing of the request stored.
"""

from __future__ import annotations

import zlib
from typing import NoReturn

from flask import Blueprint, Response, jsonify, request
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from server.config.types import format_size
from server.logs.prepare import (
    NDJSON,
    OTLP,
    PROTOBUF,
    Job,
    Prepared,
    Refused,
    Settings,
    prepare,
)
from server.logs.tokens import OFF, REQUIRED, PushTokens, challenge
from server.logs.workers import WorkerFailed
from server.web.admission import CLIENT_GONE, GZIP
from server.web.context import WebContext
from server.web.context import current as context
from server.web.errors import ApiError
from server.writer import Busy, Writer

ingest = Blueprint("ingest", __name__)
# NDJSON's names, JSON, plain text, and curl's default for --data-binary (the README's
# example); anything else (protobuf, forms with files, images) is another format: 415
NDJSON_TYPES = frozenset({
    "", "application/x-ndjson", "application/ndjson", "application/jsonl",
    "application/json", "text/plain", "application/x-www-form-urlencoded",
})  # fmt: skip


def _authorised(ctx: WebContext) -> None:
    tokens = PushTokens.of(ctx.config.logs)
    if tokens.off:
        raise ApiError(403, OFF)
    authorization = request.headers.get("Authorization", "")
    if not tokens.accepts(authorization):
        raise ApiError(401, REQUIRED, {"WWW-Authenticate": challenge(authorization)})


def _still_there(writer: Writer) -> None:
    """Raises (499, nginx's "client closed request") when the client has closed its
    connection: nothing of its request is stored (see the module's docstring)."""
    gone = request.environ.get(CLIENT_GONE)
    if gone is not None and gone():
        writer.stats.pushes_abandoned += 1
        raise ApiError(499, "the client closed its connection before its records were "
                            "stored; nothing of them was stored")  # fmt: skip


def _body(ctx: WebContext) -> bytes:
    limit = ctx.config.logs.max_body
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body larger than logs.max_body ({format_size(limit)})")
    request.max_content_length = limit
    data = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in GZIP:
        data = gunzip(data, limit)
    elif encoding not in ("", "identity"):
        raise ApiError(415, f"Content-Encoding {encoding!r}: only gzip is supported")
    return data


def gunzip(data: bytes, limit: int) -> bytes:
    """``data`` (a gzip body) inflated: every member of it, as RFC 1952 section 2.2 allows
    a gzip stream to hold several (``cat a.gz b.gz``; Python's ``gzip.decompress`` reads
    them all too), at most ``limit`` bytes.

    Raises ApiError 413 past ``limit``, and 400 for a body that is not whole: one cut
    short (its last member has no trailer, so its CRC was never checked) or with bytes
    after its last member that are not one. Either way nothing of it is stored: taking
    the records read before the damage would store them again when the client retries."""
    out: list[bytes] = []
    size, rest = 0, data
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            what = "the body is not gzip" if not out else "bytes after its last member are not gzip"
            raise ApiError(400, f"Content-Encoding: gzip, but {what} ({exc})") from None
        size += len(part)
        out.append(part)
        if size > limit or inflater.unconsumed_tail:
            raise ApiError(
                413, f"decompressed body larger than logs.max_body ({format_size(limit)})"
            )
        if not inflater.eof:
            raise ApiError(400, "Content-Encoding: gzip, but the body ends before its gzip "
                                "stream does (cut short); nothing of it was stored")  # fmt: skip
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)


def _writer(ctx: WebContext) -> Writer:
    """The daemon's writer, or 409; 429/503 with Retry-After when it cannot take more."""
    if ctx.sink is None:
        raise ApiError(409, "log ingestion needs the daemon (this dashboard runs standalone)")
    busy = ctx.sink.busy()
    if busy is not None:
        _refuse(ctx.sink, busy)
    return ctx.sink


def _refuse(writer: Writer, busy: Busy) -> NoReturn:
    writer.stats.busy_refusals += 1
    raise ApiError(busy.status, str(busy), {"Retry-After": str(busy.retry_after)})


def _prepare(ctx: WebContext, writer: Writer, job: Job) -> Prepared:
    """The request decoded, validated, masked and encoded: by a worker process if the
    daemon runs them (:mod:`server.logs.workers`), else here."""
    schema = writer.schemas["service_logs"]
    try:
        if ctx.ingest is not None:
            return ctx.ingest.prepare(job, ctx.config, schema)
        return prepare(job, Settings.of(ctx.config, schema))
    except Refused as exc:
        raise ApiError(exc.status, exc.message) from None
    except WorkerFailed:
        raise ApiError(500, "the ingest worker failed on this request (logged); nothing of "
                            "it was stored") from None  # fmt: skip
    except Busy as busy:
        _refuse(writer, busy)


def _store(writer: Writer, ctx: WebContext, done: Prepared) -> None:
    """Records and dead letters on disk before we answer (one group-committed fsync),
    unless the client has gone (:func:`_still_there`)."""
    _still_there(writer)
    ipc = {"service_logs": done.ipc} if done.ipc is not None else None
    try:
        writer.durable({"service_logs": done.rows, "log_dlq": done.dead_letters}, ipc=ipc)
    except Busy as busy:
        _refuse(writer, busy)
    if ctx.alerts is not None and done.notes:  # only errors (and patterns) matter to it
        ctx.alerts.note_logs(done.notes)


@ingest.post("/api/v1/logs")
def ndjson() -> tuple[Response, int]:
    ctx = context()
    _authorised(ctx)
    if request.mimetype not in NDJSON_TYPES:
        raise ApiError(415, f"Content-Type {request.mimetype!r}: send NDJSON as "
                            "application/x-ndjson (OTLP goes to /v1/logs)")  # fmt: skip
    writer = _writer(ctx)
    body = _body(ctx)
    done = _prepare(ctx, writer, Job(NDJSON, body, request.mimetype, request.remote_addr or "",
                                     ctx.clock.now()))  # fmt: skip
    _store(writer, ctx, done)
    status = 400 if done.rejected and not done.accepted else 200
    return jsonify({
        "accepted": done.accepted,
        "rejected": done.rejected,
        "errors": done.reasons,
        "unknown_services": done.unknown_services,
    }), status  # fmt: skip


@ingest.post("/v1/logs")
def otlp() -> Response:
    ctx = context()
    _authorised(ctx)
    writer = _writer(ctx)
    body = _body(ctx)
    if request.mimetype not in (PROTOBUF, "application/json"):
        raise ApiError(415, f"Content-Type must be application/json or {PROTOBUF}")
    done = _prepare(ctx, writer, Job(OTLP, body, request.mimetype, request.remote_addr or "",
                                     ctx.clock.now()))  # fmt: skip
    _store(writer, ctx, done)
    response = ExportLogsServiceResponse()
    if done.rejected:
        response.partial_success.rejected_log_records = done.rejected
        response.partial_success.error_message = "; ".join(done.reasons)
    if request.mimetype == PROTOBUF:
        return Response(response.SerializeToString(), content_type=PROTOBUF)
    return jsonify(MessageToDict(response))
