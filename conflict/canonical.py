"""One canonical form for every value (DESIGN.md, rule 7).

Hashes, comparisons and ``cdcsync verify`` all go through this module, so that
what the service wrote to an endpoint and what it reads back from that
endpoint's change log compare equal. A missed equality is not cosmetic: it makes
the service believe an endpoint holds other content than it does, which costs a
spurious re-apply at best and a ping-pong at worst.

Two steps:

* :func:`coerce` turns a value as a driver returns it (``'2024-01-02 03:04:05'``
  from SQLite, ``Decimal('1.50')`` from PostgreSQL, ``1`` for a MariaDB
  ``TINYINT(1)``) into the typed Python value of the column's *logical type*;
* :func:`canonical_value` turns a typed value into a tagged, JSON-safe primitive
  that is equal exactly when the values are equal in meaning (``Decimal('1.50')``
  and ``Decimal('1.5')`` are; ``True`` and ``1`` are not).
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import decimal
import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal, get_args

import orjson

from conflict import extdates, intervals

LogicalType = Literal[
    "int",
    "float",
    "decimal",
    "text",
    "bool",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "bytes",
    "array",
    "any",
]
LOGICAL_TYPES: tuple[str, ...] = get_args(LogicalType)

Row = Mapping[str, Any]
CanonicalValue = None | bool | int | str | list[Any] | dict[str, Any]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class JsonStr(str):
    """A JSON document that is a string (``"abc"``), told apart from a document's text.

    MariaDB and SQLite keep JSON as text, and every engine's code takes a ``str``
    for a JSON column as that text, to be parsed. A string document read as a
    plain ``str`` was parsed a second time: ``"123"`` became the number 123,
    ``"null"`` SQL NULL. Readers that parse a document give its strings as this
    type; it compares, hashes and is written like the string it is.
    """

    __slots__ = ()


def json_document(doc: Any) -> Any:
    """A parsed JSON document, its string (if it is one) marked :class:`JsonStr`."""
    return JsonStr(doc) if type(doc) is str else doc


class CoercionError(ValueError):
    """A value cannot be read as its column's logical type."""


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        # Naive timestamps are taken as UTC: every connector writes them so
        # (MariaDB sessions run at time_zone '+00:00', SQLite stores ISO text).
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _parse_datetime(text: str) -> dt.datetime:
    t = text.strip().replace(" ", "T", 1)
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    return dt.datetime.fromisoformat(t)


def coerce(value: Any, logical: str) -> Any:
    """Return *value* as the Python value of *logical* type (``None`` stays ``None``).

    Raises:
        CoercionError: the value cannot mean anything of that type.
    """
    if value is None or logical == "any":
        return value
    try:
        return _COERCERS[logical](value)
    except CoercionError:
        raise
    except (ValueError, TypeError, OverflowError, decimal.InvalidOperation,
            json.JSONDecodeError) as exc:
        raise CoercionError(f"cannot read {value!r} as {logical}: {exc}") from exc


def _c_int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        if not v.is_integer():
            raise CoercionError(f"{v!r} is not an integer")
        return int(v)
    if isinstance(v, bytes):  # MariaDB BIT(n)
        return int.from_bytes(v, "big")
    return int(v)


def _c_float(v: Any) -> float:
    return float(v)


def _c_decimal(v: Any) -> decimal.Decimal:
    if isinstance(v, float):
        return decimal.Decimal(repr(v))
    return decimal.Decimal(str(v).strip())


def _c_text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, str):
        return v
    if isinstance(v, set | frozenset):  # MariaDB SET
        return ",".join(sorted(str(x) for x in v))
    if isinstance(v, Mapping | list | tuple):  # a document or an array kept as text: JSON,
        return exact_json(v)  # not Python's repr, which nothing reads back
    return str(v)


def _c_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, bytes):
        return any(v)
    s = str(v).strip().lower()
    if s in {"1", "t", "true", "y", "yes", "on"}:
        return True
    if s in {"0", "f", "false", "n", "no", "off"}:
        return False
    raise CoercionError(f"{v!r} is not a boolean")


