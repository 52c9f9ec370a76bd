"""A one-way SQLite target's table, made by ``cdcsync setup`` from the source's schema.

Each logical type gets the declared type that reads back as it
(:func:`connectors.sqlite._types.logical_type`): arrays and JSON documents go to
``JSON``; decimals to ``DECIMAL TEXT``, whose TEXT affinity keeps every digit
(a ``NUMERIC`` column would keep 15: see ``_types``), and so MariaDB's ``BIGINT
UNSIGNED`` (an ``INTEGER`` holds 64 signed bits). ``NOT NULL`` follows the
source; the key is the binding's.
"""

from __future__ import annotations

import re
import sqlite3

from connectors.base import Binding, TableSchema
from connectors.creation import created_columns
from connectors.sqlite._schema import quote

_UNSIGNED64 = re.compile(r"\bbigint\b.*\bunsigned\b", re.IGNORECASE)  # MariaDB/MySQL
DECLARED = {
    "int": "INTEGER", "float": "REAL", "decimal": "DECIMAL TEXT", "text": "TEXT",
    "bool": "BOOLEAN", "date": "DATE", "time": "TIME", "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ", "interval": "INTERVAL", "uuid": "UUID", "json": "JSON",
    "array": "JSON", "bytes": "BLOB", "any": "TEXT",
}


def create_table(conn: sqlite3.Connection, binding: Binding, source: TableSchema,
                 source_binding: Binding, *, source_kind: str | None = None) -> list[str]:
    """Create the bound table unless it exists (idempotent); what was done."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                         (binding.table,)).fetchone()
    if found is not None:
        return []
    defs: list[str] = []
    for target, col, not_null in created_columns(binding, source, source_binding,
                                                 source_kind=source_kind, zero_dates=True):
        null = " NOT NULL" if not_null else ""
        declared = DECLARED.get(col.logical, "TEXT")
        if col.logical == "int" and _UNSIGNED64.search(col.native):
            declared = "DECIMAL TEXT"  # past INTEGER's 64 signed bits: every digit kept
        defs.append(f"{quote(target)} {declared}{null}")
    defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in binding.endpoint_key)})")
    conn.execute(f"CREATE TABLE {quote(binding.table)} ({', '.join(defs)})")
    return [f"created table {binding.table} from {source_binding.endpoint}'s {source.table}"]
