"""PostgreSQL column types: logical type, how values are read, and how they are written.

One rule makes the stream and the snapshot agree: **a value is always turned
into Python by the same psycopg text loader**, whether it arrived as pgoutput
text or as a query result (both are the type's output function, under the same
session settings, see :mod:`connectors.postgres.connect`). So a value read by
``changes()``, by ``snapshot()`` and by ``read()`` is the same Python value and
has the same :func:`conflict.canonical.canonical_value`.

Each column gets a :class:`ColumnType`:

* types psycopg knows (the common built-in ones and arrays of them) are read
  and written natively (``native=True``);
* a domain is read and written as its base type (PostgreSQL applies the
  domain's checks when the value is assigned);
* an enum is read as text and written as text cast to the enum; an array of
  enums likewise as ``text[]``;
* anything else (``inet``, ``money``, ranges, composites, ``timetz``...) is
  read as its text output and written back as text cast to the type: it is
  synchronised faithfully between PostgreSQL endpoints, as opaque text
  elsewhere. Query results of these types are loaded by the text loader
  (:func:`register_result_loaders`), so they are the output function's text
  exactly as pgoutput sends it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from psycopg.abc import Transformer
from psycopg.adapt import AdaptersMap
from psycopg.pq import Format

from conflict.canonical import (
    END_OF_DAY,
    CoercionError,
    coerce,
    invalid_day,
    json_document,
    parse_json,
)

TEXT_OID = 25
TEXT_ARRAY_OID = 1009
#: Types psycopg reads but has no binary COPY dumper for: written as text and cast.
NO_BINARY_DUMPER = frozenset({18, 1042})
#: Integer types by oid: their bound (values lie in [-bound, bound)). psycopg's binary
#: dumpers for int2 and int4 wrap a Python int that does not fit (40000 arrives as
#: -25536, 2**40 as 0) and int8's raises OverflowError: every value is checked first.
INT_BOUNDS = {21: 2**15, 23: 2**31, 20: 2**63}
#: real (float4): a finite float beyond it would arrive as infinity
FLOAT4_MAX = 3.4028234663852886e38

#: Built-in scalar types read natively, by OID: (logical type, SQL name).
SCALARS: dict[int, tuple[str, str]] = {
    16: ("bool", "bool"),
    17: ("bytes", "bytea"),
    18: ("text", '"char"'),
    19: ("text", "name"),
    20: ("int", "int8"),
    21: ("int", "int2"),
    23: ("int", "int4"),
    25: ("text", "text"),
    26: ("int", "oid"),
    114: ("json", "json"),
    700: ("float", "float4"),
    701: ("float", "float8"),
    1042: ("text", "bpchar"),
    1043: ("text", "varchar"),
    1082: ("date", "date"),
    1083: ("time", "time"),
    1114: ("timestamp", "timestamp"),
    1184: ("timestamptz", "timestamptz"),
    1186: ("interval", "interval"),
    1700: ("decimal", "numeric"),
    2950: ("uuid", "uuid"),
    3802: ("json", "jsonb"),
}

#: Array types of the built-in scalars, by array OID -> element OID.
ARRAYS: dict[int, int] = {
    1000: 16, 1001: 17, 1002: 18, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25,
    1028: 26, 199: 114, 1021: 700, 1022: 701, 1014: 1042, 1015: 1043, 1182: 1082,
    1183: 1083, 1115: 1114, 1185: 1184, 1187: 1186, 1231: 1700, 2951: 2950, 3807: 3802,
}


@dataclass(frozen=True, slots=True)
class ColumnType:
    """How one column's values are read and written.

    ``io_oid``/``io_sql`` is the type values travel as: the column's own type
    when ``native``, otherwise a type cast to and from (``text``, ``text[]``,
    a domain's base type). ``element`` is the logical type of an array's items.
    """

    logical: str
    native: bool
    io_oid: int
    io_sql: str
    element: str | None = None
    result_oid: int = 0  # the type a query result reports (a domain's base type)

    @property
    def copy_native(self) -> bool:
        """Written by binary COPY as the column's own type (else as ``copy_sql`` + cast)."""
        return self.native and self.io_oid not in NO_BINARY_DUMPER

    @property
    def copy_oid(self) -> int:
        if self.copy_native or not self.native:
            return self.io_oid
        return TEXT_OID

    def copy_sql(self, native_sql: str) -> str:
        if self.copy_native:
            return native_sql
        return self.io_sql if not self.native else "text"


def classify(
    type_oid: int,
    typtype: str,
    element_oid: int,
    element_typtype: str | None,
    base_oid: int,
    base_sql: str | None,
    native_sql: str,
) -> ColumnType:
    """The :class:`ColumnType` of a column from its ``pg_type`` facts.

    ``base_oid``/``base_sql`` describe a domain's base type (0/None otherwise).
    """
    if typtype == "d" and base_oid:
        inner = classify(base_oid, "b", 0, None, 0, None, base_sql or "text")
        if inner.native:
            return ColumnType(inner.logical, False, base_oid, base_sql or inner.io_sql,
                              inner.element, base_oid)
        return ColumnType(inner.logical, False, inner.io_oid, inner.io_sql, inner.element,
                          base_oid)
    if type_oid in SCALARS:
        return ColumnType(SCALARS[type_oid][0], True, type_oid, native_sql, None, type_oid)
    if type_oid in ARRAYS:
        return ColumnType("array", True, type_oid, native_sql, SCALARS[ARRAYS[type_oid]][0],
                          type_oid)
    if typtype == "e":
        return ColumnType("text", False, TEXT_OID, "text", None, type_oid)
    if element_oid and element_typtype == "e":
        return ColumnType("array", False, TEXT_ARRAY_OID, "text[]", "text", type_oid)
    return ColumnType("text", False, TEXT_OID, "text", None, type_oid)


def register_result_loaders(adapters: AdaptersMap, ctypes: Iterable[ColumnType]) -> None:
    """Make query results of the non-native types load as their text output, as pgoutput
    sends them (``inet::text`` would not do: it is another function than the output one)."""
    for ct in ctypes:
        oid = ct.result_oid
        if not oid or oid in SCALARS or oid in ARRAYS:
            continue
        loader = adapters.get_loader(ct.io_oid, Format.TEXT)
        if loader is not None:
            adapters.register_loader(oid, loader)


Loader = Callable[[bytes], Any]


def text_loader(tx: Transformer, ctype: ColumnType) -> Loader:
    """A function turning the column's text output into its Python value."""
    if ctype.io_oid in (114, 3802):
        # What psycopg's JSON loaders do (json.loads of the text), without their
        # per-call encoding detection on bytes: the same values, quicker.
        return _load_json
    loader = tx.get_loader(ctype.io_oid, Format.TEXT)
    load: Loader = loader.load
    return load


def _load_json(data: bytes) -> Any:
    """A json/jsonb value: its document, a string document marked as one (JsonStr)."""
    return json_document(parse_json(data))


# --- writing ----------------------------------------------------------------------------


def _naive_utc(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is None:
        return v
    return v.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(v: dt.datetime) -> dt.datetime:
    return v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)


def prepare(value: Any, ctype: ColumnType) -> Any:
    """``value`` (any engine's form of the column's logical type) as psycopg dumps it
    for ``ctype.io_oid`` in a binary COPY.

    Raises:
        conflict.canonical.CoercionError: the value cannot mean anything of that type.
    """
    if value is None:
        return None
    if ctype.logical == "array":
        items = value if isinstance(value, list | tuple) else coerce(value, "array")
        return [_prepare_item(x, ctype.element or "text", ctype) for x in items]
    if ctype.io_oid == TEXT_OID and ctype.logical == "text" and not ctype.native:
        return value if isinstance(value, str) else str(value)
    return _prepare_scalar(value, ctype.logical, ctype.io_oid)


_FAST_TYPES: dict[str, type] = {
    "int": int, "float": float, "decimal": decimal.Decimal, "text": str, "bool": bool,
    "date": dt.date, "time": dt.time, "interval": dt.timedelta, "uuid": uuid.UUID,
    "bytes": bytes,
}


def preparer(ctype: ColumnType) -> Callable[[Any], Any]:
    """:func:`prepare` for one column, quick when the value already has the right type."""
    fast = _FAST_TYPES.get(ctype.logical)
    if ctype.logical in ("timestamp", "timestamptz") and ctype.native:
        aware = ctype.io_oid != 1114

        def ts(v: Any) -> Any:
            if type(v) is dt.datetime and (v.tzinfo is not None) == aware:
                return v
            return prepare(v, ctype)

        return ts
    if ctype.logical == "json" and ctype.native:
        return lambda v: v if type(v) is dict or type(v) is list else prepare(v, ctype)
    if fast is None or (not ctype.native and ctype.logical != "text"):
        return lambda v: prepare(v, ctype)
    want = fast
    bound = INT_BOUNDS.get(ctype.io_oid) if ctype.logical == "int" else None
    if bound is not None:
        low = -bound

        def prep_int(v: Any) -> Any:
            if type(v) is not int:
                return None if v is None else prepare(v, ctype)
            if low <= v < bound:
                return v
            raise CoercionError(f"{v} is out of range for {_INT_NAMES[ctype.io_oid]}")

        return prep_int
    if ctype.logical == "float" and ctype.io_oid == 700:
        return lambda v: prepare(v, ctype)

    def prep(v: Any) -> Any:
        return v if type(v) is want or v is None else prepare(v, ctype)

    return prep


_INT_NAMES = {21: "smallint", 23: "integer", 20: "bigint"}


def _prepare_item(value: Any, logical: str, ctype: ColumnType) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple):  # multi-dimensional arrays
        return [_prepare_item(x, logical, ctype) for x in value]
    elem_oid = ARRAYS.get(ctype.io_oid, TEXT_OID)
    return _prepare_scalar(value, logical, elem_oid)


