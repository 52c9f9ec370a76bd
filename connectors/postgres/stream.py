"""The daemon's reader: the slot streamed over the replication protocol.

**Why streaming for the daemon.** A continuous reader that polled the SQL
interface would make the server decode WAL again from the slot's restart
point on every call: measured here at ~0.85 of a core of the source's backend
at 2k changes/s whatever the poll interval, with p99 read latency of 23 ms at
a 10 ms poll. The walsender of a streaming connection decodes each record
once and pushes it: ~0.1 core for the same load, and latency bound by the
network (SERVICES.md). One-shot batch runs keep the SQL interface
(source.py), which needs no long-lived connection.

psycopg 3.3 has no replication API: ``START_REPLICATION`` runs on a
``replication=database`` connection and the CopyBoth stream is read and
written through ``conn.pgconn`` (``get_copy_data``/``put_copy_data``), with
the two frames the protocol defines handled here:

* ``w`` XLogData (header: start LSN, server WAL end, send time) carrying one
  pgoutput message, fed to the same :class:`~.decoding.ChangeDecoder` and
  :class:`~.batch.BatchBuilder` as the SQL reader uses;
* ``k`` primary keepalive (WAL end, send time, reply requested).

Standby status updates (``r``) report as *flushed* only what the engine
confirmed (so the server keeps everything not durably applied), as *written*
what was received; they are sent on every confirm, when the server asks, and
every ``status_interval`` seconds (well within ``wal_sender_timeout``). A
keepalive received between transactions says everything before its WAL end
was sent: an idle stream's checkpoint moves there, so an idle slot does not
hold WAL.

Micro-batching: :meth:`changes` returns as soon as it holds whole
transactions and nothing more is waiting on the socket, or ``limit`` changes,
or after ``wait`` seconds with nothing: low latency at low load, big batches
at high load.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from connectors.base import Binding, ConnectorError, RetriableError
from connectors.postgres.batch import BatchBuilder, same_checkpoint
from connectors.postgres.connect import PgConnection, classified, describe
from connectors.postgres.decoding import ChangeDecoder
from connectors.postgres.names import quote_ident
from connectors.postgres.pgoutput import PG_EPOCH_OFFSET, format_lsn, parse
from connectors.postgres.setup import wait_slot_released
from connectors.postgres.source import PostgresSource
from connectors.sockwait import wait_socket
from sync.change import ChangeBatch, Checkpoint

_XLOG_HEADER = struct.Struct("!QQq")  # after the 'w': start, WAL end, send time
_KEEPALIVE = struct.Struct("!Qq?")  # after the 'k': WAL end, send time, reply requested
_STATUS = struct.Struct("!cQQQq?")  # 'r', written, flushed, applied, client time, reply
#: Seconds between checks that every table read is still published (a table dropped and
#: created again is not); a batch run checks once per catch-up.
PUBLICATION_CHECK = 30.0


def _now_pg() -> int:
    return int((time.time() - PG_EPOCH_OFFSET) * 1_000_000)


class PostgresStream:
    """Streams one endpoint's slot; the Source methods ``changes``/``confirm``/``prune``."""

    def __init__(self, source: PostgresSource, *, wait: float = 0.2,
                 status_interval: float = 10.0) -> None:
        self.source = source
        self.name = source.name
        self.names = source.names
        self.wait = wait
        self.status_interval = status_interval
        self._conn: PgConnection | None = None
        self._decoder: ChangeDecoder | None = None
        self._bindings: tuple[str, ...] = ()
        self._expect: Checkpoint | None = None  # the checkpoint the stream continues from
        self._received = 0
        self._confirmed = 0
        self._idle_end: int | None = None  # a keepalive's WAL end, seen between transactions
        self._last_status = 0.0
        self._start_lsn = 0
        self._resume: Checkpoint | None = None
        self._checked = 0.0  # when the publication was last checked (source.check_published)

    # --- connection -------------------------------------------------------------------

    def _start(self, bindings: Sequence[Binding], after: Checkpoint | None) -> None:
        self.close()
        self._wait_released()
        decoder = self.source.new_decoder(bindings)
        self.source.check_published(decoder)
        self._checked = time.monotonic()
        _, start = self.source.slot_start(after, streaming=True)
        info = make_conninfo(self.source.info, replication="database")
        try:
            conn = psycopg.connect(info, autocommit=True)
        except psycopg.OperationalError as exc:
            raise RetriableError(
                f"cannot open a replication connection to {describe(info)}: {exc}") from exc
        try:
            conn.execute(
                sql.SQL(
                    "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1',"
                    " publication_names {})"
                ).format(
                    sql.Identifier(self.names.slot),
                    sql.SQL(format_lsn(start)),
                    sql.Literal(quote_ident(self.names.publication)),
                )
            )
        except BaseException:
            conn.close()
            raise
        self._conn, self._decoder = conn, decoder
        self._bindings = _key(bindings)
        self._received = self._confirmed = start
        self._idle_end = None
        self._expect = dict(after) if after is not None else {"lsn": start}
        self._start_lsn = start
        self._resume = after

    def _wait_released(self) -> None:
        """Our previous stream's walsender, or a dead daemon's, lets go of the slot a
        moment after the disconnection: wait a little before calling the slot busy."""
        wait_slot_released(self.source.connection(), self.names.slot)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._decoder = None
        if conn is not None and not conn.closed:
            conn.close()

    # --- reading ----------------------------------------------------------------------

    def changes(
        self, bindings: Sequence[Binding], after: Checkpoint | None, limit: int
    ) -> ChangeBatch:
        """The next micro-batch after ``after`` (restarts the stream if ``after`` is not
        where it stands, e.g. after a failed batch)."""
        with classified(f"stream slot {self.names.slot} at {self.name}"):
            if (self._conn is None or self._conn.broken or _key(bindings) != self._bindings
                    or (after is not None and not same_checkpoint(after, self._expect))):
                self._start(bindings, after)
                builder = self._builder(self._resume, self._start_lsn, limit)
            else:
                self._recheck_published()
                builder = self._builder(None, int(self._expect["lsn"]) if self._expect else 0,
                                        limit)
            try:
                with self.source.decodable():
                    caught_up = self._fill(builder)
            except (psycopg.Error, ConnectorError):
                self.close()
                raise
        batch = builder.batch(caught_up)
        assert self._decoder is not None
        self.source.finish(batch, self._decoder, bindings)
        self._expect = batch.checkpoint
        return batch

    def _recheck_published(self) -> None:
        """A table dropped and created again while the stream runs is published no more
        (source.check_published): looked for every ``PUBLICATION_CHECK`` seconds."""
        if time.monotonic() - self._checked >= PUBLICATION_CHECK:
            assert self._decoder is not None
            self.source.check_published(self._decoder)
            self._checked = time.monotonic()

    def _builder(self, after: Checkpoint | None, start: int, limit: int) -> BatchBuilder:
        assert self._decoder is not None
        return BatchBuilder(self._decoder, after, start, limit)

    def _fill(self, builder: BatchBuilder) -> int | None:
        """Read frames into ``builder``; the idle position if the stream went idle."""
        assert self._conn is not None and self._decoder is not None
        pgconn = self._conn.pgconn
        deadline = time.monotonic() + self.wait
        while True:
            frame = self._frame(pgconn, 0.0)
            if frame is None:
                between = self._decoder.begin is None
                if between and (builder.changes or builder.events):
                    return self._idle_end  # whole transactions in hand, nothing more waiting
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._idle_end if between else None
                frame = self._frame(pgconn, min(left, self.status_interval))
                if frame is None:
                    self._maybe_status(pgconn)
                    continue
            kind = frame[0]
            if kind == 0x77:  # 'w'
                start, _end, _ts = _XLOG_HEADER.unpack_from(frame, 1)
                self._received = max(self._received, start)
                self._idle_end = None
                if builder.feed(parse(frame[25:])):
                    return None
            elif kind == 0x6B:  # 'k'
                end, _ts, reply = _KEEPALIVE.unpack_from(frame, 1)
                self._received = max(self._received, end)
                if self._decoder.begin is None:
                    self._idle_end = end
                if reply:
                    self._send_status(pgconn)
            self._maybe_status(pgconn)

    def _ended(self, pgconn: pq.abc.PGconn) -> psycopg.Error:
        """The stream's end, with the server's reason when it gave one: a publication
        missing as of a change is said as such (source.decodable), anything else is
        taken for a stream to open again (retried), as a lost connection is."""
        res = pgconn.get_result()
        if res is not None and res.status == pq.ExecStatus.FATAL_ERROR:
            error = psycopg.errors.error_from_result(res)
            if isinstance(error, psycopg.errors.UndefinedObject) and "publication" in str(error):
                return error
            return psycopg.OperationalError(f"slot {self.names.slot}: {error}")
        return psycopg.OperationalError(
            f"the server ended the replication stream of slot {self.names.slot}")

    def _frame(self, pgconn: pq.abc.PGconn, timeout: float) -> bytes | None:
        """One CopyData frame, or ``None`` if none arrives within ``timeout``."""
        while True:
            n, data = pgconn.get_copy_data(1)
            if n > 0:
                return bytes(data)
            if n == -1:
                raise self._ended(pgconn)
            if n == -2:
                raise psycopg.OperationalError(pgconn.get_error_message() or "copy failed")
            if not wait_socket(pgconn.socket, timeout):
                return None
            pgconn.consume_input()
            timeout = 0

    # --- feedback ---------------------------------------------------------------------

    def _maybe_status(self, pgconn: pq.abc.PGconn) -> None:
        if time.monotonic() - self._last_status >= self.status_interval:
            self._send_status(pgconn)

    def _send_status(self, pgconn: pq.abc.PGconn) -> None:
        msg = _STATUS.pack(b"r", self._received, self._confirmed, self._confirmed, _now_pg(),
                           False)
        while pgconn.put_copy_data(msg) == 0:
            wait_socket(pgconn.socket, 1.0, read=False, write=True)
        while pgconn.flush() == 1:
            wait_socket(pgconn.socket, 1.0, write=True)
            pgconn.consume_input()
        self._last_status = time.monotonic()

    def confirm(self, checkpoint: Checkpoint) -> None:
        """Report ``checkpoint`` as flushed: the server may release the WAL before it."""
        lsn = self.source.confirmable([checkpoint])
        if lsn is not None:
            self._flush_to(lsn)

    def prune(self, checkpoints: Sequence[Checkpoint]) -> None:
        lsn = self.source.confirmable(checkpoints)
        if lsn is not None:
            self._flush_to(lsn)

    def _flush_to(self, lsn: int) -> None:
        if lsn <= self._confirmed:
            return
        self._confirmed = lsn
        if self._conn is not None and not self._conn.broken:
            with classified(f"confirm slot {self.names.slot} at {self.name}"):
                self._send_status(self._conn.pgconn)
        else:
            self.source.advance(lsn)  # no stream open: move the slot directly


def _key(bindings: Sequence[Binding]) -> tuple[str, ...]:
    return tuple(sorted(f"{b.entity}\x00{b.table}" for b in bindings))

