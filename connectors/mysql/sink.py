"""MysqlSink: conditional, batched applies in one transaction.

One batch is one transaction on a session that runs at ``time_zone =
'+00:00'`` and, on MariaDB, ``skip_replication = 1`` (its events carry the
``LOG_EVENT_SKIP_REPLICATION_F`` flag, so the source never reads them back:
echo suppression by identity). On MySQL, which has no such flag, the
transaction also bumps the writer's row in a marker table, and the source
drops every transaction that touches it.

Steps:

1. lock the batch's rows: ``SELECT ... WHERE (pk) IN (...) FOR UPDATE``, at
   READ COMMITTED (rows found are locked, gaps are not: concurrent batches of
   disjoint keys do not deadlock);
2. per key, compare the row's version (the hash of its synchronised columns,
   see :mod:`connectors.mysql.source`) with the version the engine expects
   (``None``: the row must be absent);
3. write the rows that passed: ``INSERT ... ON DUPLICATE KEY UPDATE`` for rows
   found (and locked), a plain ``INSERT`` for rows found absent (a duplicate
   key there means someone inserted the row since the select: the batch is
   rolled back and retried, and the retry sees that row; or that the key's
   collation holds two keys equal that the entity tells apart: the row is
   refused, ``MysqlSink._duplicate``), as multi-row
   statements (their literals made by :mod:`connectors.mysql.literals`), and
   ``DELETE ... WHERE (pk) IN (...)``; commit.

Per key the result is:

* ``ALREADY`` when the row already holds exactly what the op asks for (same
  synchronised content, or absent for a delete), whatever the expected
  version: this is how a replay after a crash between our write and the
  engine's state commit is recognised, since MariaDB rows cannot carry our
  token. A user edit that happens to produce the very same content is
  indistinguishable, and harmless: the content is the one wanted, and that
  edit still arrives from the binlog as a change;
* ``APPLIED`` when the version matched and the row was written;
* ``STALE`` when the row moved, but holds exactly what our own last write to
  that key produced (or is absent, and our last write deleted it): a write of
  ours whose result was lost with a daemon worker, while the reader decided a
  newer version. The current row version is reported and nothing is written;
  the engine applies again against it. Told apart from a user's edit by the
  record of the sink's writes, :mod:`connectors.mysql.applied`, written in the
  same transaction as the rows (a user who writes back exactly our last content
  after an edit in between looks like our write: that window stays);
* ``SKIPPED`` otherwise: the row moved, a user edit is on its way in the log.
  (Without the record table, from a pipeline set up before it existed, every
  move is ``SKIPPED``, as before; ``cdcsync setup`` creates it.)

The row version returned after a write is computed from what was written
(normalised to what the column stores: DECIMAL scale, fractional seconds,
FLOAT precision, SET order...), or read back when the server fills columns
the op does not carry (defaults or ON UPDATE columns; generated columns are not synchronised).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pymysql

from conflict.canonical import CoercionError, canonical_hash, canonical_row, key_text
from connectors.base import (
    ApplyOp,
    ApplyResult,
    ApplyStatus,
    Binding,
    ConnectorError,
    ContentionError,
    RowRejected,
    SchemaError,
)
from connectors.mysql import applied
from connectors.mysql.binlog import file_number
from connectors.mysql.literals import Literals
from connectors.mysql.schema import SchemaCache, TableInfo, key_collations
from connectors.mysql.session import (
    classify,
    close_quietly,
    connect,
    error_code,
    is_connection_lost,
    quote_ident,
    quote_table,
)
from connectors.mysql.source import MARKER_TABLE, endpoint_columns, select_expr
from connectors.mysql.types import ColumnInfo, param_of, storer_of, typer_of

log = logging.getLogger("cdcsync.mysql.sink")

_CHUNK = 1000  # keys per IN list
PRUNE_EVERY = 1000  # batches between prunings of the record's old deletes
_DUPLICATE_KEY = 1062


class MysqlSink:
    """Applies batches to one MariaDB/MySQL endpoint."""

    def __init__(self, name: str, settings: Any, *, pipeline: str = "",
                 echo: str | None = None) -> None:
        self.name = name
        self.settings = settings
        self.pipeline = pipeline
        self.database = str(settings.database)
        flavor = str(getattr(settings, "flavor", "mariadb") or "mariadb")
        self.echo = echo or ("skip_replication" if flavor == "mariadb" else "marker")
        self.writer = applied.writer_id(pipeline, name)
        self._conn: Any = None
        # whether the record of our writes (``cdcsync_applied``) exists: looked up once
        # per session, so that ``cdcsync setup`` run later is seen after a reconnect
        self._recording: applied.Record | None = None
        self._packet: int | None = None  # the session's max_allowed_packet, once read
        self._warned = False
        self._batches = 0
        self.schemas = SchemaCache(self.database, lambda: self._session().cursor())

    # --- session ----------------------------------------------------------------------

    def _session(self) -> Any:
        if self._conn is None:
            # READ COMMITTED: the batch's ``SELECT ... FOR UPDATE`` then locks the rows it
            # finds and no gaps, so workers applying disjoint keys of one table at once no
            # longer deadlock on each other's gap locks (REPEATABLE READ did, often). A key
            # found absent is not locked: it is written by a plain INSERT, which fails on a
            # row inserted meanwhile (see _insert), so compare-and-set still holds.
            # Strict: a value the column cannot hold (too long, out of range) is refused
            # (RowRejected: the row waits as a dead letter) instead of being cut or
            # clamped with a warning, which would leave the target silently different
            # from what the service recorded. The server's other modes are kept.
            init = ["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                    "SET SESSION sql_mode = IF(@@SESSION.sql_mode = '', 'STRICT_TRANS_TABLES',"
                    " CONCAT(@@SESSION.sql_mode, ',STRICT_TRANS_TABLES'))"]
            if self.echo == "skip_replication":
                init.append("SET SESSION skip_replication = 1")
            self._conn = connect(self.settings, autocommit=False, init=init)
        return self._conn

    def _drop(self) -> None:
        close_quietly(self._conn)
        self._conn = None
        self._recording = None
        self._packet = None

    def _records(self, cur: Any) -> applied.Record:
        """What this session's record of our writes allows (whether the table exists)."""
        if self._recording is None:
            self._recording = applied.state(cur, self.database)
            if self._recording is applied.Record.MISSING and not self._warned:
                self._warned = True
                log.warning("%s: table %s.%s is missing (the pipeline was set up before it "
                            "existed); a write of ours whose result a worker lost cannot be "
                            "told from a user edit and may leave this target behind: run "
                            "`cdcsync setup` again to create it", self.name, self.database,
                            applied.APPLIED_TABLE)
        return self._recording

    def close(self) -> None:
        self._drop()

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:  # the connection is dropped
                self._drop()

    def _fail(self, exc: BaseException, what: str) -> ConnectorError:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:  # the connection is dropped below
                self._drop()
        if is_connection_lost(exc):
            self._drop()
        return classify(exc, f"{self.name}: {what}")

    # --- reading ----------------------------------------------------------------------

    def _select(self, cur: Any, binding: Binding, info: TableInfo, keys: Sequence[Any],
                *, lock: bool) -> dict[str, tuple[dict[str, Any], str, dict[str, Any]]]:
        """Current rows (entity names, typed), their versions and canonical forms (what
        an apply compares the rows it writes with), by key text."""
        cols = endpoint_columns(binding, info)
        by_name = info.by_name()
        key_cols = [by_name[binding.endpoint_column(k)] for k in binding.key]
        typers = [(c.name, typer_of(c)) for c in cols]
        lit = Literals(cur.connection)
        out: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {}
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            cond = _in_list(lit, key_cols, [[k[c] for c in binding.key] for k in part])
            sql = (f"SELECT {', '.join(select_expr(c) for c in cols)} "
                   f"FROM {quote_table(self.database, binding.table)} WHERE {cond}")
            cur.execute(sql + (" FOR UPDATE" if lock else ""))
            for values in cur.fetchall():
                row = binding.to_entity({n: None if v is None else f(v)
                                         for (n, f), v in zip(typers, values, strict=True)})
                canon = canonical_row(row) or {}
                out[key_text(binding.key_of(row))] = (row, canonical_hash(canon), canon)
        return out

    def read(self, binding: Binding, keys: Iterable[Mapping[str, Any]]
             ) -> dict[str, tuple[dict[str, Any], Any]]:
        key_list = list(keys)
        if not key_list:
            return {}
        try:
            info = self.schemas.get(binding.table)
            with self._session().cursor() as cur:
                got = self._select(cur, binding, info, key_list, lock=False)
            self._session().commit()  # end the read view: the next read sees new rows
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._fail(exc, f"reading {binding.table}") from exc
        return {k: (row, version) for k, (row, version, _) in got.items()}

    # --- applying ---------------------------------------------------------------------

    def apply(self, binding: Binding, ops: Sequence[ApplyOp]) -> list[ApplyResult]:
        """Apply ``ops`` in one transaction; results in the order of ``ops``."""
        if not ops:
            return []
        try:
            try:
                return self._apply(binding, self.schemas.get(binding.table), ops)
            except (SchemaError, pymysql.err.OperationalError) as exc:
                if isinstance(exc, pymysql.err.OperationalError) and error_code(exc) != 1054:
                    raise
                # The table may have changed since it was described (a column added or
                # renamed): describe it again and try once more.
                self._rollback()
                self.schemas.forget(binding.table)
                return self._apply(binding, self.schemas.get(binding.table), ops)
        except ConnectorError:
            if self._conn is not None:
                try:
                    self._conn.rollback()
                except Exception:  # the connection is dropped
                    self._drop()
            raise
        except Exception as exc:
            raise self._fail(exc, f"applying to {binding.table}") from exc

    def _apply(self, binding: Binding, info: TableInfo, ops: Sequence[ApplyOp]
               ) -> list[ApplyResult]:
        conn = self._session()
        by_name = info.by_name()
        synced = endpoint_columns(binding, info)
        synced_entity = {_entity_name(binding, c.name): c for c in synced}
        storers = {name: storer_of(c) for name, c in synced_entity.items()}
        server_filled = any(c.on_update for c in synced)
        generated = {_entity_name(binding, c.name) for c in info.columns if c.generated}
        results: list[ApplyResult | None] = [None] * len(ops)
        # (row absent?, columns) -> rows to write: absent rows are inserted, present ones
        # (locked by the select) upserted
        upserts: dict[tuple[bool, tuple[str, ...]], list[tuple[int, dict[str, Any]]]] = {}
        deletes: list[tuple[int, Mapping[str, Any]]] = []
        reread: list[int] = []
        moved: list[tuple[int, str | None]] = []  # (op, current version) of rows that moved
        with conn.cursor() as cur:
            if self.echo == "marker":
                cur.execute(
                    f"INSERT INTO {quote_table(self.database, MARKER_TABLE)} (`writer`, `seq`)"
                    " VALUES (%s, 1) ON DUPLICATE KEY UPDATE `seq` = `seq` + 1",
                    (self.writer,),
                )
            current = self._select(cur, binding, info, [op.key for op in ops], lock=True)
            for i, op in enumerate(ops):
                kt = op.key_text
                found = current.get(kt)
                cur_row, cur_hash, cur_canon = found if found is not None else (None, None, {})
                if op.row is None:
                    if cur_row is None:
                        results[i] = ApplyResult(kt, ApplyStatus.ALREADY, None)
                    elif cur_hash == op.expected:
                        deletes.append((i, op.key))
                        current.pop(kt, None)
                        results[i] = ApplyResult(kt, ApplyStatus.APPLIED, None)
                    else:
                        results[i] = ApplyResult(kt, ApplyStatus.SKIPPED, cur_hash)
                        moved.append((i, cur_hash))
                    continue
                want = {}
                for c, v in {**op.key, **op.row}.items():
                    if c in synced_entity:
                        want[c] = v
                    elif binding.synced(c) and c not in generated:  # that it computes
                        raise SchemaError(f"{self.name}: table {binding.table} has no column "
                                          f"for {binding.entity}.{c}")
                try:
                    want = {c: storers[c](v) for c, v in want.items()}
                except (CoercionError, TypeError, ValueError, ArithmeticError) as exc:
                    raise RowRejected(f"{self.name}: table {binding.table!r}: a value it"
                                      f" cannot take\nkey {kt}: {exc}") from exc
                want_canon = canonical_row(want) or {}
                if cur_row is not None and all(cur_canon.get(c) == v
                                               for c, v in want_canon.items()):
                    results[i] = ApplyResult(kt, ApplyStatus.ALREADY, cur_hash)
                    continue
                if (cur_row is None and op.expected is None) or (
                        cur_row is not None and cur_hash == op.expected):
                    new_row = {**(cur_row or {}), **want}
                    new_canon = {**cur_canon, **want_canon}
                    upserts.setdefault((cur_row is None, tuple(want)), []).append((i, want))
                    new_hash = canonical_hash(new_canon)
                    current[kt] = (new_row, new_hash, new_canon)
                    if server_filled or len(new_row) < len(synced_entity):
                        reread.append(i)
                    results[i] = ApplyResult(kt, ApplyStatus.APPLIED, new_hash)
                else:
                    results[i] = ApplyResult(kt, ApplyStatus.SKIPPED, cur_hash)
                    moved.append((i, cur_hash))
            recording = self._records(cur)
            if moved and recording is not applied.Record.MISSING:
                self._stale(cur, binding, ops, moved, results)
            for (absent, cols), items in upserts.items():
                if absent:
                    self._insert(cur, binding, info, cols, [row for _, row in items])
                else:
                    self._upsert(cur, binding, by_name, cols, [row for _, row in items])
            if deletes:
                self._delete(cur, binding, by_name, [key for _, key in deletes])
            if reread:
                fresh = self._select(cur, binding, info, [ops[i].key for i in reread],
                                     lock=False)
                for i in reread:
                    kt = ops[i].key_text
                    if kt in fresh:
                        results[i] = ApplyResult(kt, ApplyStatus.APPLIED, fresh[kt][1])
            if recording is not applied.Record.MISSING:
                applied.record(cur, self.database, self.writer, binding.table,
                               [(r.key_text, r.row_version) for r in results
                                if r is not None and r.status is ApplyStatus.APPLIED],
                               stamped=recording is applied.Record.STAMPED)
            written = [i for i, r in enumerate(results)
                       if r is not None and r.status is ApplyStatus.APPLIED]
            if written:
                self._place(cur, results, written)
        conn.commit()
        self._batches += 1
        if self._batches % PRUNE_EVERY == 0 and recording is applied.Record.STAMPED:
            self._prune(conn)
        return [r for r in results if r is not None]

    def _place(self, cur: Any, results: list[ApplyResult | None], written: list[int]) -> None:
        """Give each write applied where it stands in the binlog (ApplyResult.position;
        see the PostgreSQL sink's ``_place_writes``).

        The binlog's end now, before this transaction commits: every transaction
        that committed before one of our writes passed its check ends at or below
        it, every later edit of that row (locked by our select: it waits for our
        commit) above. Positions of
        changes are ``(file number, end of the commit event, index)``. Where the
        server will not say (no BINLOG MONITOR), nothing is placed.
        """
        try:
            cur.execute("SHOW MASTER STATUS")
            status = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            log.debug("%s: no binlog position for inserts (%s)", self.name, exc)
            return
        if not status:
            return
        at = (file_number(str(status[0])), int(status[1]), 2**62)
        for i in written:
            res = results[i]
            if res is not None and res.status is ApplyStatus.APPLIED:
                results[i] = res.placed(at)

    def _prune(self, conn: Any) -> None:
        """Forget old deletes of ours (connectors/mysql/applied.py): after a batch, in a
        transaction of its own."""
        try:
            with conn.cursor() as cur:
                gone = applied.prune(cur, self.database, self.writer)
            conn.commit()
        except Exception as exc:  # the batch is applied: its results must not be lost
            log.warning("%s: pruning %s failed (tried again in %d batches): %s", self.name,
                        applied.APPLIED_TABLE, PRUNE_EVERY, exc)
            self._rollback()
            return
        if gone:
            log.info("%s: forgot %d deletes of ours older than %d days in %s", self.name,
                     gone, applied.RETENTION_DAYS, applied.APPLIED_TABLE)

    def _stale(self, cur: Any, binding: Binding, ops: Sequence[ApplyOp],
               moved: Sequence[tuple[int, str | None]],
               results: list[ApplyResult | None]) -> None:
        """SKIPPED -> STALE for the rows that moved only by our own last write to them.

        A row found is locked by the batch's select, and every write of ours to it
        takes that lock and records itself in the same transaction, so the record
        read here is the one of the write the row holds, if it holds ours."""
        ours = applied.recorded(cur, self.database, self.writer, binding.table,
                                [ops[i].key_text for i, _ in moved])
        for i, now in moved:
            kt = ops[i].key_text
            if kt in ours and ours[kt] == now:
                results[i] = ApplyResult(kt, ApplyStatus.STALE, now)

    def _upsert(self, cur: Any, binding: Binding, by_name: Mapping[str, ColumnInfo],
                cols: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
        keyset = set(binding.endpoint_key)
        ecols = [binding.endpoint_column(c) for c in cols]
        updates = [f"{quote_ident(c)} = VALUES({quote_ident(c)})" for c in ecols
                   if c not in keyset]
        if not updates:
            first = quote_ident(ecols[0])
            updates = [f"{first} = {first}"]
        for sql, _ in self._inserts(cur, binding, by_name, cols, rows,
                                    f" ON DUPLICATE KEY UPDATE {', '.join(updates)}"):
            cur.execute(sql)

    def _insert(self, cur: Any, binding: Binding, info: TableInfo, cols: Sequence[str],
                rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows the batch found absent. A duplicate primary key is told apart by what the
        table then holds under the duplicate statement's keys (:meth:`_duplicate`). A
        duplicate in another unique index is the row's own fault (RowRejected, by
        classify)."""
        for sql, part in self._inserts(cur, binding, info.by_name(), cols, rows):
            try:
                cur.execute(sql)
            except pymysql.err.IntegrityError as exc:
                if error_code(exc) != _DUPLICATE_KEY or "for key 'PRIMARY'" not in str(exc):
                    raise
                raise self._duplicate(cur, binding, info, part, exc) from exc

    def _inserts(self, cur: Any, binding: Binding, by_name: Mapping[str, ColumnInfo],
                 cols: Sequence[str], rows: Sequence[Mapping[str, Any]], tail: str = ""
                 ) -> Iterator[tuple[str, Sequence[Mapping[str, Any]]]]:
        """``INSERT INTO table (cols) VALUES ... tail`` statements for ``rows`` (entity
        columns ``cols``), each with the rows it writes, as long as the cursor allows
        and each checked by :meth:`_fits`."""
        ecols = [binding.endpoint_column(c) for c in cols]
        head = (f"INSERT INTO {quote_table(self.database, binding.table)} "
                f"({', '.join(quote_ident(c) for c in ecols)})")
        done = 0
        for sql, n in Literals(cur.connection).statements(
                cur, head, _params(by_name, ecols, cols, rows), tail):
            part = rows[done : done + n]
            done += n
            self._fits(cur, binding, sql, part)
            yield sql, part

    def _fits(self, cur: Any, binding: Binding, sql: str,
              rows: Sequence[Mapping[str, Any]]) -> None:
        """Refuse a row whose statement the server would not take: one larger than its
        ``max_allowed_packet`` (a 20 MB blob under the default 16 MB) made it drop the
        connection ("server has gone away"), which was retried as a lost connection and
        failed the run, every run, the batch's other rows with it. (The statements are
        cut at the cursor's ``max_stmt_length``, 1 MB: only a row alone comes near.)"""
        if len(sql) < 1 << 20:  # (at most 4 MB in utf8mb4: far below any packet)
            return
        if self._packet is None:
            cur.execute("SELECT @@SESSION.max_allowed_packet")
            self._packet = int(cur.fetchone()[0])
        size = len(sql.encode())
        if size <= self._packet - 1024:
            return
        keys = ", ".join(key_text(binding.key_of(r)) for r in rows)
        raise RowRejected(
            f"{self.name}: table {binding.table!r}: a row larger than the server takes in"
            f" one statement (max_allowed_packet {self._packet:,} bytes): raise the"
            f" server's max_allowed_packet (SET GLOBAL max_allowed_packet = ..., and in its"
            f" configuration) and requeue the dead letter\nkey {keys}: {size:,} bytes")

    def _duplicate(self, cur: Any, binding: Binding, info: TableInfo,
                   rows: Sequence[Mapping[str, Any]], exc: Exception) -> ConnectorError:
        """Why an INSERT of rows the batch found absent hit a duplicate primary key.

        Either a row of one of these keys was inserted since the batch's select (nothing
        locks an absent key under READ COMMITTED): ContentionError, the batch is rolled
        back and tried again, and the next select sees that row. Or the key's collation
        holds two keys equal that the entity tells apart (``abc``/``ABC`` under a ``_ci``
        collation, ``a``/``a `` under PAD SPACE, ``e``/``é``): a key this table already
        holds (or another row of the statement) under another spelling. Retrying cannot
        help; the row is refused (RowRejected: the batch is split until it is alone, and
        it waits as a dead letter naming the collation) and the rest is written."""
        keys = [binding.key_of(r) for r in rows]
        mine = {key_text(k) for k in keys}
        held = self._select(cur, binding, info, keys, lock=False)
        if any(kt in mine for kt in held):
            return ContentionError(f"{self.name}: a row of {binding.table} was inserted "
                                   f"while this batch was applied: {exc}")
        said = ", ".join(f"{quote_ident(c)} {k}" for c, k, _ in key_collations(
            cur, self.database, binding.table, binding.endpoint_key)) or "its collation"
        detail = (f"key {next(iter(mine))} is the same key here as {', '.join(sorted(held))},"
                  " which the table holds" if len(mine) == 1 and held
                  else f"keys {', '.join(sorted(mine))}: {exc}")
        return RowRejected(
            f"{self.name}: table {binding.table!r}: keys the entity tells apart are one key"
            f" under the key's collation ({said}): case, accents or trailing spaces are"
            f" ignored. Make the key column compare exactly (e.g. COLLATE utf8mb4_nopad_bin)"
            f" and requeue the dead letter\n{detail}")

    def _delete(self, cur: Any, binding: Binding, by_name: Mapping[str, ColumnInfo],
                keys: Sequence[Mapping[str, Any]]) -> None:
        key_cols = [by_name[binding.endpoint_column(k)] for k in binding.key]
        lit = Literals(cur.connection)
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            cond = _in_list(lit, key_cols, [[k[c] for c in binding.key] for k in part])
            cur.execute(f"DELETE FROM {quote_table(self.database, binding.table)} WHERE {cond}")


def _params(by_name: Mapping[str, ColumnInfo], ecols: Sequence[str], cols: Sequence[str],
            rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The query parameters of ``rows`` (entity columns ``cols``, written to ``ecols``)."""
    convert = [(param_of(by_name.get(e)), c) for e, c in zip(ecols, cols, strict=True)]
    return [tuple(f(row[c]) for f, c in convert) for row in rows]


def _entity_name(binding: Binding, endpoint_column: str) -> str:
    rev = binding.entity_names
    return rev.get(endpoint_column, endpoint_column)


def _in_list(lit: Literals, key_cols: Sequence[ColumnInfo], keys: Sequence[Sequence[Any]]
             ) -> str:
    """``pk IN (...)`` or ``(k1, k2) IN ((...), ...)``."""
    convert = [param_of(c) for c in key_cols]
    params = [[f(v) for f, v in zip(convert, key, strict=True)] for key in keys]
    return lit.in_list([quote_ident(c.name) for c in key_cols], params)
