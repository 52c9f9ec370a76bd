"""Reading the ROW binlog as whole committed transactions.

Why not ``BinLogStreamReader.fetchone()``: measured here on single-row
transactions of an 8-column table, the stock reader decodes ~2.6k changes/s,
60% of it re-parsing the table-map event that precedes every transaction and
20% in its per-value type dispatch (``bench/mysql_read.py`` prints both
readers side by side). This module keeps ``mysql-replication`` for what it is
good at (parsing table maps with their optional metadata, the binary JSON of
MySQL, the MySQL GTID set encoding) and does the rest itself: it sends the
binlog dump request on a pymysql connection, reads raw event packets, caches
table maps (:mod:`connectors.mysql.tablemap`), and decodes rows only for the
tables it was asked for and only outside the service's own transactions.

Guarantees the source builds on:

* **Commit order, whole transactions.** Row images are buffered from the GTID
  event to the commit (XID event, or a ``COMMIT`` query for non-transactional
  tables; a DDL is its own group) and handed out only then.
* **No replay after a reconnect.** The GTID state is advanced at every commit
  handed out, and a lost connection (2006/2013, a socket error, the read
  timeout) reconnects with that state as ``@slave_connect_state`` and drops
  the half-read transaction. (``BinLogStreamReader`` reconnects from the
  *original* ``auto_position`` unless the caller updates it: duplicates.)
* **Echo by identity.** MariaDB flags every event written by a session with
  ``skip_replication=1`` (header flag ``LOG_EVENT_SKIP_REPLICATION_F``,
  0x8000); those transactions are returned with ``own=True`` and no rows. On
  MySQL, which has no such flag, a transaction that writes the marker table
  is the service's own.
* **XA transactions** (MariaDB) are logged in two groups: the rows, ended by
  ``XA PREPARE``, and later, after any number of other transactions, an
  ``XA COMMIT`` or ``XA ROLLBACK`` group of their own. The rows are kept at the
  prepare and handed out with the commit group, at its position (the prepared
  transaction holds its rows' locks until then, so no other change of those
  rows comes between); a rollback drops them. Until 2026-12-07 they were handed
  out at the prepare: a rolled-back transaction's rows reached every target.
  While one is prepared and not yet decided, :attr:`held` is the position just
  before its prepare, for the checkpoint (source.py): a reader started again
  from there reads the prepare again, and the transactions after it again
  (duplicates, skipped by position).
* **Heartbeats.** ``@master_heartbeat_period`` makes an idle server send a
  heartbeat, which tells a batch reader it has caught up and keeps the
  connection alive; the read timeout is a few heartbeats.
* **Streaming.** Once the dump command is sent, the connection carries nothing
  but event packets, which this module reads straight from the socket through
  a buffer of its own (:class:`_Wire`): so a streaming read can tell "a packet
  is here" from "nothing yet" and wait for the next transaction only as long as
  its caller allows (``next(until=...)``), where pymysql's reader would hide
  packets it has already buffered. The daemon waits on the socket this way
  instead of asking the server where its binlog ends on every poll.
"""

from __future__ import annotations

import itertools
import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pymysql
from pymysql.constants import COMMAND

from connectors.base import ConnectorError, RefusedError, RetriableError
from connectors.mysql.gtid import GtidState, format_state, parse_state
from connectors.mysql.schema import TableInfo
from connectors.mysql.session import (
    REFUSED,
    close_quietly,
    error_code,
    is_connection_lost,
    open_connection,
)
from connectors.mysql.tablemap import TableMap, TableMapCache, table_names
from connectors.sockwait import wait_socket

log = logging.getLogger("cdcsync.mysql.binlog")

# Event types (MySQL's log_event.h and MariaDB's additions).
QUERY, ROTATE, FORMAT_DESCRIPTION, XID, TABLE_MAP, HEARTBEAT = 2, 4, 15, 16, 19, 27
WRITE_V1, UPDATE_V1, DELETE_V1 = 23, 24, 25
WRITE_V2, UPDATE_V2, DELETE_V2 = 30, 31, 32
MYSQL_GTID, XA_PREPARE = 33, 38
MARIADB_GTID, MARIADB_START_ENCRYPTION = 162, 164
MARIADB_COMPRESSED = frozenset({165, 166, 167, 168, 169, 170, 171, 172})
ROWS_KIND = {WRITE_V1: 0, WRITE_V2: 0, UPDATE_V1: 1, UPDATE_V2: 1, DELETE_V1: 2, DELETE_V2: 2}

