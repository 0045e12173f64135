"""The OpenAPI 3.0 document of ``/api/v1`` and ``/v1/logs`` (served at ``/api/v1/openapi.json``).

Tests validate it with openapi-spec-validator and fuzz every operation from it
with schemathesis (tests/test_fuzz.py), so it cannot drift far from the routes.
"""

from __future__ import annotations

from typing import Any

from server import __version__

ERROR = {"$ref": "#/components/responses/Error"}
INCIDENT_ID = {
    "name": "incident_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "20261122T110000123Z-1a2b3c4d"},
}
NOTE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["note"],
                "properties": {"note": {"type": "string", "maxLength": 4000}},
            }
        }
    },
}
SERVICE_ID = {"name": "service_id", "in": "path", "required": True, "schema": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$"}
# RFC 3339 or epoch seconds, between 1970-01-01 and 2105-12-31 (what the tables hold)
INSTANT = {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}
RANGE_PARAMS: list[dict[str, Any]] = [
    {"name": "range", "in": "query", "schema": {**DURATION, "example": "24h"},
     "description": "Duration ending at `to` (or now): 1h, 6h, 24h, 7d, 30d ... (at most 400d)"},
    {"name": "from", "in": "query", "schema": INSTANT,
     "description": "RFC 3339 time or epoch seconds, 1970-01-01 to 2105-12-31"},
    {"name": "to", "in": "query", "schema": INSTANT,
     "description": "RFC 3339 time or epoch seconds (default now), 1970-01-01 to 2105-12-31"},
    {"name": "step", "in": "query", "schema": {**DURATION, "example": "1h"},
     "description": "Bucket size; an hour or more reads the hourly summary"},
]  # fmt: skip


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _op(summary: str, params: list[dict[str, Any]], ok: dict[str, Any], **extra: Any) -> Any:
    responses = {"200": ok, "400": ERROR, "404": ERROR}
    responses.update(extra.pop("responses", {}))
    return {"summary": summary, "parameters": params, "responses": responses, **extra}


def openapi_document() -> dict[str, Any]:
    service = {"$ref": "#/components/schemas/Service"}
    authed: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
    changes = {"401": ERROR, "403": ERROR, "409": ERROR, "415": ERROR}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Lightbulb API", "version": __version__},
        "paths": {
            "/api/v1/services": {
                "get": _op("Current status of every service", [],
                           _ok("services", {"type": "object", "properties": {
                               "services": {"type": "array", "items": service}}}))
            },
            "/api/v1/services/{service_id}": {
                "get": _op("One service with its relations", [SERVICE_ID], _ok("service", service))
            },
            "/api/v1/services/{service_id}/status": {
                "get": _op("Status buckets (worst status, checks, failures, response time)",
                           [SERVICE_ID, *RANGE_PARAMS], _ok("buckets"))
            },
            "/api/v1/services/{service_id}/metrics": {
                "get": _op("A metric's avg/max per bucket; without name, the metric names",
                           [SERVICE_ID, {"name": "name", "in": "query",
                                         "schema": {"type": "string"}}, *RANGE_PARAMS],
                           _ok("series"))
            },
            "/api/v1/services/{service_id}/uptime": {
                "get": _op("Checks, checks up and uptime % in a period (default the last 30 "
                           "days), exactly, and per UTC day", [SERVICE_ID, *RANGE_PARAMS[:3]],
                           _ok("uptime"))
            },
            "/api/v1/services/{service_id}/badge": {
                "get": _op("A shields.io endpoint badge (schemaVersion, label, message, color)",
                           [SERVICE_ID,
                            {"name": "metric", "in": "query",
                             "schema": {"type": "string", "enum": ["status", "uptime", "slo"]}},
                            {"name": "period", "in": "query",
                             "schema": {"type": "string", "example": "30d"},
                             "description": "uptime badges: a duration up to 365d"}],
                           _ok("badge"))
            },
            "/api/v1/services/{service_id}/logs": {
                "get": _op("Recent log rows, newest first",
                           [SERVICE_ID,
                            {"name": "level", "in": "query", "schema": {"type": "string"},
                             "description": "comma-separated levels: ERROR,WARN"},
                            {"name": "q", "in": "query", "schema": {"type": "string"}},
                            {"name": "limit", "in": "query",
                             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                           _ok("logs"))
            },
            "/api/v1/logs": {
                "post": _op("Push log records, one JSON object per line (NDJSON); invalid "
                            "records go to log_dlq, the rest are stored", [],
                            _ok("accepted and rejected counts with the first reasons"),
                            security=[{"logs_token": []}],
                            responses={"401": ERROR, "403": ERROR, "413": ERROR, "415": ERROR},
                            requestBody={"required": True, "content": {"application/x-ndjson": {
                                "schema": {"type": "array", "description": "sent as NDJSON: "
                                           "each item on its own line",
                                           "items": {"$ref": "#/components/schemas/LogRecord"}}
                            }}})
            },
            "/v1/logs": {
                "post": _op("OTLP/HTTP logs (what an OpenTelemetry Collector's otlphttp "
                            "exporter sends), JSON or protobuf", [],
                            _ok("ExportLogsServiceResponse, with partial_success when records "
                                "were rejected"),
                            security=[{"logs_token": []}],
                            responses={"401": ERROR, "403": ERROR, "413": ERROR, "415": ERROR},
                            requestBody={"required": True, "content": {
                                "application/json": {"schema": {
                                    "$ref": "#/components/schemas/ExportLogsServiceRequest"}},
                                "application/x-protobuf": {"schema": {
                                    "type": "string", "format": "binary"}}}})
            },
            "/api/v1/errors": {
                "get": _op("Top error patterns by count (fleet, or one service)",
                           [{"name": "service", "in": "query", "schema": {"type": "string"}},
                            {"name": "limit", "in": "query",
                             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                            *RANGE_PARAMS], _ok("patterns"))
            },
            "/api/v1/alerts": {
                "get": _op("Live alerts (pending, firing, recently resolved)",
                           [{"name": "state", "in": "query", "schema": {"type": "string"}}],
                           _ok("alerts"))
            },
            "/api/v1/alerts/{alert_id}/ack": {
                "post": _op("Acknowledge a firing alert: no repeats until it resolves",
                            [{"name": "alert_id", "in": "path", "required": True,
                              "schema": {"type": "string"}}],
                            _ok("the alert"), security=authed, responses=changes,
                            requestBody={"required": True, "content": {"application/json": {
                                "schema": {"type": "object", "properties": {
                                    "comment": {"type": "string"}}}}}})
            },
            "/api/v1/incidents": {
                "get": _op("Incidents overlapping a period (default the last 30 days), newest "
                           "first: start, end, duration, cause, services, acks, notices sent, note",
                           [*RANGE_PARAMS[:3],
                            {"name": "service", "in": "query", "schema": {"type": "string"}},
                            {"name": "limit", "in": "query",
                             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                           _ok("incidents"))
            },
            "/api/v1/incidents/{incident_id}": {
                "get": _op("One incident with its timeline", [INCIDENT_ID], _ok("the incident"))
            },
            "/api/v1/incidents/{incident_id}/note": {
                method: _op("Set the incident's note (\"\" clears it)", [INCIDENT_ID],
                            _ok("the incident"), security=authed,
                            responses={**changes, "503": ERROR}, requestBody=NOTE_BODY)
                for method in ("post", "put")
            },
            "/api/v1/silences": {
                "get": _op("Active silences", [], _ok("silences")),
                "post": _op("Create a silence", [], _ok("the silence"), security=authed,
                            responses={**changes, "201": _ok("the silence")},
                            requestBody={"required": True, "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/NewSilence"}}}}),
            },
            "/api/v1/silences/{silence_id}": {
                "delete": _op("End an API silence now",
                              [{"name": "silence_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                              _ok("the silence"), security=authed, responses=changes)
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "logs_token": {"type": "http", "scheme": "bearer",
                               "description": "a token from logs.tokens"},
            },
            "responses": {
                "Error": {"description": "what was wrong", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["error"],
                               "properties": {"error": {"type": "string"}}}}}}
            },
            "schemas": {
                "Service": {"type": "object", "properties": {
                    "id": {"type": "string"}, "label": {"type": "string"},
                    "type": {"type": "string"}, "stack": {"type": "string"},
                    "status_code": {"type": "integer", "minimum": 0, "maximum": 5},
                    "status": {"type": "string"},
                    "since": {"type": "string", "format": "date-time", "nullable": True},
                    "last_check": {"type": "string", "format": "date-time", "nullable": True},
                    "message": {"type": "string"},
                    "response_time_ms": {"type": "integer", "nullable": True},
                    "uptime": {"type": "object"},
                    "stale": {"type": "boolean", "description":
                              "the newest result is older than two intervals"},
                    "slo": {"type": "object", "nullable": True}}},
                "LogRecord": {"type": "object",
                              "required": ["timestamp", "service_id", "level", "message"],
                              "properties": {
                    "timestamp": {"oneOf": [{"type": "string", "format": "date-time"},
                                            {"type": "integer"}]},
                    "service_id": {"type": "string"}, "level": {"type": "string"},
                    "message": {"type": "string"}, "source": {"type": "string"},
                    "error_code": {"type": "string"},
                    "stack_trace": {"type": "string", "nullable": True},
                    "context": {"type": "object"}}},
                "AnyValue": {"type": "object", "properties": {
                    "stringValue": {"type": "string"}, "boolValue": {"type": "boolean"},
                    "intValue": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                    "doubleValue": {"type": "number"},
                    "arrayValue": {"type": "object", "properties": {"values": {
                        "type": "array", "items": {"$ref": "#/components/schemas/AnyValue"}}}},
                    "kvlistValue": {"type": "object", "properties": {"values": {
                        "type": "array", "items": {"$ref": "#/components/schemas/KeyValue"}}}}}},
                "KeyValue": {"type": "object", "properties": {
                    "key": {"type": "string"},
                    "value": {"$ref": "#/components/schemas/AnyValue"}}},
                "ExportLogsServiceRequest": {"type": "object", "properties": {"resourceLogs": {
                    "type": "array", "items": {"type": "object", "properties": {
                        "resource": {"type": "object", "properties": {"attributes": {
                            "type": "array", "items": {"$ref": "#/components/schemas/KeyValue"}}}},
                        "scopeLogs": {"type": "array", "items": {"type": "object", "properties": {
                            "scope": {"type": "object", "properties": {
                                "name": {"type": "string"}, "version": {"type": "string"}}},
                            "logRecords": {"type": "array", "items": {
                                "$ref": "#/components/schemas/OtlpLogRecord"}}}}}}}}}},
                "OtlpLogRecord": {"type": "object", "properties": {
                    "timeUnixNano": {"type": "string"},
                    "observedTimeUnixNano": {"type": "string"},
                    "severityNumber": {"type": "integer"}, "severityText": {"type": "string"},
                    "body": {"$ref": "#/components/schemas/AnyValue"},
                    "attributes": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/KeyValue"}},
                    "traceId": {"type": "string"}, "spanId": {"type": "string"}}},
                "NewSilence": {"type": "object", "properties": {
                    "service": {"type": "string"}, "rule": {"type": "string"},
                    "duration": {**DURATION, "example": "2h"},
                    "starts_at": {"type": "string", "format": "date-time"},
                    "ends_at": {"type": "string", "format": "date-time"},
                    "author": {"type": "string"}, "comment": {"type": "string"}}},
            },
        },
    }  # fmt: skip
