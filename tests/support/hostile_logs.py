"""Hostile log pushes, reusable by any test that feeds the ingest endpoints.

Each case: (name, endpoint, content type, body, expected status, what the
answer or the dead-letter reason must mention). The status is what a client
is told; every case must leave the other records of its batch stored.
"""

from __future__ import annotations

import json

NDJSON, OTLP_JSON = "application/x-ndjson", "application/json"
GOOD = {"timestamp": "2026-11-22T11:59:00Z", "service_id": "api", "level": "INFO",
        "message": "fine"}  # fmt: skip


def _line(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def _with_good(bad: bytes) -> bytes:
    """The bad record between two good ones: they must be stored regardless."""
    good = json.dumps(GOOD).encode()
    return b"\n".join([good, bad, good])


# (name, bad NDJSON record, dead-letter reason fragment); each is sent between two good records
NDJSON_RECORDS: list[tuple[str, bytes, str]] = [
    (
        "lone high surrogate",
        b'{"service_id": "api", "level": "INFO", "message": "\\ud800", '
        b'"timestamp": "2026-11-22T11:59:00Z"}',
        "lone UTF-16 surrogate",
    ),
    (
        "lone low surrogate in a context key",
        b'{"service_id": "api", "level": "INFO", '
        b'"message": "m", "context": {"\\udc00": "v"}, "timestamp": "2026-11-22T11:59:00Z"}',
        "lone UTF-16 surrogate",
    ),
    (
        "surrogate in service_id",
        b'{"service_id": "a\\udfff", "level": "INFO", "message": "m",'
        b' "timestamp": "2026-11-22T11:59:00Z"}',
        "lone UTF-16 surrogate",
    ),
    ("year 1800", _line(timestamp="1800-01-01T00:00:00Z"), "out of range"),
    ("year 2300", _line(timestamp="2300-01-01T00:00:00Z"), "out of range"),
    ("year 9999", _line(timestamp="9999-12-31T23:59:59Z"), "out of range"),
    ("epoch 1e30", _line(timestamp=1e30), "is not a time"),
    ("negative epoch", _line(timestamp=-5), "is not a time"),
    ("epoch zero", _line(timestamp=0), "is not a time"),
    ("epoch as huge integer", _line(timestamp=10**40), "is not a time"),
    ("boolean time", _line(timestamp=True), "expected RFC 3339"),
    (
        "nested 2000 deep",
        b'{"service_id": "api", "context": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        "nested deeper",
    ),
    (
        "context value nested 100 deep",
        b'{"service_id": "api", "level": "INFO", "message": "m", '
        b'"timestamp": "2026-11-22T11:59:00Z", "context": {"k": ' + b"[" * 100 + b"]" * 100 + b"}}",
        "",
    ),  # stored: 100 levels is JSON we take (the context value is its text)
    ("NaN", b'{"service_id": "api", "level": "INFO", "message": NaN}', "not JSON"),
    ("array instead of object", b'["api", "INFO"]', "expected a JSON object"),
    ("number", b"42", "expected a JSON object"),
    ("message an object", _line(message={"a": 1}), "message: expected a string"),
    ("level a list", _line(level=["INFO"]), "level: expected one of"),
    # a pushed record naming itself OTLP is still checked as what it is: NDJSON
    (
        "source otlp without a level",
        b'{"service_id": "api", "source": "otlp", "message": "m", "timestamp": 1795348740}',
        "level: expected one of",
    ),
    ("source otlp with a time of text", _line(source="otlp", timestamp="soon"), "neither RFC"),
    ("epoch of non-ASCII digits", _line(timestamp="\u0661\u0662"), "neither RFC"),
    ("epoch of a superscript", _line(timestamp="\u00b2"), "neither RFC"),
    ("source otlp with a level of 5", _line(source="otlp", level=5), "level: expected one of"),
    # epoch seconds at the edges of the accepted range (the test clock: 2026-11-22 12:00 UTC)
    ("epoch a second before 2000", _line(timestamp=946684799), "out of range"),
    ("epoch a day ahead exactly", _line(timestamp=1795348800.0 + 86400), ""),
    ("epoch just past a day ahead", _line(timestamp=1795348800.0 + 86400.01), "out of range"),
    ("service id with a newline", _line(service_id="a\nb"), "printable characters"),
    ("service id of 201 characters", _line(service_id="s" * 201), "printable characters"),
]

# (name, OTLP JSON body, status, answer fragment)
OTLP_BODIES: list[tuple[str, bytes, int, str]] = [
    (
        "resourceLogs of a number",
        b'{"resourceLogs":[1]}',
        400,
        "resourceLogs[0]: expected an object",
    ),
    ("resourceLogs a string", b'{"resourceLogs":"x"}', 400, "resourceLogs: expected an array"),
    (
        "scopeLogs of null",
        b'{"resourceLogs":[{"scopeLogs":[null]}]}',
        400,
        "resourceLogs[0].scopeLogs[0]: expected an object",
    ),
    (
        "logRecords an object",
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":{}}]}]}',
        400,
        "logRecords: expected an array",
    ),
    (
        "record a string",
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":["x"]}]}]}',
        400,
        "logRecords[0]: expected an object",
    ),
    (
        "resource a list",
        b'{"resourceLogs":[{"resource":[],"scopeLogs":[]}]}',
        400,
        "resource: expected an object",
    ),
    ("top level a list", b"[]", 400, "expected an object with resourceLogs"),
    # a lone surrogate or bytes that are not UTF-8 are replaced, the request kept
    # (tests/test_otlp_edges.py::test_bad_text_is_replaced_and_the_rest_of_the_request_kept)
    ("nested 3000 deep", b'{"resourceLogs":' + b"[" * 3000 + b"]" * 3000 + b"}", 400, "depth"),
    ("empty object", b"{}", 200, ""),
]
