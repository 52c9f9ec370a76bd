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

One row per (writer, table, key): the key is stored as a 16-byte digest of its
canonical text (:func:`conflict.canonical.key_text`), since key text has no
length limit and an index does. Deleted keys keep their row (``version`` NULL)
for as long as the pipeline runs; ``cdcsync teardown`` drops the table.

Content can repeat (ABA): a user who writes back exactly the content of our
last write after editing it in between looks like our write, and the newer
apply overwrites that edit; the edit still arrives from the binlog as a change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.mysql.session import quote_table

APPLIED_TABLE = "cdcsync_applied"
_CHUNK = 1000  # keys per IN list


def create_sql(database: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {quote_table(database, APPLIED_TABLE)} ("
            "`writer` VARCHAR(190) NOT NULL,"
            " `tbl` VARCHAR(64) NOT NULL,"
            " `key_digest` BINARY(16) NOT NULL,"
            " `version` VARCHAR(64) NULL,"  # NULL: our last write deleted the row
            " PRIMARY KEY (`writer`, `tbl`, `key_digest`)"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def drop_sql(database: str) -> str:
    return f"DROP TABLE IF EXISTS {quote_table(database, APPLIED_TABLE)}"


def key_digest(key_text: str) -> bytes:
    return hashlib.blake2b(key_text.encode("utf-8"), digest_size=16).digest()


def exists(cur: Any, database: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, APPLIED_TABLE))
    return cur.fetchone() is not None


def record(cur: Any, database: str, writer: str, table: str,
           written: Iterable[tuple[str, str | None]]) -> None:
    """Upsert ``(key text, version after our write)`` for the keys a batch wrote: one
    ``executemany`` (pymysql sends it as multi-row statements), in digest order so
    that concurrent batches take the record's row locks in one order."""
    params = sorted((writer, table, key_digest(kt), version) for kt, version in written)
    if not params:
        return
    cur.executemany(
        f"INSERT INTO {quote_table(database, APPLIED_TABLE)}"
        " (`writer`, `tbl`, `key_digest`, `version`) VALUES (%s, %s, %s, %s)"
        " ON DUPLICATE KEY UPDATE `version` = VALUES(`version`)",
        params,
    )


def recorded(cur: Any, database: str, writer: str, table: str,
             key_texts: Sequence[str]) -> dict[str, str | None]:
    """The version our last write produced, by key text, for the keys we ever wrote
    (``None``: we deleted the row); keys never written by us are left out."""
    by_digest = {key_digest(kt): kt for kt in key_texts}
    digests = list(by_digest)
    out: dict[str, str | None] = {}
    for i in range(0, len(digests), _CHUNK):
        part = digests[i : i + _CHUNK]
        cur.execute(
            f"SELECT `key_digest`, `version` FROM {quote_table(database, APPLIED_TABLE)}"
            f" WHERE `writer` = %s AND `tbl` = %s AND `key_digest` IN"
            f" ({', '.join(['%s'] * len(part))})",
            (writer, table, *part),
        )
        for digest, version in cur.fetchall():
            kt = by_digest.get(bytes(digest))
            if kt is not None:
                out[kt] = None if version is None else str(version)
    return out
