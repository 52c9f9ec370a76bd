"""Creating a one-way target table from the source's schema.

For a one-way entity whose table does not exist at a PostgreSQL target,
``cdcsync setup`` creates it from the source's :class:`~connectors.base.TableSchema`.
A column keeps its source type where that type means the same here (a
PostgreSQL source's built-in types, with their precision); otherwise its
logical type decides (docs/types.md has the whole mapping):

=============  ======================================================
logical        PostgreSQL column
=============  ======================================================
int            ``bigint`` (``smallint``/``integer`` kept from PostgreSQL;
               ``integer`` for MariaDB ``INT``, ``smallint`` for ``SMALLINT``/``TINYINT``)
float          ``double precision`` (``real`` kept from PostgreSQL; ``FLOAT`` -> ``real``)
decimal        ``numeric(p,s)`` when the source says ``p,s``, else ``numeric``
text           ``text``; ``varchar(n)`` when the source says ``n``
bool           ``boolean``
date           ``date``
time           ``time``
timestamp      ``timestamp``
timestamptz    ``timestamptz``
interval       ``interval``
uuid           ``uuid``
json           ``jsonb``
bytes          ``bytea``
array          the PostgreSQL array type when the source is PostgreSQL, else ``jsonb``
any            ``text``
=============  ======================================================

The key becomes the primary key; ``NOT NULL`` follows the source. A created
table gets ``REPLICA IDENTITY FULL`` like every bound table.
"""

from __future__ import annotations

import re

from psycopg import sql

from connectors.base import Binding, Column, TableSchema
from connectors.creation import created_columns
from connectors.postgres.catalog import find_table, split_table
from connectors.postgres.connect import PgConnection

_LOGICAL = {
    "int": "bigint",
    "float": "double precision",
    "decimal": "numeric",
    "text": "text",
    "bool": "boolean",
    "date": "date",
    "time": "time",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "interval": "interval",
    "uuid": "uuid",
    "json": "jsonb",
    "bytes": "bytea",
    "array": "jsonb",
    "any": "text",
}

#: PostgreSQL's own spellings of built-in types that are kept as they are.
_PG_BUILTIN = re.compile(
    r"^(smallint|integer|bigint|real|double precision|numeric(\(\d+(,\d+)?\))?|text"
    r"|character varying(\(\d+\))?|character(\(\d+\))?|boolean|date"
    r"|time(\(\d\))? without time zone|timestamp(\(\d\))? (with|without) time zone"
    r"|interval|uuid|jsonb?|bytea)(\[\])*$"
)
_PRECISION = re.compile(r"\((\d+)(?:\s*,\s*(\d+))?\)")


def column_type(col: Column, source_kind: str | None) -> str:
    """The PostgreSQL type of a target column for a source column."""
    native = col.native.strip().lower()
    if source_kind == "postgres" and _PG_BUILTIN.match(native):
        return native
    logical = col.logical
    base = native.split("(")[0].strip()
    if logical == "int":
        if base in ("integer", "int", "mediumint") and "unsigned" not in native:
            return "integer"
        if base in ("smallint", "tinyint") and "unsigned" not in native:
            return "smallint"
        if base == "bigint" and "unsigned" in native:
            return "numeric(20)"  # up to 2^64-1: more than a bigint holds
        return "bigint"
    if logical == "float" and base in ("real", "float"):
        return "real"
    m = _PRECISION.search(native)
    if logical == "decimal" and m and m.group(2) is not None:
        return f"numeric({m.group(1)},{m.group(2)})"
    if logical == "decimal" and m:
        return f"numeric({m.group(1)})"
    if logical == "text" and m and base in ("varchar", "character varying", "nvarchar"):
        return f"varchar({m.group(1)})"
    return _LOGICAL.get(logical, "text")


def create_table(
    conn: PgConnection,
    binding: Binding,
    source: TableSchema,
    source_binding: Binding,
    default_schema: str,
    *,
    source_kind: str | None = None,
) -> list[str]:
    """Create the bound table from the source's schema unless it exists (idempotent).

    ``source_binding`` maps the source's columns to entity columns, ``binding``
    maps those to this endpoint's; columns the entity does not synchronise are
    not created.
    """
    schema, name = split_table(binding.table, default_schema)
    if find_table(conn, schema, name) is not None:
        return []
    defs: list[sql.Composable] = []
    for target, col, not_null in created_columns(binding, source, source_binding,
                                                 source_kind=source_kind, zero_dates=True):
        null = sql.SQL(" NOT NULL") if not_null else sql.SQL("")
        defs.append(sql.SQL("{} {}{}").format(sql.Identifier(target),
                                              sql.SQL(column_type(col, source_kind)), null))
    key = list(binding.endpoint_key)
    defs.append(sql.SQL("PRIMARY KEY ({})").format(
        sql.SQL(", ").join(sql.Identifier(k) for k in key)))
    ident = sql.Identifier(schema, name)
    with conn.transaction():
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(defs)))
        conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(ident))
    return [f"created table {schema}.{name} from {source_binding.endpoint}'s {source.table}"]