#: PostgreSQL's special dates and timestamps, which no Python date can stand for (nor
#: its years past 9999 and BC: conflict/extdates.py): they travel as these strings
#: (their canonical form too), are written back as themselves where an engine can hold
#: them (PostgreSQL; SQLite keeps the text) and refused where it cannot (MariaDB/MySQL:
#: the row is dead-lettered), never turned into another date.
INFINITIES = {"infinity": "infinity", "+infinity": "infinity", "-infinity": "-infinity"}


def infinity(v: Any) -> str | None:
    """``"infinity"`` or ``"-infinity"`` where ``v`` spells one, else ``None``."""
    return INFINITIES.get(v.strip().lower()) if isinstance(v, str) else None


#: A day its month does not have (``2024-02-31``, ``2023-04-31``), with a month of
#: 1..12 and a day of 1..31, or in the year 0: MariaDB/MySQL hold such dates (under
#: ``ALLOW_INVALID_DATES``), SQLite any text. No Python date stands for one: it travels as its text
#: (``YYYY-MM-DD``, after it ``HH:MM:SS[.ffffff]`` for a timestamp; its canonical form
#: too), held where an engine takes it and refused, as a row, where it cannot.
_CALENDAR_DAY = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


def invalid_day(text: str) -> str | None:
    """``YYYY-MM-DD`` where ``text`` starts with a day its month does not have."""
    m = _CALENDAR_DAY.match(text)
    if m is None:
        return None
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    if year != 0 and day <= calendar.monthrange(year, month)[1]:
        return None  # a day Python holds: the text's fault is elsewhere
    return m[0]  # (the year 0 too, which MariaDB holds and Python does not)


def _c_date(v: Any) -> dt.date | str:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    text = str(v)
    if extdates.beyond_python(text):  # years past 9999, BC: see conflict/extdates.py
        wide = extdates.as_date(text)
        if wide is not None:
            return wide
    try:
        return infinity(v) or dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        day = invalid_day(text.strip())
        if day is None:
            raise
        return day


#: PostgreSQL's (and MariaDB's) end of the day, a time no Python ``time`` holds: it
#: travels as this text (its canonical form too), never as midnight, which is the day's start
END_OF_DAY = "24:00:00"
_DURATION = re.compile(r"\s*(-)?(\d+):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,6}))?)?\s*")


def duration_text(micros: int) -> str:
    """``[-]HH:MM:SS[.ffffff]``, hours past 23 included: how a time that is no time of
    day travels (:data:`END_OF_DAY`; MariaDB's TIME, a duration up to +-838 hours)."""
    sign = "-" if micros < 0 else ""
    seconds, frac = divmod(abs(micros), 1_000_000)
    minutes, sec = divmod(seconds, 60)
    text = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}:{sec:02d}"
    return f"{text}.{frac:06d}" if frac else text


def _duration_micros(text: str) -> int | None:
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    micros = ((int(m[2]) * 60 + int(m[3])) * 60 + int(m[4] or 0)) * 1_000_000 + int(
        (m[5] or "0").ljust(6, "0"))
    return -micros if m[1] else micros


def _c_time(v: Any) -> dt.time | str:
    """A time of day; a time outside 00:00..24:00 (MariaDB's TIME is a duration) or
    at 24:00 is its :func:`duration_text`, which engines hold or refuse as they can."""
    if isinstance(v, dt.time):
        return v.replace(tzinfo=None)
    if isinstance(v, dt.timedelta):  # pymysql returns TIME as timedelta
        micros = v // dt.timedelta(microseconds=1)
    else:
        text = str(v).strip()
        try:
            return dt.time.fromisoformat(text)
        except ValueError:
            found = _duration_micros(text)
            if found is None:
                raise
            micros = found
    if 0 <= micros < 86_400_000_000:
        return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()
    return duration_text(micros)


def _c_timestamp(v: Any) -> dt.datetime | str:
    if isinstance(v, dt.datetime):
        return _to_utc(v)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
    if isinstance(v, int | float):
        return _EPOCH + dt.timedelta(microseconds=round(v * 1_000_000))
    text = str(v)
    if extdates.beyond_python(text):  # years past 9999, BC: see conflict/extdates.py
        wide = extdates.as_timestamp(text)
        if wide is not None:
            return wide
    try:
        return infinity(v) or _to_utc(_parse_datetime(text))
    except ValueError:
        day = invalid_day(text.strip())
        rest = text.strip()[10:].lstrip(" T")
        if day is None or not rest:
            raise
        return f"{day} {dt.time.fromisoformat(rest).isoformat()}"  # (ValueError: not a time)


