"""MysqlSource: consistent snapshots and the ROW binlog of a MariaDB/MySQL database.

Checkpoint: ``{"gtid": "0-1-42", "file": "mysql-bin.000003", "pos": 1234}``.
The GTID state is what resumes (``file``/``pos`` are there for people and for
positions); it is the state right after the last transaction of the batch.

**Positions** are ``(binlog file number, end position of the commit event,
index of the change in its transaction)``: commit order on one server. They
restart if the server's binlog is reset (``RESET MASTER``), which also
invalidates every checkpoint: a re-snapshot is needed then anyway.

**Row versions.** MariaDB has no row version, so a row's version is
:func:`conflict.canonical.row_hash` of its synchronised columns (entity
names, typed values); ``None`` for a deleted row. The sink's compare-and-set
compares the hash of the row it finds with the one it expects. The window
this leaves: an edit that is undone before the service applies (A -> B -> A
between its read and its write, an "ABA") is invisible: the hash matches, so
the apply overwrites A although B happened. B and the return to A are still
read from the binlog, as concurrent edits, and resolved by the policy: nothing
is lost, but the apply is not refused.

**Batch reading.** :meth:`changes` reads up to the end of the binlog as it was
when called (``@@gtid_binlog_pos`` and ``SHOW MASTER STATUS``) and returns;
it never waits for new writes. The replica connection stays open between
calls that continue where the previous one stopped.

**Streaming** (the daemon, :meth:`use_streaming`): :meth:`changes` asks the
server nothing. It waits on the replica connection for up to ``wait`` seconds
for a first transaction, then takes every whole transaction already received
and returns: low latency at low load, big batches at high load, and an idle
daemon costs neither side anything. Polling instead asked for the binlog's end
on every call (a ping and two queries): with ``poll_ms: 5`` (the bench's) that
was most of an idle daemon's interpreter time, and a round trip of latency for
every change (docs/daemon.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conflict.canonical import row_hash
from connectors.base import (
    Binding,
    Column,
    ConnectorError,
    KeyGenerator,
    SchemaError,
    TableSchema,
)
from connectors.mysql.binlog import BinlogReader, PurgedBinlogError, Transaction, file_number
from connectors.mysql.cascades import Cascades, ForeignKey, cascades_for, load_foreign_keys
from connectors.mysql.ddl import tables_touched, tables_written
from connectors.mysql.defaults import prior_value
from connectors.mysql.events import SchemaChanged, TableDdl, Truncated
from connectors.mysql.gtid import covers, format_state, parse_state
from connectors.mysql.schema import SchemaCache, TableInfo
from connectors.mysql.session import (
    classify,
    close_quietly,
    connect,
    derive_server_id,
    quote_ident,
    quote_table,
)
from connectors.mysql.types import ColumnInfo, typed_row
from connectors.mysql.versioning import current_rows
from sync.change import (
    Cascaded,
    CascadeRule,
    Change,
    ChangeBatch,
    Checkpoint,
    Op,
    SnapshotChunk,
    SnapshotRow,
)

log = logging.getLogger("cdcsync.mysql.source")

#: Endpoint column -> entity column for the synchronised columns (None: all, same names).
Projection = tuple[tuple[str, str], ...] | None

#: A transaction that alone gives more changes than this (and than twice the batch
#: size) is handed out over several batches, the checkpoint resuming inside it: held
#: whole, 300k updated rows took 2 GB (one of millions, more than the machine has).
SPLIT_FROM = 10_000


@dataclass(slots=True)
class _Inside:
    """A transaction handed out in part: the rest goes out from image ``done`` on."""

    tx: Transaction
    done: int
    idx: int
    checkpoint: Checkpoint

MARKER_TABLE = "cdcsync_apply_marker"


def select_expr(col: ColumnInfo) -> str:
    """How a column is selected so that its value is exact (FLOAT at full precision)."""
    q = quote_ident(col.name)
    return f"CAST({q} AS DOUBLE) AS {q}" if col.is_float32 else q


def endpoint_columns(binding: Binding, info: TableInfo) -> list[ColumnInfo]:
    """The table's columns that the binding synchronises: never a generated column,
    which each table computes for itself (as PostgreSQL's and SQLite's are left out)."""
    rev = binding.entity_names
    return [c for c in info.columns
            if not c.generated and binding.synced(rev.get(c.name, c.name))]


def key_condition(key_cols: Sequence[str], after: Sequence[Any]) -> tuple[str, list[Any]]:
    """``(k1, k2) > (a1, a2)`` spelt out so that MariaDB uses the primary key range."""
    ors: list[str] = []
    params: list[Any] = []
    for i, col in enumerate(key_cols):
        terms = [f"{quote_ident(c)} = %s" for c in key_cols[:i]]
        terms.append(f"{quote_ident(col)} > %s")
        ors.append("(" + " AND ".join(terms) + ")")
        params.extend(after[: i + 1])
    return "(" + " OR ".join(ors) + ")", params


class MysqlSource:
    """Snapshots and binlog changes of one MariaDB/MySQL endpoint."""

    def __init__(self, name: str, settings: Any, *, pipeline: str = "",
                 heartbeat: float = 1.0, echo: str | None = None) -> None:
        self.name = name
        self.settings = settings
        self.pipeline = pipeline
        self.database = str(settings.database)
        server_id = getattr(settings, "server_id", None)
        self.server_id = int(server_id) if server_id else derive_server_id(pipeline, name)
        self.heartbeat = heartbeat
        self.wait: float | None = None  # streaming: seconds to wait for a transaction
        flavor = str(getattr(settings, "flavor", "mariadb") or "mariadb")
        self.flavor = flavor
        self.echo = echo or ("skip_replication" if flavor == "mariadb" else "marker")
        self._control: Any = None
        self._snap: Any = None
        self._snap_checkpoint: Checkpoint | None = None
        self._reader: BinlogReader | None = None
        self._plans: dict[tuple[int, tuple[str, ...]], tuple[Projection, Binding]] = {}
        self._shapes: dict[str, tuple[str, ...]] = {}  # last known columns of bound tables
        self.schemas = SchemaCache(self.database, lambda: self._ctl().cursor())
        self._cascades: tuple[tuple[Any, ...], Cascades] | None = None  # by the bindings
        self._said_xa: set[str] = set()  # XA transactions said to hold the checkpoint back
        self._inside: _Inside | None = None  # a transaction handed out in part

    # --- connections ----------------------------------------------------------------

    def _ctl(self) -> Any:
        if self._control is not None:
            try:
                self._control.ping(reconnect=False)
            except Exception:  # a dead control connection is replaced
                self._control = None
        if self._control is None:
            self._control = connect(self.settings)
        return self._control

    def _describe(self, database: str, table: str) -> TableInfo | None:
        return self.schemas.get(table) if database == self.database else None

    def _binlog(self) -> BinlogReader:
        if self._reader is None:
            marker = (self.database, MARKER_TABLE) if self.echo == "marker" else None
            self._reader = BinlogReader(self.settings, server_id=self.server_id,
                                        describe=self._describe, heartbeat=self.heartbeat,
                                        marker_table=marker)
        return self._reader

    def close(self) -> None:
        self._end_snapshot()
        for conn in (self._control, self._snap):
            close_quietly(conn)
        self._control = self._snap = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # --- schema and positions ---------------------------------------------------------

    def schema(self, binding: Binding) -> TableSchema:
        return self.schemas.get(binding.table).table_schema()

    def prior_values(self, binding: Binding, columns: Sequence[str]) -> dict[str, str | None]:
        """What the rows already in the table when ``columns`` were added hold in them,
        as PostgreSQL text, where it is one value the column's default tells
        (connectors/mysql/defaults.py); the others are left out."""
        try:
            with self._ctl().cursor() as cur:
                cur.execute("SELECT COLUMN_NAME, COLUMN_DEFAULT, IS_NULLABLE, DATA_TYPE,"
                            " COLUMN_TYPE FROM information_schema.COLUMNS WHERE"
                            " TABLE_SCHEMA = %s AND TABLE_NAME = %s", (self.database,
                                                                       binding.table))
                rows = cur.fetchall()
        except Exception as exc:
            raise classify(exc, f"{self.name}: reading the columns of {binding.table}") from exc
        wanted = set(columns)
        out: dict[str, str | None] = {}
        for name, default, nullable, data_type, column_type in rows:
            if name in wanted:
                known, value = prior_value(default, nullable == "YES", str(data_type),
                                           str(column_type))
                if known:
                    out[str(name)] = value
        return out

    def key_generator(self, binding: Binding) -> KeyGenerator | None:
        """``AUTO_INCREMENT`` on the (one-column) key, on the server's global steps
        (``auto_increment_increment`` / ``_offset``; a session may set its own)."""
        if len(binding.endpoint_key) != 1:
            return None
        try:
            with self._ctl().cursor() as cur:
                cur.execute("SELECT EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
                            " AND TABLE_NAME = %s AND COLUMN_NAME = %s",
                            (self.database, binding.table, binding.endpoint_key[0]))
                row = cur.fetchone()
                if row is None or "auto_increment" not in str(row[0]).lower():
                    return None
                cur.execute("SELECT @@global.auto_increment_increment,"
                            " @@global.auto_increment_offset")
                steps = cur.fetchone()
        except Exception as exc:
            raise classify(exc, f"{self.name}: reading the key of {binding.table}") from exc
        step, offset = int(steps[0]), int(steps[1])
        return KeyGenerator(f"AUTO_INCREMENT, every {step} from {offset}", step, offset,
                            "set auto_increment_increment and auto_increment_offset")

    def log_end(self) -> Checkpoint:
        """The current end of the binlog, without opening a snapshot."""
        try:
            with self._ctl().cursor() as cur:
                cur.execute("SELECT @@gtid_binlog_pos" if self.flavor == "mariadb"
                            else "SELECT @@global.gtid_executed")
                row = cur.fetchone()
                gtid = str(row[0] or "") if row else ""
                cur.execute("SHOW MASTER STATUS")
                status = cur.fetchone()
        except Exception as exc:
            raise classify(exc, f"{self.name}: reading the binlog position") from exc
        if status is None:
            raise ConnectorError(f"{self.name}: the binary log is off (log_bin = 0); "
                                 "see `cdcsync setup`")
        return {"gtid": gtid, "file": str(status[0]), "pos": int(status[1])}

    def position(self) -> Checkpoint:
        """Open a consistent snapshot and return the binlog position it stands at.

        The following :meth:`snapshot` calls read inside that snapshot, so the
        rows they return are exactly the state at this checkpoint: nothing is
        lost or applied twice between the snapshot and the stream.
        """
        self._end_snapshot()
        self.schemas.forget()  # describe the tables afresh for this snapshot
        return self._begin_snapshot()

    def _begin_snapshot(self) -> Checkpoint:
        if self._snap is None:
            self._snap = connect(self.settings)
        try:
            with self._snap.cursor() as cur:
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                if self.flavor != "mariadb":
                    return self._mysql_snapshot_position(cur)
                cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                status = {str(k).lower(): v for k, v in cur.fetchall()}
                file = str(status.get("binlog_snapshot_file") or "")
                pos = int(status.get("binlog_snapshot_position") or 0)
                if not file:
                    raise ConnectorError(f"{self.name}: the binary log is off (log_bin = 0); "
                                         "see `cdcsync setup`")
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s), @@GLOBAL.max_allowed_packet",
                            (file, pos))
                row = cur.fetchone()
                if row is None or row[0] is None:
                    # NULL, not '' (no GTID yet): the server could not read its own binlog
                    # up to the snapshot. Taken for '', the stream started at the oldest
                    # binlog and replayed the whole retained history.
                    raise ConnectorError(
                        f"{self.name}: MariaDB cannot say which GTID position {file} stands"
                        f" at at {pos} (BINLOG_GTID_POS is NULL): it reads that binlog file"
                        f" from its start, and an event in it larger than max_allowed_packet"
                        f" ({int(row[1]) if row else 0:,} bytes now) stops it. Run"
                        " `FLUSH BINARY LOGS` (snapshots then stand in a new file), or raise"
                        " max_allowed_packet, and run again")
                gtid = str(row[0])
        except ConnectorError:
            raise
        except Exception as exc:
            self._drop_snapshot_conn()
            raise classify(exc, f"{self.name}: opening a consistent snapshot") from exc
        self._snap_checkpoint = {"gtid": gtid, "file": file, "pos": pos}
        return dict(self._snap_checkpoint)

    def held_up_to(self, checkpoint: Checkpoint) -> tuple[int, ...] | None:
        """The greatest change position at or before ``checkpoint``: a change's position
        is ``(binlog file number, its transaction's end, n)``, and a transaction ending
        at or before the checkpoint's offset is in the snapshot taken there
        (sync/snapshot_floor.py). None on MySQL, whose snapshot position is read after
        the snapshot opened (:meth:`_mysql_snapshot_position`): the transactions
        between stand before it without being in the snapshot."""
        if self.flavor != "mariadb" or not checkpoint.get("file"):
            return None
        return (file_number(str(checkpoint["file"])), int(checkpoint["pos"]), 2**62)

    def _mysql_snapshot_position(self, cur: Any) -> Checkpoint:
        """MySQL has no ``binlog_snapshot_*``: the position is read right after the
        snapshot opened, so commits in between are read again from the binlog
        (harmless in effect, see :meth:`snapshot`). Untested here (no MySQL server)."""
        cur.execute("SELECT @@global.gtid_executed")
        row = cur.fetchone()
        cur.execute("SHOW MASTER STATUS")
        status = cur.fetchone()
        if status is None:
            raise ConnectorError(f"{self.name}: the binary log is off")
        self._snap_checkpoint = {"gtid": str(row[0] if row else ""), "file": str(status[0]),
                                 "pos": int(status[1])}
        return dict(self._snap_checkpoint)

    def _end_snapshot(self) -> None:
        if self._snap is not None and self._snap_checkpoint is not None:
            try:
                self._snap.rollback()
            except Exception:  # the connection is dropped below
                self._drop_snapshot_conn()
        self._snap_checkpoint = None

    def _drop_snapshot_conn(self) -> None:
        close_quietly(self._snap)
        self._snap = None
        self._snap_checkpoint = None

    @property
    def snapshot_checkpoint(self) -> Checkpoint | None:
        """Where the open snapshot stands (``None`` when none is open)."""
        return None if self._snap_checkpoint is None else dict(self._snap_checkpoint)

    # --- snapshot ---------------------------------------------------------------------

    def snapshot(self, binding: Binding, after_key: Mapping[str, Any] | None,
                 limit: int) -> SnapshotChunk:
        """One chunk of ``binding``'s table in primary-key order, after ``after_key``.

        Reads inside the snapshot :meth:`position` opened; without one (a
        snapshot resumed by a new process) it opens its own, whose position is
        later than the stored checkpoint: the changes in between are then read
        again from the binlog over rows that already contain them, which the
        idempotent, compare-and-set apply makes harmless in effect.
        """
        rows = self._read_rows(binding, after_key, None, limit)
        last = rows[-1].key if rows else (dict(after_key) if after_key is not None else None)
        return SnapshotChunk(rows=rows, last_key=last, done=len(rows) < limit)

    def shared_snapshot(self) -> str | None:
        """None: a consistent snapshot is its session's own. Other sessions (a run's
        worker processes) read their :meth:`snapshot_range` in snapshots of their own,
        opened later, as a snapshot resumed by a new process does (see :meth:`snapshot`)."""
        return None

    def rows_up_to(self, binding: Binding, limit: int) -> int:
        """How many rows the table holds, counted up to ``limit`` (in this session's
        snapshot; InnoDB's ``TABLE_ROWS`` is an estimate that lags a bulk load)."""
        sql = (f"SELECT COUNT(*) FROM (SELECT 1 FROM "
               f"{quote_table(self.database, binding.table)} LIMIT %s) s")
        (row,) = self._in_snapshot(binding, sql, [int(limit)])
        return int(row[0])

    def snapshot_bounds(self, binding: Binding, after_key: Mapping[str, Any] | None,
                        limit: int, parts: int) -> tuple[list[dict[str, Any]], bool]:
        """Where the next ``limit`` rows after ``after_key`` split into ``parts`` ranges of
        about equal size: the last key of each, and whether they are the table's last
        rows. Read from the primary key alone, in this session's snapshot."""
        info = self.schemas.get(binding.table)
        key_cols = [binding.endpoint_column(k) for k in binding.key]
        keys = ", ".join(quote_ident(k) for k in key_cols)
        window = f"SELECT {keys} FROM {quote_table(self.database, binding.table)}"
        params: list[Any] = []
        if after_key is not None:
            cond, params = key_condition(key_cols, [after_key[k] for k in binding.key])
            window += f" WHERE {cond}"
        window += f" ORDER BY {keys} LIMIT %s"
        n, total = "`cdcsync_n`", "`cdcsync_total`"  # (a derived table's names must differ)
        sql = (f"SELECT * FROM (SELECT w.*, ROW_NUMBER() OVER (ORDER BY {keys}) AS {n},"
               f" COUNT(*) OVER () AS {total} FROM ({window}) w) s"
               f" WHERE MOD({n}, CEIL({total} / %s)) = 0 OR {n} = {total} ORDER BY {n}")
        fetched = self._in_snapshot(binding, sql, [*params, int(limit), max(1, int(parts))])
        by_name = info.by_name()
        bounds = [binding.key_of(binding.to_entity(typed_row(by_name, dict(zip(
            key_cols, rec[:-2], strict=True))))) for rec in fetched]
        count = int(fetched[-1][-1]) if fetched else 0
        return bounds, count < limit

    def snapshot_range(self, binding: Binding, after_key: Mapping[str, Any] | None,
                       until: Mapping[str, Any], snapshot: str | None) -> list[SnapshotRow]:
        """The rows after ``after_key`` up to ``until`` (included), in this session's
        snapshot (``snapshot`` is always None here: see :meth:`shared_snapshot`)."""
        return self._read_rows(binding, after_key, until, None)

    def _read_rows(self, binding: Binding, after_key: Mapping[str, Any] | None,
                   until: Mapping[str, Any] | None, limit: int | None) -> list[SnapshotRow]:
        info = self.schemas.get(binding.table)
        cols = endpoint_columns(binding, info)
        key_cols = [binding.endpoint_column(k) for k in binding.key]
        sql = (f"SELECT {', '.join(select_expr(c) for c in cols)} "
               f"FROM {quote_table(self.database, binding.table)}")
        params: list[Any] = []
        where = []
        if after_key is not None:
            cond, more = key_condition(key_cols, [after_key[k] for k in binding.key])
            where.append(cond)
            params += more
        if until is not None:  # (k) <= (u): not (k) > (u)
            cond, more = key_condition(key_cols, [until[k] for k in binding.key])
            where.append(f"NOT {cond}")
            params += more
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {', '.join(quote_ident(k) for k in key_cols)}"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        fetched = self._in_snapshot(binding, sql, params)
        by_name = info.by_name()
        names = [c.name for c in cols]
        rows = []
        for values in fetched:
            row = binding.to_entity(typed_row(by_name, dict(zip(names, values, strict=True))))
            rows.append(SnapshotRow(key=binding.key_of(row), row=row, row_version=row_hash(row)))
        return rows

    def _in_snapshot(self, binding: Binding, sql: str,
                     params: list[Any]) -> tuple[tuple[Any, ...], ...]:
        """``sql``'s rows, read in this session's consistent snapshot (opened if none is)."""
        if self._snap_checkpoint is None:
            self._begin_snapshot()
        try:
            with self._snap.cursor() as cur:
                cur.execute(sql, params)
                return tuple(cur.fetchall())
        except Exception as exc:
            self._drop_snapshot_conn()
            raise classify(exc, f"{self.name}: snapshot of {binding.table}") from exc

    # --- changes ----------------------------------------------------------------------

    def use_streaming(self, on: bool = True, *, wait: float = 0.2) -> None:
        """Wait on the replica connection for changes (the daemon) instead of reading
        up to the binlog's end as it is when called (batch runs); ``wait``: how long
        :meth:`changes` waits for a first transaction."""
        self.wait = wait if on else None

    def changes(self, bindings: Sequence[Binding], after: Checkpoint | None,
                limit: int) -> ChangeBatch:
        """Whole transactions after ``after``: up to the end of the binlog as it is now,
        or, streaming, what arrives within ``wait`` seconds and right after it.

        Without a checkpoint there is nothing to resume: the batch is empty
        and its checkpoint is the current end of the log.

        Raises:
            ConnectorError: the checkpoint's binlog was purged (run ``cdcsync
                resync PIPELINE ENTITY``), or the stream failed for good.
            RetriableError: the server is unreachable right now.
        """
        self._end_snapshot()  # streaming: the snapshot phase is over, release its read view
        if after is None:
            return ChangeBatch([], self.log_end(), more=False)
        stop: tuple[int, int] | None = None
        deadline: float | None = None
        if self.wait is None:
            end = self.log_end()
            self._check_history(bindings, after, end)
            if self.flavor == "mariadb" and covers(parse_state(str(after.get("gtid", ""))),
                                                   parse_state(end["gtid"])):
                return ChangeBatch([], dict(after), more=False)
            stop = (file_number(end["file"]), int(end["pos"]))
        else:
            deadline = time.monotonic() + self.wait
        by_table: dict[str, list[Binding]] = {}
        for b in bindings:
            by_table.setdefault(b.table, []).append(b)
        cascades = self._cascades_of(bindings, by_table)
        reader = self._binlog()
        reader.wanted = frozenset((self.database, t) for t in {*by_table, *cascades.tables})
        inside, self._inside = self._inside, None
        if inside is not None and inside.checkpoint != after:
            inside = None  # the engine went back to an earlier checkpoint
        # A checkpoint held before an undecided XA prepare says where reading went on.
        if inside is None and (not reader.started or reader.gtid != str(
                after.get("read_to") or after.get("gtid", ""))):
            if self.wait is not None:  # (a batch read looked already)
                self._check_history(bindings, after, self.log_end())
            reader.start(str(after.get("gtid", "")), str(after.get("file", "")),
                         int(after.get("pos", 0) or 0))
            self._shapes = {str(t): tuple(c) for t, c in (after.get("columns") or {}).items()}
        # A checkpoint inside a transaction (one too large for a batch), after a restart:
        # that transaction's first changes were read already.
        resume = (str(after["tx"]), int(after.get("index", 0)), int(after.get("idx", 0))
                  ) if inside is None and after.get("tx") else None
        out: list[Change] = []
        events: list[Any] = []
        checkpoint: Checkpoint = dict(after)
        more = False
        while True:
            skip = idx = 0
            if inside is not None:
                tx, skip, idx = inside.tx, inside.done, inside.idx
                checkpoint, inside = inside.checkpoint, None
            else:
                # Streaming: wait for a first change until the deadline; with changes in
                # hand, take only the transactions already received.
                until = None if deadline is None else (
                    time.monotonic() if out or events else deadline)
                try:
                    got = reader.next(stop, until=until)
                except PurgedBinlogError as exc:
                    reader.close()
                    raise ConnectorError(self._purged_message(bindings, after,
                                                              f"server said: {exc}")
                                         ) from exc
                if got is None:
                    break
                tx = got
                if resume is not None and tx.gtid == resume[0]:
                    _, skip, idx = resume
                    resume = None
            if not tx.own:
                stopped = self._collect(tx, by_table, out, events, cascades, skip=skip, idx=idx,
                                        split_at=len(out) + max(2 * limit, SPLIT_FROM))
                if stopped is not None:  # the rest of it in the next batch
                    checkpoint = {**{k: v for k, v in checkpoint.items()
                                     if k not in ("tx", "index", "idx", "columns")},
                                  "tx": tx.gtid, "index": stopped[0], "idx": stopped[1],
                                  "columns": {t: list(self._shapes[t])
                                              for t in sorted(self._shapes) if t in by_table}}
                    self._inside = _Inside(tx, stopped[0], stopped[1], checkpoint)
                    more = True
                    break
            checkpoint = {"gtid": reader.gtid, "file": reader.file, "pos": reader.pos,
                          "columns": {t: list(self._shapes[t])
                                      for t in sorted(self._shapes) if t in by_table}}
            held = reader.held
            if held is not None:
                checkpoint.update(gtid=format_state(held.state), file=held.file, pos=held.pos,
                                  read_to=reader.gtid)
            if stop is not None and tx.position >= stop:
                break
            if len(out) >= limit:
                more = True
                break
            if deadline is not None and time.monotonic() >= deadline:
                break  # a stream of other tables' transactions: hand back now and then
        self._say_held(reader)
        return ChangeBatch(out, checkpoint, more=more, events=events)

    def _say_held(self, reader: BinlogReader) -> None:
        """Once per XA transaction left prepared at the end of a batch: why the
        checkpoint stays before it."""
        for xid, held in reader.prepared.items():
            if xid not in self._said_xa:
                self._said_xa.add(xid)
                log.warning("endpoint %s: XA transaction %s, prepared at %s, is neither"
                            " committed nor rolled back yet (XA RECOVER lists it): its changes"
                            " wait for its XA COMMIT, and the checkpoint stays before its"
                            " prepare (what follows is read again by a restarted reader)",
                            self.name, reader.xid_text(xid), held.tx.gtid)

    def _check_history(self, bindings: Sequence[Binding], after: Checkpoint,
                       end: Checkpoint) -> None:
        """The binlog still reaches ``after``: no domain of its GTID state is past the
        server's (MariaDB). A binlog that ends before a checkpoint read from it was
        reset (``RESET MASTER``), or the server restored from a backup or replaced:
        until 2026-12-07 every run read nothing and said ok while the new binlog's
        transactions numbered up to the checkpoint went by, then read on past them.

        Raises:
            ConnectorError: the binlog is behind the checkpoint.
        """
        if self.flavor != "mariadb":
            return
        now = parse_state(str(end.get("gtid", "")))
        ahead = {d: v for d, v in parse_state(str(after.get("gtid", ""))).items()
                 if d not in now or now[d][1] < v[1]}
        if ahead:
            raise ConnectorError(self._purged_message(
                bindings, after, "the server's binlog ends at GTID"
                f" {end.get('gtid') or '(none)'}, before {format_state(ahead)}: it was reset"
                " (RESET MASTER), or the server was"
                " restored from a backup or replaced") + " If it was restored from a backup,"
                f" `--restored {self.name}` instead of `--reset-stream` writes what the pipeline"
                " knows over the older copy (docs/operations.md).")

    def _purged_message(self, bindings: Sequence[Binding], after: Checkpoint, why: str) -> str:
        pipeline = self.pipeline or "PIPELINE"
        entities = sorted({b.entity for b in bindings})
        # --reset-stream: the log is read from its current end after the new snapshot
        # (without it the next run would ask for the purged position again).
        cmds = f"`cdcsync resync {pipeline} {' '.join(entities) or 'ENTITY'} --reset-stream`"
        return (
            f"endpoint {self.name!r}: the binlog no longer holds the changes after checkpoint "
            f"{after.get('gtid')!r} ({after.get('file')}:{after.get('pos')}); they were purged "
            f"or the log was reset ({why}). Changes in between are lost to "
            f"cdcsync: re-snapshot the entities reading this log with {cmds}."
        )

    def _cascades_of(self, bindings: Sequence[Binding],
                     by_table: Mapping[str, list[Binding]]) -> Cascades:
        """The foreign-key actions to report for these bindings (cascades.py), loaded
        again after DDL."""
        shape = tuple((b.entity, b.table, tuple(sorted(b.columns.items())), b.only, b.exclude)
                      for b in bindings)
        if self._cascades is None or self._cascades[0] != shape:
            with self._ctl().cursor() as cur:
                fks = load_foreign_keys(cur, self.database)
            self._cascades = (shape, cascades_for(fks, by_table, self._has_key))
        return self._cascades[1]

    def _has_key(self, table: str) -> bool:
        try:
            self.schemas.get(table)
        except SchemaError:
            log.warning("table %s.%s has foreign keys with actions into bound tables but no"
                        " primary key: its deletes' actions are not followed", self.database,
                        table)
            return False
        return True

    def _collect(self, tx: Transaction, by_table: Mapping[str, list[Binding]],
                 out: list[Change], events: list[Any], cascades: Cascades, *,
                 skip: int = 0, idx: int = 0, split_at: int | None = None
                 ) -> tuple[int, int] | None:
        """``tx``'s changes and events into ``out``/``events``, from its row image
        ``skip`` on, numbering from ``idx``. With ``split_at``, stops before an image once
        ``out`` holds that many changes: returns (images done, next ``idx``), to go on
        from there (a transaction too large for one batch); ``None`` once done."""
        fileno = file_number(tx.file)
        committed = float(tx.timestamp)
        done = skip
        for img in tx.images(skip):
            if split_at is not None and len(out) >= split_at:
                return done, idx
            done += 1
            tm = img.table
            if tm.row_end is not None:  # a system-versioned table: its history rows too
                current = current_rows(img, tm.row_end)
                if current is None:
                    continue
                img = current
            fks = cascades.by_parent.get(tm.table)
            if fks:  # before the row's own changes: the server acted on its children first
                # (the engine places each change made of it right after this position)
                events.extend(self._cascaded(fks, img, (fileno, tx.end_pos, idx - 1),
                                             committed, cascades))
            bound = by_table.get(tm.table, ())
            known = self._shapes.get(tm.table)
            if known != tm.names:
                if known is not None and (set(known) != set(tm.names)):
                    for b in bound:
                        events.append(self._schema_changed(b, tm, known, (fileno, tx.end_pos,
                                                                          idx)))
                self._shapes[tm.table] = tm.names
            for b in bound:
                plan = self._projection(b, tm)
                before = _project(plan, img.before)
                after = _project(plan, img.after)
                width = len(tm.names) if plan is None else len(plan)
                if before is not None and len(before) != width:
                    raise self._partial(b, tm, tx, before, plan)
                if after is not None and len(after) != width:
                    raise self._partial(b, tm, tx, after, plan)
                for op, key, bef, aft in _ops(b, img.kind, before, after):
                    out.append(Change(
                        entity=b.entity, key=key, op=op, before=bef, after=aft,
                        source=self.name, position=(fileno, tx.end_pos, idx),
                        committed_at=committed, txid=tx.gtid,
                        row_version=row_hash(aft) if aft is not None else None,
                    ))
                    idx += 1
        for st in tx.statements:
            for verb, db, table in tables_written(st.query, st.schema or self.database):
                if db == self.database and table in by_table:
                    raise self._statement_logged(by_table[table][0], verb, table, tx)
            for kind, db, table in tables_touched(st.query, st.schema or self.database):
                if db != self.database:
                    continue
                self.schemas.forget(table)
                self._cascades = None  # foreign keys may have come or gone
                if self._reader is not None:
                    self._reader.tables.forget(db, table)
                if kind == "alter":
                    continue  # reported by the rows decoded with the new columns
                pos = (fileno, tx.end_pos, idx)
                for b in by_table.get(table, ()):
                    if kind == "truncate":
                        events.append(Truncated(b.entity, self.name, table, pos, committed))
                    else:
                        events.append(TableDdl(b.entity, self.name, table, kind, st.query, pos,
                                               committed))
                idx += 1
        return None

    def _partial(self, b: Binding, tm: Any, tx: Transaction, image: dict[str, Any],
                 plan: Projection) -> SchemaError:
        """A row image without every column: written under ``binlog_row_image`` MINIMAL
        or NOBLOB (a session may set it, and a server's setting may change after setup).
        Its unlogged columns are unknown: applied, they would be left out or lost, and
        the row's version (a hash of every column) would be wrong. Until 2026-12-07 the
        run stopped with ``KeyError: 'id'``, naming nothing."""
        wanted = list(tm.names) if plan is None else [ent for _, ent in plan]
        missing = [n for n in wanted if n not in image]
        return SchemaError(
            f"endpoint {self.name}: transaction {tx.gtid} logged rows of {tm.table} without"
            f" column(s) {', '.join(missing) or '?'} (binlog_row_image = MINIMAL or NOBLOB,"
            " in the server or in the session that wrote it): cdcsync needs every column."
            " Set binlog_row_image = FULL on the server and in the writers' sessions; the"
            " transactions already logged so cannot be read, so then run `cdcsync resync"
            f" PIPELINE {b.entity} --reset-stream`")

    def _statement_logged(self, b: Binding, verb: str, table: str,
                          tx: Transaction) -> SchemaError:
        """A statement writing a bound table logged as such, not as rows: what it changed
        is in no event. Until 2026-12-07 it was passed by (a DDL is logged so too), and
        its changes never reached the targets. (Its text, which holds values, is left
        out of the message.)"""
        return SchemaError(
            f"endpoint {self.name}: transaction {tx.gtid} logged a statement ({verb}) that"
            f" may write {table}, not the rows it wrote (binlog_format = STATEMENT or MIXED"
            " in the session that ran it, or a table system-versioned by transaction id,"
            " whose writes MariaDB logs as statements): cdcsync reads rows only. Keep"
            " binlog_format = ROW in the writers' sessions (version such a table by"
            " TIMESTAMP(6) period columns); the changes already logged so cannot be read,"
            f" so then run `cdcsync resync PIPELINE {b.entity} --reset-stream`")

    def _cascaded(self, fks: Sequence[tuple[ForeignKey, tuple[CascadeRule, ...]]], img: Any,
                  position: tuple[int, int, int], committed: float,
                  cascades: Cascades) -> list[Cascaded]:
        """The unlogged actions of ``fks`` on a referenced row's delete or update."""
        out: list[Cascaded] = []
        for fk, rules in fks:
            if img.kind == 2 and fk.on_delete and img.before is not None:
                old, new = _values(img.before, fk.referenced), None
            elif img.kind == 1 and fk.on_update and img.before is not None \
                    and img.after is not None:
                old, new = _values(img.before, fk.referenced), _values(img.after, fk.referenced)
                if old == new:
                    continue
            else:
                continue
            if old is None:
                continue  # a NULL referenced value: no row references it
            out.extend(Cascaded(self.name, rule, old, new, position, committed, cascades.graph)
                       for rule in rules)
        return out

    def _schema_changed(self, b: Binding, tm: Any, known: tuple[str, ...],
                        position: tuple[int, int, int]) -> SchemaChanged:
        infos = dict(zip(tm.names, tm.columns, strict=True))
        added = tuple(Column(n, infos[n].logical, infos[n].column_type, infos[n].nullable)
                      for n in tm.names if n not in known and not infos[n].generated)
        return SchemaChanged(entity=b.entity, endpoint=self.name, table=tm.table,
                             position=position, added=added,
                             dropped=tuple(n for n in known if n not in tm.names),
                             columns=tm.names)

    def _projection(self, b: Binding, tm: Any) -> Projection:
        """Which endpoint columns of a table map go to which entity columns (``None``:
        all, unrenamed; generated columns never). Computed once per binding and
        table-map version."""
        names: tuple[str, ...] = tm.names
        key = (id(b), names)
        cached = self._plans.get(key)
        if cached is not None and cached[1] is b:
            return cached[0]
        if len(self._plans) > 1024:
            self._plans.clear()
        plan: Projection = None
        generated = {n for n, c in zip(names, tm.columns, strict=True) if c.generated}
        if b.columns or b.only is not None or b.exclude or generated:
            rev = b.entity_names
            plan = tuple((n, rev.get(n, n)) for n in names
                         if n not in generated and b.synced(rev.get(n, n)))
        self._plans[key] = (plan, b)  # the binding is kept so that its id stays its own
        return plan

    def confirm(self, checkpoint: Checkpoint) -> None:
        """Nothing to release: the server keeps binlogs by ``binlog_expire_logs_seconds``."""




def _values(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...] | None:
    """``row``'s values of ``columns``; None where one is NULL or not in the image."""
    out = tuple(row.get(c) for c in columns)
    return None if any(v is None for v in out) else out


def _project(plan: Projection, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None or plan is None:
        return row
    return {ent: row[col] for col, ent in plan if col in row}


def _ops(b: Binding, kind: int, before: dict[str, Any] | None, after: dict[str, Any] | None
         ) -> list[tuple[Op, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]]:
    if kind == 0 and after is not None:
        return [(Op.INSERT, b.key_of(after), None, after)]
    if kind == 2 and before is not None:
        return [(Op.DELETE, b.key_of(before), before, None)]
    if before is None or after is None or before == after:
        return []  # nothing the entity synchronises changed
    old_key, new_key = b.key_of(before), b.key_of(after)
    if old_key != new_key:  # the primary key moved: the old row is gone, a new one is there
        return [(Op.DELETE, old_key, before, None), (Op.INSERT, new_key, None, after)]
    return [(Op.UPDATE, new_key, before, after)]
