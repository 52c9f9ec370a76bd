"""PostgreSQL intervals with months, both ways (see :mod:`conflict.intervals`).

psycopg loads ``'1 mon'`` as ``timedelta(days=30)``: written back, another
PostgreSQL held ``30 days``. The loaders below return an interval with months as
its ISO 8601 text (and one without as psycopg's ``timedelta``); the binary dumper
a sink's ``COPY`` takes by oid writes the text back as the same three numbers.
Wrapping psycopg's C adapters, as connectors/postgres/wide_dates.py does.
"""

from __future__ import annotations

import struct
from typing import Any

from psycopg import DataError, abc
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.pq import Format

from conflict import intervals
from connectors.postgres.wrapping import WrappedDumper, WrappedLoader, psycopgs_loader

INTERVAL = 1186
_BINARY = struct.Struct(">qii")  # microseconds, days, months


def register(adapters: AdaptersMap) -> None:
    """Load and dump intervals with months on the connection (or map) ``adapters``."""
    adapters.register_loader(INTERVAL, _text_loader(
        psycopgs_loader(adapters, INTERVAL, Format.TEXT)))
    adapters.register_loader(INTERVAL, _binary_loader(
        psycopgs_loader(adapters, INTERVAL, Format.BINARY)))
    adapters.register_dumper(None, _dumper(adapters.get_dumper_by_oid(INTERVAL, Format.BINARY)))


def _text_loader(base: type[abc.Loader]) -> type[Loader]:
    class MonthsLoader(WrappedLoader):
        format = Format.TEXT
        inner = base

        def load(self, data: Any) -> Any:
            raw = bytes(data)  # a memoryview's "in" would look for one byte
            if b"mon" not in raw and b"year" not in raw and b"P" not in raw:
                return self._load(data)
            parsed = intervals.parse(raw.decode())
            if parsed is None:
                raise DataError(f"cannot read interval {raw!r}")
            months, days, micros = parsed
            return intervals.iso_text(months, days, micros) if months else self._load(data)

    return MonthsLoader


def _binary_loader(base: type[abc.Loader]) -> type[Loader]:
    class MonthsBinaryLoader(WrappedLoader):
        format = Format.BINARY
        inner = base

        def load(self, data: Any) -> Any:
            if data[-4:] == b"\x00\x00\x00\x00":  # no months
                return self._load(data)
            micros, days, months = _BINARY.unpack(data)
            return intervals.iso_text(months, days, micros)

    return MonthsBinaryLoader


def _dumper(base: type[abc.Dumper]) -> type[Dumper]:
    class MonthsBinaryDumper(WrappedDumper):
        format = Format.BINARY
        oid = INTERVAL
        inner = base

        def dump(self, obj: Any) -> Any:
            if type(obj) is not str:
                return self._dump(obj)
            parsed = intervals.parse(obj)
            if parsed is None:
                return self._dump(obj)  # psycopg's own error
            months, days, micros = parsed
            return _BINARY.pack(micros, days, months)

    return MonthsBinaryDumper
