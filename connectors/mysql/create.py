"""Creating a one-way target table at a MariaDB/MySQL endpoint from the source's schema.

A column keeps its source type when the source is MariaDB/MySQL too;
otherwise its logical type decides (docs/types.md has the whole mapping):

=============  ==========================================================
logical        MariaDB column
=============  ==========================================================
int            ``BIGINT`` (``INT``/``SMALLINT`` for PostgreSQL ``integer``/``smallint``)
float          ``DOUBLE`` (``FLOAT`` for ``real``)
decimal        ``DECIMAL(p,s)`` when the source says ``p,s``; else ``DECIMAL(65,30)``
text           ``LONGTEXT``; ``VARCHAR(n)`` when the source says ``n``;
               ``VARCHAR(255)`` in a primary key
bool           ``TINYINT(1)``
date           ``DATE``
time           ``TIME(6)``
timestamp      ``DATETIME(6)``
timestamptz    ``DATETIME(6)``, UTC: TIMESTAMP's range ends in 2038
uuid           ``CHAR(36)``
json, array    ``JSON`` (MariaDB: LONGTEXT checked by ``json_valid``)
bytes          ``LONGBLOB``; ``VARBINARY(255)`` in a primary key
any            ``LONGTEXT``
interval       none: refused (no MariaDB type holds a PostgreSQL interval exactly)
=============  ==========================================================

The key becomes the primary key; ``NOT NULL`` follows the source. Text key
columns compare exactly (``utf8mb4_nopad_bin``; MySQL 8 ``utf8mb4_0900_bin``):
under the server's default collation ``abc`` and ``ABC``, ``a`` and ``a ``,
``e`` and ``é`` are one key, and a source that tells them apart would have
one of each pair refused.
"""

from __future__ import annotations

import re

from connectors.base import Binding, Column, SchemaError, TableSchema
from connectors.creation import created_columns
from connectors.mysql.schema import load_table
from connectors.mysql.session import quote_ident, quote_table

_LOGICAL = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "decimal": "DECIMAL(65,30)",
    "text": "LONGTEXT",
    "bool": "TINYINT(1)",
    "date": "DATE",
    "time": "TIME(6)",
    "timestamp": "DATETIME(6)",
    "timestamptz": "DATETIME(6)",
    "uuid": "CHAR(36)",
    "json": "JSON",
    "array": "JSON",
    "bytes": "LONGBLOB",
    "any": "LONGTEXT",
}
_PRECISION = re.compile(r"\((\d+)(?:\s*,\s*(\d+))?\)")
_MYSQL_SAFE = re.compile(r"^[a-z0-9 (),'_\-.]+$", re.IGNORECASE)


def column_type(col: Column, source_kind: str | None, *, in_key: bool = False) -> str:
    """The MariaDB type of a target column for a source column."""
    native = col.native.strip()
    lower = native.lower()
    if source_kind == "mysql" and _MYSQL_SAFE.match(native):
        if col.logical == "json":
            return "JSON"
        if in_key and lower in ("text", "longtext", "mediumtext", "tinytext"):
            return "VARCHAR(255)"
        return native
    logical = col.logical
    base = lower.split("(")[0].strip()
    m = _PRECISION.search(lower)
    if logical == "interval":
        raise SchemaError(f"column {col.name!r} ({native}): no MariaDB type holds an interval "
                          "exactly; create the target table yourself")
    if logical == "int":
        if base in ("integer", "int", "int4"):
            return "INT"
        if base in ("smallint", "int2"):
            return "SMALLINT"
        return "BIGINT"
    if logical == "float" and base in ("real", "float4"):
        return "FLOAT"
    if logical == "decimal" and m:
        return f"DECIMAL({m.group(1)},{m.group(2) or 0})"
    if logical == "text":
        if m and base in ("varchar", "character varying", "nvarchar", "char", "character"):
            return f"VARCHAR({m.group(1)})"
        return "VARCHAR(255)" if in_key else "LONGTEXT"
    if logical == "bytes" and in_key:
        return "VARBINARY(255)"
    return _LOGICAL.get(logical, "LONGTEXT")


_TEXT = re.compile(r"^(var)?char\b|^(tiny|medium|long)?text\b", re.IGNORECASE)
#: collations comparing utf8mb4 text byte for byte, trailing spaces included, best first
_EXACT = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")


def exact_collation(cursor: object) -> str:
    """The server's collation that tells apart every pair of keys another endpoint
    does (MySQL 5.7 has no NO PAD one: trailing spaces still compare equal there)."""
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN"
        f" ({', '.join(repr(c) for c in _EXACT)})")
    have = {str(r[0]) for r in cursor.fetchall()}  # type: ignore[attr-defined]
    return next((c for c in _EXACT if c in have), "utf8mb4_bin")


def create_table(cursor: object, database: str, binding: Binding, source: TableSchema,
                 source_binding: Binding, *, source_kind: str | None = None) -> list[str]:
    """Create the bound table from the source's schema unless it exists (idempotent)."""
    try:
        load_table(cursor, database, binding.table)
        return []
    except SchemaError as exc:
        if "does not exist" not in str(exc):
            raise
    defs: list[str] = []
    exact: str | None = None
    for target, col, not_null in created_columns(binding, source, source_binding):
        in_key = target in binding.endpoint_key
        null = " NOT NULL" if not_null else ""
        kind = column_type(col, source_kind, in_key=in_key)
        if in_key and _TEXT.match(kind):
            exact = exact or exact_collation(cursor)
            kind += f" CHARACTER SET utf8mb4 COLLATE {exact}"
        defs.append(f"{quote_ident(target)} {kind}{null}")
    defs.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in binding.endpoint_key)})")
    cursor.execute(  # type: ignore[attr-defined]
        f"CREATE TABLE {quote_table(database, binding.table)} ({', '.join(defs)})"
        " DEFAULT CHARSET = utf8mb4")
    return [f"created table {binding.table} from {source_binding.endpoint}'s {source.table}"]
