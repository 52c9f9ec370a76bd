"""PostgresSource: snapshots by primary key, and changes through the SQL interface.

**Why the SQL interface here, and streaming in the daemon.** A one-shot batch
run (``cdcsync run``) reads a backlog once and exits. The SQL interface
(``pg_logical_slot_peek_binary_changes``) needs nothing but an ordinary
connection, reads whole transactions in order, and leaves the slot where it
was until :meth:`confirm`: measured here at 53k changes/s (5k batches) to
94k/s (50k batches) read and decoded, well above what a batch run applies. Its
cost is that every call decodes WAL again from the slot's restart point, so
*polling* it keeps the server's backend at ~0.85 of a core at 2k changes/s
(SERVICES.md); the continuous reader of the daemon therefore streams
(stream.py, ~0.1 core for the same load).

**Checkpoints.** ``{"lsn": L}`` where ``L`` is the end of the last transaction
read (or, when everything up to the current WAL flush position was read, that
position: an idle slot is then advanced there, so it does not hold WAL).
Inside a transaction larger than a batch: ``{"lsn": L, "tx": C, "index": n}``
(resume in the transaction committed at ``C`` after its first ``n`` row
messages). A checkpoint also names the tables it covers.

**Confirming.** :meth:`confirm` advances the slot, and only when the engine
calls it (after the batch is durably applied). One slot serves every table of
the endpoint, so it must be read as one stream with every binding the
endpoint is a source for (the engine does, checkpoint entity ``*``): a reader
of only some of them would confirm past the others' changes.

**Snapshot consistent with the stream.** :meth:`position` exports a snapshot
(export.py) and returns its consistent point ``C``; the :meth:`snapshot`
chunks that follow (keyset by primary key, each in its own REPEATABLE READ
transaction) all read in that exported snapshot, which sees exactly the
transactions committed before ``C``; the stream then starts at ``C`` and
skips exactly those. So every change is in the snapshot or in the stream,
never in both and never in neither. The pipeline's slot must exist before
(setup creates it): it keeps every change after ``C``. Other sessions read in
the same snapshot by its name (:meth:`shared_snapshot`): a batch run's worker
processes each read a key range of a chunk (:meth:`snapshot_bounds`,
:meth:`snapshot_range`; sync/snapshot_direct.py).

An interrupted snapshot resumes (from the last key staged) in a new process,
where the exported snapshot is gone: the remaining chunks read current data,
which may already include changes committed after ``C``. Those changes are
read again from the stream and applied again in commit order: the row goes
through versions it had already reached and ends where the snapshot saw it or
later; nothing is lost, and the end state is the same as if each change was
applied once. The same holds when no replication slot is free for the export
(then ``C`` is the flush position before the first chunk).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import adapt, sql
from psycopg.abc import Transformer

from connectors.base import Binding, ConnectorError, KeyGenerator, SchemaError, TableSchema
from connectors.postgres.batch import BatchBuilder, same_checkpoint
from connectors.postgres.catalog import TableInfo, published, split_table, table_for
from connectors.postgres.connect import PgConnection, classified, connect, is_broken
from connectors.postgres.decoding import BoundTable, ChangeDecoder
from connectors.postgres.export import ExportedSnapshot
from connectors.postgres.names import Names, quote_ident
from connectors.postgres.pgoutput import format_lsn, parse, parse_lsn
from connectors.postgres.setup import commit_timestamps_on, refuse_shared_names
from sync.change import ChangeBatch, Checkpoint, SchemaChanged, SnapshotChunk, SnapshotRow

log = logging.getLogger("cdcsync.postgres")
HELD_N = 2**62  # past the number of any change in a transaction (held_up_to)


class _Peek:
    """One ``pg_logical_slot_peek_binary_changes`` up to a WAL position, read in batches.

    Every peek makes the server decode again from the slot's restart point,
    which moves only when a running-transactions record is logged (every ~15 s):
    peeking once per batch would decode a backlog over and over (quadratic).
    So the slot is peeked once per catch-up, up to the flush position read
    first, and its rows are fetched batch by batch from a server-side cursor
    (memory stays bounded at both ends) while the engine keeps asking from the
    checkpoint the previous batch returned.
    """

    def __init__(self, conn: PgConnection, decoder: ChangeDecoder, names: Names,
                 upto: int) -> None:
        self.conn = conn
        self.decoder = decoder
        self.upto = upto
        self.expect: Checkpoint | None = None
        self.cur = conn.cursor(name="cdcsync_peek", binary=True)
        self.cur.itersize = 5000
        self.cur.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL,"
            " 'proto_version', '1', 'publication_names', %s)",
            (names.slot, format_lsn(upto), quote_ident(names.publication)),
        )
        self.rows = iter(self.cur)

    def fill(self, builder: BatchBuilder) -> bool:
        """Feed rows until the batch is full; True when the peek is exhausted."""
        feed = builder.feed
        for (data,) in self.rows:
            if feed(parse(data)):
                break
        else:
            return True
        return False

    def close(self) -> None:
        try:
            if not self.conn.closed and not self.conn.broken:
                self.cur.close()
                self.conn.rollback()
        except Exception:  # closing a failed peek is best effort
            self.conn.close()


class PostgresSource:
    """Reads one PostgreSQL database: snapshots and the changes of its slot."""

    def __init__(self, name: str, info: str, names: Names, schema: str = "public") -> None:
        self.name = name
        self.info = info
        self.names = names
        self.default_schema = schema
        self._conn: PgConnection | None = None
        self._tx: Transformer | None = None
        self._tables: dict[str, TableInfo] = {}
        self._decoder: ChangeDecoder | None = None
        self._decoder_key: tuple[str, ...] = ()
        self._published: frozenset[str] | None = None
        self._peek_conn: PgConnection | None = None
        self._peek: _Peek | None = None
        self._export: ExportedSnapshot | None = None
        self._said_unread = False

    # --- connection and catalog -------------------------------------------------------

    def connection(self) -> PgConnection:
        if is_broken(self._conn):
            self._conn = connect(self.info)
            self._tx = adapt.Transformer(self._conn)
            self._decoder = None
        assert self._conn is not None
        return self._conn

    def table(self, binding: Binding, *, refresh: bool = False) -> TableInfo:
        if refresh or binding.table not in self._tables:
            with classified(f"read the catalog of {self.name}"):
                self._tables[binding.table] = table_for(
                    self.connection(), binding, self.default_schema
                )
        return self._tables[binding.table]

    def key_generator(self, binding: Binding) -> KeyGenerator | None:
        """The sequence that makes the (one-column) key's values, if any: an identity
        or serial column's own, or one its default draws from (sync/keygen.py)."""
        if len(binding.endpoint_key) != 1:
            return None
        info = self.table(binding)
        with classified(f"read the catalog of {self.name}"), self.connection().transaction():
            row = self.connection().execute(
                "SELECT s.seqrelid::regclass::text, s.seqincrement, s.seqstart"
                " FROM pg_attribute a JOIN pg_depend d ON d.refobjid = a.attrelid"
                "  AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass"
                "  AND d.deptype IN ('a', 'i')"  # a serial's or an identity's own sequence
                " JOIN pg_sequence s ON s.seqrelid = d.objid"
                " WHERE a.attrelid = %(t)s AND a.attname = %(c)s"
                " UNION ALL"
                " SELECT s.seqrelid::regclass::text, s.seqincrement, s.seqstart"
                " FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid"
                "  AND a.attnum = ad.adnum JOIN pg_depend d ON d.objid = ad.oid"
                "  AND d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass"
                " JOIN pg_sequence s ON s.seqrelid = d.refobjid"  # DEFAULT nextval('s')
                " WHERE ad.adrelid = %(t)s AND a.attname = %(c)s LIMIT 1",
                {"t": info.oid, "c": binding.endpoint_key[0]}).fetchone()
            if row is None:
                return None
            seq = self.connection().execute(  # its next value (RESTART WITH moves it)
                sql.SQL("SELECT last_value, is_called FROM {}").format(
                    sql.SQL(row[0]))).fetchone()  # (regclass text: quoted as needed)
        step = int(row[1])
        after = int(seq[0]) + (step if seq[1] else 0) if seq is not None else int(row[2])
        return KeyGenerator(f"sequence {row[0]}, every {step} from {after}", step, after,
                            f"ALTER SEQUENCE {row[0]} INCREMENT BY n RESTART WITH a value of"
                            " its own remainder")

    def rows_up_to(self, binding: Binding, limit: int) -> int:
        """How many rows the table holds, counted up to ``limit`` (a scan of that many
        rows at most): exact where the planner's ``reltuples`` is not (-1 until the
        first ANALYZE, stale after a bulk load)."""
        info = self.table(binding)
        conn = self.connection()
        with classified(f"count the rows of {info.qualified} at {self.name}"), \
                conn.transaction():
            row = conn.execute(sql.SQL("SELECT count(*) FROM (SELECT FROM {} LIMIT %s) s")
                               .format(info.ident), (int(limit),)).fetchone()
        return int(row[0]) if row is not None else 0

    def schema(self, binding: Binding) -> TableSchema:
        info = self.table(binding, refresh=True)
        return TableSchema(
            table=binding.table,
            columns=info.table_schema(binding.table).columns,
            key=binding.endpoint_key,
        )

    # --- snapshot ---------------------------------------------------------------------

    def position(self) -> Checkpoint:
        """Where a snapshot taken now resumes: the consistent point of an exported
        snapshot that the following :meth:`snapshot` calls read in (export.py).

        The pipeline's slot must exist: it keeps every change after that point.
        Without a free replication slot for the (temporary) export, the WAL flush
        position now, and the snapshot reads current data (see the module's doc).
        """
        flush = self._flush_position()
        self._close_export()
        try:
            with classified(f"export a snapshot of {self.name}"):
                self._export = ExportedSnapshot(self.info, self.names.slot)
        except ConnectorError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.ConfigurationLimitExceeded):
                raise
            log.warning("endpoint %s: no free replication slot to export a snapshot (%s);"
                        " the snapshot reads current data", self.name, exc.__cause__)
            return {"lsn": flush}
        return {"lsn": max(self._export.lsn, flush)}

    def held_up_to(self, checkpoint: Checkpoint) -> tuple[int, ...]:
        """The greatest change position at or before ``checkpoint``: a change's position
        is ``(commit LSN, n)``, and a transaction committing before the checkpoint's LSN
        is in the snapshot taken there (the readers skip it: batch.py;
        sync/snapshot_floor.py)."""
        return (int(checkpoint["lsn"]) - 1, HELD_N)

    def end_snapshot(self) -> None:
        """Release the exported snapshot (reading changes does it too)."""
        self._close_export()

    def _close_export(self) -> None:
        export, self._export = self._export, None
        if export is not None:
            export.close()

    def _flush_position(self) -> int:
        with classified(f"read the WAL position of {self.name}"):
            row = self.connection().execute(
                "SELECT pg_current_wal_flush_lsn()::text,"
                " (SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                "  WHERE slot_name = %s AND database = current_database())",
                (self.names.slot,),
            ).fetchone()
        assert row is not None
        if row[1] is None:
            raise SchemaError(
                f"endpoint {self.name}: replication slot {self.names.slot} does not exist;"
                " run `cdcsync setup` first (the slot keeps the changes made during a snapshot)"
            )
        return max(parse_lsn(row[0]), parse_lsn(row[1]))

    def snapshot(
        self, binding: Binding, after_key: Mapping[str, Any] | None, limit: int
    ) -> SnapshotChunk:
        rows = self._read_rows(binding, after_key, None, limit, self.shared_snapshot())
        last = dict(rows[-1].key) if rows else (dict(after_key) if after_key else None)
        return SnapshotChunk(rows=rows, last_key=last, done=len(rows) < limit)

    def shared_snapshot(self) -> str | None:
        """The name of the exported snapshot the chunks read in, while it lasts: other
        sessions (a run's worker processes) read their :meth:`snapshot_range` in it."""
        export = self._export
        return export.name if export is not None and export.usable else None

    def snapshot_bounds(self, binding: Binding, after_key: Mapping[str, Any] | None,
                        limit: int, parts: int) -> tuple[list[dict[str, Any]], bool]:
        """Where the next ``limit`` rows after ``after_key`` split into ``parts`` ranges
        of about equal size: the last key of each (fewer where fewer rows are left than
        ranges), and whether they are the table's last rows. Read from the primary
        key's index alone, in the snapshot the chunks read in."""
        info = self.table(binding)
        by_name = info.by_name()
        key_exprs = [by_name[k].select_expr() for k in binding.endpoint_key]
        key_ids = _keys(binding)
        window = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(key_exprs), info.ident)
        window, params = self._after(window, binding, after_key)
        window += sql.SQL(" ORDER BY {} LIMIT {}").format(key_ids, sql.Literal(int(limit)))
        query = sql.SQL(
            "SELECT * FROM (SELECT w.*, row_number() OVER (ORDER BY {}) AS n,"
            " count(*) OVER () AS total FROM ({}) w) s"
            " WHERE mod(n, ceil(total / {}::numeric)::bigint) = 0 OR n = total ORDER BY n"
        ).format(key_ids, window, sql.Literal(max(1, int(parts))))
        records = self._in_snapshot(info, query, params, self.shared_snapshot())
        bounds = [dict(zip(binding.key, rec[:-2], strict=True)) for rec in records]
        total = int(records[-1][-1]) if records else 0
        return bounds, total < limit

    def snapshot_range(self, binding: Binding, after_key: Mapping[str, Any] | None,
                       until: Mapping[str, Any], snapshot: str | None) -> list[SnapshotRow]:
        """The rows after ``after_key`` up to ``until`` (included), read in the exported
        snapshot named ``snapshot`` (:meth:`shared_snapshot`; None: current data)."""
        return self._read_rows(binding, after_key, until, None, snapshot)

    @staticmethod
    def _after(query: sql.Composed, binding: Binding, after_key: Mapping[str, Any] | None,
               until: Mapping[str, Any] | None = None) -> tuple[sql.Composed, list[Any]]:
        """``query`` restricted to the keys after ``after_key`` and up to ``until``."""
        key = _keys(binding)
        marks = sql.SQL(", ").join(sql.Placeholder() * len(binding.endpoint_key))
        params: list[Any] = []
        where = []
        if after_key is not None:
            where.append(sql.SQL("({}) > ({})").format(key, marks))
            params += [after_key[k] for k in binding.key]
        if until is not None:
            where.append(sql.SQL("({}) <= ({})").format(key, marks))
            params += [until[k] for k in binding.key]
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
        return query, params

    def _read_rows(self, binding: Binding, after_key: Mapping[str, Any] | None,
                   until: Mapping[str, Any] | None, limit: int | None,
                   snapshot: str | None) -> list[SnapshotRow]:
        info = self.table(binding)
        cols = [c for c in info.columns if binding.synced(_entity_name(binding, c.name))]
        query = sql.SQL("SELECT {}, xmin::text::bigint FROM {}").format(
            sql.SQL(", ").join(c.select_expr() for c in cols), info.ident
        )
        query, params = self._after(query, binding, after_key, until)
        query += sql.SQL(" ORDER BY {}").format(_keys(binding))
        if limit is not None:
            query += sql.SQL(" LIMIT {}").format(sql.Literal(int(limit)))
        records = self._in_snapshot(info, query, params, snapshot)
        names = [_entity_name(binding, c.name) for c in cols] + ["\x00xmin"]
        key_names = binding.key
        rows = []
        for rec in records:
            row = dict(zip(names, rec, strict=True))
            version = row.pop("\x00xmin")
            rows.append(SnapshotRow(key={k: row[k] for k in key_names}, row=row,
                                    row_version=int(version)))
        return rows

    def prior_values(self, binding: Binding, columns: Sequence[str]) -> dict[str, str | None]:
        """What the rows already in the table when ``columns`` were added hold in them,
        in PostgreSQL's text form, where one value is known: the fast default that
        ``ADD COLUMN ... DEFAULT`` recorded instead of writing the rows (and logging
        them), or NULL for a column added without a default. A column whose rows the
        server wrote (a volatile default, a table rewritten since) is left out."""
        info = self.table(binding)
        conn = self.connection()
        with classified(f"read the catalog of {self.name}"), conn.transaction():
            rows = conn.execute(
                "SELECT attname, atthasmissing, (attmissingval::text::text[])[1], atthasdef"
                " FROM pg_attribute WHERE attrelid = %s AND attname = ANY(%s)"
                " AND NOT attisdropped", (info.oid, list(columns))).fetchall()
        return {str(name): (value if missing else None) for name, missing, value, has_default
                in rows if missing or not has_default}

    def commit_times(self, versions: Sequence[int]) -> dict[int, float]:
        """When the transactions that wrote rows of these versions (``xmin``, as the
        snapshot read them) committed, in seconds since the epoch, where the server
        recorded it: ``track_commit_timestamp`` on, and the transaction's timestamp not
        yet truncated (a row written before it was turned on has none). The others are
        left out, and none at all with it off."""
        if not versions:
            return {}
        conn = self.connection()
        with classified(f"read commit timestamps at {self.name}"), conn.transaction():
            if not commit_timestamps_on(conn):
                return {}
            rows = conn.execute(
                "SELECT x, extract(epoch FROM pg_xact_commit_timestamp(x::text::xid))::float8"
                " FROM unnest(%s::bigint[]) AS x", (list(versions),)).fetchall()
        return {int(x): float(t) for x, t in rows if t is not None}

    def _in_snapshot(self, info: TableInfo, query: sql.Composed, params: list[Any],
                     snapshot: str | None) -> list[tuple[Any, ...]]:
        """``query``'s rows, read in a REPEATABLE READ transaction of its own, in the
        exported snapshot named ``snapshot`` if any."""
        conn = self.connection()
        with classified(f"snapshot {info.qualified} at {self.name}"), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if snapshot is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                    sql.Literal(snapshot)))
            return conn.execute(query, params).fetchall()

    # --- changes ----------------------------------------------------------------------

    def new_decoder(self, bindings: Sequence[Binding]) -> ChangeDecoder:
        """A decoder of the changes of ``bindings`` (its values load like this
        connection's query results)."""
        tables = {}
        for b in bindings:
            info = self.table(b)
            tables[(info.schema, info.name)] = BoundTable(b, info)
        self.connection()
        assert self._tx is not None
        return ChangeDecoder(self.name, self.names, tables, self._tx, self._current_columns,
                             self._current_name)

    def _decoder_for(self, bindings: Sequence[Binding]) -> ChangeDecoder:
        key = tuple(sorted(f"{b.entity}\x00{b.table}" for b in bindings))
        if self._decoder is None or key != self._decoder_key:
            self._decoder = self.new_decoder(bindings)
            self._decoder_key = key
        return self._decoder

    def _current_name(self, relid: int) -> tuple[str, str] | None:
        """The table's (schema, name) as the catalog says now; ``None``: dropped."""
        row = self.connection().execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.oid = %s", (relid,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def _current_columns(self, table: tuple[str, str]) -> dict[str, str]:
        """The table's columns and their types as the catalog says now."""
        rows = self.connection().execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
            " AND a.attnum > 0 AND NOT a.attisdropped",
            table,
        ).fetchall()
        return {str(name): str(native) for name, native in rows}

    def slot_start(self, after: Checkpoint | None, *, streaming: bool = False) -> tuple[int, int]:
        """``(flush position now, where reading starts)``, after checking the slot.

        Raises:
            SchemaError: the slot does not exist.
            ConnectorError: another process streams it, or it was confirmed past ``after``
                (the changes in between are gone).
        """
        row = self.connection().execute(
            "SELECT pg_current_wal_flush_lsn()::text, confirmed_flush_lsn::text, active_pid,"
            " wal_status, pg_current_wal_insert_lsn()::text FROM pg_replication_slots"
            " WHERE slot_name = %s AND database = current_database()",
            (self.names.slot,),
        ).fetchone()
        if row is None:
            raise SchemaError(
                f"endpoint {self.name}: replication slot {self.names.slot} does not exist"
                " (dropped? the server restored from a backup, or failed over?): the changes"
                " made since were kept for no one. `cdcsync setup` creates it again and has"
                " every entity read here snapshotted again, which copies what was missed"
            )
        if row[3] == "lost":
            raise SchemaError(self.slot_lost())
        refuse_shared_names(self.connection(), self.names, reading=True)  # (setup.py)
        upto, confirmed = parse_lsn(row[0]), parse_lsn(row[1])
        if row[2] is not None:
            reader = "another reader" if streaming else "a batch run"
            raise ConnectorError(
                f"endpoint {self.name}: slot {self.names.slot} is being streamed by process"
                f" {row[2]} (a cdcsync daemon?); {reader} cannot read it at the same time"
            )
        if after is None:
            return upto, confirmed
        after_lsn = int(after["lsn"])
        if after_lsn > parse_lsn(row[4]):
            # No log read here can end past the server's: this one went back, and what
            # it logs now up to the checkpoint would be dropped as read already.
            raise ConnectorError(
                f"endpoint {self.name}: this pipeline's checkpoint {format_lsn(after_lsn)}"
                f" is past the end of the server's log ({row[4]}): the server was restored"
                " from a copy, or failed over to a standby that lagged, and the changes"
                " read from the lost part of its log may be at the other endpoints while"
                " those logged since would be dropped as read already. `cdcsync resync"
                " PIPELINE ENTITY... --reset-stream` snapshots again the entities read"
                " here and reads on from the slot; `--restored ENDPOINT` instead of"
                " `--reset-stream` writes what the pipeline knows over the restored copy"
                " (docs/operations.md)"
            )
        if after_lsn < confirmed:
            raise ConnectorError(
                f"endpoint {self.name}: slot {self.names.slot} was confirmed up to"
                f" {format_lsn(confirmed)}, past this pipeline's checkpoint"
                f" {format_lsn(after_lsn)}: changes in between are gone (the slot was made"
                " anew, or moved by hand); `cdcsync resync PIPELINE ENTITY... --reset-stream`"
                " copies what was missed and reads on from the slot"
            )
        return upto, after_lsn

    def changes(
        self, bindings: Sequence[Binding], after: Checkpoint | None, limit: int
    ) -> ChangeBatch:
        """Whole transactions in commit order after ``after``, about ``limit`` changes.

        A transaction of more than twice ``limit`` changes is split (the
        checkpoint then resumes inside it).
        """
        limit = max(int(limit), 1)
        self._close_export()  # the snapshot is over once changes are read
        decoder = self._decoder_for(bindings)
        with classified(f"read changes from slot {self.names.slot} at {self.name}"):
            peek = self._peek
            if peek is not None and (peek.decoder is not decoder or peek.expect is None
                                     or not same_checkpoint(after, peek.expect)):
                self._close_peek()
                peek = None
            if peek is None:
                self.check_published(decoder)
                upto, start = self.slot_start(after)
                with self.decodable():
                    peek = self._peek = _Peek(self._peek_connection(), decoder, self.names,
                                              upto)
                builder = BatchBuilder(decoder, after, start, limit)
            else:
                assert peek.expect is not None
                builder = BatchBuilder(decoder, None, int(peek.expect["lsn"]), limit)
            try:
                with self.decodable():
                    exhausted = peek.fill(builder)
            except BaseException:
                self._close_peek()
                raise
            batch = builder.batch(peek.upto if exhausted else None)
            if exhausted and not batch.more:
                self._close_peek()
            else:
                peek.expect = batch.checkpoint
        self.finish(batch, decoder, bindings)
        if any(isinstance(e, SchemaChanged) for e in batch.events):
            self._close_peek()
            self._decoder = None
        return batch

    def _peek_connection(self) -> PgConnection:
        """A connection of its own: a peek is read over several calls in one transaction."""
        if is_broken(self._peek_conn):
            self._peek_conn = connect(self.info, autocommit=False)
        assert self._peek_conn is not None
        return self._peek_conn

    def _close_peek(self) -> None:
        peek, self._peek = self._peek, None
        if peek is not None:
            peek.close()

    def finish(self, batch: ChangeBatch, decoder: ChangeDecoder,
               bindings: Sequence[Binding]) -> None:
        """Name the covered tables in the checkpoint; forget table definitions after DDL."""
        if batch.checkpoint is not None:
            tables = sorted(f"{bt.info.schema}.{bt.info.name}" for bt in decoder.tables.values())
            batch.checkpoint = {**batch.checkpoint, "tables": tables}
        if any(isinstance(e, SchemaChanged) for e in batch.events):
            for b in bindings:
                self._tables.pop(b.table, None)

    # --- confirming -------------------------------------------------------------------

    def published_tables(self) -> frozenset[str]:
        if self._published is None:
            self._read_publication()
        assert self._published is not None
        return self._published

    def _read_publication(self) -> _Publication | None:
        """The publication (its tables, by oid, as ``schema.name``), ``None`` if it does
        not exist; :meth:`published_tables` is refreshed with its tables."""
        with classified(f"read publication {self.names.publication}"):
            conn = self.connection()
            found = conn.execute(
                "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication"
                " WHERE pubname = %s", (self.names.publication,)).fetchone()
            listed = published(conn, self.names.publication)
        self._published = frozenset(t.qualified for t in listed)
        if found is None:
            return None
        ops = ("insert", "update", "delete", "truncate")
        return _Publication(
            tables={t.oid: t.qualified for t in listed},
            unpublished=tuple(op for op, on in zip(ops, found, strict=True) if not on),
            filters={t.oid: t.rowfilter for t in listed if t.rowfilter is not None},
            columns={t.oid: t.columns for t in listed if t.columns is not None})

    def check_published(self, decoder: ChangeDecoder) -> None:
        """Every table ``decoder`` reads is in the pipeline's publication, whole.

        A table dropped and created again (a migration tool that rebuilds it, a
        ``pg_restore --clean``) is a new table, in no publication: pgoutput sends
        none of its changes and a run would read nothing and say all is well, for
        good. So would a table a user took out of the publication; so would the
        updates and deletes of a publication altered to publish inserts only, and the
        rows or columns a row filter or a column list leaves out (pgoutput filters as
        it decodes, by the publication as it was when each change was made). The log
        cannot give those changes back once made: the run stops and says how to put
        the publication right and copy what the log missed.

        Raises:
            SchemaError: a table is not published, or not whole, or the publication
                is gone.
        """
        pub = self._read_publication()
        if pub is None:
            raise self.publication_gone()
        bound = sorted(decoder.tables.items())
        entities = " ".join(sorted({b.binding.entity for _, b in bound}))
        # By oid: a table renamed since is still published (the decoder says it was renamed).
        missing = [(k, b) for k, b in bound if b.info.oid not in pub.tables]
        if missing:
            (schema, table), first = missing[0]
            entities = " ".join(sorted({b.binding.entity for _, b in missing}))
            raise SchemaError(
                f"endpoint {self.name}: table {schema}.{table} of entity {first.binding.entity}"
                f" is not in publication {self.names.publication} (dropped and created again,"
                " or taken out of it): its changes since are not in the log and were not"
                " read. `cdcsync setup` publishes it again; then `cdcsync resync PIPELINE "
                f"{entities}` copies what the log missed")
        narrowed = []
        if pub.unpublished and bound:
            narrowed.append(f"does not publish {', '.join(pub.unpublished)}")
        for (schema, table), b in bound:
            if b.info.oid in pub.filters:
                narrowed.append(f"publishes only the rows of {schema}.{table} where"
                                f" {pub.filters[b.info.oid]}")
            listed = pub.columns.get(b.info.oid)
            left = [c.name for c in b.info.columns if listed is not None
                    and c.name not in listed and b.binding.synced(_entity_name(b.binding, c.name))]
            if left:
                narrowed.append(f"leaves column(s) {', '.join(left)} of {schema}.{table} out")
        if narrowed:
            raise SchemaError(
                f"endpoint {self.name}: publication {self.names.publication} "
                + "; ".join(narrowed) + " (altered since setup): those changes are not in"
                " the log and were not read. `cdcsync setup` puts the publication right;"
                f" then `cdcsync resync PIPELINE {entities}` copies what the log missed")

    def slot_lost(self) -> str:
        """A slot the server invalidated (``wal_status = lost``): it removed WAL the slot
        still held, past ``max_slot_wal_keep_size`` (or a standby's conflict), and no
        change can be read from it again. Until 2026-12-07 every run ended with the
        server's words alone, and the resync could not advance the slot."""
        return (f"endpoint {self.name}: replication slot {self.names.slot} was invalidated:"
                " the server removed WAL it still held (max_slot_wal_keep_size), and the"
                " changes in it are gone. `cdcsync resync PIPELINE ENTITY... --reset-stream`"
                " makes the slot anew at the log's current end and copies what was missed")

    def publication_gone(self) -> SchemaError:
        """The publication was dropped: pgoutput cannot decode the changes logged while
        it was missing (not even after setup creates it again: it looks publications up
        as of each change), so the way on starts the slot from the log's current end."""
        return SchemaError(
            f"endpoint {self.name}: publication {self.names.publication} does not exist, or"
            " did not when changes still in the slot were made (it was dropped): the slot"
            " cannot decode those. `cdcsync setup` creates it again; then `cdcsync resync"
            " PIPELINE ENTITY... --reset-stream` moves the slot to the log's current end and"
            " copies what was missed")

    @contextlib.contextmanager
    def decodable(self) -> Iterator[None]:
        """pgoutput's "publication does not exist" while decoding, said as
        :meth:`publication_gone`."""
        try:
            yield
        except psycopg.errors.UndefinedObject as exc:
            if "publication" in str(exc):
                raise self.publication_gone() from exc
            raise

    def reset_stream(self) -> list[str]:
        """Move the slot to the log's current end (``cdcsync resync --reset-stream``, which
        snapshots every entity read here again: nothing before it is needed). Past, too,
        changes it cannot decode (:meth:`publication_gone`)."""
        with classified(f"move slot {self.names.slot} at {self.name}"):
            conn = self.connection()
            row = conn.execute(
                "SELECT pg_current_wal_flush_lsn()::text, active_pid, wal_status"
                " FROM pg_replication_slots WHERE slot_name = %s"
                " AND database = current_database()", (self.names.slot,)).fetchone()
            if row is None:
                return [f"no slot {self.names.slot}: `cdcsync setup` creates it"]
            if row[1] is not None:
                return [f"slot {self.names.slot} is streamed by process {row[1]} (a daemon):"
                        " stop it and resync again to move the slot"]
            if row[2] == "lost":  # an invalidated slot cannot be advanced: made anew
                from connectors.postgres.setup import ensure_slot

                conn.execute("SELECT pg_drop_replication_slot(%s)", (self.names.slot,))
                made = ensure_slot(conn, self.names)
                return [f"slot {self.names.slot} was invalidated: dropped, and {made[0]}"]
            self.advance(parse_lsn(row[0]))
        return [f"slot {self.names.slot} moved to the log's current end ({row[0]})"]

    def confirmable(self, checkpoints: Sequence[Checkpoint]) -> int | None:
        """The position the slot may be confirmed to: the oldest of ``checkpoints``.

        The slot is one log for every table of the endpoint, so the reader must read
        it as one stream, with every binding it is a source for (the engine does).
        Published tables that no checkpoint covers are not read here (left by a setup
        from before 2026-12-06, which published the tables only written to, or added
        by hand): their changes are not needed, which is said once.
        """
        if not checkpoints:
            return None
        covered: set[str] = set()
        for cp in checkpoints:
            covered |= set(cp.get("tables", ()))
        unread = self.published_tables() - covered
        if unread and not self._said_unread:
            self._said_unread = True
            log.info("endpoint %s: publication %s also holds %s, which this pipeline does"
                     " not read here; the slot moves past their changes (`cdcsync setup`"
                     " removes them from it)", self.name, self.names.publication,
                     ", ".join(sorted(unread)))
        return min(int(cp["lsn"]) for cp in checkpoints)

    def confirm(self, checkpoint: Checkpoint) -> None:
        """Advance the slot to ``checkpoint`` (everything before it is durably applied)."""
        lsn = self.confirmable([checkpoint])
        if lsn is not None:
            self.advance(lsn)

    def prune(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Advance the slot to the oldest of ``checkpoints``."""
        lsn = self.confirmable(checkpoints)
        if lsn is not None:
            self.advance(lsn)

    def advance(self, lsn: int) -> None:
        with classified(f"advance slot {self.names.slot} at {self.name}"):
            self.connection().execute(
                "SELECT pg_replication_slot_advance(slot_name, %s::pg_lsn)"
                " FROM pg_replication_slots WHERE slot_name = %s"
                " AND database = current_database() AND confirmed_flush_lsn < %s::pg_lsn",
                (format_lsn(lsn), self.names.slot, format_lsn(lsn)),
            )

    def close(self) -> None:
        self._close_export()
        self._close_peek()
        for conn in (self._conn, self._peek_conn):
            if conn is not None and not conn.closed:
                conn.close()
        self._conn = self._peek_conn = None


def _keys(binding: Binding) -> sql.Composed:
    """The binding's key columns at the endpoint, as a quoted list (``ORDER BY``, rows)."""
    return sql.SQL(", ").join(sql.Identifier(k) for k in binding.endpoint_key)


@dataclass(frozen=True, slots=True)
class _Publication:
    """The pipeline's publication as the catalog has it (``_read_publication``)."""

    tables: dict[int, str]  # oid -> schema.name
    unpublished: tuple[str, ...]  # operations it does not publish
    filters: dict[int, str]  # oid -> row filter
    columns: dict[int, frozenset[str]]  # oid -> the columns it publishes


def _entity_name(binding: Binding, column: str) -> str:
    for ent, ep in binding.columns.items():
        if ep == column:
            return ent
    return column


def qualified(binding: Binding, default_schema: str) -> str:
    schema, name = split_table(binding.table, default_schema)
    return f"{schema}.{name}"
