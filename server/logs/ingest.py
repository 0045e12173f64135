"""Pushed logs -> validated ``service_logs`` rows, or ``log_dlq`` rows with the reason.

Two wire formats share one validation: NDJSON (one object per line, our own
shape) and OTLP/HTTP logs (JSON or protobuf, as an OpenTelemetry Collector's
``otlphttp`` exporter sends). Invalid records never sink a request: they go to
the dead-letter table and the valid ones of the same request are stored.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from server.config.models import LogsConfig
from server.core import levels
from server.core.levels import LEVELS
from server.logs.patterns import pattern_of

MAX_SERVICE_ID = 200
DLQ_COLUMNS = ("received_at", "source_address", "endpoint", "reason", "raw")
MAX_FUTURE = timedelta(days=1)
OLDEST = datetime(2000, 1, 1, tzinfo=UTC)


class Invalid(ValueError):
    """One record's reason for the dead-letter table."""


@dataclass
class Outcome:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (index, reason, raw)
    unknown_services: set[str] = field(default_factory=set)

    @property
    def reasons(self) -> list[str]:
        return [f"record {i + 1}: {reason}" for i, reason, _ in self.rejected[:5]]


def level_of(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid(f"level: expected one of {', '.join(LEVELS)}")
    name = levels.normalise(raw)
    if name is None:
        raise Invalid(f"level: unknown {raw[:20]!r}; expected one of {', '.join(LEVELS)}")
    return name


def timestamp_of(raw: Any, now: datetime) -> datetime:
    """RFC 3339 text, or epoch seconds / ms / µs / ns told apart by magnitude."""
    value: datetime
    if isinstance(raw, bool) or raw is None:
        raise Invalid("timestamp: required, as RFC 3339 or epoch seconds/ms/ns")
    if isinstance(raw, str) and raw.strip().replace(".", "", 1).isdigit():
        raw = float(raw)
    if isinstance(raw, int | float):
        number = float(raw)
        if not math.isfinite(number) or number <= 0:
            raise Invalid(f"timestamp: {raw!r} is not a time")
        for scale in (1, 1e3, 1e6, 1e9):
            if number / scale < 1e11:
                value = datetime.fromtimestamp(number / scale, UTC)
                break
        else:
            raise Invalid(f"timestamp: {raw!r} is not a time")
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"timestamp: {raw[:40]!r} is neither RFC 3339 nor epoch time") from None
        if value.tzinfo is None:
            raise Invalid(f"timestamp: {raw[:40]!r} has no time zone (RFC 3339 needs one)")
    else:
        raise Invalid("timestamp: expected RFC 3339 text or an epoch number")
    value = value.astimezone(UTC)
    if value < OLDEST or value > now + MAX_FUTURE:
        raise Invalid(f"timestamp: {value.isoformat()} is out of range")
    return value