def _c_interval(v: Any) -> dt.timedelta | str:
    """A ``timedelta``; an interval with months is its ISO 8601 text (see
    conflict/intervals.py): ``1 mon`` is not ``30 days``."""
    if isinstance(v, dt.timedelta):
        return v
    if isinstance(v, int | float):
        return dt.timedelta(seconds=v)
    if isinstance(v, dt.time):  # a TIME (MariaDB's is a duration): the time since midnight
        return dt.timedelta(hours=v.hour, minutes=v.minute, seconds=v.second,
                            microseconds=v.microsecond)
    parsed = intervals.parse(v) if isinstance(v, str) else None  # a TIME's duration_text too
    if parsed is not None:
        months, days, micros = parsed
        if months:
            return intervals.iso_text(months, days, micros)
        return dt.timedelta(days=days, microseconds=micros)
    raise CoercionError(f"{v!r} is not an interval")


def _c_uuid(v: Any) -> uuid.UUID:
    if isinstance(v, uuid.UUID):
        return v
    if isinstance(v, bytes) and len(v) == 16:
        return uuid.UUID(bytes=v)
    return uuid.UUID(str(v))


#: every ASCII digit to "0", every other byte to "x": a run of 19 digits, a number
#: orjson may not read exactly, is then a plain substring (found in C, ~1 us for a
#: key state's text, where a regular expression takes ~9)
_DIGIT_RUNS = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_LONG_RUN = b"0" * 19


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, quicker: orjson reads the same values, except integers past 64
    bits (which it turns into floats, silently), NaN/Infinity and lone surrogates
    (which it refuses); those take the standard library's path. Raises ValueError
    (``json.JSONDecodeError``) for text that is no JSON."""
    if isinstance(text, str):
        raw: bytes | bytearray = text.encode("utf-8", "surrogatepass")
    elif isinstance(text, bytes | bytearray):
        raw = text
    else:  # the standard library's TypeError (SQLAlchemy takes a number stored bare)
        return json.loads(text)
    if _LONG_RUN not in raw.translate(_DIGIT_RUNS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


#: what orjson must hand back to :func:`json_bytes`'s caller rather than write its own way
_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)


def json_bytes(obj: Any) -> bytes | None:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``, quicker (sinks
    write a document per JSON value): orjson's text, which means the same document
    (floats may be spelt otherwise: ``1e16`` for ``1e+16``). None where it would not:
    integers past 64 bits, lone surrogates, keys that are no strings, types that are
    not JSON's (orjson refuses them or writes them its own way), and NaN or
    infinities, which orjson writes as ``null`` where ``json.dumps`` spells them so
    that a server refuses them, as it must: a stored ``null`` would be another value
    than the source's, silently. The caller then takes ``json.dumps``."""
    try:
        out = orjson.dumps(obj, option=_STRICT)
    except TypeError:
        return None
    if b"null" in out and _non_finite(obj):
        return None
    return out


def exact_json(obj: Any, *, sort_keys: bool = False) -> str:
    """The JSON text of a document or an array of any engine's values, as a JSON column
    (or a text column) holds it: decimals with their exact digits (a ``numeric[]``
    element ``1.50`` as ``1.50``, not refused, nor rounded through a float),
    timestamps, dates and times in ISO 8601 (timestamps with a zone in UTC), UUIDs
    as text, bytes as PostgreSQL's ``\\x`` hex (:func:`json_element`). NaN and
    infinities take ``json.dumps``'s spelling, which a server refuses, as it must."""
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    try:
        out = orjson.dumps(obj, default=_json_fragment,
                           option=option | orjson.OPT_PASSTHROUGH_DATETIME)
        if b"null" not in out or not _non_finite(obj):
            return out.decode()
    except TypeError:  # integers past 64 bits, keys that are no strings, ...
        pass
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys,
                      default=_json_plain)


