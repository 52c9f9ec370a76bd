"""An exported snapshot: a snapshot that sees exactly what precedes a log position.

``CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')``
on a replication connection returns the slot's *consistent point* ``C`` and
the name of a snapshot that sees every transaction whose commit record starts
before ``C`` and none after it. Reading the initial snapshot in that snapshot
(``SET TRANSACTION SNAPSHOT``) and then the changes of the pipeline's own slot
from ``C`` on (transactions committed before ``C`` are skipped, by the same
rule logical decoding itself uses) gives each change exactly once: in the
snapshot or in the stream, never both. This is how PostgreSQL's own
subscriptions copy a table before streaming it.

The temporary slot exists only to make that snapshot; it holds nothing once
the replication connection closes, which :meth:`ExportedSnapshot.close` does
(the exported snapshot stays valid until then: chunks read in separate
transactions all see the same data). Making it waits until the transactions
running at that moment end, as creating any slot does.
"""

from __future__ import annotations

import itertools
import os

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from connectors.base import RetriableError
from connectors.postgres.connect import PgConnection, describe
from connectors.postgres.names import bounded
from connectors.postgres.pgoutput import parse_lsn

_counter = itertools.count(1)


class ExportedSnapshot:
    """A snapshot name and the log position it precedes, kept valid while open."""

    def __init__(self, info: str, slot: str) -> None:
        self.slot = bounded(f"{slot}_snap_{os.getpid()}_{next(_counter)}")
        rinfo = make_conninfo(info, replication="database")
        try:
            self.conn: PgConnection = psycopg.connect(rinfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise RetriableError(
                f"cannot open a replication connection to {describe(rinfo)}: {exc}") from exc
        try:
            row = self.conn.execute(
                sql.SQL("CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput"
                        " (SNAPSHOT 'export')").format(sql.Identifier(self.slot))
            ).fetchone()
        except BaseException:
            self.conn.close()
            raise
        assert row is not None
        self.lsn = parse_lsn(str(row[1]))
        self.name = str(row[2])

    @property
    def usable(self) -> bool:
        return not self.conn.closed and not self.conn.broken

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()  # drops the temporary slot