def _prepare_scalar(value: Any, logical: str, oid: int) -> Any:
    if logical == "json":
        return _json_value(value)
    v = coerce(value, logical)
    if type(v) is str and logical == "interval":
        return v  # with months (conflict/intervals.py): the sink's dumper writes it
    if type(v) is str and logical in ("date", "timestamp", "timestamptz", "time"):
        if logical == "time" and v != END_OF_DAY:  # MariaDB's TIME: a duration
            raise CoercionError(f"{v} is no time of day (a PostgreSQL time holds 00:00..24:00)")
        if invalid_day(v):  # MariaDB's ALLOW_INVALID_DATES
            raise CoercionError(f"{v} is a day its month does not have (or in the year 0):"
                                f" a PostgreSQL {logical} holds none")
        return v  # an infinity, a year past 9999, BC, 24:00: the sink's dumpers write them
        # (wide_dates.py)
    bound = INT_BOUNDS.get(oid)
    if bound is not None and isinstance(v, int) and not -bound <= v < bound:
        raise CoercionError(f"{v} is out of range for {_INT_NAMES[oid]}")
    if oid == 700 and isinstance(v, float) and abs(v) > FLOAT4_MAX and abs(v) != float("inf"):
        raise CoercionError(f"{v!r} is out of range for real")
    if logical == "timestamp" or logical == "timestamptz":
        return _naive_utc(v) if oid == 1114 else _aware(v)
    if logical == "decimal" and isinstance(v, float):
        return decimal.Decimal(repr(v))
    if logical == "text" and not isinstance(v, str):
        return str(v)
    return v


def _json_value(value: Any) -> Any:
    """A JSON document: text from an engine that stores JSON as text is parsed, and
    text that is no JSON document is taken as a JSON string."""
    if isinstance(value, bytes | str):
        try:
            return coerce(value, "json")
        except ValueError:
            return value.decode() if isinstance(value, bytes) else value
    return value
