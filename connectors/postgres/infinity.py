"""PostgreSQL's ``infinity`` and ``-infinity`` dates and timestamps, both ways.

No Python date stands for them, and psycopg refuses to load them ("date too
large"): one such row (a contract ``valid_until = 'infinity'``, common in
PostgreSQL schemas) stopped every read of its table for good. Mapping them to
``date.max`` (what psycopg's documentation suggests for applications) would make
a real ``9999-12-31`` and ``infinity`` one value, and a PostgreSQL target would
end up holding the other.

So they travel as the strings ``"infinity"`` / ``"-infinity"``
(:data:`conflict.canonical.INFINITIES`; their canonical form too): the loaders
below return them for ``date``, ``timestamp`` and ``timestamptz`` values in
either format, and the binary dumpers a sink's ``COPY`` takes by oid write them
back as PostgreSQL's own. Other engines hold what they can: SQLite keeps the
text; MariaDB/MySQL refuse it, and the row is dead-lettered, never silently
turned into another date.

Each adapter wraps psycopg's own (C) one rather than subclassing it (the C
classes cannot be subclassed): a Python call and a comparison more per value,
~0.4 us (timeit, timestamptz: 169 -> 542 ns as text, 134 -> 536 ns binary).
"""

from __future__ import annotations

from typing import Any

from psycopg import abc
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.pq import Format

#: oid -> (infinity, -infinity) in the binary format: the integer type's extremes
_BINARY = {
    1082: (b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"),  # date: int4 days
    1114: (b"\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x80" + b"\x00" * 7),  # timestamp: int8 us
    1184: (b"\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x80" + b"\x00" * 7),  # timestamptz
}
_TEXT = {b"infinity": "infinity", b"-infinity": "-infinity"}


def register(adapters: AdaptersMap) -> None:
    """Load and dump the infinities on the connection (or map) ``adapters``."""
    for oid, (pos, neg) in _BINARY.items():
        adapters.register_loader(oid, _text_loader(adapters.get_loader(oid, Format.TEXT)))
        adapters.register_loader(oid, _binary_loader(
            adapters.get_loader(oid, Format.BINARY), {pos: "infinity", neg: "-infinity"}))
        inner = adapters.get_dumper_by_oid(oid, Format.BINARY)
        adapters.register_dumper(None, _binary_dumper(oid, inner, pos, neg))


def _text_loader(base: type[abc.Loader] | None) -> type[Loader]:
    if base is None:  # pragma: no cover - psycopg has loaders for every date/time type
        raise AssertionError("no psycopg loader for a date/time type")
    inner: type[abc.Loader] = base

    class InfinityLoader(Loader):
        format = Format.TEXT

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._load = inner(oid, context).load

        def load(self, data: Any) -> Any:
            if data[-1] == 121:  # "y": every other date/time text ends with a digit or "BC"
                special = _TEXT.get(bytes(data))
                if special is not None:
                    return special
            return self._load(data)

    return InfinityLoader


def _binary_loader(base: type[abc.Loader] | None, special: dict[bytes, str]) -> type[Loader]:
    if base is None:  # pragma: no cover
        raise AssertionError("no psycopg loader for a date/time type")
    inner: type[abc.Loader] = base

    class InfinityBinaryLoader(Loader):
        format = Format.BINARY

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._load = inner(oid, context).load

        def load(self, data: Any) -> Any:
            if data[0] in (0x7F, 0x80):  # else no extreme of its integer: a date/time
                found = special.get(bytes(data))
                if found is not None:
                    return found
            return self._load(data)

    return InfinityBinaryLoader


def _binary_dumper(type_oid: int, base: type[abc.Dumper], pos: bytes, neg: bytes
                   ) -> type[Dumper]:
    class InfinityBinaryDumper(Dumper):
        format = Format.BINARY
        oid = type_oid

        def __init__(self, cls: type, context: Any = None) -> None:
            super().__init__(cls, context)
            self._dump = base(cls, context).dump

        def dump(self, obj: Any) -> Any:
            if obj == "infinity":
                return pos
            if obj == "-infinity":
                return neg
            return self._dump(obj)

    return InfinityBinaryDumper
