"""PostgresSink: conditional, set-based apply of a batch in one transaction.

A batch is written in ONE transaction on a session that carries the
pipeline's replication origin, so that the source of this very database skips
it (echo suppression by tag). Inside:

1. the ops go by binary ``COPY`` into a temporary table (one per table and
   column set, ``ON COMMIT DELETE ROWS``, created once per session);
2. three set-based statements apply them with **compare-and-set on xmin**
   (``xmin`` is PostgreSQL's row version: the id of the transaction that wrote
   the row version):

   * ``UPDATE ... FROM tmp`` where the row's xmin is the one the service last
     knew (``expected``);
   * ``INSERT ... SELECT FROM tmp ... ON CONFLICT DO NOTHING`` where the
     service knows of no row (``expected`` is ``None``);
   * ``DELETE ... USING tmp`` where the row's xmin is ``expected``;

   each ``RETURNING`` the new xmin of what it wrote;
3. an op that was not applied is ``SKIPPED`` with the row's current xmin (a
   user edit moved the row; it is on its way in the log), unless it is a
   **replay** of a write of ours (``ALREADY``).

**New rows.** A batch that only inserts keys the service knows of no row for
(a first snapshot into an empty table) is copied straight into the table,
every row's xmin the transaction's: a third of the server's work. A key found
taken (a user's insert, or our own rows replayed after a crash) rolls that
transaction back, and the batch goes the way above.

**Recognising a replay.** After a crash between this commit and the state
store's, the engine applies the same version again with the old ``expected``.
The row then has our previous write's xmin, so the compare-and-set fails.
This sink records the id of each transaction it commits in
``cdcsync.applied_tx`` (one row per batch, in the same transaction, so it is
there exactly when the data is). A row whose xmin is one of our transactions
and whose content equals the op's row is ``ALREADY``: nobody wrote it after us.
Why not ``track_commit_timestamp`` and ``pg_xact_commit_timestamp_origin``,
which tell the origin of any xmin without a side table? It must be switched on
with a server restart, which a production database owner may refuse; one
small insert per batch costs nothing next to the batch. Entries older than 7
days are pruned: a replay comes right after a restart.

**Partial rows.** An op's row may lack columns (an unchanged TOAST value the
source could not fill, or a column the binding does not synchronise): those
columns are left alone by the UPDATE. Ops are grouped by their column set.

Deleting a row that is already gone is ``ALREADY``: the row is as wanted.

**Recognising a delete of ours.** A deleted row leaves no xmin behind. Each
delete the sink makes is recorded in ``cdcsync.deleted_rows`` (table, a digest
of the key's text, the xmin the row had; same transaction, pruned like
``applied_tx``). An op that expected a row which is gone, where the record says
our delete removed exactly that version, is ``STALE`` with no row version: a
delete of ours whose result a dead worker lost, not a user's delete on its way.

Errors: a lost connection, a serialization failure, a deadlock raise
:class:`~connectors.base.RetriableError` (the whole batch rolled back);
anything else :class:`~connectors.base.ConnectorError`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from conflict.canonical import canonical_value, key_text
from connectors.base import (
    ApplyOp,
    ApplyResult,
    ApplyStatus,
    Binding,
    Column,
    ConnectorError,
    RowRejected,
)
from connectors.postgres.catalog import ColumnInfo, TableInfo, table_for
from connectors.postgres.connect import PgConnection, classified, connect, is_broken
from connectors.postgres.ddl import column_type
from connectors.postgres.names import APPLIED_TABLE, DELETED_TABLE, SIDE_SCHEMA, Names
from connectors.postgres.ops import OpPlan, OpPlanner, groups
from connectors.postgres.setup import (
    APPLIED_DDL,
    DELETED_DDL,
    PIPELINES_DDL,
    commit_timestamps_on,
    origin_exists,
    register,
)
from connectors.postgres.types import prepare

APPLIED = sql.Identifier(SIDE_SCHEMA, APPLIED_TABLE)
DELETED = sql.Identifier(SIDE_SCHEMA, DELETED_TABLE)
RETENTION = "7 days"
PRUNE_EVERY = 1000  # batches
MAX_POOL = 32


#: compare-and-set: the row still has the xmin the service last knew (``o._x``)
_CAS = sql.SQL("t.xmin::text::bigint = o._x")
#: ... or an xmin that is a subtransaction of that transaction. pgoutput sends the
#: top transaction's xid, while a row written inside a SAVEPOINT (an ORM's nested
#: transaction, a PL/pgSQL EXCEPTION block) carries its subtransaction's xid. A
#: subtransaction commits with its transaction's commit timestamp and gets its xid
#: after it. Another user transaction that wrote the row after that one cannot share
#: its timestamp: it took the row lock only once that one had committed. Our own
#: writes are left out on both sides: a session with a replication origin records
#: one commit timestamp for all its transactions (PostgreSQL 15), and a row holding
#: a write of ours is told apart below (ALREADY/STALE), as before.
_CAS_SUBXACT = sql.SQL(
    "(t.xmin::text::bigint = o._x OR (pg_xact_commit_timestamp(t.xmin)"
    " = pg_xact_commit_timestamp(o._x::text::xid) AND age(t.xmin) < age(o._x::text::xid)"
    " AND NOT EXISTS (SELECT FROM {} a WHERE a.xid IN (o._x, t.xmin::text::bigint))))"
).format(APPLIED)


def _cas_for(conn: PgConnection) -> sql.Composable:
    """The compare-and-set this server allows: subtransactions are recognised only with
    ``track_commit_timestamp`` on (the function errors without it; turning it on takes a
    restart, see docs/postgres.md)."""
    return _CAS_SUBXACT if commit_timestamps_on(conn) else _CAS


class PostgresSink:
    """Writes batches to one PostgreSQL database under the pipeline's origin."""

    def __init__(self, name: str, info: str, names: Names, schema: str = "public") -> None:
        self.name = name
        self.info = info
        self.names = names
        self.default_schema = schema
        self._conn: PgConnection | None = None
        self.origin: str | None = None
        self._tables: dict[str, TableInfo] = {}
        self._temps: set[str] = set()
        self._batches = 0
        self._planners: dict[int, OpPlanner] = {}  # by id() of the binding
        self._cas: sql.Composable = _CAS  # on xmin; with subtransactions: _cas_for

    # --- session ----------------------------------------------------------------------

    def connection(self) -> PgConnection:
        """The apply session, with one origin of the pipeline's pool set up on it."""
        if not is_broken(self._conn):
            assert self._conn is not None
            return self._conn
        conn = connect(self.info)
        try:
            with classified(f"prepare the apply session at {self.name}"):
                self.origin = self._take_origin(conn)
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(SIDE_SCHEMA)))
                conn.execute(APPLIED_DDL)
                conn.execute(DELETED_DDL)
                conn.execute(PIPELINES_DDL)
                register(conn, self.names)
                self._prune(conn)
                self._cas = _cas_for(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._temps, self._batches = conn, set(), 0
        return conn

    def _take_origin(self, conn: PgConnection) -> str:
        for n in range(MAX_POOL):
            name = self.names.pool_origin(n)
            if not origin_exists(conn, name):
                # Another session may create it at the same moment.
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    conn.execute("SELECT pg_replication_origin_create(%s)", (name,))
            try:
                conn.execute("SELECT pg_replication_origin_session_setup(%s)", (name,))
                return name
            except psycopg.errors.ObjectInUse:
                continue  # another apply session holds it: take the next one
            except psycopg.errors.ConfigurationLimitExceeded as exc:
                raise ConnectorError(
                    f"endpoint {self.name}: no free replication origin state for {name}:"
                    " every origin that has written keeps one of max_replication_slots"
                    " entries until it is dropped. Drop the origins of pipelines no longer"
                    " used (`cdcsync teardown`, or SELECT pg_replication_origin_drop(name)"
                    " FROM pg_replication_origin) or raise max_replication_slots"
                ) from exc
        raise ConnectorError(
            f"endpoint {self.name}: all {MAX_POOL} replication origins of the pipeline are in"
            " use by other sessions"
        )

    def table(self, binding: Binding) -> TableInfo:
        if binding.table not in self._tables:
            with classified(f"read the catalog of {self.name}"):
                self._tables[binding.table] = table_for(
                    self.connection(), binding, self.default_schema
                )
        return self._tables[binding.table]

    def forget_schema(self) -> None:
        """Read table definitions again at the next apply (after DDL)."""
        self._tables.clear()
        self._planners.clear()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.closed:
            return
        try:
            if not conn.broken:
                conn.execute("SELECT pg_replication_origin_session_reset()")
        except psycopg.Error:
            pass  # closing releases the origin anyway
        finally:
            conn.close()

    # --- apply ------------------------------------------------------------------------

    def apply(self, binding: Binding, ops: Sequence[ApplyOp]) -> list[ApplyResult]:
        """Apply ``ops`` in ONE transaction; results in the order of ``ops``."""
        if not ops:
            return []
        info = self.table(binding)
        planner = self._planners.get(id(binding))
        if planner is None or planner.info is not info or planner.binding is not binding:
            info.check_writable(self.name)  # once per table definition read
            planner = self._planners[id(binding)] = OpPlanner(binding, info)
        plans = [planner.plan(i, op) for i, op in enumerate(ops)]
        conn = self.connection()
        try:
            try:
                return self._apply_plans(conn, info, plans, direct=_all_inserts(plans))
            except _NotDirect:  # not written as sent: compared one by one
                return self._apply_plans(conn, info, plans, direct=False)
        except RowRejected as exc:
            hint = _swap_hint(conn, info, exc.__cause__)
            if hint:
                raise RowRejected(f"{exc}\n{hint}") from exc.__cause__
            raise
        except BaseException:
            if conn.broken:
                self._conn = None
            raise

    def _apply_plans(self, conn: PgConnection, info: TableInfo, plans: list[OpPlan], *,
                     direct: bool) -> list[ApplyResult]:
        """The batch in one transaction. ``direct``: every op inserts a row the service
        knows of no row for: copied straight into the table (no temporary table, no
        conflict check), the batch rolled back where not every row went in as sent
        (:class:`_NotDirect`)."""
        results: dict[int, ApplyResult] = {}
        parts = [(group, self._group_columns(info, group)) for group in groups(plans)]
        # All or none: a temporary table made before a direct insert found its key
        # taken would be rolled back with it, while this session counts it made.
        direct = direct and all(c.ctype.copy_native for _, cols in parts for c in cols)
        what = (f"apply {len(plans)} change{'' if len(plans) == 1 else 's'} to"
                f" {info.qualified} at {self.name}")
        with classified(what), conn.transaction():
            if info.deferrable:
                # Checked at commit, on the batch's end state: rows that exchange a
                # unique value (the source went through a third value, the batch holds
                # each key's last row), or a row and the one it references, written in
                # another statement of the batch. A constraint that is not DEFERRABLE
                # is checked row by row as ever (docs/postgres.md).
                conn.execute("SET CONSTRAINTS ALL DEFERRED")
            for group, cols in parts:
                if direct:
                    results.update(self._insert_directly(conn, info, cols, group))
                else:
                    results.update(self._apply_group(conn, info, cols, group))
            if any(r.status is ApplyStatus.APPLIED for r in results.values()):
                row = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (xid, origin) VALUES"
                        " (pg_current_xact_id()::text::bigint %% 4294967296, %s)"
                        " ON CONFLICT (xid, origin) DO UPDATE SET at = now()"
                        " RETURNING (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8"
                    ).format(APPLIED),
                    (self.origin,),
                ).fetchone()
                _place_writes(plans, results, int(row[0]) if row else None)
        self._batches += 1
        if self._batches % PRUNE_EVERY == 0:
            self._prune(conn)
        return [results[i] for i in range(len(plans))]

    def _prune(self, conn: PgConnection) -> None:
        with classified(f"prune the records in schema {SIDE_SCHEMA} at {self.name}"):
            for table in (APPLIED, DELETED):
                conn.execute(sql.SQL("DELETE FROM {} WHERE at < now() - %s::interval").format(
                    table), (RETENTION,))

    def _temp_table(self, conn: PgConnection, info: TableInfo, cols: Sequence[ColumnInfo]) -> str:
        sig = "\x00".join([info.qualified, *(f"{c.name}\x01{c.native}" for c in cols)])
        name = "cdcsync_ops_" + hashlib.blake2b(sig.encode(), digest_size=8).hexdigest()
        if name not in self._temps:
            defs: list[sql.Composable] = [sql.SQL("_i int4, _x int8, _d bool")]
            for c in cols:
                io = c.ctype.copy_sql(c.native)
                defs.append(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(io)))
            conn.execute(
                sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
                    sql.Identifier(name), sql.SQL(", ").join(defs)
                )
            )
            self._temps.add(name)
        return name

    @staticmethod
    def _group_columns(info: TableInfo, group: list[OpPlan]) -> list[ColumnInfo]:
        """The group's key columns, then its other columns in table order."""
        key_cols = [info.by_name()[k] for k in group[0].key_names]
        names = set(group[0].columns) - set(group[0].key_names)
        return key_cols + [c for c in info.columns if c.name in names]

    def _insert_directly(self, conn: PgConnection, info: TableInfo, cols: list[ColumnInfo],
                         group: list[OpPlan]) -> dict[int, ApplyResult]:
        """New rows by binary ``COPY`` into the table itself: what the ``INSERT ... ON
        CONFLICT DO NOTHING`` from the temporary table does when no key is taken, for
        a third of the server's work (a first snapshot into an empty table is all such
        rows). A key taken, or a row a trigger kept out, raises :class:`_NotDirect` (the
        transaction is lost)."""
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            info.ident, sql.SQL(", ").join(sql.Identifier(c.name) for c in cols))
        cur = conn.cursor()
        try:
            with cur.copy(stmt) as copy:
                copy.set_types([c.type_oid for c in cols])
                for p in group:
                    copy.write_row([p.values.get(c.name) for c in cols])
        except psycopg.errors.UniqueViolation as exc:
            raise _NotDirect from exc
        if cur.rowcount != len(group):  # a trigger kept rows out: they are told apart
            raise _NotDirect  # (as not applied) by the compared way
        row = conn.execute("SELECT pg_current_xact_id()::text::bigint % 4294967296").fetchone()
        xmin = int(row[0]) if row else None  # every row's: written by this transaction
        return {p.index: ApplyResult(p.key_text, ApplyStatus.APPLIED, xmin) for p in group}

    def _apply_group(self, conn: PgConnection, info: TableInfo, cols: list[ColumnInfo],
                     group: list[OpPlan]) -> dict[int, ApplyResult]:
        key_cols = cols[: len(group[0].key_names)]
        data_cols = cols[len(group[0].key_names):]
        tmp = self._temp_table(conn, info, cols)
        try:
            self._copy(conn, tmp, cols, group)
            out = self._statements(conn, info, tmp, key_cols, data_cols, group)
        except BaseException:
            self._temps.discard(tmp)  # the transaction rolls back; so may its creation
            raise
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(tmp)))
        return out

    def _copy(
        self, conn: PgConnection, tmp: str, cols: list[ColumnInfo], group: list[OpPlan]
    ) -> None:
        target = sql.SQL(", ").join(
            [sql.SQL("_i, _x, _d"), *(sql.Identifier(c.name) for c in cols)]
        )
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(tmp), target
        )
        types = [23, 20, 16, *(c.type_oid if c.ctype.copy_native else c.ctype.copy_oid
                               for c in cols)]
        with conn.cursor().copy(stmt) as copy:
            copy.set_types(types)
            for p in group:
                copy.write_row(
                    (p.index, p.expected, p.delete, *(p.values.get(c.name) for c in cols))
                )

    def _statements(
        self,
        conn: PgConnection,
        info: TableInfo,
        tmp: str,
        key_cols: list[ColumnInfo],
        data_cols: list[ColumnInfo],
        group: list[OpPlan],
    ) -> dict[int, ApplyResult]:
        t, o = info.ident, sql.Identifier(tmp)
        join = _join("t", "o", key_cols)
        out: dict[int, ApplyResult] = {}
        kt = {p.index: p.key_text for p in group}
        # An identity column GENERATED ALWAYS takes no value in an UPDATE (but DEFAULT):
        # left out of the SET, and a row whose value there would change is refused.
        fixed = [c for c in data_cols if c.identity_always]
        set_cols = [c for c in data_cols if not c.identity_always] or key_cols[:1]
        # Only the statements the group needs run: upserts and deletes have different
        # column sets, so a group holds one kind (both only for a table of key columns).
        # (An UPDATE for deletes would match nothing, and PostgreSQL refuses even to plan
        # one that sets an identity GENERATED ALWAYS key.)
        deletes = sum(p.delete for p in group)
        writes = deletes < len(group)
        if fixed and writes:
            _identity_kept(conn, info, t, o, join, fixed, self._cas, kt)
        updated = [] if not writes else conn.execute(
            sql.SQL(
                "UPDATE {} AS t SET {} FROM {} AS o WHERE {} AND NOT o._d"
                " AND o._x IS NOT NULL AND {} RETURNING o._i, t.xmin::text::bigint"
            ).format(
                t,
                sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(c.name), _value("o", c))
                    for c in set_cols
                ),
                o,
                join,
                self._cas,
            )
        ).fetchall()
        for i, xmin in updated:
            out[i] = ApplyResult(kt[i], ApplyStatus.APPLIED, int(xmin))
        all_cols = key_cols + data_cols
        inserted = [] if not writes else conn.execute(
            sql.SQL(
                "WITH ins AS (INSERT INTO {} AS t ({}) {}SELECT {} FROM {} AS o"
                " WHERE NOT o._d AND o._x IS NULL ON CONFLICT ({}) DO NOTHING"
                " RETURNING {}, {} AS _v)"
                " SELECT o._i, ins._v FROM ins JOIN {} AS o ON {}"
            ).format(
                t,
                sql.SQL(", ").join(sql.Identifier(c.name) for c in all_cols),
                info.overriding,
                sql.SQL(", ").join(_value("o", c) for c in all_cols),
                o,
                sql.SQL(", ").join(sql.Identifier(c.name) for c in key_cols),
                sql.SQL(", ").join(sql.Identifier("t", c.name) for c in key_cols),
                # an INSERT's RETURNING cannot read a partitioned table's system columns
                sql.SQL("NULL::bigint" if info.partitioned else "t.xmin::text::bigint"),
                o,
                _join("ins", "o", key_cols),
            )
        ).fetchall()
        if info.partitioned and inserted:  # ... so they are read once it is done
            inserted = conn.execute(
                sql.SQL("SELECT o._i, t.xmin::text::bigint FROM {} AS t JOIN {} AS o ON {}"
                        " WHERE o._i = ANY(%s)").format(t, o, join),
                ([i for i, _ in inserted],),
            ).fetchall()
        for i, xmin in inserted:
            out[i] = ApplyResult(kt[i], ApplyStatus.APPLIED, int(xmin))
        deleted = [] if not deletes else conn.execute(
            sql.SQL(
                "DELETE FROM {} AS t USING {} AS o WHERE {} AND o._d AND {} RETURNING o._i"
            ).format(t, o, join, self._cas)
        ).fetchall()
        for (i,) in deleted:
            out[i] = ApplyResult(kt[i], ApplyStatus.APPLIED, None)
        if deleted:
            expected = {p.index: p.expected for p in group}
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (tbl, key, version, origin) SELECT %s, k, x, %s"
                    " FROM unnest(%s::bytea[], %s::int8[]) AS d (k, x)"
                    " ON CONFLICT (tbl, key) DO UPDATE SET version = excluded.version,"
                    " origin = excluded.origin, at = now()"
                ).format(DELETED),
                (info.qualified, self.origin, [_digest(kt[i]) for (i,) in deleted],
                 [expected[i] for (i,) in deleted]),
            )
        if len(out) < len(group):
            out.update(self._not_applied(conn, info, tmp, key_cols, data_cols, group, out))
        return out

    def _not_applied(
        self,
        conn: PgConnection,
        info: TableInfo,
        tmp: str,
        key_cols: list[ColumnInfo],
        data_cols: list[ColumnInfo],
        group: list[OpPlan],
        done: Mapping[int, ApplyResult],
    ) -> dict[int, ApplyResult]:
        """ALREADY (a replay of ours, or a delete of a row that is gone), STALE or SKIPPED."""
        assert self.origin is not None
        cols = key_cols + data_cols
        rows = conn.execute(
            sql.SQL(
                "SELECT o._i, t.xmin::text::bigint, EXISTS (SELECT FROM {} a"
                " WHERE a.xid = t.xmin::text::bigint AND (a.origin = %s"
                " OR starts_with(a.origin, %s))), {} FROM {} AS o LEFT JOIN {} AS t ON {}"
                " WHERE o._i <> ALL(%s)"
            ).format(
                APPLIED,
                sql.SQL(", ").join(c.select_expr("t") for c in cols),
                sql.Identifier(tmp),
                info.ident,
                _join("t", "o", key_cols, exact=False),
            ),
            (self.names.origin, self.names.origin + ".", list(done)),
        ).fetchall()
        by_index = {p.index: p for p in group}
        out: dict[int, ApplyResult] = {}
        for i, xmin, ours, *values in rows:
            p = by_index[i]
            kt = p.key_text
            if xmin is None:
                if not p.delete and p.expected is None:  # absent, as known, and still
                    raise _ignored(self.name, info, p)  # absent after our insert
                status = ApplyStatus.ALREADY if p.delete else ApplyStatus.SKIPPED
                out[i] = ApplyResult(kt, status, None)
                continue
            current = dict(zip((c.name for c in cols), values, strict=True))
            if _loose_twin(key_cols, p, current):
                if p.delete:  # the key itself is not here: as wanted
                    out[i] = ApplyResult(kt, ApplyStatus.ALREADY, None)
                    continue
                raise _twin_refused(self.name, info, key_cols, p, current)
            same = not p.delete and all(
                canonical_value(current[c.name]) == canonical_value(p.values.get(c.name))
                for c in cols
            )
            if not same and p.expected is not None and int(xmin) == p.expected:
                # The row is the very version the write expected, and the write left it
                # as it was: something at the target ignored it.
                raise _ignored(self.name, info, p)
            if ours:
                # Our own write, unchanged since: this very version replayed, or
                # an earlier one whose result a dead worker never recorded.
                status = ApplyStatus.ALREADY if same else ApplyStatus.STALE
            else:
                status = ApplyStatus.SKIPPED
            out[i] = ApplyResult(kt, status, int(xmin))
        return self._our_deletes(conn, info, by_index, out)

    def _our_deletes(self, conn: PgConnection, info: TableInfo, ops: Mapping[int, OpPlan],
                     out: dict[int, ApplyResult]) -> dict[int, ApplyResult]:
        """STALE, where a row is gone that an op expected and our own delete removed it.

        A deleted row leaves nothing in the table, so without this a delete of ours
        whose result died with a worker looked like a user's delete on its way, and
        the next version's apply waited for an edit that never comes (the target
        stranded). The record keeps the xmin each row we deleted had: when it is the
        very version the op expects, the absence is ours. (A user may have inserted
        and deleted the key since: the write that follows then goes over the absence,
        placed in the log, and those edits are read as concurrent with it.)
        """
        by_digest = {_digest(ops[i].key_text): ops[i] for i, r in out.items()
                     if r.status is ApplyStatus.SKIPPED and r.row_version is None
                     and not ops[i].delete and ops[i].expected is not None}
        if not by_digest:
            return out
        rows = conn.execute(
            sql.SQL("SELECT key, version FROM {} WHERE tbl = %s AND key = ANY(%s)"
                    " AND (origin = %s OR starts_with(origin, %s))").format(DELETED),
            (info.qualified, list(by_digest), self.names.origin, self.names.origin + "."),
        ).fetchall()
        for key, xmin in rows:
            p = by_digest[bytes(key)]
            if xmin == p.expected:
                out[p.index] = ApplyResult(p.key_text, ApplyStatus.STALE, None)
        return out

    # --- schema policy and truncate ----------------------------------------------------

    def truncate(self, binding: Binding) -> None:
        """Empty the bound table (a TRUNCATE propagated by the pipeline's policy), under
        the pipeline's origin so that this endpoint's source does not read it back."""
        info = self.table(binding)
        conn = self.connection()
        with classified(f"truncate {info.qualified} at {self.name}"), conn.transaction():
            conn.execute(sql.SQL("TRUNCATE {}").format(info.ident))

    def add_columns(self, binding: Binding, columns: Sequence[Column],
                    *, source_kind: str | None = None,
                    defaults: Mapping[str, str] | None = None) -> list[str]:
        """Add the columns the table lacks (a source gained them: schema policy "add").

        ``columns`` are named as this endpoint's columns, typed as at the source;
        the PostgreSQL type is chosen as for a created table (ddl.py). ``defaults``:
        by column, the value (PostgreSQL text) the source's rows hold where the column
        was added with a default; added with it here, this table's rows hold it too
        (a fast default: nothing is written, nothing logged)."""
        info = self.table(binding)
        missing = [c for c in columns if info.column(c.name) is None]
        if not missing:
            return []
        conn = self.connection()
        said = []
        with classified(f"add columns to {info.qualified} at {self.name}"), conn.transaction():
            for c in missing:
                kind = sql.SQL(column_type(c, source_kind))
                stmt = sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    info.ident, sql.Identifier(c.name), kind)
                default = (defaults or {}).get(c.name)
                if default is not None:
                    stmt += sql.SQL(" DEFAULT {}::{}").format(sql.Literal(default), kind)
                conn.execute(stmt)
                shown = default if default is None or len(default) <= 60 else default[:57] + "..."
                said.append(f"added column {c.name} to {info.qualified}" + (
                    "" if shown is None else f" with the default the source's rows hold"
                    f" ({shown!r})"))
        self.forget_schema()
        return said

    # --- read -------------------------------------------------------------------------

    def read(
        self, binding: Binding, keys: Iterable[Mapping[str, Any]]
    ) -> dict[str, tuple[dict[str, Any], Any]]:
        """Current ``(row, xmin)`` by key text (entity column names), absent keys left out."""
        info = self.table(binding)
        key_cols = [info.by_name()[k] for k in binding.endpoint_key]
        columns: list[list[Any]] = [[] for _ in key_cols]
        for key in keys:
            ep_key = binding.to_endpoint(key)
            for slot, c in zip(columns, key_cols, strict=True):
                slot.append(prepare(ep_key[c.name], c.ctype))
        if not columns[0]:
            return {}
        cols = [c for c in info.columns if binding.synced(_entity_name(binding, c.name))]
        unnest = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(c.native if c.ctype.native else c.ctype.io_sql))
            for c in key_cols
        )
        k_alias = sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(key_cols)))
        cond = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(
                sql.Identifier("t", c.name),
                _cast(sql.Identifier("k", f"k{i}"), c),
            )
            for i, c in enumerate(key_cols)
        )
        query = sql.SQL(
            "SELECT {}, t.xmin::text::bigint FROM {} AS t JOIN unnest({}) AS k({}) ON {}"
        ).format(
            sql.SQL(", ").join(c.select_expr("t") for c in cols), info.ident, unnest, k_alias, cond
        )
        conn = self.connection()
        with classified(f"read {info.qualified} at {self.name}"):
            records = conn.execute(query, columns).fetchall()
        out: dict[str, tuple[dict[str, Any], Any]] = {}
        for rec in records:
            row = binding.to_entity(dict(zip((c.name for c in cols), rec[:-1], strict=True)))
            out[key_text(binding.key_of(row))] = (row, int(rec[-1]))
        return out


