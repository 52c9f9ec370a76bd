"""Decoding row images of binlog row events, one compiled decoder per column.

The stock ``mysql-replication`` decoder dispatches on the column type for
every value of every row and looks the table map up again per column; here the
dispatch happens once, when a table map is first seen, and each column gets a
small closure ``(buf, off) -> (value, new_off)``. Values come out in the same
raw forms pymysql's ``SELECT`` gives (``timedelta`` for TIME, naive
``datetime`` for DATETIME, ``Decimal`` with the column's scale...), except
where noted, so that one conversion (:func:`connectors.mysql.types.typed`)
serves both paths. Zero dates decode as ``None``.

The binary formats are MySQL's (``mysql56_temporal_format``, the default of
MariaDB since 10.1, and of MySQL since 5.6): see MySQL's ``my_time.cc`` and
``decimal.c``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.json_binary import parse_json

from conflict.canonical import json_document

Decoder = Callable[[bytes, int], tuple[Any, int]]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_INVERT = bytes(255 - b for b in range(256))  # a negative DECIMAL's bytes, inverted


class UnsupportedColumn(Exception):
    """A column type this decoder does not know (the message names it)."""


def _fixed(fmt: str) -> Decoder:
    st = struct.Struct(fmt)
    size = st.size
    unpack = st.unpack_from

    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        return unpack(buf, off)[0], off + size

    return dec


def _int24(unsigned: bool) -> Decoder:
    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        return int.from_bytes(buf[off : off + 3], "little", signed=not unsigned), off + 3

    return dec


def _year(buf: bytes, off: int) -> tuple[Any, int]:
    v = buf[off]
    return (v + 1900 if v else 0), off + 1


def _decimal(precision: int, scale: int) -> Decoder:
    """MySQL's packed DECIMAL: base-10^9 groups, big-endian, sign in the top bit,
    negative numbers stored inverted."""
    intg = precision - scale
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    lead = _DIG2BYTES[intg0x]
    tail = _DIG2BYTES[frac0x]
    size = lead + intg0 * 4 + frac0 * 4 + tail
    # (offset, length, multiplier of the group) for the integer part, then the fraction
    int_groups = ([(0, lead, 10 ** (intg0 * 9))] if lead else []) + [
        (lead + 4 * i, 4, 10 ** ((intg0 - 1 - i) * 9)) for i in range(intg0)
    ]
    fstart = lead + intg0 * 4
    frac_groups = [(fstart + 4 * i, 4, 10 ** (scale - 9 * (i + 1))) for i in range(frac0)]
    if tail:
        frac_groups.append((fstart + 4 * frac0, tail, 1))
    groups = tuple((o, n, m * 10**scale) for o, n, m in int_groups) + tuple(frac_groups)
    # The first group carries the sign bit (flipped); the rest are plain.
    (_, first_len, first_mul), rest = groups[0], groups[1:]
    sign_bit = 0x80 << (8 * (first_len - 1))
    exponent = f"E{-scale}"
    from_bytes = int.from_bytes
    Dec = decimal.Decimal

    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        # The hot path of a DECIMAL column's every value (15% of a MariaDB reader's
        # process when it was a generator and a digit tuple): C-level translate for
        # the inversion, and the Decimal made from text, which keeps every digit and
        # the column's scale as the digit tuple did.
        raw = buf[off : off + size]
        negative = not raw[0] & 0x80
        if negative:
            raw = raw.translate(_INVERT)
        value = (from_bytes(raw[:first_len], "big") ^ sign_bit) * first_mul
        for o, n, m in rest:
            value += from_bytes(raw[o : o + n], "big") * m
        return Dec(f"-{value}{exponent}" if negative else f"{value}{exponent}"), off + size

    return dec


def _length_prefixed(prefix: int, encoding: str | None) -> Decoder:
    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        n = int.from_bytes(buf[off : off + prefix], "little")
        start = off + prefix
        raw = buf[start : start + n]
        return (raw if encoding is None else raw.decode(encoding)), start + n

    return dec


def _enum(size: int, values: list[str] | None) -> Decoder:
    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        idx = int.from_bytes(buf[off : off + size], "little")
        if values is None:
            return idx, off + size
        return (values[idx] if idx < len(values) else ""), off + size

    return dec


def _set(size: int, values: list[str] | None) -> Decoder:
    members = list(values or [])

    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        mask = int.from_bytes(buf[off : off + size], "little")
        return ",".join(v for i, v in enumerate(members) if mask >> i & 1), off + size

    return dec


def _bit(nbytes: int) -> Decoder:
    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        return int.from_bytes(buf[off : off + nbytes], "big"), off + nbytes

    return dec


def _date(buf: bytes, off: int) -> tuple[Any, int]:
    v = int.from_bytes(buf[off : off + 3], "little")
    day, month, year = v & 31, (v >> 5) & 15, v >> 9
    if not (month and day):  # a zero date (the year 0 with a day is a day Python lacks)
        return None, off + 3
    try:
        return dt.date(year, month, day), off + 3
    except ValueError:
        return _day_text(year, month, day), off + 3


def _day_text(year: int, month: int, day: int, at: dt.time | None = None) -> str:
    """A day its month lacks (``ALLOW_INVALID_DATES``), or in the year 0, as a SELECT
    spells it and conflict.canonical keeps it (``invalid_day``): ``YYYY-MM-DD``, and
    the time as ``time.isoformat`` writes it for a DATETIME."""
    text = f"{year:04d}-{month:02d}-{day:02d}"
    return text if at is None else f"{text} {at.isoformat()}"


def _frac_size(fsp: int) -> int:
    return (fsp + 1) // 2


def _frac_micros(buf: bytes, off: int, fsp: int, signed: bool = False) -> int:
    """The fractional part stored after a temporal value, in microseconds."""
    n = _frac_size(fsp)
    if n == 0:
        return 0
    v = int.from_bytes(buf[off : off + n], "big", signed=signed)
    return v * (10_000, 100, 1)[n - 1]


def _datetime2(fsp: int) -> Decoder:
    size = 5 + _frac_size(fsp)

    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        packed = int.from_bytes(buf[off : off + 5], "big") - 0x8000000000
        micro = _frac_micros(buf, off + 5, fsp)
        ymd, hms = packed >> 17, packed & 0x1FFFF
        ym, day = ymd >> 5, ymd & 31
        year, month = divmod(ym, 13)
        if not (month and day):
            return None, off + size
        hour, minute, second = hms >> 12, (hms >> 6) & 63, hms & 63
        try:
            return dt.datetime(year, month, day, hour, minute, second, micro), off + size
        except ValueError:
            at = dt.time(hour, minute, second, micro)
            return _day_text(year, month, day, at), off + size

    return dec


def _timestamp2(fsp: int) -> Decoder:
    size = 4 + _frac_size(fsp)

    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        seconds = int.from_bytes(buf[off : off + 4], "big")
        micro = _frac_micros(buf, off + 4, fsp)
        if seconds == 0 and micro == 0:
            return None, off + size  # the zero TIMESTAMP
        return _EPOCH + dt.timedelta(seconds=seconds, microseconds=micro), off + size

    return dec


def _time2(fsp: int) -> Decoder:
    nfrac = _frac_size(fsp)
    size = 3 + nfrac

    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        if nfrac == 3:
            packed = int.from_bytes(buf[off : off + 6], "big") - 0x800000000000
        else:
            intpart = int.from_bytes(buf[off : off + 3], "big") - 0x800000
            frac = int.from_bytes(buf[off + 3 : off + 3 + nfrac], "big") if nfrac else 0
            if intpart < 0 and frac:
                intpart += 1
                frac -= 0x100 if nfrac == 1 else 0x10000
            packed = (intpart << 24) + frac * (10_000 if nfrac == 1 else 100)
        negative = packed < 0
        packed = -packed if negative else packed
        hms, micro = packed >> 24, packed & 0xFFFFFF
        value = dt.timedelta(hours=(hms >> 12) & 1023, minutes=(hms >> 6) & 63,
                             seconds=hms & 63, microseconds=micro)
        return (-value if negative else value), off + size

    return dec


def _old_datetime(buf: bytes, off: int) -> tuple[Any, int]:
    v = int.from_bytes(buf[off : off + 8], "little")
    d, t = divmod(v, 1_000_000)
    year, md = divmod(d, 10_000)
    month, day = divmod(md, 100)
    if not (month and day):
        return None, off + 8
    hour, minute, second = t // 10_000, t // 100 % 100, t % 100
    try:
        return dt.datetime(year, month, day, hour, minute, second), off + 8
    except ValueError:
        return _day_text(year, month, day, dt.time(hour, minute, second)), off + 8


def _old_timestamp(buf: bytes, off: int) -> tuple[Any, int]:
    seconds = int.from_bytes(buf[off : off + 4], "little")
    if seconds == 0:
        return None, off + 4
    return _EPOCH + dt.timedelta(seconds=seconds), off + 4


def _old_time(buf: bytes, off: int) -> tuple[Any, int]:
    v = int.from_bytes(buf[off : off + 3], "little", signed=True)
    sign = -1 if v < 0 else 1
    v = abs(v)
    return sign * dt.timedelta(hours=v // 10_000, minutes=v // 100 % 100,
                               seconds=v % 100), off + 3


def _mysql_json(prefix: int) -> Decoder:
    def dec(buf: bytes, off: int) -> tuple[Any, int]:
        n = int.from_bytes(buf[off : off + prefix], "little")
        start = off + prefix
        data = buf[start : start + n]
        value = json_document(parse_json(data[0], data[1:])) if n else None
        return value, start + n

    return dec


def _encoding(column: Any) -> str | None:
    """The Python codec of a character column; ``None`` for binary data."""
    name = getattr(column, "character_set_name", None)
    if name == "binary":
        return None
    return "utf-8" if name is None or str(name).startswith("utf8") else str(name)


def column_decoder(column: Any) -> Decoder:
    """A decoder for one column as ``mysql-replication`` parsed it from a table map.

    Raises:
        UnsupportedColumn: a type with no decoder here (the message names it).
    """
    t = column.type
    unsigned = bool(getattr(column, "unsigned", False))
    if t == FIELD_TYPE.TINY:
        return _fixed("<B" if unsigned else "<b")
    if t == FIELD_TYPE.SHORT:
        return _fixed("<H" if unsigned else "<h")
    if t == FIELD_TYPE.INT24:
        return _int24(unsigned)
    if t == FIELD_TYPE.LONG:
        return _fixed("<I" if unsigned else "<i")
    if t == FIELD_TYPE.LONGLONG:
        return _fixed("<Q" if unsigned else "<q")
    if t == FIELD_TYPE.FLOAT:
        return _fixed("<f")
    if t == FIELD_TYPE.DOUBLE:
        return _fixed("<d")
    if t == FIELD_TYPE.YEAR:
        return _year
    if t == FIELD_TYPE.NEWDECIMAL:
        return _decimal(column.precision, column.decimals)
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING):
        return _length_prefixed(2 if column.max_length > 255 else 1, _encoding(column))
    if t == FIELD_TYPE.ENUM:
        return _enum(column.size, column.enum_values)
    if t == FIELD_TYPE.SET:
        return _set(column.size, column.set_values)
    if t == FIELD_TYPE.BLOB:
        return _length_prefixed(column.length_size, _encoding(column))
    if t == FIELD_TYPE.GEOMETRY:
        return _length_prefixed(column.length_size, None)
    if t == FIELD_TYPE.JSON:
        return _mysql_json(column.length_size)
    if t == FIELD_TYPE.BIT:
        return _bit(column.bytes)
    if t in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        return _date
    if t == FIELD_TYPE.DATETIME2:
        return _datetime2(column.fsp)
    if t == FIELD_TYPE.TIMESTAMP2:
        return _timestamp2(column.fsp)
    if t == FIELD_TYPE.TIME2:
        return _time2(column.fsp)
    if t == FIELD_TYPE.DATETIME:
        return _old_datetime
    if t == FIELD_TYPE.TIMESTAMP:
        return _old_timestamp
    if t == FIELD_TYPE.TIME:
        return _old_time
    raise UnsupportedColumn(f"column {column.name!r} has binlog type {t}, which cdcsync "
                            "cannot decode")


_FIXED_FORMATS = {
    FIELD_TYPE.TINY: ("<b", "<B"),
    FIELD_TYPE.SHORT: ("<h", "<H"),
    FIELD_TYPE.LONG: ("<i", "<I"),
    FIELD_TYPE.LONGLONG: ("<q", "<Q"),
    FIELD_TYPE.FLOAT: ("<f", "<f"),
    FIELD_TYPE.DOUBLE: ("<d", "<d"),
}


def inline_code(column: Any, i: int, ns: dict[str, Any]) -> list[str] | None:
    """Python statements that decode column ``i`` into ``v`` and advance ``off``, for
    the commonest types (fixed-width numbers, strings, blobs); ``None`` for the rest,
    which call their decoder. Helpers go into ``ns`` under names suffixed with ``i``."""
    t = column.type
    formats = _FIXED_FORMATS.get(t)
    if formats is not None:
        st = struct.Struct(formats[1] if getattr(column, "unsigned", False) else formats[0])
        ns[f"U{i}"] = st.unpack_from
        return [f"v = U{i}(buf, off)[0]", f"off += {st.size}"]
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB):
        if t == FIELD_TYPE.BLOB:
            prefix = int(column.length_size)
        else:
            prefix = 2 if column.max_length > 255 else 1
        encoding = _encoding(column)
        ns[f"E{i}"] = encoding
        decode = "" if encoding is None else f".decode(E{i})"
        if prefix == 1:
            length = "n = buf[off]"
        elif prefix == 2:
            length = "n = buf[off] | buf[off + 1] << 8"
        else:
            length = f"n = from_bytes(buf[off:off + {prefix}], 'little')"
        return [length, f"v = buf[off + {prefix}:off + {prefix} + n]{decode}",
                f"off += {prefix} + n"]
    return None
