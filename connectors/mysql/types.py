"""MySQL/MariaDB column types: logical types, reading values, writing values.

One column description (:class:`ColumnInfo`, from ``information_schema``)
drives three conversions, and the tests hold them to one property: a value
read by ``SELECT``, the same value decoded from the binlog, and the value the
sink computes for what it has just written are canonical-equal.

Type mapping (MariaDB -> logical -> what the sink writes back):

==========================================  ===========  ==========================
MariaDB                                     logical      notes
==========================================  ===========  ==========================
TINYINT(1), BIT(1)                          bool         written as 0/1
TINYINT..BIGINT [UNSIGNED], YEAR, BIT(n>1)  int          BIT as its unsigned value
DECIMAL(p,s)                                decimal      rounded to s on write
FLOAT, DOUBLE                               float        FLOAT read at full single
                                                         precision (``SELECT`` alone
                                                         prints 6 digits)
CHAR, VARCHAR, TEXT, ENUM, SET              text         SET in definition order
LONGTEXT with CHECK (json_valid(col)), JSON json         MariaDB's JSON alias
BINARY, VARBINARY, BLOB                     bytes        BINARY padded with 0x00
DATE                                        date
DATETIME(fsp)                               timestamp    naive, taken as UTC
TIMESTAMP(fsp)                              timestamptz  sessions at '+00:00'
TIME(fsp)                                   time         a time of day (see below)
UUID                                        uuid
others (GEOMETRY, INET6...)                 any          passed through unchanged
==========================================  ===========  ==========================

Decisions:

* **Zero dates** (``0000-00-00``, ``0000-00-00 00:00:00`` and dates with a zero
  month or day) have no meaning in any other engine: they are read as ``None``.
  The sink writes ``None`` into a NOT NULL date/datetime column as the zero
  date, so a zero date in a NOT NULL column survives a round trip; in a
  nullable column it comes back as NULL (the one lossy case, by design).
* **TIME** is read as a time of day. MariaDB's TIME is a duration
  (-838:59:59..838:59:59): a value outside 00:00..24:00, and 24:00 itself,
  travels as its text (``25:00:00``, ``-01:30:00``:
  :func:`conflict.canonical.duration_text`), never wrapped into a day. MariaDB,
  SQLite and a PostgreSQL ``interval`` hold it; a PostgreSQL ``time`` holds
  ``24:00:00`` only and refuses the others (the row is dead-lettered).
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import math
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conflict.canonical import (
    CoercionError,
    coerce,
    duration_text,
    exact_json,
    invalid_day,
    native_types,
)

_ZERO_DATE = re.compile(r"^0000-00-00|^\d{4}-00-|^\d{4}-\d{2}-00")
_FLOAT32 = struct.Struct("<f")
_INFINITE = (math.inf, -math.inf)
#: room for DECIMAL(65, 30), MariaDB's widest: the default context's 28 digits made
#: quantizing 1.5 to 30 places an InvalidOperation (every row refused)
_DECIMALS = decimal.Context(prec=100)


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column as ``information_schema`` describes it."""

    name: str
    data_type: str  # DATA_TYPE, lower case: "int", "decimal", "longtext"...
    column_type: str  # COLUMN_TYPE: "int(10) unsigned", "enum('a','b')"...
    logical: str
    nullable: bool = True
    scale: int | None = None  # DECIMAL scale, or fractional-second precision
    length: int | None = None  # CHARACTER_MAXIMUM_LENGTH (BINARY padding)
    values: tuple[str, ...] = ()  # ENUM / SET members in definition order
    generated: bool = False  # a generated column: never written
    on_update: bool = False  # ON UPDATE CURRENT_TIMESTAMP: the server changes it

    @property
    def is_float32(self) -> bool:
        return self.data_type == "float"


_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"})
_TEXT_TYPES = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "inet4",
     "inet6"}
)
_BYTES_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})


def logical_type(data_type: str, column_type: str, *, is_json: bool = False) -> str:
    """The logical type of a column from ``DATA_TYPE``/``COLUMN_TYPE``."""
    t = data_type.lower()
    ct = column_type.lower()
    if is_json or t == "json":
        return "json"
    if t == "tinyint" and ct.startswith("tinyint(1)") and "unsigned" not in ct:
        return "bool"
    if t == "bit":
        return "bool" if ct == "bit(1)" else "int"
    if t in _INT_TYPES:
        return "int"
    if t in ("decimal", "numeric"):
        return "decimal"
    if t in ("float", "double", "real"):
        return "float"
    if t in _TEXT_TYPES:
        return "text"
    if t in _BYTES_TYPES:
        return "bytes"
    if t == "date":
        return "date"
    if t == "datetime":
        return "timestamp"
    if t == "timestamp":
        return "timestamptz"
    if t == "time":
        return "time"
    if t == "uuid":
        return "uuid"
    return "any"


