"""Values between Python, SQLite storage and the JSON of the change log.

Three conversions, each the inverse of another somewhere:

* :func:`logical_type` reads a column's declared type as a logical type;
* :func:`to_storage` turns a typed value into what is bound for SQLite
  (:func:`from_storage` reads it back, through ``conflict.canonical.coerce``);
* :func:`logged_sql` is the SQL the triggers use to put a column value into
  the log's JSON, and :func:`from_logged` undoes it in Python.

Storage decisions (write, then read back, gives a canonically equal value):

=============  ==============================================================
decimal        positional text, the scale kept (``Decimal('-1E-30')`` as
               ``'-0.000000000000000000000000000001'``, ``Decimal('0E-30')`` as
               ``'0.000000000000000000000000000000'``, where ``str(d)`` wrote
               exponent form), which reads back as the same Decimal, value and
               exponent. A NUMERIC/DECIMAL column has NUMERIC affinity, so
               SQLite keeps it as INTEGER or REAL: exact to 15 significant
               digits (``Decimal('1.50')`` reads back as ``1.5``, which is
               canonically equal). More digits than that are rounded by SQLite.
               A ``DECIMAL TEXT`` column (what ``cdcsync setup`` creates) has
               TEXT affinity and keeps every digit.
timestamp(tz)  ISO 8601 text in UTC, ``'YYYY-MM-DD HH:MM:SS.ffffff+00:00'``.
date, time     ``isoformat()`` text.
bool           ``1`` / ``0``.
json           compact JSON text, keys sorted (``conflict.canonical.exact_json``); a
               Python ``str`` is a JSON string value, not a document.
uuid           ``str(u)``.
bytes          a BLOB.
=============  ==============================================================

In the log, REAL values are written as JSON numbers with 21 significant
digits (``printf('%!.20e')``): SQLite 3.40's ``json_object`` keeps only 15
and its ``printf('%!.17g')`` misrounds about 1 in 700 random doubles of large
magnitude, while ``%!.20e`` round-tripped all of a million (the format
SQLite's own ``quote()`` falls back to). Infinities, which JSON cannot hold,
become ``{"$f": "Inf"}``; BLOBs, ``{"$b": "<hex>"}``. Nothing else in a
logged row is a JSON object (text is always a JSON string), so the tags are
unambiguous.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from conflict.canonical import CoercionError, coerce, exact_json

_EXACT: dict[str, str] = {
    "INT": "int",
    "INTEGER": "int",
    "BIGINT": "int",
    "SMALLINT": "int",
    "TINYINT": "int",
    "MEDIUMINT": "int",
    "REAL": "float",
    "FLOAT": "float",
    "DOUBLE": "float",
    "DOUBLE PRECISION": "float",
    "NUMERIC": "decimal",
    "DECIMAL": "decimal",
    "DECIMAL TEXT": "decimal",  # TEXT affinity ("TEXT" in the name): kept exactly as text
    "BOOLEAN": "bool",
    "BOOL": "bool",
    "DATE": "date",
    "DATETIME": "timestamp",
    "TIMESTAMP": "timestamp",
    "TIMESTAMPTZ": "timestamptz",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIME": "time",
    "INTERVAL": "interval",  # else INTEGER by affinity ("INT" in the name)
    "JSON": "json",
    "JSONB": "json",
    "BLOB": "bytes",
    "BYTEA": "bytes",
    "UUID": "uuid",
}


def logical_type(declared: str) -> str:
    """The logical type of a column declared as ``declared`` (``'DECIMAL(10,2)'``...).

    Known type names map as listed in ``_EXACT``; for other names, SQLite's own
    affinity rules decide where they would change what is stored (a name with
    ``INT`` holds integers, with ``BLOB`` bytes, with ``REAL``/``FLOA``/``DOUB``
    floats); everything else, the empty type included, is text.
    """
    base = " ".join(re.sub(r"\(.*", "", declared).upper().split())
    if base in _EXACT:
        return _EXACT[base]
    if "INT" in base:
        return "int"
    if "CHAR" in base or "CLOB" in base or "TEXT" in base:
        return "text"
    if "BLOB" in base:
        return "bytes"
    if "REAL" in base or "FLOA" in base or "DOUB" in base:
        return "float"
    return "text"


def json_text(value: Any) -> str:
    """Decimals keep their digits (they were rounded through a float), timestamps are
    in UTC, bytes in PostgreSQL's ``\\x`` hex: conflict.canonical.exact_json."""
    return exact_json(value, sort_keys=True)


