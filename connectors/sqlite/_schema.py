"""What a bound table looks like: columns, declared types, key, unique constraints."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cached_property

from connectors.base import Column, TableSchema
from connectors.sqlite._types import logical_type


def quote(identifier: str) -> str:
    """An SQL identifier, always quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    declared: str
    notnull: bool
    pk: int  # position in the primary key, 0 when not part of it


@dataclass(frozen=True)
class TableInfo:
    table: str
    columns: tuple[ColumnInfo, ...]
    unique_keys: tuple[frozenset[str], ...]  # PRIMARY KEY and full UNIQUE indexes
    strict: bool = False  # a STRICT table: declared types are enforced, no affinity games
    #: The same constraints as ((column, collation), ...), in index order: what a row
    #: must equal another's in to clash with it (``INSERT OR REPLACE``, _capture.py).
    clashes: tuple[tuple[tuple[str, str], ...], ...] = ()

    @cached_property
    def by_name(self) -> dict[str, ColumnInfo]:
        return {c.name: c for c in self.columns}

    @cached_property
    def types(self) -> dict[str, str]:
        """Logical type by column name."""
        return {c.name: logical_type(c.declared) for c in self.columns}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def signature(self) -> list[list[str]]:
        """What the triggers were generated for: names and declared types, in order."""
        return [[c.name, c.declared] for c in self.columns]

    def table_schema(self, key: tuple[str, ...]) -> TableSchema:
        cols = tuple(
            Column(c.name, logical_type(c.declared), c.declared, nullable=not c.notnull)
            for c in self.columns
        )
        return TableSchema(self.table, cols, key)


def introspect(conn: sqlite3.Connection, table: str) -> TableInfo | None:
    """The table's shape, or ``None`` when the main schema has no such table."""
    cols = conn.execute(
        'SELECT name, type, "notnull", pk FROM pragma_table_info(?, \'main\') ORDER BY cid',
        (table,),
    ).fetchall()
    if not cols:
        return None
    columns = tuple(ColumnInfo(n, t or "", bool(nn), int(pk)) for n, t, nn, pk in cols)
    keys: list[frozenset[str]] = []
    clashes: list[tuple[tuple[str, str], ...]] = []
    pk = frozenset(c.name for c in columns if c.pk)
    if pk:
        keys.append(pk)
    indexes = conn.execute(
        "SELECT name FROM pragma_index_list(?, 'main') WHERE \"unique\" AND NOT partial",
        (table,),
    ).fetchall()
    for (index,) in indexes:
        cols = conn.execute("SELECT name, coll FROM pragma_index_xinfo(?, 'main') WHERE key",
                            (index,)).fetchall()
        if cols and all(n is not None for n, _ in cols):  # expression indexes name no column
            keys.append(frozenset(n for n, _ in cols))
            clashes.append(tuple((str(n), str(c or "BINARY")) for n, c in cols))
    if len(pk) == 1 and not any({n for n, _ in c} == pk for c in clashes):
        clashes.insert(0, ((next(iter(pk)), "BINARY"),))  # INTEGER PRIMARY KEY: the rowid
    try:
        row = conn.execute(
            "SELECT strict FROM pragma_table_list(?) WHERE schema = 'main'", (table,)
        ).fetchone()
    except sqlite3.OperationalError:  # SQLite before 3.37 has neither the pragma nor STRICT
        row = None
    return TableInfo(table, columns, tuple(keys), strict=bool(row and row[0]),
                     clashes=tuple(clashes))
