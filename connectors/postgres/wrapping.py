"""Adapters that call psycopg's own first: its C loaders and dumpers cannot be subclassed.

Used where a value psycopg cannot take (connectors/postgres/wide_dates.py) or takes
with a loss (connectors/postgres/intervals.py) needs another reading: a subclass
sets ``inner`` to psycopg's adapter and calls ``self._load`` / ``self._dump``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from psycopg import abc
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.pq import Format


def psycopgs_loader(adapters: AdaptersMap, oid: int, fmt: Format) -> type[abc.Loader]:
    """psycopg's own loader of ``oid`` in ``fmt``, to wrap."""
    found = adapters.get_loader(oid, fmt)
    if found is None:  # pragma: no cover - psycopg has loaders for every type wrapped here
        raise AssertionError(f"no psycopg loader for oid {oid}")
    return found


class WrappedLoader(Loader):
    inner: ClassVar[type[abc.Loader]]

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._load = self.inner(oid, context).load


class WrappedDumper(Dumper):
    inner: ClassVar[type[abc.Dumper]]

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        self._dump = self.inner(cls, context).dump
