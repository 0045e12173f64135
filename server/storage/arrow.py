"""Rows <-> Apache Arrow tables: the writer's batch format, on disk and on the wire.

Encoding a batch to JSON text cost more CPU than the embedded engine spent
storing it (33 µs a log row against ~5 µs); building Arrow arrays is done in
C by pyarrow (~3 µs a row) and the engine reads it as Arrow IPC
(``INSERT ... SELECT * FROM file(path, 'ArrowStream')`` embedded, columns for
the native protocol). The same table is written to the write-ahead log as
Arrow IPC, so a batch is encoded once.

Importing this module keeps pyarrow from importing pandas (see
:func:`_without_pandas`): nothing of ours needs it and it costs ~50 MB RSS.
"""

from __future__ import annotations

import functools
import importlib.abc
import re
import sys
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from server.storage.values import base_type


def _without_pandas() -> None:
    """Let pyarrow settle, once, that pandas is not there (unless it is loaded already).

    pyarrow asks for pandas on its first conversion of Python values (to see if
    they are pandas objects) and the import adds ~50 MB RSS and ~0.8 s under the
    import lock, for nothing: our rows are tuples. The answer is cached by
    pyarrow; an explicit ``Table.to_pandas()`` still imports pandas when called.
    """
    if "pandas" in sys.modules:
        return

    class _Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            if name == "pandas":
                raise ImportError("pandas is not loaded by lightbulb's writer")

    finder = _Refuse()
    sys.meta_path.insert(0, finder)
    try:
        pa.array((0,), type=pa.int8())
    finally:
        sys.meta_path.remove(finder)


_without_pandas()

_INTS = {
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    "Float32": pa.float32(), "Float64": pa.float64(), "Bool": pa.bool_(),
    "String": pa.string(), "Date": pa.date32(), "Date32": pa.date32(), "UUID": pa.string(),
}  # fmt: skip
_PRECISION = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def _split_args(text: str) -> list[str]:
    """``"String, Array(UInt8)"`` -> ``["String", "Array(UInt8)"]`` (top-level commas only)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


@functools.lru_cache(maxsize=256)
def arrow_type(ch_type: str) -> pa.DataType:
    """The Arrow type chDB reads into a ClickHouse column of ``ch_type``.

    Raises ValueError for a type the writer never needs (aggregate states, tuples).
    """
    kind = base_type(ch_type)
    if kind in _INTS:
        return _INTS[kind]
    if kind.startswith("DateTime64("):
        args = _split_args(kind[len("DateTime64(") : -1])
        return pa.timestamp(_PRECISION.get(int(args[0]), "ns"), tz="UTC")
    if kind == "DateTime" or kind.startswith("DateTime("):
        return pa.timestamp("s", tz="UTC")
    if kind.startswith(("Enum8(", "Enum16(")):
        return pa.string()
    if kind.startswith("Array("):
        return pa.list_(arrow_type(kind[len("Array(") : -1]))
    if kind.startswith("Map("):
        key, value = _split_args(kind[len("Map(") : -1])
        return pa.map_(arrow_type(key), arrow_type(value))
    if re.match(r"(Decimal|Float)", kind):
        return pa.float64()
    raise ValueError(f"no Arrow type for ClickHouse {ch_type}")


def schema_of(columns: Sequence[str], types: Sequence[str]) -> pa.Schema:
    """An Arrow schema for ``columns`` of ClickHouse ``types``; table order is kept."""
    return pa.schema([pa.field(c, arrow_type(t)) for c, t in zip(columns, types, strict=True)])


def to_arrow(schema: pa.Schema, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """Row tuples (in ``schema`` order) -> an Arrow table.

    Raises :class:`BadRow` naming the first row and column that cannot be
    encoded (a lone surrogate in a string, a value of the wrong type), so the
    caller can set that row aside and keep the others.
    """
    width = len(schema)
    for index, row in enumerate(rows):
        if len(row) != width:
            raise BadRow(index, f"row has {len(row)} values for {width} columns")
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        try:
            arrays.append(pa.array(values, type=field.type))
        except _ENCODING_ERRORS:
            # Slow path, as the JSON format was lenient: 1 into a String column is "1".
            try:
                coerce = _coercion(field.type)
                arrays.append(pa.array([coerce(v) for v in values], type=field.type))
            except _ENCODING_ERRORS as exc:
                raise _first_bad(field, values, exc) from None
    return pa.Table.from_arrays(arrays, schema=schema)


_ENCODING_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError, UnicodeError)


def _as_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else str(value)


def _coercion(kind: pa.DataType) -> Any:
    if pa.types.is_string(kind):
        return _as_text
    if pa.types.is_map(kind):
        return lambda m: None if m is None else {_as_text(k): _as_text(v) for k, v in m.items()}
    if pa.types.is_floating(kind):
        return lambda v: None if v is None else float(v)
    if pa.types.is_integer(kind):
        return lambda v: None if v is None else int(v)
    return lambda v: v


def _first_bad(field: pa.Field, values: Sequence[Any], exc: BaseException) -> BadRow:
    for index, value in enumerate(values):
        try:
            pa.array([_coercion(field.type)(value)], type=field.type)
        except _ENCODING_ERRORS as one:
            return BadRow(index, f"column {field.name}: {type(one).__name__}: {one}")
    return BadRow(0, f"column {field.name}: {type(exc).__name__}: {exc}")


class BadRow(ValueError):
    """Row ``index`` of a batch cannot be encoded; ``reason`` says which column and why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"row {index + 1}: {reason}")
        self.index = index
        self.reason = reason
        self.table = ""  # set by the writer when it knows


def to_ipc(table: pa.Table) -> bytes:
    """An Arrow IPC stream (schema + record batches): the WAL's payload format."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def write_ipc(table: pa.Table, out: Any) -> None:
    """Write ``table`` as an Arrow IPC stream to the binary file object ``out``."""
    with pa.ipc.new_stream(out, table.schema) as writer:
        writer.write_table(table)


def from_ipc(data: bytes | memoryview) -> pa.Table:
    """Read back what :func:`to_ipc` wrote; raises ``pa.ArrowInvalid`` on damaged data."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def to_columns(table: pa.Table) -> list[list[Any]]:
    """Columns of Python values, maps as dicts: clickhouse-driver's ``columnar`` insert."""
    return [column.to_pylist(maps_as_pydicts="strict") for column in table.columns]


def to_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """Row tuples again (for set-aside files and messages); maps as dicts."""
    return list(zip(*to_columns(table), strict=True)) if table.num_rows else []
