"""Dates and times no Python value holds, both ways: infinities, years past 9999, BC, 24:00.

psycopg refuses to load them ("date too large", "date too small"): one such row
(a contract ``valid_until = 'infinity'``, common in PostgreSQL schemas; a typo'd
``20201-01-01``; a historical ``0044-03-15 BC``) stopped every read of its
table for good. Mapping the infinities to ``date.max`` (what psycopg's
documentation suggests for applications) would make a real ``9999-12-31`` and
``infinity`` one value, and a PostgreSQL target would end up holding the other.

So they travel as text, which is also their canonical form:
``"infinity"`` / ``"-infinity"`` (:data:`conflict.canonical.INFINITIES`) and
PostgreSQL's own ISO spelling at UTC for the others (``20201-01-01 10:00:00``,
``0044-03-15 BC``: :mod:`conflict.extdates`); a ``time`` of ``24:00:00`` (the
end of a day, which PostgreSQL holds and Python's ``time`` does not) as that
text (:data:`conflict.canonical.END_OF_DAY`), never as midnight. The loaders below return them for
``date``, ``timestamp``, ``timestamptz`` and ``time`` values in either format, and the
binary dumpers a sink's ``COPY`` takes by oid write them back as PostgreSQL's
own. Other engines hold what they can: SQLite keeps the text; MariaDB/MySQL
refuse it, and the row is dead-lettered, never silently turned into another date.

Each adapter wraps psycopg's own (C) one rather than subclassing it (the C
classes cannot be subclassed). A value psycopg loads costs one Python call more
(~0.3 us); only a value it refuses takes the slow path here.
"""

from __future__ import annotations

from typing import Any

from psycopg import DataError, abc
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.pq import Format

from conflict import extdates
from conflict.canonical import END_OF_DAY, coerce, infinity
from connectors.postgres.wrapping import WrappedDumper, WrappedLoader, psycopgs_loader

#: oid -> (infinity, -infinity) in the binary format: the integer type's extremes
_BINARY = {
    1082: (b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"),  # date: int4 days
    1114: (b"\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x80" + b"\x00" * 7),  # timestamp: int8 us
    1184: (b"\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x80" + b"\x00" * 7),  # timestamptz
}
_DATE = 1082
_TIME = 1083  # int8 microseconds since midnight
_END_OF_DAY = extdates.DAY_US.to_bytes(8, "big")


def register(adapters: AdaptersMap) -> None:
    """Load and dump these values on the connection (or map) ``adapters``."""
    for oid, (pos, neg) in _BINARY.items():
        adapters.register_loader(oid, _text_loader(psycopgs_loader(adapters, oid, Format.TEXT)))
        adapters.register_loader(oid, _binary_loader(
            psycopgs_loader(adapters, oid, Format.BINARY), {pos: "infinity", neg: "-infinity"}))
        inner = adapters.get_dumper_by_oid(oid, Format.BINARY)
        adapters.register_dumper(None, _binary_dumper(oid, inner, pos, neg))
    adapters.register_loader(_TIME, _text_loader(psycopgs_loader(adapters, _TIME, Format.TEXT)))
    adapters.register_loader(_TIME, _binary_loader(
        psycopgs_loader(adapters, _TIME, Format.BINARY), {_END_OF_DAY: END_OF_DAY}))
    adapters.register_dumper(None, _time_dumper(adapters.get_dumper_by_oid(_TIME,
                                                                           Format.BINARY)))


def _wide_text(oid: int, text: str) -> str | None:
    special = infinity(text)
    if special is not None:
        return special
    if oid == _TIME:
        try:
            return END_OF_DAY if coerce(text, "time") == END_OF_DAY else None
        except ValueError:
            return None
    wide = extdates.as_date(text) if oid == _DATE else extdates.as_timestamp(text)
    return wide if isinstance(wide, str) else None


def _text_loader(base: type[abc.Loader]) -> type[Loader]:
    class WideDateLoader(WrappedLoader):
        format = Format.TEXT
        inner = base

        def load(self, data: Any) -> Any:
            try:
                return self._load(data)
            except DataError:
                found = _wide_text(self.oid, bytes(data).decode())
                if found is None:
                    raise
                return found

    return WideDateLoader


def _binary_loader(base: type[abc.Loader], special: dict[bytes, str]) -> type[Loader]:
    class WideDateBinaryLoader(WrappedLoader):
        format = Format.BINARY
        inner = base

        def load(self, data: Any) -> Any:
            try:
                return self._load(data)
            except DataError:
                raw = bytes(data)
                found = special.get(raw)
                if found is not None:
                    return found
                if self.oid == _TIME:
                    raise
                n = int.from_bytes(raw, "big", signed=True)
                return (extdates.date_text(n) if self.oid == _DATE
                        else extdates.timestamp_text(n))

    return WideDateBinaryLoader


def _binary_dumper(type_oid: int, base: type[abc.Dumper], pos: bytes, neg: bytes
                   ) -> type[Dumper]:
    size = len(pos)

    class WideDateBinaryDumper(WrappedDumper):
        format = Format.BINARY
        oid = type_oid
        inner = base

        def dump(self, obj: Any) -> Any:
            if type(obj) is not str:
                return self._dump(obj)
            if obj == "infinity":
                return pos
            if obj == "-infinity":
                return neg
            parsed = extdates.parse(obj)
            if parsed is None:
                return self._dump(obj)  # psycopg's own error
            days, tod = parsed
            n = days if type_oid == _DATE else days * extdates.DAY_US + (tod or 0)
            return n.to_bytes(size, "big", signed=True)

    return WideDateBinaryDumper


def _time_dumper(base: type[abc.Dumper]) -> type[Dumper]:
    class EndOfDayBinaryDumper(WrappedDumper):
        format = Format.BINARY
        oid = _TIME
        inner = base

        def dump(self, obj: Any) -> Any:
            return _END_OF_DAY if obj == END_OF_DAY else self._dump(obj)

    return EndOfDayBinaryDumper