def json_element(v: Any) -> Any:
    """``v`` as a JSON value means it (what :func:`exact_json` writes for it); values
    JSON has already are returned as they are."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC)
        return v.isoformat()
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return "\\x" + bytes(v).hex()
    if isinstance(v, dt.timedelta):
        return intervals.iso_text(0, v.days, v.seconds * 1_000_000 + v.microseconds)
    return v


def _json_fragment(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            raise TypeError(f"{v} is no JSON number")
        return orjson.Fragment(str(v))
    out = json_element(v)
    if out is v:
        if isinstance(v, list | tuple):  # a subclass, or a tuple: orjson writes neither
            return list(v)
        if isinstance(v, Mapping):
            return dict(v)
        raise TypeError(f"{type(v).__name__} is not JSON")
    return out


def _json_plain(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        if v.is_finite() and v == v.to_integral_value():
            return int(v)
        return float(v)  # the standard library writes no Decimal: only past orjson's limits
    out = json_element(v)
    if out is v:
        raise TypeError(f"{type(v).__name__} is not JSON")
    return out


def _non_finite(obj: Any) -> bool:
    if type(obj) is float:
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_non_finite(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_non_finite(v) for v in obj)
    return False


def _c_json(v: Any) -> Any:
    if type(v) is JsonStr:
        return v  # a string document, not a document's text
    if isinstance(v, bytes | str):
        return json_document(parse_json(v))
    return v


def _c_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        return bytes.fromhex(v[2:] if v.startswith("\\x") else v)
    raise CoercionError(f"{v!r} is not bytes")


def _c_array(v: Any) -> list[Any]:
    if isinstance(v, str):
        parsed = parse_json(v)
        if not isinstance(parsed, list):
            raise CoercionError(f"{v!r} is not an array")
        return parsed
    return list(v)


_COERCERS: dict[str, Any] = {
    "int": _c_int,
    "float": _c_float,
    "decimal": _c_decimal,
    "text": _c_text,
    "bool": _c_bool,
    "date": _c_date,
    "time": _c_time,
    "timestamp": _c_timestamp,
    "timestamptz": _c_timestamp,
    "interval": _c_interval,
    "uuid": _c_uuid,
    "json": _c_json,
    "bytes": _c_bytes,
    "array": _c_array,
}


#: logical type -> the exact Python types that are already its own value (what the
#: drivers mostly return): :func:`coerce_row` keeps those as they are
_NATIVE: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float,),
    "decimal": (decimal.Decimal,),
    "text": (str,),
    "bool": (bool,),
    "date": (dt.date,),
    "interval": (dt.timedelta,),
    "uuid": (uuid.UUID,),
    "json": (dict, list, int, float, bool, JsonStr),
    "bytes": (bytes,),
    "array": (list,),
}


def native_types(logical: str) -> tuple[type, ...]:
    """The exact Python types that already are a value of ``logical``: what
    :func:`coerce` returns as it is (and :func:`coerce_row` does not call it for)."""
    return _NATIVE.get(logical, ())


def coerce_row(row: Row, types: Mapping[str, str]) -> dict[str, Any]:
    """Coerce every column of *row* that has a known logical type.

    Values already of their type's own Python type (a PostgreSQL ``numeric`` as a
    Decimal, a ``timestamptz`` in UTC) are kept as they are: this runs for every
    column of every change.
    """
    out: dict[str, Any] = {}
    for c, v in row.items():
        logical = types.get(c, "any")
        t = type(v)
        if v is None or logical == "any" or t in _NATIVE.get(logical, ()) or (
                t is dt.datetime and logical in _TIMESTAMPS and v.tzinfo is dt.UTC):
            out[c] = v
        else:
            out[c] = coerce(v, logical)
    return out


_TIMESTAMPS = ("timestamp", "timestamptz")


def _decimal_text(d: decimal.Decimal) -> str:
    if not d.is_finite():
        return str(d)
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text


def _float_text(f: float) -> str:
    if math.isnan(f):
        return "nan"
    if f == 0.0:
        return "0.0"  # -0.0 and 0.0 are one value to every engine here
    return repr(f)


def canonical_value(v: Any) -> CanonicalValue:
    """Canonical form of a typed value (exact types first: this runs for every column)."""
    t = type(v)
    if t is str:
        return str(v) if not v.startswith("\x00") else "\x00s:" + v
    if t is int or v is None:
        return v  # type: ignore[no-any-return]
    fast = _CANON_BY_TYPE.get(t)
    return fast(v) if fast is not None else _canonical_slow(v)


def _canonical_slow(v: Any) -> CanonicalValue:
    """A tagged JSON-safe primitive, equal exactly when the values mean the same.

    Strings are tagged only when they stand for another type, so the common
    case (text) stays readable in conflict reports.
    """
    if v is None:
        return v
    if isinstance(v, bool):
        # Tagged: in Python True == 1, and canonical forms are compared as values too.
        return "\x00B:1" if v else "\x00B:0"
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return v if not v.startswith("\x00") else "\x00s:" + v
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 2**53:
            # 3.0 from one engine and 3 from another mean the same number.
            return int(v)
        return "\x00f:" + _float_text(v)
    if isinstance(v, decimal.Decimal):
        return _canon_decimal(v)
    if isinstance(v, dt.datetime):
        micros = (_to_utc(v) - _EPOCH) // dt.timedelta(microseconds=1)
        return f"\x00t:{micros}"
    if isinstance(v, dt.date):
        return "\x00d:" + v.isoformat()
    if isinstance(v, dt.time):
        return "\x00T:" + v.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(v, dt.timedelta):
        return f"\x00i:{v // dt.timedelta(microseconds=1)}"
    if isinstance(v, uuid.UUID):
        return "\x00u:" + str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return "\x00b:" + base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, Mapping):
        return _canon_mapping(v)
    if isinstance(v, list | tuple):
        return [canonical_value(x) for x in v]
    if isinstance(v, set | frozenset):
        return sorted((canonical_value(x) for x in v), key=repr)
    raise TypeError(f"no canonical form for {type(v).__name__}")


def _canon_decimal(v: decimal.Decimal) -> CanonicalValue:
    if v.is_finite() and v == v.to_integral_value() and abs(v) < 2**53:
        return int(v)  # 3.00 from one engine and 3 from another mean the same number
    return "\x00n:" + _decimal_text(v)


def _canon_mapping(v: Mapping[Any, Any]) -> CanonicalValue:
    return {"\x00o": {str(k): canonical_value(x) for k, x in sorted(v.items())}}


def _canon_datetime(v: dt.datetime) -> str:
    return f"\x00t:{(_to_utc(v) - _EPOCH) // _MICRO}"


_MICRO = dt.timedelta(microseconds=1)
#: exact type -> canonical form, for the common types; anything else (subclasses
#: included) takes :func:`_canonical_slow`, which decides the same way
_CANON_BY_TYPE: dict[type, Any] = {
    bool: lambda v: "\x00B:1" if v else "\x00B:0",
    dt.datetime: _canon_datetime,
    decimal.Decimal: _canon_decimal,
    dict: _canon_mapping,
    list: lambda v: [canonical_value(x) for x in v],
}


def canonical_row(row: Row | None) -> dict[str, CanonicalValue] | None:
    if row is None:
        return None
    return {str(c): canonical_value(v) for c, v in row.items()}


def canonical_json(obj: Any) -> str:
    """Deterministic compact JSON (sorted keys) of already-canonical data.

    orjson writes exactly what ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes for canonical data (no floats: they are tagged
    text), ten times faster; this runs for every row hash. What orjson refuses
    (integers past 64 bits, lone surrogates) takes the standard library's path.
    """
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_bytes(obj: Any) -> bytes:
    """``canonical_json(obj).encode("utf-8")`` (what a hash takes), without the round
    trip through ``str`` in the common case."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return canonical_json(obj).encode("utf-8")