def enum_values(column_type: str) -> tuple[str, ...]:
    """Members of ``enum('a','b')`` / ``set('a','b')`` (quotes doubled inside)."""
    m = re.match(r"^(?:enum|set)\((.*)\)$", column_type, re.IGNORECASE | re.DOTALL)
    if not m:
        return ()
    return tuple(v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", m.group(1)))


# --- reading ------------------------------------------------------------------------


def float32(value: float) -> float:
    """The shortest decimal that reads back as the same single-precision float, the
    nearest one of that length: what PostgreSQL shows for a ``real`` (its Ryu takes no
    decimal that lies exactly halfway between two singles).

    A normal single has at least 6 significant digits (FLT_DIG), so the search starts
    there (``%.6g`` of a single that a shorter decimal reads back as is that decimal);
    below the smallest normal (2**-126) precision fades to one digit (``1e-45``, not
    ``1.4013e-45``). Two cases take an exact search: at a power of two the singles
    below are twice as close as those above, so the nearest decimal of a length can
    miss where the next one away from zero does not (``2**-96``: ``1.2621775e-29``, not
    ``1.26217745e-29``); from 2**24 on a short decimal can lie halfway between two
    singles (``206755000``, between ``206754992`` and ``206755008``: ``2.0675501e+08``).
    """
    pack, unpack = _FLOAT32.pack, _FLOAT32.unpack
    bits = pack(value)
    single = unpack(bits)[0]
    if not -1.1754943508222875e-38 < single < 1.1754943508222875e-38:
        specs: tuple[str, ...] = (".6g", ".7g", ".8g", ".9g")
    else:  # zero, or subnormal: evenly spaced, down to one significant digit
        specs = (".1g", ".2g", ".3g", ".4g", ".5g", ".6g", ".7g", ".8g", ".9g")
    for spec in specs:
        short = float(format(single, spec))
        if unpack(pack(short))[0] == single:
            if -16777216.0 < single < 16777216.0:
                return short
            half = math.ulp(single) * 268435456.0  # half the spacing of singles here
            gap = abs(short - single)
            if gap != half and gap * 2.0 != half:
                return short
            break  # halfway to a neighbour (or a quarter: see a power of two)
        if not (bits[0] or bits[1] or bits[2] & 0x7F):
            break  # a power of two
    if single == 0.0 or not math.isfinite(single):
        return float(single)
    # The decimals that read back as ``single``: strictly between the midpoints to its
    # neighbours (exact as doubles; past the largest single, as far above as below).
    magnitude = int.from_bytes(bits, "little")
    toward = unpack((magnitude - 1).to_bytes(4, "little"))[0]
    away = unpack((magnitude + 1).to_bytes(4, "little"))[0]
    if math.isinf(away):
        away = 2.0 * single - toward
    low, high = sorted((decimal.Decimal((single + toward) * 0.5),
                        decimal.Decimal((single + away) * 0.5)))
    exact = decimal.Decimal(single)
    for digits in range(6, 10):  # (a normal single)
        near = decimal.Decimal(format(single, f".{digits}g"))
        ctx = decimal.Context(prec=digits)
        for candidate in (near, ctx.next_plus(near) if near < exact else ctx.next_minus(near)):
            short = float(candidate)
            if low < candidate < high and unpack(pack(short))[0] == single:
                return short
    return float(single)


def typed(col: ColumnInfo, raw: Any) -> Any:
    """A raw value (as pymysql's ``SELECT`` or the binlog decoder gives it) as the
    Python value of the column's logical type.

    Raises:
        CoercionError: the value cannot mean anything of that type.
    """
    if raw is None:
        return None
    logical = col.logical
    if logical in ("date", "timestamp", "timestamptz") and isinstance(raw, str | bytes):
        text = raw.decode() if isinstance(raw, bytes) else raw
        if _ZERO_DATE.match(text):
            return None
    if logical == "float":
        value = float(raw)
        return float32(value) if col.is_float32 else value
    if logical == "bool" and isinstance(raw, bytes):
        return any(raw)
    if logical == "bytes" and col.data_type == "binary" and isinstance(raw, bytes) \
            and col.length and len(raw) < col.length:
        return raw + b"\x00" * (col.length - len(raw))
    if logical == "text" and isinstance(raw, set | frozenset):
        return ",".join(v for v in col.values if v in raw)
    if col.data_type in _INET and isinstance(raw, bytes) and len(raw) == _INET[col.data_type]:
        return inet_text(raw)
    return coerce(raw, logical)


#: MariaDB's address types, whose binlog values are their stored bytes (4 and 16)
_INET = {"inet4": 4, "inet6": 16}


def inet_text(raw: bytes) -> str:
    """An INET4/INET6 value's stored bytes as the text MariaDB shows for it (what a
    ``SELECT`` reads, so that a row read from the binlog hashes as its snapshot).

    Not RFC 5952 (Python's ``ipaddress``): MariaDB shortens a single zero group
    too (``1:0:2:3:4:5:6:7`` is ``1::2:3:4:5:6:7``) and writes IPv4-mapped and
    IPv4-compatible addresses dotted (``::ffff:1.2.3.4``, ``::1.2.3.4``; ``::1``
    and ``::ffff`` stay hex). Checked against the server's own
    ``CAST(x'...' AS INET6)`` (tests/connectors/mysql/test_types.py).
    """
    if len(raw) == 4:
        return ".".join(map(str, raw))
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 16, 2)]
    if words[:5] == [0] * 5 and (words[5] == 0xFFFF or (words[5] == 0 and words[6] != 0)):
        return ("::ffff:" if words[5] else "::") + ".".join(map(str, raw[12:]))
    best, start = (0, 0), -1
    for i, w in enumerate([*words, 1]):  # the longest run of zero groups, the first of ties
        if w == 0 and start < 0:
            start = i
        elif w != 0 and start >= 0:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = -1
    hexes = [f"{w:x}" for w in words]
    if best[1] > best[0]:
        return ":".join(hexes[: best[0]]) + "::" + ":".join(hexes[best[1] :])
    return ":".join(hexes)


