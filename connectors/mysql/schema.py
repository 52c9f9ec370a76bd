"""Table descriptions from ``information_schema``, cached per table.

MariaDB's JSON type is an alias of LONGTEXT with a ``CHECK (json_valid(col))``
constraint, so JSON columns are recognised from ``CHECK_CONSTRAINTS``; TINYINT(1)
(bool) is only visible in ``COLUMN_TYPE``. The binlog carries neither, which
is why the binlog decoder takes these hints from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import Column, SchemaError, TableSchema
from connectors.mysql.types import ColumnInfo, enum_values, logical_type

_JSON_CHECK = re.compile(r"^\s*json_valid\(\s*`((?:[^`]|``)+)`\s*\)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TableInfo:
    database: str
    table: str
    columns: tuple[ColumnInfo, ...]
    key: tuple[str, ...]  # primary-key columns, in index order
    #: a system-versioned table's row-end column (``WITH SYSTEM VERSIONING``), and the
    #: period columns ``information_schema`` does not list (implicit ones: ``row_start``
    #: and ``row_end``, hidden from every query but logged in its row images)
    row_end: str | None = None
    hidden: tuple[str, ...] = ()

    def by_name(self) -> dict[str, ColumnInfo]:
        return {c.name: c for c in self.columns}

    def table_schema(self) -> TableSchema:
        return TableSchema(
            table=self.table,
            columns=tuple(  # generated columns: each table computes its own
                Column(c.name, c.logical, c.column_type, c.nullable) for c in self.columns
                if not c.generated
            ),
            key=self.key,
        )


def load_table(cursor: Any, database: str, table: str) -> TableInfo:
    """Describe ``database.table``.

    Raises:
        SchemaError: no such table, or it has no primary key.
    """
    cursor.execute(
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
        (database, table),
    )
    json_cols = set()
    for (clause,) in cursor.fetchall():
        m = _JSON_CHECK.match(clause or "")
        if m:
            json_cols.add(m.group(1).replace("``", "`"))
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_SCALE,"
        " DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, EXTRA, GENERATION_EXPRESSION"
        " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
        " ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    columns = []
    row_end = None
    for (name, data_type, column_type, nullable, scale, fsp, length, extra,
         expression) in cursor.fetchall():
        if str(expression or "").upper() == "ROW END":
            row_end = name
        data_type = str(data_type).lower()
        column_type = str(column_type)
        logical = logical_type(data_type, column_type, is_json=name in json_cols)
        columns.append(
            ColumnInfo(
                name=name,
                data_type=data_type,
                column_type=column_type,
                logical=logical,
                nullable=nullable == "YES",
                scale=int(fsp) if fsp is not None else (int(scale) if scale is not None
                                                        else None),
                length=int(length) if length is not None else None,
                values=enum_values(column_type) if data_type in ("enum", "set") else (),
                generated="GENERATED" in str(extra or "").upper(),
                on_update="ON UPDATE" in str(extra or "").upper(),
            )
        )
    if not columns:
        raise SchemaError(f"table {database}.{table} does not exist")
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY'"
        " ORDER BY SEQ_IN_INDEX",
        (database, table),
    )
    key = tuple(r[0] for r in cursor.fetchall())
    if not key:
        raise SchemaError(
            f"table {database}.{table} has no primary key: cdcsync needs one to address rows"
        )
    hidden: tuple[str, ...] = ()
    if row_end is None and _versioned(cursor, database, table):
        row_end, hidden = IMPLICIT_PERIOD[1], IMPLICIT_PERIOD
    return TableInfo(database, table, tuple(columns), key, row_end, hidden)


#: the names MariaDB gives the period columns of a table declared ``WITH SYSTEM
#: VERSIONING`` without columns of its own for them
IMPLICIT_PERIOD = ("row_start", "row_end")


def _versioned(cursor: Any, database: str, table: str) -> bool:
    """Is ``database.table`` system-versioned (MariaDB)? Its updates and deletes then
    keep the old row as a history row in the table, logged as a row of its own."""
    cursor.execute(
        "SELECT TABLE_TYPE FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, table))
    found = cursor.fetchone()
    return found is not None and str(found[0]).upper() == "SYSTEM VERSIONED"


def key_collations(cursor: Any, database: str, table: str, key: Sequence[str]
                   ) -> list[tuple[str, str, str]]:
    """``(column, collation, COLUMN_TYPE)`` of the text columns among ``key``, in its order:
    how the table compares keys (connectors/mysql/setup.py names loose ones, the sink
    names them when it refuses a row)."""
    cursor.execute(
        "SELECT COLUMN_NAME, COLLATION_NAME, COLUMN_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLLATION_NAME IS NOT NULL",
        (database, table))
    found = {str(c): (str(k), str(t)) for c, k, t in cursor.fetchall()}
    return [(c, *found[c]) for c in key if c in found]


class SchemaCache:
    """Table descriptions by name, reloaded after DDL (:meth:`forget`)."""

    def __init__(self, database: str, cursor_factory: Callable[[], Any]) -> None:
        self.database = database
        self._cursor = cursor_factory
        self._tables: dict[str, TableInfo] = {}

    def get(self, table: str) -> TableInfo:
        info = self._tables.get(table)
        if info is None:
            with self._cursor() as cur:
                info = self._tables[table] = load_table(cur, self.database, table)
        return info

    def forget(self, table: str | None = None) -> None:
        if table is None:
            self._tables.clear()
        else:
            self._tables.pop(table, None)
