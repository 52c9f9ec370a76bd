"""``character(n)`` values without their padding.

PostgreSQL pads a ``character(n)`` value with spaces to n characters, and its
output function sends the padding (pgoutput, ``COPY``, ``SELECT``): ``'ab'`` in
a ``char(5)`` reads ``'ab   '``. PostgreSQL itself holds those spaces
insignificant (``'ab'::char(5) = 'ab   '``, a cast to ``text`` drops them), and
MariaDB's ``CHAR`` gives the value without them. Read with them, a row synced
between a PostgreSQL ``char(n)`` and a MariaDB ``CHAR(n)`` hashed differently at
each end, and ``cdcsync verify`` found drift in every such row that was not
there. Read without them, the value is the same at every endpoint; written back
to a ``character(n)``, PostgreSQL pads it again.
"""

from __future__ import annotations

from typing import Any

from psycopg import abc
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format

from connectors.postgres.wrapping import WrappedLoader, psycopgs_loader

BPCHAR = 1042


def register(adapters: AdaptersMap) -> None:
    for fmt in (Format.TEXT, Format.BINARY):
        adapters.register_loader(BPCHAR, _unpadded(psycopgs_loader(adapters, BPCHAR, fmt), fmt))


def _unpadded(base: type[abc.Loader], fmt: Format) -> type[Loader]:
    class UnpaddedLoader(WrappedLoader):
        format = fmt
        inner = base

        def load(self, data: Any) -> Any:
            value = self._load(data)
            return value.rstrip(" ") if isinstance(value, str) else value

    return UnpaddedLoader