def typed_row(columns: Mapping[str, ColumnInfo], row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in row.items():
        col = columns.get(name)
        out[name] = raw if col is None else typed(col, raw)
    return out


# --- writing ------------------------------------------------------------------------

_ZERO_VALUE = {"date": "0000-00-00", "timestamp": "0000-00-00 00:00:00",
               "timestamptz": "0000-00-00 00:00:00"}


def to_param(col: ColumnInfo | None, value: Any) -> Any:
    """A typed value as a pymysql query parameter for the column."""
    if value is None:
        if col is not None and not col.nullable and col.logical in _ZERO_VALUE:
            return _ZERO_VALUE[col.logical]  # a zero date read as None goes back as one
        return None
    if col is not None and col.logical == "json":
        if (type(value) is str or isinstance(value, bytes)):  # a document's text
            return value
        return _json_text(value)  # (a JsonStr: a string document)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return ",".join(sorted(str(v) for v in value))
    if isinstance(value, dict | list):
        return _json_text(value)
    return value


def _json_text(value: Any) -> str:
    """A JSON document's text, as MariaDB keeps it: also an array from PostgreSQL, whose
    elements may be decimals, timestamps, ... (conflict.canonical.exact_json)."""
    return exact_json(value)


#: Python types pymysql takes as they are, which :func:`to_param` returns unchanged
#: for any column but JSON (where a number or a string is the document's text)
_PLAIN_PARAMS = frozenset({int, str, decimal.Decimal, float, bytes, dt.date})


def param_of(col: ColumnInfo | None) -> Callable[[Any], Any]:
    """:func:`to_param` for one column, as a function that passes the common values
    (already pymysql's own) without a call: an apply converts every value it writes.
    Make it once per column and batch, not per value."""
    if col is not None and col.logical == "json":
        return lambda v: to_param(col, v)

    def param(v: Any) -> Any:
        return v if type(v) in _PLAIN_PARAMS else to_param(col, v)

    return param


def storer_of(col: ColumnInfo) -> Callable[[Any], Any]:
    """:func:`stored` for one column, as a function that finds a value already of the
    column's Python type without going through :func:`typed` (an apply computes what
    the row will hold for every value it writes). Same results as :func:`stored`."""
    logical, kind = col.logical, col.data_type
    if logical in ("json", "time") or (logical == "float" and col.is_float32) or (
            logical == "bytes" and kind == "binary") or (
            logical == "text" and kind in ("set", "char", *_INET)):
        return lambda v: stored(col, v)
    if logical == "decimal" and col.scale is not None:
        step = decimal.Decimal(1).scaleb(-col.scale)

        def to_scale(v: Any) -> Any:
            if type(v) is decimal.Decimal and v.is_finite():
                return v.quantize(step, rounding=decimal.ROUND_HALF_UP, context=_DECIMALS)
            return stored(col, v)

        return to_scale
    if logical in ("timestamp", "timestamptz"):
        fsp = col.scale

        def utc(v: Any) -> Any:
            if type(v) is dt.datetime and v.tzinfo is dt.UTC:
                return _truncate_fraction(v, fsp)
            return stored(col, v)

        return utc
    own = native_types(logical)
    if not own:
        return lambda v: stored(col, v)
    if logical in ("float", "decimal"):
        def number(v: Any) -> Any:
            return v if type(v) in own and v == v and v not in _INFINITE else stored(col, v)

        return number

    def same(v: Any) -> Any:
        return v if type(v) in own else stored(col, v)

    return same


def typer_of(col: ColumnInfo) -> Callable[[Any], Any]:
    """:func:`typed` for one column, as a function that keeps a value already of the
    column's Python type as it is (the sink reads back every row it is about to write).
    Same results as :func:`typed`."""
    logical = col.logical
    if logical in ("timestamp", "timestamptz"):

        def utc(v: Any) -> Any:  # pymysql reads DATETIME and TIMESTAMP naive (UTC session)
            if type(v) is dt.datetime and v.tzinfo is None:
                return v.replace(tzinfo=dt.UTC)
            return typed(col, v)

        return utc
    own = native_types(logical)
    if not own or (logical == "float" and col.is_float32) or (
            logical == "bytes" and col.data_type == "binary"):
        return lambda v: typed(col, v)

    def same(v: Any) -> Any:
        return v if type(v) in own else typed(col, v)

    return same


def _truncate_fraction(value: Any, fsp: int | None) -> Any:
    if fsp is None or fsp >= 6:
        return value
    unit = 10 ** (6 - fsp)
    if isinstance(value, str) and invalid_day(value):  # a DATETIME's day its month lacks
        return value
    if isinstance(value, str):  # a TIME beyond a day (duration_text)
        micros = coerce(value, "interval") // dt.timedelta(microseconds=1)
        return duration_text(int(math.copysign(abs(micros) // unit * unit, micros)))
    if not isinstance(value, dt.datetime | dt.time):
        return value
    return value.replace(microsecond=value.microsecond // unit * unit)


def _finite(col: ColumnInfo, v: Any) -> None:
    """MariaDB/MySQL numbers are finite: NaN and the infinities (which PostgreSQL's
    float and numeric hold) are refused rather than sent as a bare word."""
    if (isinstance(v, float) and not math.isfinite(v)) or (
            isinstance(v, decimal.Decimal) and not v.is_finite()):
        raise CoercionError(f"column {col.name!r}: {v} is no number a"
                            f" {col.column_type.upper()} holds")


def stored(col: ColumnInfo, value: Any) -> Any:
    """The typed value the column holds after ``value`` was written to it.

    MariaDB rounds DECIMAL to the column's scale, truncates fractional seconds
    to the column's precision, stores FLOAT in single precision, keeps SET
    members in definition order and drops CHAR's trailing spaces; computing
    this here saves reading every written row back.
    """
    v = typed(col, to_param(col, value) if col.logical == "json" else value)
    if v is None:
        return None
    if col.logical in ("float", "decimal"):
        _finite(col, v)
    if col.logical == "decimal" and col.scale is not None and isinstance(v, decimal.Decimal):
        q = decimal.Decimal(1).scaleb(-col.scale)
        return v.quantize(q, rounding=decimal.ROUND_HALF_UP, context=_DECIMALS)
    if col.logical in ("timestamp", "timestamptz", "time"):
        return _truncate_fraction(v, col.scale)
    if col.logical == "text":
        if col.data_type == "set":
            members = set(v.split(",")) if v else set()
            return ",".join(m for m in col.values if m in members)
        if col.data_type == "char":
            return v.rstrip(" ")
        if col.data_type in _INET:  # as MariaDB spells it back
            try:
                address = (ipaddress.IPv4Address if col.data_type == "inet4"
                           else ipaddress.IPv6Address)(v)
            except ValueError as exc:
                raise CoercionError(f"column {col.name!r} ({col.data_type.upper()}) holds"
                                    f" addresses, not {v!r}") from exc
            return inet_text(address.packed)
    return v


# --- binlog values --------------------------------------------------------------------


def _as_utc(value: dt.datetime | str) -> dt.datetime | str:
    if isinstance(value, str):  # a day its month lacks: its text (conflict.canonical)
        return value
    return value.replace(tzinfo=dt.UTC)


def binlog_converter(col: ColumnInfo) -> Callable[[Any], Any] | None:
    """How a value from :mod:`connectors.mysql.rowcodec` becomes its typed value.

    ``None`` when the decoded value already is (the common case, kept free of
    any call on the hot path); :func:`typed` otherwise, or a shortcut with the
    same result.
    """
    logical = col.logical
    if logical in ("int", "decimal", "date", "timestamptz"):
        return None
    if logical == "text":
        return None if col.data_type not in ("set", *_INET) else (lambda v: typed(col, v))
    if logical == "bytes":
        return None if col.data_type != "binary" else (lambda v: typed(col, v))
    if logical == "timestamp":
        return _as_utc
    if logical == "bool":
        return bool
    if logical == "float" and not col.is_float32:
        return None
    if logical == "any":
        return None
    return lambda v: typed(col, v)