def _ignored(endpoint: str, info: TableInfo, p: OpPlan) -> RowRejected:
    """A write the target took without error and without effect: a ``BEFORE`` trigger
    returning NULL, or a row-level security policy hiding the row. It was reported as
    a user's edit on its way (SKIPPED), which never came: the apply stayed due for
    ever, every run retrying it, and nothing said why."""
    what = "delete" if p.delete else ("insert" if p.expected is None else "update")
    return RowRejected(
        f"{endpoint}: table {info.qualified}: the {what} of key {p.key_text} was taken"
        " without error and left the row as it was: a BEFORE trigger that returns NULL,"
        " or a row-level security policy, keeps it out. Let the service's writes through"
        " (its sessions have a replication origin set up: a trigger can test"
        " pg_replication_origin_session_is_setup(); its role can be exempt from row"
        " security), then `cdcsync dlq requeue`.")


def _value(alias: str, c: ColumnInfo) -> sql.Composable:
    """A column of the temporary table as the target column's type."""
    col = sql.Identifier(alias, c.name)
    if c.ctype.copy_native:
        return col
    return sql.SQL("{}::{}").format(col, sql.SQL(c.native))


def _cast(expr: sql.Composable, c: ColumnInfo) -> sql.Composable:
    if c.ctype.native:
        return expr
    return sql.SQL("{}::{}").format(expr, sql.SQL(c.native))


