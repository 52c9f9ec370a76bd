"""The ``postgres`` endpoint kind: logical decoding (pgoutput) source, COPY-based sink.

Modules: :mod:`.pgoutput` (pure protocol decoder), :mod:`.types` (column types
and values), :mod:`.catalog` (bound tables), :mod:`.decoding` (messages to
changes), :mod:`.source` (snapshots and the SQL-interface reader),
:mod:`.stream` (the streaming reader of the daemon), :mod:`.sink`,
:mod:`.setup` (publication, slot, origin), :mod:`.endpoint`.
"""

from connectors.postgres.endpoint import PostgresEndpoint, open_endpoint
from connectors.postgres.sink import PostgresSink
from connectors.postgres.source import PostgresSource
from sync.change import SchemaChanged, Truncated

__all__ = [
    "PostgresEndpoint",
    "PostgresSink",
    "PostgresSource",
    "SchemaChanged",
    "Truncated",
    "open_endpoint",
]