def to_storage(value: Any, logical: str) -> Any:
    """The value to bind for a column of ``logical`` type (see the module docstring).

    Raises:
        conflict.canonical.CoercionError: the value cannot be read as that type.
    """
    if value is None:
        return None
    if logical == "json":
        return json_text(value)
    return _stored(coerce(value, logical))


def _stored(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v != v:
        return "NaN"  # bound as a float, SQLite would store NULL: NaN read back as NULL
    if isinstance(v, int | float | str | bytes):
        return v
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    if isinstance(v, decimal.Decimal):
        return _decimal_text(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC)
        return v.replace(tzinfo=dt.UTC).isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, Mapping | list | tuple):
        return json_text(v)
    raise TypeError(f"cannot store a {type(v).__name__} in SQLite")


def _decimal_text(d: decimal.Decimal) -> str:
    """``d`` in positional notation with its scale: ``format(d, 'f')``, where ``str(d)``
    is not that already (it writes exponent form below 1e-6 and for positive exponents).

    Text ``str`` wrote before in exponent form (``'-1E-30'``, ``'0E-30'``) reads back
    as the same Decimal as this text does; a positive exponent (``'1E+2'``, which no
    engine's decimal type gives) becomes 0 (``'100'``): the same canonical value.
    """
    text = str(d)
    return text if "E" not in text else format(d, "f")


def from_storage(value: Any, logical: str) -> Any:
    """A stored (or logged-and-decoded) value as the Python value of its logical type."""
    return coerce(value, logical)


# Values of these types need no conversion in either direction (bool is not int here).
_NATIVE: dict[str, type] = {"int": int, "float": float, "text": str, "bytes": bytes}


def _timestamp_text(v: dt.datetime) -> Any:
    return _stored(v)


# Writes of the usual Python type of a logical type, without a round through coerce.
_FAST_WRITE: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "decimal": (decimal.Decimal, _decimal_text),
    "bool": (bool, int),
    "date": (dt.date, dt.date.isoformat),
    "timestamp": (dt.datetime, _timestamp_text),
    "timestamptz": (dt.datetime, _timestamp_text),
    "uuid": (uuid.UUID, str),
}


def reader(logical: str) -> Callable[[Any], Any]:
    """:func:`from_storage` for one column, with a fast path for values already right."""
    native = _NATIVE.get(logical)

    def read(v: Any) -> Any:
        if v is None or type(v) is native:
            return v
        return coerce(v, logical)

    return read


_INT64 = 2**63


def writer(logical: str) -> Callable[[Any], Any]:
    """:func:`to_storage` for one column, with fast paths for the usual Python types."""
    native = _NATIVE.get(logical)
    fast_type, fast = _FAST_WRITE.get(logical, (None, None))
    if logical == "int":
        def write_int(v: Any) -> Any:
            if type(v) is int:
                if -_INT64 <= v < _INT64:
                    return v
                raise CoercionError(  # (sqlite3 said only "Python int too large")
                    f"{v} does not fit SQLite's 64-bit INTEGER: declare the column"
                    " DECIMAL TEXT, which keeps every digit (what setup creates for"
                    " BIGINT UNSIGNED)")
            return None if v is None else write_int(to_storage(v, logical))

        return write_int
    if logical == "float":
        def write_float(v: Any) -> Any:
            if type(v) is float and v == v:  # NaN takes _stored's way
                return v
            return None if v is None else to_storage(v, logical)

        return write_float

    def write(v: Any) -> Any:
        if v is None or type(v) is native:
            return v
        if fast is not None and type(v) is fast_type:
            return fast(v)
        return to_storage(v, logical)

    return write


def logged_sql(ref: str) -> str:
    """SQL for the JSON form of the value ``ref`` (e.g. ``NEW."price"``) in the log."""
    return (
        f"CASE typeof({ref}) "
        # 9e999 is SQLite's spelling of infinity: finite REALs become exact JSON numbers.
        f"WHEN 'real' THEN CASE WHEN abs({ref}) < 9e999 THEN json(printf('%!.20e', {ref})) "
        f"ELSE json_object('$f', printf('%!.20e', {ref})) END "
        f"WHEN 'blob' THEN json_object('$b', hex({ref})) "
        f"ELSE {ref} END"
    )


def from_logged(v: Any) -> Any:
    """Undo :func:`logged_sql` for one value parsed from the log's JSON."""
    if type(v) is dict:
        if "$b" in v:
            return bytes.fromhex(v["$b"])
        if "$f" in v:
            return float(v["$f"])
    return v