def _join(left: str, right: str, key_cols: Sequence[ColumnInfo], *,
          exact: bool = True) -> sql.Composable:
    """The rows of ``left`` and ``right`` with the same key. ``exact``: where a key
    column's ``=`` is loose (``citext``, a nondeterministic collation), its values are
    also compared as bytes: ``abc`` is not the row of ``ABC``."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, c.name), _value(right, c))
        if not (exact and c.loose) else
        sql.SQL('{} = {} AND {}::text COLLATE "C" = {}::text COLLATE "C"').format(
            sql.Identifier(left, c.name), _value(right, c), sql.Identifier(left, c.name),
            _value(right, c))
        for c in key_cols
    )


def _loose_twin(key_cols: Sequence[ColumnInfo], p: OpPlan, held: Mapping[str, Any]) -> bool:
    """Whether the row found for ``p``'s key holds another key, which the key column's
    loose ``=`` takes for it (``ABC`` for ``abc`` in a ``citext`` column)."""
    return any(str(held[c.name]) != str(p.values.get(c.name)) for c in key_cols if c.loose)


def _twin_refused(endpoint: str, info: TableInfo, key_cols: Sequence[ColumnInfo],
                  p: OpPlan, held: Mapping[str, Any]) -> RowRejected:
    """A write of a key whose loose twin the table holds: the entity tells them apart,
    this table cannot hold both. Retrying cannot help; the row waits as a dead letter,
    and the rest of the batch is written."""
    loose = [c for c in key_cols if c.loose]
    said = ", ".join(f"{c.name} {c.native}" for c in loose)
    twin = ", ".join(f"{c.name}={held[c.name]!r}" for c in loose)
    return RowRejected(
        f"{endpoint}: table {info.qualified}: keys the entity tells apart are one key under"
        f" the key column's comparison ({said}: citext or a nondeterministic collation)."
        f" Make it compare exactly (text, or a deterministic collation) and requeue the"
        f" dead letter\nkey {p.key_text} is the same key here as {twin}, which the table"
        f" holds")


def _entity_name(binding: Binding, column: str) -> str:
    for ent, ep in binding.columns.items():
        if ep == column:
            return ent
    return column


def _place_writes(plans: list[OpPlan], results: dict[int, ApplyResult], lsn: int | None) -> None:
    """Give each write applied where it stands in the log (ApplyResult.position): the
    engine keeps it for writes not checked against a version it read (an insert of a
    row known absent, a write over ours after STALE: conflict/protocol.py on_applied).

    ``lsn`` is the WAL insert position after the batch's statements, before its
    commit: every transaction that committed before one of our writes passed its
    check has its commit record below it, and every later edit of that row (it
    waits for our commit) above. Positions of changes are ``(commit_lsn, n)``:
    ``(lsn, -1)`` sorts after the first and before the second.
    """
    if lsn is None:
        return
    for p in plans:
        res = results.get(p.index)
        if res is not None and res.status is ApplyStatus.APPLIED:
            results[p.index] = res.placed((lsn, -1))


def _digest(key: str) -> bytes:
    """The 16-byte digest of a key's canonical text that the record of deletes keys on."""
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _identity_kept(conn: PgConnection, info: TableInfo, t: sql.Composable, o: sql.Composable,
                   join: sql.Composable, fixed: Sequence[ColumnInfo], cas: sql.Composable,
                   kt: Mapping[int, str]) -> None:
    """Refuse the group where an update would change a ``GENERATED ALWAYS AS IDENTITY``
    column that is not the key (PostgreSQL lets an UPDATE set it to DEFAULT only): the
    source moved it (``UPDATE ... SET id = DEFAULT``), or the two tables numbered their
    rows apart. The engine isolates the row (a dead letter naming the column)."""
    moved = conn.execute(
        sql.SQL("SELECT o._i FROM {} AS t JOIN {} AS o ON {} WHERE NOT o._d"
                " AND o._x IS NOT NULL AND {} AND ({}) LIMIT 1").format(
            t, o, join, cas, sql.SQL(" OR ").join(
                sql.SQL("{} IS DISTINCT FROM {}").format(sql.Identifier("t", c.name),
                                                          _value("o", c)) for c in fixed))
    ).fetchone()
    if moved is not None:
        names = ", ".join(c.name for c in fixed)
        raise RowRejected(
            f"table {info.qualified}: column {names} is GENERATED ALWAYS AS IDENTITY, which"
            f" no UPDATE can set but to DEFAULT, and the row's value there differs: make it"
            f" GENERATED BY DEFAULT (ALTER TABLE {info.qualified} ALTER COLUMN ... SET"
            f" GENERATED BY DEFAULT) or leave it out of the entity (exclude:), then requeue"
            f"\nkey {kt[int(moved[0])]}")