def row_hash(row: Row | None) -> str:
    """A short stable digest of a row's canonical content; ``""`` for an absent row."""
    return canonical_hash(canonical_row(row))


def canonical_hash(canonical: Mapping[str, CanonicalValue] | None) -> str:
    """:func:`row_hash` of a row from its :func:`canonical_row` form, for a caller that
    has that form already (a sink compares rows by it before hashing them)."""
    if canonical is None:
        return ""
    return hashlib.blake2b(_canonical_bytes(canonical), digest_size=12).hexdigest()


def key_text(key: Row) -> str:
    """The store's text form of a primary-key dict (canonical, order-free)."""
    return canonical_json(canonical_row(key))


def key_from_text(text: str) -> dict[str, Any] | None:
    """The key dict whose :func:`key_text` is ``text``, for the usual key types (integers,
    text, UUIDs, decimals, dates, bytes); None where it cannot be told back exactly."""
    decoders: dict[str, Any] = {
        "s": str, "u": uuid.UUID, "n": decimal.Decimal, "d": dt.date.fromisoformat,
        "b": lambda t: base64.b64decode(t.encode("ascii")),
    }
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    key: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, str) and value.startswith("\x00"):
            decode = decoders.get(value[1:2])
            if decode is None or value[2:3] != ":":
                return None
            try:
                value = decode(value[3:])
            except (ValueError, TypeError):
                return None
        elif not isinstance(value, int | str) or isinstance(value, bool):
            return None
        key[name] = value
    return key if key_text(key) == text else None