def _text(obj: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise Invalid(f"{key}: required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{key}: expected a string")
    return value


class Ingestor:
    def __init__(self, config: LogsConfig, known_services: Iterable[str]) -> None:
        self.config = config
        self.known = set(known_services)

    # -- the shared record -> row step ---------------------------------------------------
    def record(
        self,
        out: Outcome,
        index: int,
        obj: Any,
        raw: str,
        *,
        sender: str,
        now: datetime,
    ) -> None:
        try:
            if len(raw.encode()) > self.config.max_record:
                raise Invalid(
                    f"record larger than logs.max_record ({self.config.max_record} bytes)"
                )
            out.rows.append(self._row(obj, sender, now, out))
        except Invalid as exc:
            out.rejected.append((index, str(exc), raw[: self.config.dlq_raw_bytes]))

    def _row(self, obj: Any, sender: str, now: datetime, out: Outcome) -> tuple[Any, ...]:
        if not isinstance(obj, dict):
            raise Invalid("expected a JSON object")
        service = _text(obj, "service_id", required=True) or ""
        if len(service) > MAX_SERVICE_ID or not service.isprintable():
            raise Invalid("service_id: at most 200 printable characters")
        level = level_of(obj.get("level"))
        message = _text(obj, "message", required=True) or ""
        context_raw = obj.get("context") or {}
        if not isinstance(context_raw, dict):
            raise Invalid("context: expected an object of strings")
        context = {str(k)[:200]: v if isinstance(v, str) else json.dumps(v) for k, v in
                   context_raw.items()}  # fmt: skip
        if service not in self.known:
            if self.config.unknown_services == "reject":
                raise Invalid(f"service_id: unknown service {service!r}")
            context["unknown_service"] = "1"
            out.unknown_services.add(service)
        context["received_at"] = now.isoformat()
        context["sender"] = sender
        if self.config.environment:
            context["environment"] = self.config.environment
        return (
            service,
            timestamp_of(obj.get("timestamp"), now),
            level,
            message,
            _text(obj, "source") or "push",
            _text(obj, "error_code"),
            _text(obj, "stack_trace"),
            context,
            *pattern_of(level, message),
        )

    # -- NDJSON ------------------------------------------------------------------------------
    def ndjson(self, body: bytes, *, sender: str, now: datetime) -> Outcome:
        out = Outcome()
        for index, line in enumerate(body.split(b"\n")):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raw = line.decode("utf-8", errors="replace")[: self.config.dlq_raw_bytes]
                out.rejected.append((index, "not valid UTF-8", raw))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                out.rejected.append(
                    (index, f"not JSON: {exc.msg}", text[: self.config.dlq_raw_bytes])
                )
                continue
            self.record(out, index, obj, text, sender=sender, now=now)
        return out

    # -- OTLP ----------------------------------------------------------------------------------
    def otlp(self, doc: dict[str, Any], *, sender: str, now: datetime, binary_ids: bool) -> Outcome:
        """``doc`` is the OTLP JSON shape (protobuf requests are converted to it first)."""
        out = Outcome()
        for index, (obj, raw) in enumerate(otlp_records(doc, binary_ids)):
            self.record(out, index, obj, raw, sender=sender, now=now)
        return out


SEVERITY_BY_NUMBER = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"))


def _any_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "intValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {
            kv["key"]: _any_value(kv.get("value", {}))
            for kv in value["kvlistValue"].get("values", [])
        }
    return None


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item.get("key", ""): _any_value(item.get("value", {})) for item in items or []}


def _severity_number(raw: Any) -> int:
    """An int per the spec; some senders write the enum name (SEVERITY_NUMBER_ERROR)."""
    try:
        return int(raw or 0)
    except (TypeError, ValueError):
        names = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
        return next((n for name, n in names.items() if name in str(raw).upper()), 0)


def _hex_id(value: str, binary: bool) -> str:
    """OTLP JSON carries trace/span ids as hex; protobuf-to-JSON conversion as base64."""
    return base64.b64decode(value).hex() if binary else value.lower()


def otlp_records(doc: dict[str, Any], binary_ids: bool) -> Iterator[tuple[Any, str]]:
    """resourceLogs -> scopeLogs -> logRecords, as our NDJSON shape plus the raw record."""
    for resource_logs in doc.get("resourceLogs") or []:
        resource = _attributes((resource_logs.get("resource") or {}).get("attributes"))
        service = resource.get("service.name")
        for scope_logs in resource_logs.get("scopeLogs") or []:
            scope = (scope_logs.get("scope") or {}).get("name", "")
            for record in scope_logs.get("logRecords") or []:
                raw = json.dumps(record, default=str)[:65536]
                attrs = _attributes(record.get("attributes"))
                number = _severity_number(record.get("severityNumber"))
                level = record.get("severityText") or next(
                    (name for top, name in SEVERITY_BY_NUMBER if 0 < number <= top),
                    "FATAL" if number > 20 else None,
                )
                context = {f"resource.{k}": v for k, v in resource.items() if k != "service.name"}
                context.update(attrs)
                if scope:
                    context["otel.scope"] = scope
                for key, name in (("traceId", "trace_id"), ("spanId", "span_id")):
                    if record.get(key):
                        context[name] = _hex_id(record[key], binary_ids)
                body = _any_value(record.get("body") or {})
                stamp = record.get("timeUnixNano")
                if not stamp or str(stamp) == "0":  # unset in OTLP means "use the observed time"
                    stamp = record.get("observedTimeUnixNano")
                yield (
                    {
                        "service_id": service,
                        "timestamp": record.get("timeUnixNano")
                        or record.get("observedTimeUnixNano"),
                        "level": level,
                        "message": body
                        if isinstance(body, str) or body is None
                        else json.dumps(body),
                        "source": "otlp",
                        "stack_trace": attrs.get("exception.stacktrace"),
                        "error_code": attrs.get("exception.type"),
                        "context": context,
                    },
                    raw,
                )