def _swap_hint(conn: PgConnection, info: TableInfo, cause: BaseException | None) -> str:
    """What to do where a unique constraint that checks row by row refused a batch: its
    rows may exchange the constraint's values (the source went through a third value,
    the batch holds each key's last row), which only a DEFERRABLE constraint lets pass.
    "" for another error, a deferrable constraint (a duplicate at commit), or where the
    lookup fails (the message stays as it was)."""
    if not isinstance(cause, psycopg.errors.UniqueViolation) or is_broken(conn):
        return ""
    name = cause.diag.constraint_name
    try:
        row = conn.execute("SELECT condeferrable FROM pg_constraint WHERE conrelid = %s"
                           " AND conname = %s", (info.oid, name)).fetchone()
    except psycopg.Error:
        return ""
    if row is None or row[0]:
        return ""
    return (f"if rows of this batch exchange values of {name} (the source went through"
            f" another value), make it DEFERRABLE: cdcsync then checks it at the batch's"
            f" commit (ALTER TABLE {info.qualified} DROP CONSTRAINT ..., ADD CONSTRAINT ..."
            f" UNIQUE (...) DEFERRABLE; then cdcsync dlq requeue)")


class _NotDirect(Exception):
    """A direct insert did not write every row as sent: a key it expected absent is
    taken, or a trigger kept a row out (PostgresSink._insert_directly)."""


def _all_inserts(plans: Sequence[OpPlan]) -> bool:
    """Does every op insert a row where the service knows of none, each key once (a
    second insert of a key would find the first: see :func:`groups`)?"""
    return all(p.expected is None and not p.delete for p in plans) and len(
        {p.key_text for p in plans}) == len(plans)