def rows_equal(a: Row | None, b: Row | None) -> bool:
    return canonical_row(a) == canonical_row(b)


# --- round trip for the state store ------------------------------------------------
# Contents are kept in the store as JSON; these two functions make that lossless.


def to_json_value(v: Any) -> Any:
    """Encode a typed value as JSON that :func:`from_json_value` restores exactly."""
    t = type(v)
    if t is str or t is int or v is None or t is bool:
        return v
    fast = _STORE_BY_TYPE.get(t)
    return fast(v) if fast is not None else _to_json_slow(v)


def _to_json_slow(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return {"$f": repr(v)} if (math.isnan(v) or math.isinf(v)) else v
    if isinstance(v, decimal.Decimal):
        return {"$n": str(v)}
    if isinstance(v, dt.datetime):
        return {"$t": _to_utc(v).isoformat()}
    if isinstance(v, dt.date):
        return {"$d": v.isoformat()}
    if isinstance(v, dt.time):
        return {"$T": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"$i": v // dt.timedelta(microseconds=1)}
    if isinstance(v, uuid.UUID):
        return {"$u": str(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, Mapping):
        return _store_mapping(v)
    if isinstance(v, list | tuple):
        return [to_json_value(x) for x in v]
    if isinstance(v, set | frozenset):
        return {"$s": sorted((to_json_value(x) for x in v), key=repr)}
    raise TypeError(f"cannot store {type(v).__name__}")


def _store_mapping(v: Mapping[Any, Any]) -> Any:
    return {"$o": {str(k): to_json_value(x) for k, x in v.items()}}


#: exact type -> stored form, for the common types (the rest: :func:`_to_json_slow`)
_STORE_BY_TYPE: dict[type, Any] = {
    decimal.Decimal: lambda v: {"$n": str(v)},
    dt.datetime: lambda v: {"$t": _to_utc(v).isoformat()},
    dict: _store_mapping,
    list: lambda v: [to_json_value(x) for x in v],
    JsonStr: lambda v: {"$j": str(v)},
}


_DECODERS: dict[str, Any] = {
    "$f": float,
    "$n": decimal.Decimal,
    "$t": dt.datetime.fromisoformat,
    "$d": dt.date.fromisoformat,
    "$T": dt.time.fromisoformat,
    "$i": lambda m: dt.timedelta(microseconds=m),
    "$u": uuid.UUID,
    "$b": base64.b64decode,
    "$j": JsonStr,
}


def from_json_value(v: Any) -> Any:
    t = type(v)
    if t is str or t is int or t is float or v is None or t is bool:
        return v
    if isinstance(v, list):
        return [from_json_value(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (tag, inner), = v.items()
            if tag in _DECODERS:
                return _DECODERS[tag](inner)
            if tag == "$o":
                return {k: from_json_value(x) for k, x in inner.items()}
            if tag == "$s":
                return {from_json_value(x) for x in inner}
        return {k: from_json_value(x) for k, x in v.items()}
    return v


def row_to_json(row: Row | None) -> dict[str, Any] | None:
    return None if row is None else {c: to_json_value(v) for c, v in row.items()}


def row_from_json(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if data is None else {c: from_json_value(v) for c, v in data.items()}
