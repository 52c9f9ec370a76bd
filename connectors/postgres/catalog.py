"""What the system catalog says about a bound table: columns, types, keys, identity."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from connectors.base import Binding, Column, SchemaError, TableSchema
from connectors.postgres.connect import PgConnection
from connectors.postgres.types import ColumnType, classify, register_result_loaders


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type_oid: int
    native: str  # format_type(), e.g. "numeric(12,2)"
    nullable: bool
    ctype: ColumnType
    #: GENERATED ALWAYS AS IDENTITY: an INSERT must say OVERRIDING SYSTEM VALUE to write it
    identity_always: bool = False
    #: its ``=`` holds values equal that differ (``citext``, a nondeterministic
    #: collation): ``abc`` and ``ABC`` are one key in such a key column
    loose: bool = False

    @property
    def logical(self) -> str:
        return self.ctype.logical

    def select_expr(self, alias: str | None = None) -> sql.Composable:
        """The column as snapshot/read select it (see types.register_result_loaders)."""
        return sql.Identifier(alias, self.name) if alias else sql.Identifier(self.name)


@dataclass(frozen=True, slots=True)
class TableInfo:
    schema: str
    name: str
    oid: int
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[frozenset[str], ...]  # plain unique indexes, primary key included
    replica_identity: str  # d, n, f, i
    #: rewrite rules on writes: (name, event: "INSERT"/"UPDATE"/"DELETE", DO INSTEAD)
    rules: tuple[tuple[str, str, bool], ...] = ()
    partitioned: bool = False  # its rows live in partitions (relkind 'p')
    #: a DEFERRABLE constraint checks its rows (its own, or a foreign key to it)
    deferrable: bool = False

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def overriding(self) -> sql.Composable:
        """What an INSERT that writes every column says before its rows: the service
        writes the source's values into identity columns too."""
        if any(c.identity_always for c in self.columns):
            return sql.SQL("OVERRIDING SYSTEM VALUE ")
        return sql.SQL("")

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    def by_name(self) -> dict[str, ColumnInfo]:
        return {c.name: c for c in self.columns}

    def table_schema(self, table: str) -> TableSchema:
        return TableSchema(
            table=table,
            columns=tuple(Column(c.name, c.logical, c.native, c.nullable) for c in self.columns),
            key=self.primary_key,
        )

    def has_unique(self, columns: tuple[str, ...]) -> bool:
        return frozenset(columns) in self.unique_keys

    def check_writable(self, endpoint: str) -> None:
        """Refuse a table whose rewrite rules the sink's statements cannot go through.

        PostgreSQL refuses ``INSERT ... ON CONFLICT`` on a table with an INSERT or
        UPDATE rule, and an ``ON DELETE DO INSTEAD`` rule replaces the ``DELETE ...
        RETURNING`` that reports which rows went. (``COPY``, which writes a batch of new
        rows, would also pass by any rule silently.) A DO ALSO rule on DELETE is kept.

        Raises:
            SchemaError: naming the rules and what to use instead.
        """
        bad = [f"{name} (ON {event}{' DO INSTEAD' if instead else ''})"
               for name, event, instead in self.rules if event != "DELETE" or instead]
        if bad:
            raise SchemaError(
                f"endpoint {endpoint}: table {self.qualified} has rewrite rules cdcsync"
                f" cannot write through: {', '.join(bad)}. PostgreSQL refuses"
                " INSERT ... ON CONFLICT on a table with INSERT or UPDATE rules; use a"
                " trigger instead, or bind the entity to the table the rule writes to"
            )


def split_table(table: str, default_schema: str) -> tuple[str, str]:
    """``"schema.table"`` or ``"table"`` -> ``(schema, table)``; names are taken literally."""
    schema, dot, name = table.partition(".")
    return (schema, name) if dot else (default_schema, table)


_COLUMNS = """
SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       t.typtype, t.typelem, et.typtype, t.typbasetype,
       CASE WHEN t.typbasetype <> 0 THEN format_type(t.typbasetype, t.typtypmod) END,
       a.attidentity = 'a',
       COALESCE(bt.typname, t.typname) = 'citext' OR EXISTS (SELECT FROM pg_collation co
         WHERE co.oid = a.attcollation AND NOT co.collisdeterministic)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

_UNIQUE = """
SELECT i.indisprimary,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i
WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indisvalid AND i.indimmediate
ORDER BY NOT i.indisprimary, i.indexrelid
"""


_RULES = """
SELECT rulename, CASE ev_type WHEN '2' THEN 'UPDATE' WHEN '3' THEN 'INSERT' ELSE 'DELETE' END,
       is_instead
FROM pg_rewrite WHERE ev_class = %s AND ev_type IN ('2', '3', '4') ORDER BY rulename
"""

#: a deferrable unique index on exactly these columns (which cannot serve as a key)
_DEFERRED_KEY = """
SELECT i.indexrelid::regclass::text FROM pg_index i
WHERE i.indrelid = %s AND i.indisunique AND NOT i.indimmediate
  AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM unnest(i.indkey) k(n)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n)
      = (SELECT array_agg(c ORDER BY c) FROM unnest(%s::text[]) c)