SKIP_REPLICATION_FLAG = 0x8000  # LOG_EVENT_SKIP_REPLICATION_F
FL_STANDALONE = 0x01  # MariaDB GTID event: a group without BEGIN/COMMIT (DDL)

_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event_size, log_pos, flags
_DEFAULT_POST_HEADER = {QUERY: 13, TABLE_MAP: 8, WRITE_V1: 8, UPDATE_V1: 8, DELETE_V1: 8,
                        WRITE_V2: 10, UPDATE_V2: 10, DELETE_V2: 10}
COM_BINLOG_DUMP_GTID = 0x1E


def file_number(name: str) -> int:
    """``mysql-bin.000042`` -> 42."""
    try:
        return int(name.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0


@dataclass(slots=True)
class RowImage:
    table: TableMap
    kind: int  # 0 insert, 1 update, 2 delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(slots=True)
class Statement:
    """A statement logged as such (DDL, TRUNCATE): the default database and its text."""

    schema: str
    query: str


@dataclass(slots=True)
class Transaction:
    gtid: str
    file: str
    end_pos: int  # end of the commit event in ``file``
    timestamp: int  # of the commit event, seconds since the epoch
    #: Its rows events as read (table map, kind, event body, offset of the rows), decoded
    #: by :meth:`images` as they are used: a transaction of millions of rows is held as
    #: its binlog bytes, not as millions of dicts (2 GB for 300k updated rows).
    raw: list[tuple[TableMap, int, bytes, int]] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    own: bool = False  # written by the service's own sink: drop it (echo)
    xa: str = ""  # the XA transaction's id, as its XA statements spell it

    #: how many row images each of ``raw``'s events holds, as far as decoded: a
    #: transaction handed out in parts skips the events of the parts before unread
    counts: list[int] = field(default_factory=list)

    def images(self, skip: int = 0) -> Iterator[RowImage]:
        """The row images in log order, decoded now, after the first ``skip``.

        An event whose images are all skipped is decoded only if never decoded before
        (until 2026-12-07 every part decoded all the parts before it again: a 300k-row
        UPDATE handed out in 15 parts decoded 2.4M images, 56 s of a run that reads
        and applies it in 12)."""
        counts = self.counts
        for i, (tm, kind, body, off) in enumerate(self.raw):
            if i < len(counts) and skip >= counts[i]:
                skip -= counts[i]
                continue
            pairs = tm.decode(kind, body, off, len(body))
            if i == len(counts):
                counts.append(len(pairs))
            for before, after in itertools.islice(pairs, skip, None):
                yield RowImage(tm, kind, before, after)
            skip = max(0, skip - len(pairs))

    @property
    def rows(self) -> list[RowImage]:
        return list(self.images())

    @property
    def position(self) -> tuple[int, int]:
        return file_number(self.file), self.end_pos


@dataclass(slots=True)
class Prepared:
    """An XA transaction prepared and not decided yet, and where reading stood before it."""

    tx: Transaction
    state: GtidState
    file: str
    pos: int


_XA = ("XA START ", "XA END ", "XA PREPARE ", "XA COMMIT ", "XA ROLLBACK ")


class PurgedBinlogError(ConnectorError):
    """The server no longer has the binlog the checkpoint points into (error 1236)."""


class _Wire:
    """Event packets read straight from the binlog connection's socket.

    After ``COM_BINLOG_DUMP`` the server only sends: each packet is a 4-byte
    header (payload length, sequence number) and a payload that begins with
    0x00 (an event), 0xFF (an error) or 0xFE (the end of the stream); a payload
    of 2^24-1 bytes continues in the next packet. The buffer is ours, so
    :meth:`ready` knows whether a packet is already here.
    """

    def __init__(self, sock: Any, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.sock.settimeout(timeout)  # pymysql leaves the write timeout (often none) set
        self.buf = bytearray()
        self.seq = 1  # the dump command was packet 0
        self.heard = time.monotonic()  # when the server last sent anything

    def ready(self, timeout: float) -> bool:
        """Whether a packet has begun to arrive, waiting up to ``timeout`` seconds.

        Raises:
            TimeoutError: nothing came for longer than the read timeout, although an
                idle server sends a heartbeat every few seconds at most: the
                connection is dead (a server gone without closing it), as a
                blocking read would have found.
        """
        if self.buf:
            return True
        pending = getattr(self.sock, "pending", None)  # TLS: bytes decrypted already
        if pending is not None and pending():
            return True
        if wait_socket(self.sock, timeout):  # poll(): any descriptor number
            return True
        if time.monotonic() - self.heard > self.timeout:
            raise TimeoutError(f"nothing from the server in {self.timeout:.0f} s")
        return False

    def packet(self) -> bytes:
        """The next payload (an event, its leading 0x00 included).

        Raises:
            pymysql.err.MySQLError: the server sent an error (1236: a purged binlog),
                or ended the stream (2013).
            OSError: the connection broke or the read timed out.
        """
        parts: list[bytes] = []
        while True:
            header = self._take(4)
            size = header[0] | header[1] << 8 | header[2] << 16
            if header[3] != self.seq:
                # MariaDB shutting down sends an error numbered 0 (as pymysql treats it)
                raise pymysql.err.OperationalError(
                    2013, f"lost the binlog stream (packet {header[3]}, expected {self.seq})")
            self.seq = (self.seq + 1) % 256
            parts.append(self._take(size))
            if size < 0xFFFFFF:
                break
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if data[:1] == b"\xff":
            pymysql.err.raise_mysql_exception(data)
        if data[:1] == b"\xfe" and len(data) < 9:
            raise pymysql.err.OperationalError(2013, "the server ended the binlog stream")
        return data

    def _take(self, n: int) -> bytes:
        buf = self.buf
        while len(buf) < n:
            chunk = self.sock.recv(max(n - len(buf), 1 << 16))
            if not chunk:
                raise ConnectionResetError("the server closed the binlog connection")
            self.heard = time.monotonic()
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out


class BinlogReader:
    """One replica connection reading transactions after a GTID state."""

    def __init__(
        self,
        settings: Any,
        *,
        server_id: int,
        describe: Callable[[str, str], TableInfo | None],
        heartbeat: float = 1.0,
        marker_table: tuple[str, str] | None = None,
        max_reconnects: int = 5,
        read_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self.server_id = server_id
        self.flavor = str(getattr(settings, "flavor", "mariadb") or "mariadb")
        self.heartbeat = heartbeat
        self.read_timeout = read_timeout or max(10.0, heartbeat * 5)
        self.marker_table = marker_table
        self.max_reconnects = max_reconnects
        self.tables = TableMapCache(dbms="mariadb" if self.flavor == "mariadb" else "mysql",
                                    describe=describe)
        self.wanted: frozenset[tuple[str, str]] = frozenset()
        self.state: GtidState = {}
        self.file = ""
        self.pos = 0
        self.reconnects = 0  # connections lost and re-established (for tests and logs)
        self.started = False
        self.mysql_gtid_set = ""
        self._conn: Any = None
        self._wire: _Wire | None = None
        self._checksum = 4
        self._post_header: Any = None
        self._post_header_len = dict(_DEFAULT_POST_HEADER)
        self._cur_file = ""
        self._attempts = 0
        #: XA transactions prepared and not yet committed or rolled back, by id, in log order.
        self.prepared: dict[str, Prepared] = {}

    # --- connection ---------------------------------------------------------------

    @property
    def held(self) -> Prepared | None:
        """The oldest XA transaction prepared and undecided: a checkpoint must not pass
        its prepare (its rows come with its commit, which a reader started after the
        prepare would not know)."""
        return next(iter(self.prepared.values()), None)

    @property
    def gtid(self) -> str:
        """The GTID state after the last transaction handed out (MySQL: a GTID set)."""
        return format_state(self.state) if self.flavor == "mariadb" else self.mysql_gtid_set

    def start(self, gtid: str, file: str = "", pos: int = 0) -> None:
        """Read from just after ``gtid`` (``file``/``pos`` only label where that is)."""
        self.close()
        self.started = True
        self.prepared = {}
        if self.flavor == "mariadb":
            self.state = parse_state(gtid)
        else:
            self.mysql_gtid_set = gtid
        self.file, self.pos = file, pos

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None
        self._wire = None

    def _connect(self) -> None:
        conn = open_connection(self.settings, database=False, autocommit=True,
                               read_timeout=self.read_timeout)
        try:
            with conn.cursor() as cur:
                cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
                cur.execute("SELECT @@global.binlog_checksum")
                row = cur.fetchone()
                self._checksum = 0 if row is None or str(row[0]).upper() == "NONE" else 4
                cur.execute("SET @mariadb_slave_capability = 4")
                cur.execute("SET @master_heartbeat_period = %s", (int(self.heartbeat * 1e9),))
                if self.flavor == "mariadb":
                    cur.execute("SET @slave_connect_state = %s", (self.gtid,))
                    cur.execute("SET @slave_gtid_strict_mode = 1")
                    cur.execute("SET @slave_gtid_ignore_duplicates = 0")
            if self.flavor == "mariadb":
                # COM_BINLOG_DUMP: position 4, flags 0 (blocking), our server_id, no
                # file name: the server finds the place from @slave_connect_state.
                conn._execute_command(COMMAND.COM_BINLOG_DUMP,
                                      struct.pack("<IHI", 4, 0, self.server_id))
            else:
                conn._execute_command(COM_BINLOG_DUMP_GTID, self._mysql_dump_payload())
            wire = _Wire(conn._sock, self.read_timeout)
        except BaseException:
            conn.close()
            raise
        self._conn, self._wire = conn, wire
        self._cur_file = self.file

    def _mysql_dump_payload(self) -> bytes:
        """COM_BINLOG_DUMP_GTID for MySQL (flag BINLOG_THROUGH_GTID); untested here."""
        from pymysqlreplication.gtid import GtidSet

        gtid_set = GtidSet(self.mysql_gtid_set or None)
        data: bytes = gtid_set.encoded()
        return (struct.pack("<HII", 0x04, self.server_id, 0) + struct.pack("<Q", 4)
                + struct.pack("<I", len(data)) + data)

    def _packet(self) -> bytes:
        """The next event packet, reconnecting after a lost connection."""
        try:
            if self._wire is None:
                self._connect()
            assert self._wire is not None
            data = self._wire.packet()
        except (pymysql.err.MySQLError, OSError) as exc:
            self._lost(exc)
        return data

    def _quiet(self, until: float) -> bool:
        """Nothing arrives by ``until`` (a ``time.monotonic()`` deadline)?"""
        assert self._wire is not None
        try:
            return not self._wire.ready(until - time.monotonic())
        except OSError as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> NoReturn:
        """After a failed read: reconnect (raising _Reconnected), or raise what to report."""
        self.close()
        if error_code(exc) == 1236:
            raise PurgedBinlogError(str(exc.args[1] if len(exc.args) > 1 else exc)) from exc
        if error_code(exc) in REFUSED:  # (re)connecting: the account changed under us
            raise RefusedError(f"binlog connection refused: {exc}") from exc
        if not is_connection_lost(exc):
            raise ConnectorError(f"binlog stream failed: {exc}") from exc
        if self._attempts >= self.max_reconnects:
            self._attempts = 0
            raise RetriableError(f"binlog connection lost: {exc}") from exc
        self._attempts += 1
        self.reconnects += 1
        log.warning("binlog connection lost (%s); reconnecting after %s (%d/%d)",
                    exc, self.gtid or "the start", self._attempts, self.max_reconnects)
        time.sleep(min(2.0, 0.1 * 2**self._attempts))
        raise _Reconnected() from exc

    # --- events -------------------------------------------------------------------

    def next(self, stop: tuple[int, int] | None = None, *,
             until: float | None = None) -> Transaction | None:
        """The next committed transaction, or ``None`` once caught up.

        "Caught up" is: between transactions and at or past ``stop`` (a binlog
        position), or a heartbeat arrived (the server had nothing more to send),
        or, with ``until`` (a ``time.monotonic()`` deadline), no next event
        arrived by then. A transaction already begun is always read to its end.
        """
        while True:
            try:
                return self._next(stop, until)
            except _Reconnected:
                continue  # the half-read transaction is dropped; resume after self.state

    def _next(self, stop: tuple[int, int] | None, until: float | None) -> Transaction | None:
        tx: Transaction | None = None
        standalone = False
        gtid_key: tuple[int, int, int] | None = None
        header = _HEADER.unpack_from
        rows_kind = ROWS_KIND
        while True:
            if until is not None and tx is None and self._wire is not None and self._quiet(until):
                return None
            data = self._packet()
            ts, etype, server_id, _size, log_pos, flags = header(data, 1)
            body = data[20 : len(data) - self._checksum] if self._checksum else data[20:]
            if etype == TABLE_MAP:
                if tx is not None and not tx.own:
                    self._table_map(data, body)
                continue
            kind = rows_kind.get(etype)
            if kind is not None:
                if tx is not None and not tx.own:
                    if flags & SKIP_REPLICATION_FLAG:
                        tx.own = True
                        tx.raw.clear()
                    else:
                        self._rows(tx, etype, kind, body)
                continue
            if etype == MARIADB_GTID:
                seq, domain, gflags = struct.unpack_from("<QIB", body, 0)
                gtid_key = (domain, server_id, seq)
                standalone = bool(gflags & FL_STANDALONE)
                tx = Transaction(f"{domain}-{server_id}-{seq}", self._cur_file, 0, ts,
                                 own=bool(flags & SKIP_REPLICATION_FLAG))
                continue
            if etype == XID:
                if tx is not None:
                    return self._commit(tx, gtid_key, log_pos, ts)
                continue
            if etype == QUERY:
                statement = self._query(body)
                q = statement.query.strip().upper()
                if tx is None:
                    if q == "BEGIN":  # a server without GTID events (MySQL flavour)
                        tx = Transaction("", self._cur_file, 0, ts)
                    continue
                if q in ("COMMIT", "ROLLBACK"):
                    return self._commit(tx, gtid_key, log_pos, ts)
                if q.startswith(_XA):
                    self._xa(tx, q)
                elif q != "BEGIN":
                    tx.statements.append(statement)
                if standalone:
                    return self._commit(tx, gtid_key, log_pos, ts)
                continue
            if etype == ROTATE:
                self._cur_file = body[8:].decode()
                if not self.file:
                    self.file = self._cur_file
                continue
            if etype == FORMAT_DESCRIPTION:
                self._format_description(body)
            elif etype == HEARTBEAT:
                if tx is None:
                    return None
                continue
            elif etype == MYSQL_GTID:
                tx = Transaction(self._mysql_gtid(body), self._cur_file, 0, ts,
                                 own=bool(flags & SKIP_REPLICATION_FLAG))
                continue
            elif etype == MARIADB_START_ENCRYPTION:
                raise ConnectorError("encrypted binlogs are not supported")
            elif etype in MARIADB_COMPRESSED:
                raise ConnectorError(
                    "compressed binlog events are not supported: set log_bin_compress = OFF")
            elif etype == XA_PREPARE and tx is not None:
                if tx.xa and not tx.own:  # its rows come with its XA COMMIT
                    held = Prepared(Transaction(tx.gtid, tx.file, 0, tx.timestamp, tx.raw,
                                                tx.statements, xa=tx.xa),
                                    dict(self.state), self.file, self.pos)
                    self.prepared[tx.xa] = held
                    tx.raw, tx.statements = [], []
                return self._commit(tx, gtid_key, log_pos, ts)
            if (tx is None and stop is not None and log_pos
                    and (file_number(self._cur_file), log_pos) >= stop):
                return None

    @staticmethod
    def xid_text(xid: str) -> str:
        """An XA id as users wrote it (``'abc'``), from the binlog's ``X'616263',X'',1``."""
        parts = xid.split(",")
        try:
            gtrid = bytes.fromhex(parts[0][2:-1]).decode()
            bqual = bytes.fromhex(parts[1][2:-1]).decode() if len(parts) > 1 else ""
        except (ValueError, IndexError):
            return xid
        return f"'{gtrid}'" + (f", '{bqual}'" if bqual else "")

    def _xa(self, tx: Transaction, q: str) -> None:
        """An XA statement of ``tx``: ``XA END`` names a transaction about to be prepared;
        ``XA COMMIT``/``XA ROLLBACK`` (a group of their own) decide a prepared one, whose
        rows then come with this group or not at all."""
        verb, _, xid = q[3:].partition(" ")
        xid = xid.strip()
        if verb in ("START", "END"):
            tx.xa = xid
            return
        if verb == "COMMIT" and xid.endswith(" ONE PHASE"):
            return  # logged as an ordinary transaction
        held = self.prepared.pop(xid, None)
        if verb == "COMMIT" and held is not None:
            tx.raw, tx.statements = held.tx.raw, held.tx.statements
        elif verb == "COMMIT" and not tx.own:
            log.error("XA transaction %s was committed at %s, but its XA PREPARE came before"
                      " this reader's start (a snapshot taken while it was prepared?): its"
                      " changes are not known here; `cdcsync verify` shows them and `cdcsync"
                      " resync` copies them", self.xid_text(xid), tx.gtid)

    def _commit(self, tx: Transaction, gtid_key: tuple[int, int, int] | None, log_pos: int,
                ts: int) -> Transaction:
        if gtid_key is not None:
            domain, server, seq = gtid_key
            self.state[domain] = (server, seq)
        elif ":" in tx.gtid:  # MySQL: add the transaction to the executed set (untested here)
            from pymysqlreplication.gtid import Gtid, GtidSet

            self.mysql_gtid_set = str(GtidSet(self.mysql_gtid_set or None) + Gtid(tx.gtid))
        tx.file, tx.end_pos, tx.timestamp = self._cur_file, log_pos, ts
        self._attempts = 0
        self.file, self.pos = self._cur_file, log_pos
        return tx

    def _table_map(self, packet: bytes, body: bytes) -> None:
        phl = self._post_header_len[TABLE_MAP]
        table_id = int.from_bytes(body[:6] if phl == 8 else body[:4], "little")
        raw = body[6:] if phl == 8 else body[4:]
        current = self.tables.get(table_id)
        if current is not None and current.raw == raw and (
            current.bound or (current.schema, current.table) not in self.wanted
        ):
            return
        schema, table = table_names(body, phl)
        self.tables.on_event(
            table_id, raw, packet, wanted=(schema, table) in self.wanted,
            checksum=bool(self._checksum), post_header_lengths=self._post_header,
            post_header_len=phl,
        )

    def _rows(self, tx: Transaction, etype: int, kind: int, body: bytes) -> None:
        phl = self._post_header_len.get(etype, 8 if etype < WRITE_V2 else 10)
        id_size = 6 if phl in (8, 10) else 4
        table_id = int.from_bytes(body[:id_size], "little")
        tm = self.tables.get(table_id)
        if tm is None:
            return
        if self.marker_table is not None and (tm.schema, tm.table) == self.marker_table:
            tx.own = True
            tx.raw.clear()
            return
        if not tm.bound:
            return
        off = id_size + 2
        if etype >= WRITE_V2:
            extra = int.from_bytes(body[off : off + 2], "little")
            off += extra
        tx.raw.append((tm, kind, body, off))

    def _query(self, body: bytes) -> Statement:
        phl = self._post_header_len[QUERY]
        db_len = body[8]
        status_len = int.from_bytes(body[11:13], "little")
        off = phl + status_len
        schema = body[off : off + db_len].decode("utf-8", "replace")
        query = body[off + db_len + 1 :].decode("utf-8", "replace")
        return Statement(schema, query)

    def _format_description(self, body: bytes) -> None:
        # binlog_version(2) server_version(50) timestamp(4) header_len(1)
        # post_header_len[] checksum_alg(1) [checksum(4), already cut off].
        lengths = body[57:-1]
        self._post_header = bytearray(lengths)
        for etype in _DEFAULT_POST_HEADER:
            if etype - 1 < len(lengths):
                self._post_header_len[etype] = lengths[etype - 1]

    def _mysql_gtid(self, body: bytes) -> str:
        import uuid

        sid = uuid.UUID(bytes=body[1:17])
        gno = struct.unpack_from("<Q", body, 17)[0]
        return f"{sid}:{gno}"


class _Reconnected(Exception):
    """The connection was re-established: start the current transaction over."""
