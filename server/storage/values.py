"""Conversions between Python values and ClickHouse's text formats.

chDB speaks text formats (we read ``JSONCompact`` and write ``JSONEachRow``);
these helpers make its rows look like clickhouse-driver's, so callers never
know which backend answered.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any


def base_type(ch_type: str) -> str:
    """``LowCardinality(Nullable(String))`` -> ``String``; the value type of wrappers."""
    previous = None
    while previous != ch_type:
        previous = ch_type
        for wrapper in ("Nullable(", "LowCardinality("):
            if ch_type.startswith(wrapper) and ch_type.endswith(")"):
                ch_type = ch_type[len(wrapper) : -1]
        if ch_type.startswith("SimpleAggregateFunction(") and ch_type.endswith(")"):
            # SimpleAggregateFunction(max, DateTime64(3, 'UTC')) holds plain DateTime64 values
            ch_type = ch_type[len("SimpleAggregateFunction(") : -1].split(",", 1)[1].strip()
    return ch_type


def from_json(value: Any, ch_type: str) -> Any:
    """One JSONCompact cell -> the Python value clickhouse-driver would return."""
    return converter(ch_type)(value)


def keep(value: Any) -> Any:
    """The converter of a column whose JSON value is already the Python value."""
    return value


@functools.lru_cache(maxsize=512)
def converter(ch_type: str) -> Callable[[Any], Any]:
    """The conversion for one column type, worked out once per type, not per cell.

    A page of 1,000 services with 24-hour arrays is tens of thousands of cells;
    parsing the type name for each of them cost more than the query.
    """
    kind = base_type(ch_type)
    convert: Callable[[Any], Any] = keep
    if kind.startswith("DateTime"):
        convert = parse_datetime
    elif kind in {"Date", "Date32"}:
        convert = date.fromisoformat
    elif kind.startswith(("Int", "UInt")):
        convert = int
    elif kind.startswith(("Float", "Decimal")):
        convert = float
    elif kind.startswith("Array("):
        inner = converter(kind[len("Array(") : -1])
        if inner is keep:
            return lambda value: value
        return lambda value: None if value is None else [inner(v) for v in value]
    if convert is keep:
        return keep
    return lambda value: None if value is None else convert(value)


def parse_datetime(text: str) -> datetime:
    """Our DateTime columns are all declared in UTC; their text has no offset.

    Parsed with the offset appended: ``replace(tzinfo=…)`` after parsing costs ~2 us a
    call against ~0.2 us, and a page of incidents parses thousands of times. A text
    that carries an offset of its own keeps the old reading (its offset replaced)."""
    try:
        return datetime.fromisoformat(text + "+00:00")
    except ValueError:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """Aware or naive-UTC datetime -> ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def json_each_row(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as ``JSONEachRow`` text: data travels as data, never as SQL."""
    lines = []
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} values for {len(columns)} columns")
        record = {col: to_json(val) for col, val in zip(columns, row, strict=True)}
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"