"""

#: DEFERRABLE constraints that check this table's rows: its own, and foreign keys to it
_DEFERRABLE = """
SELECT EXISTS (SELECT FROM pg_constraint WHERE (conrelid = %s OR confrelid = %s)
               AND condeferrable)
"""


def find_table(conn: PgConnection, schema: str, name: str) -> TableInfo | None:
    """The table ``schema.name`` (exact names), or ``None`` when it does not exist.

    Registers on ``conn`` how its column types load (types.register_result_loaders).
    """
    row = conn.execute(
        "SELECT c.oid, c.relreplident, c.relkind FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
        " AND c.relkind IN ('r', 'p')",
        (schema, name),
    ).fetchone()
    if row is None:
        return None
    oid, replident, partitioned = int(row[0]), str(row[1]), row[2] == "p"
    columns = []
    for (attname, typoid, native, nullable, typtype, elem, etyptype, baseoid, basesql,
         always, loose) in conn.execute(_COLUMNS, (oid,)).fetchall():
        ctype = classify(int(typoid), str(typtype), int(elem or 0),
                         None if etyptype is None else str(etyptype), int(baseoid or 0),
                         None if basesql is None else str(basesql), str(native))
        columns.append(ColumnInfo(str(attname), int(typoid), str(native), bool(nullable), ctype,
                                  bool(always), bool(loose)))
    pk: tuple[str, ...] = ()
    uniques: list[frozenset[str]] = []
    for primary, cols in conn.execute(_UNIQUE, (oid,)).fetchall():
        if primary:
            pk = tuple(str(c) for c in cols)
        uniques.append(frozenset(str(c) for c in cols))
    rules = tuple((str(n), str(e), bool(i)) for n, e, i in conn.execute(_RULES, (oid,)))
    deferrable = conn.execute(_DEFERRABLE, (oid, oid)).fetchone()
    register_result_loaders(conn.adapters, (c.ctype for c in columns))
    return TableInfo(schema, name, oid, tuple(columns), pk, tuple(uniques), replident, rules,
                     partitioned, bool(deferrable and deferrable[0]))


def table_for(conn: PgConnection, binding: Binding, default_schema: str) -> TableInfo:
    """The bound table, checked against the binding's key.

    Raises:
        SchemaError: no such table, a key column is missing, or no unique index on the key.
    """
    schema, name = split_table(binding.table, default_schema)
    info = find_table(conn, schema, name)
    if info is None:
        raise SchemaError(
            f"endpoint {binding.endpoint}: table {schema}.{name} does not exist"
            f" (entity {binding.entity})"
        )
    key = binding.endpoint_key
    missing = [k for k in key if info.column(k) is None]
    if missing:
        raise SchemaError(
            f"endpoint {binding.endpoint}: table {info.qualified} has no key column"
            f" {', '.join(missing)} (entity {binding.entity})"
        )
    if not info.has_unique(key):
        deferred = conn.execute(_DEFERRED_KEY, (info.oid, list(key))).fetchone()
        why = (" that is not DEFERRABLE (INSERT ... ON CONFLICT cannot take a deferrable"
               f" one, {deferred[0]}, as its arbiter)") if deferred else ""
        raise SchemaError(
            f"endpoint {binding.endpoint}: table {info.qualified} has no primary key or unique"
            f" index on ({', '.join(key)}){why}; cdcsync needs one to find rows by key"
        )
    return info


@dataclass(frozen=True, slots=True)
class Published:
    """A table of a publication, as ``pg_publication_tables`` has it."""

    oid: int
    schema: str
    name: str
    rowfilter: str | None  # (PostgreSQL 15 on, as the two below)
    columns: frozenset[str] | None  # the columns it publishes
    whole: bool  # every row and every column published

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def published(conn: PgConnection, publication: str) -> list[Published]:
    """The tables of ``publication`` (none if it does not exist): what setup keeps in it
    and what a reader checks is still in it, whole."""
    narrowing = (
        ", p.rowfilter, p.attnames, p.rowfilter IS NULL AND NOT EXISTS (SELECT 1"
        " FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
        " AND NOT a.attisdropped AND a.attname <> ALL (p.attnames))"
        if conn.info.server_version >= 150000 else ", NULL, NULL, true")
    rows = conn.execute(
        "SELECT c.oid, p.schemaname, p.tablename" + narrowing +
        " FROM pg_publication_tables p"
        " JOIN pg_namespace n ON n.nspname = p.schemaname"
        " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename"
        " WHERE p.pubname = %s", (publication,)).fetchall()
    return [Published(int(oid), str(s), str(t), None if f is None else str(f),
                      None if cols is None else frozenset(cols), bool(whole))
            for oid, s, t, f, cols, whole in rows]
