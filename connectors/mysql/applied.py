"""The MySQL/MariaDB sink's record of its own writes: ``cdcsync_applied``.

A row version here is a hash of the row's synchronised content, so a row that
moved since the version an apply expects could hold a user's edit or another
write of the service's own whose result was lost with a daemon worker. Only
the second allows the apply at once (``ApplyStatus.STALE``); the first must
wait for the edit to come from the binlog (``SKIPPED``). To tell them apart,
every batch records, per key it wrote, the row version its write produced
(``NULL`` for a delete), in the same transaction as the writes, so the record
and the rows cannot disagree. The sink's session is tagged (``skip_replication``,
or the marker table in the same transaction), so these writes never come back
as changes, and no bound table is touched by them.

One row per (writer, table, key), a writer being one pipeline's sink at one
endpoint: the key is stored as a 16-byte digest of its
canonical text (:func:`conflict.canonical.key_text`), since key text has no
length limit and an index does. Rows of keys we wrote are as many as the keys
(an index's worth); rows of keys we deleted (``version`` NULL) would grow
without bound on a table whose rows come and go, so they are pruned once
older than :data:`RETENTION_DAYS` (``at``: when we last wrote the key). A
record is needed only while the result of our last write to the key may be
lost, which is minutes (until the outbox is replayed), not days; a daemon down
for longer than the retention may then find a delete of ours SKIPPED rather
than STALE (the key's apply waits for its next edit; PostgreSQL's record keeps
the same retention). A table made before ``at`` existed works as before, without
pruning, until ``cdcsync setup`` adds the column. ``cdcsync teardown`` deletes
its pipeline's rows, and drops the table once no other pipeline has rows in it
(pipelines may share a database, each with its own tables).

Content can repeat (ABA): a user who writes back exactly the content of our
last write after editing it in between looks like our write, and the newer
apply overwrites that edit; the edit still arrives from the binlog as a change.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connectors.mysql.literals import Literals
from connectors.mysql.session import quote_ident, quote_table

APPLIED_TABLE = "cdcsync_applied"
_CHUNK = 1000  # keys per IN list
RETENTION_DAYS = 7
PRUNE_LIMIT = 10_000  # rows per DELETE: short transactions, short locks
_AT = "`at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"


class Record(enum.Enum):
    """What this database's record table allows."""

    MISSING = "missing"  # set up before it existed: nothing recorded
    UNSTAMPED = "unstamped"  # set up before ``at`` existed: recorded, never pruned
    STAMPED = "stamped"


def create_sql(database: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {quote_table(database, APPLIED_TABLE)} ("
            "`writer` VARCHAR(190) NOT NULL,"
            " `tbl` VARCHAR(64) NOT NULL,"
            " `key_digest` BINARY(16) NOT NULL,"
            " `version` VARCHAR(64) NULL,"  # NULL: our last write deleted the row
            f" {_AT},"
            " PRIMARY KEY (`writer`, `tbl`, `key_digest`)"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def upgrade_sql(database: str) -> str:
    """Adds ``at`` to a table made before it existed (its rows count from now)."""
    return f"ALTER TABLE {quote_table(database, APPLIED_TABLE)} ADD COLUMN {_AT}"


def writer_id(pipeline: str, endpoint: str) -> str:
    """Whose rows these are: one pipeline's sink at one endpoint (several pipelines
    may write one database, each to its own tables)."""
    return f"{pipeline}/{endpoint}"[:190]


_REGISTERED = ("", bytes(16), "")  # (tbl, key_digest, version) of a writer's own row


def register(cur: Any, database: str, writer: str) -> None:
    """A row that says ``writer`` uses the record (made at setup, before it writes a
    key): another pipeline's teardown keeps the table for it. Never read as a key's
    record (``tbl`` is empty) and never pruned (``version`` is not NULL)."""
    cur.execute(f"INSERT IGNORE INTO {quote_table(database, APPLIED_TABLE)}"
                " (`writer`, `tbl`, `key_digest`, `version`) VALUES (%s, %s, %s, %s)",
                (writer, *_REGISTERED))


def forget_rows(cur: Any, database: str, table: str,
                owner: Mapping[str, str]) -> tuple[int, bool]:
    """Delete ``owner``'s rows (column -> value) of a table pipelines share (the record,
    the marker, the pipelines' tables); drop the table once no other owner has rows in
    it. Returns (rows deleted, dropped)."""
    name = quote_table(database, table)
    cur.execute("SELECT 1 FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, table))
    if cur.fetchone() is None:
        return 0, False
    where = " AND ".join(f"{quote_ident(c)} = %s" for c in owner)
    cur.execute(f"DELETE FROM {name} WHERE {where}", tuple(owner.values()))
    deleted = int(cur.rowcount)
    cur.execute(f"SELECT 1 FROM {name} LIMIT 1")
    if cur.fetchone() is not None:
        return deleted, False
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    return deleted, True


def key_digest(key_text: str) -> bytes:
    return hashlib.blake2b(key_text.encode("utf-8"), digest_size=16).digest()


def state(cur: Any, database: str) -> Record:
    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, APPLIED_TABLE))
    columns = {str(name).lower() for (name,) in cur.fetchall()}
    if not columns:
        return Record.MISSING
    return Record.STAMPED if "at" in columns else Record.UNSTAMPED


def record(cur: Any, database: str, writer: str, table: str,
           written: Iterable[tuple[str, str | None]], *, stamped: bool = True) -> None:
    """Upsert ``(key text, version after our write)`` for the keys a batch wrote, as
    multi-row statements, in digest order so that concurrent batches take the
    record's row locks in one order."""
    rows = sorted((writer, table, key_digest(kt), version) for kt, version in written)
    if not rows:
        return
    Literals(cur.connection).execute_many(
        cur,
        f"INSERT INTO {quote_table(database, APPLIED_TABLE)}"
        " (`writer`, `tbl`, `key_digest`, `version`)",
        rows,
        " ON DUPLICATE KEY UPDATE `version` = VALUES(`version`)"
        + (", `at` = CURRENT_TIMESTAMP" if stamped else ""),
    )


def prune(cur: Any, database: str, writer: str, *, days: int = RETENTION_DAYS) -> int:
    """Forget this writer's deletes older than ``days``, up to PRUNE_LIMIT of them;
    how many were forgotten."""
    cur.execute(
        f"DELETE FROM {quote_table(database, APPLIED_TABLE)} WHERE `writer` = %s"
        " AND `version` IS NULL AND `at` < NOW() - INTERVAL %s DAY LIMIT %s",
        (writer, int(days), PRUNE_LIMIT),
    )
    return int(cur.rowcount)


def recorded(cur: Any, database: str, writer: str, table: str,
             key_texts: Sequence[str]) -> dict[str, str | None]:
    """The version our last write produced, by key text, for the keys we ever wrote
    (``None``: we deleted the row); keys never written by us are left out."""
    by_digest = {key_digest(kt): kt for kt in key_texts}
    digests = list(by_digest)
    lit = Literals(cur.connection)
    out: dict[str, str | None] = {}
    for i in range(0, len(digests), _CHUNK):
        part = digests[i : i + _CHUNK]
        cur.execute(
            f"SELECT `key_digest`, `version` FROM {quote_table(database, APPLIED_TABLE)}"
            f" WHERE `writer` = {lit.value(writer)} AND `tbl` = {lit.value(table)}"
            f" AND {lit.in_list(['`key_digest`'], [(d,) for d in part])}")
        for digest, version in cur.fetchall():
            kt = by_digest.get(bytes(digest))
            if kt is not None:
                out[kt] = None if version is None else str(version)
    return out
