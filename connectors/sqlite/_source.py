"""Reading: log position, keyset-paginated snapshots, the change log in ``seq`` order.

The checkpoint is ``{"seq": n, "log": log_id}``. ``seq`` grows in commit order
(SQLite has one writer at a time, and AUTOINCREMENT never reuses a value, even
after pruning), so a reader never sees a gap that a later commit fills.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors.base import ConnectorError, SchemaError, UnreadableValue
from connectors.sqlite._capture import (
    LOG,
    META,
    Captured,
    captured_tables,
    is_wide,
    log_end,
    log_id,
    version_sql,
)
from connectors.sqlite._rows import Codec
from connectors.sqlite._schema import quote
from sync.change import Change, ChangeBatch, Checkpoint, Op, SnapshotChunk, SnapshotRow

log = logging.getLogger("cdcsync.sqlite")

_OPS = {"insert": Op.INSERT, "update": Op.UPDATE, "delete": Op.DELETE}
#: META rows ``pruned:<table>``: the highest ``seq`` of a user's change of the table that
#: a prune deleted. A reader whose checkpoint is below it lost changes to another reader
#: of the table (a pipeline set up before setup refused that, or another configuration
#: with this pipeline's name): it says so instead of carrying on without them.
_PRUNED = "pruned:"


def position(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    lid = log_id(conn)
    if lid is None:
        raise SchemaError(f"{path} is not set up for capture: run `cdcsync setup`")
    return {"seq": log_end(conn), "log": lid}


def _check_log(conn: sqlite3.Connection, after: Checkpoint | None, path: Path) -> int:
    current = position(conn, path)["log"]
    if not after:
        return 0
    if after.get("log") not in (None, current):
        raise SchemaError(
            f"the change log of {path} was recreated (teardown and setup) after checkpoint "
            f"{dict(after)}: the changes in between are lost. `cdcsync resync PIPELINE ENTITY"
            " --reset-stream` (any entity read from this file: every entity read there is"
            " snapshotted again) reads the new log from its end; a resync without"
            " `--reset-stream` keeps the old checkpoint and does not help"
        )
    seq, end = int(after.get("seq", 0)), log_end(conn)
    if seq > end:
        # An older copy of the file (a backup restored): its log numbers on from where the
        # copy stood, below the checkpoint. Until 2026-12-07 every run read nothing and
        # said ok until the numbers passed it, and read on from there.
        raise SchemaError(
            f"the change log of {path} ends at seq {end}, before this pipeline's checkpoint"
            f" (seq {seq}): the file was put back from an older copy (a backup restored?),"
            " and what changed since that copy is unknown. `cdcsync resync PIPELINE"
            " ENTITY... --reset-stream` takes its tables as they are and reads on from"
            " its log's end; `--restored ENDPOINT` instead of `--reset-stream` writes what"
            " the pipeline knows over the copy (docs/operations.md)"
        )
    return seq


def snapshot(
    conn: sqlite3.Connection,
    codec: Codec,
    after_key: Mapping[str, Any] | None,
    limit: int,
) -> SnapshotChunk:
    cap = codec.cap
    key = ", ".join(f"t.{quote(c)}" for c in cap.key)
    ver, join = version_sql(cap)
    sql = f"SELECT {', '.join(f't.{quote(c)}' for c in codec.columns)}, {ver} " \
          f"FROM {quote(cap.info.table)} AS t{join}"
    params: list[Any] = []
    # A primary key that is not INTEGER may hold NULL in SQLite: such rows are no
    # entity's (several would be one key) until they have a key (see changes()).
    keyed = " AND ".join(f"t.{quote(c)} IS NOT NULL" for c in cap.key)
    if after_key is not None:
        after = codec.stored_key(after_key)
        sql += f" WHERE ({key}) > ({', '.join('?' * len(after))})"
        params += after
    else:
        sql += f" WHERE {keyed}"
        _warn_unkeyed(conn, cap)
    sql += f" ORDER BY {key} LIMIT ?"
    params.append(limit)
    where = f"table {cap.info.table!r}"
    rows: list[SnapshotRow] = []
    for r in _fetch(conn, sql, params):
        try:
            k, row = codec.row(r, where)
        except ConnectorError as exc:  # SQLite keeps any value in any column
            stored = dict(zip(codec.columns, r, strict=False))
            raise UnreadableValue(
                f"{exc} (the row with key {({c: stored.get(c) for c in cap.key})!r}): fix"
                " the value at the source, then run again (a daemon tries again by itself)"
            ) from exc
        rows.append(SnapshotRow(k, row, r[-1]))
    last = rows[-1].key if rows else after_key
    return SnapshotChunk(rows, last, done=len(rows) < limit)


def _warn_unkeyed(conn: sqlite3.Connection, cap: Captured) -> None:
    """Say how many rows the table holds with a NULL in a key column, if any (once per
    process and count: a run's first read of a table is a probe, then its snapshot)."""
    unkeyed = " OR ".join(f"{quote(c)} IS NULL" for c in cap.key)
    (n,) = conn.execute(
        f"SELECT count(*) FROM {quote(cap.info.table)} WHERE {unkeyed}").fetchone()
    said = (cap.info.table, int(n))
    if n and said not in _UNKEYED_SAID:
        _UNKEYED_SAID.add(said)
        log.warning("table %r: %d row(s) with a NULL key (%s) are not synchronised until"
                    " they have one", cap.info.table, n, ", ".join(cap.key))


_UNKEYED_SAID: set[tuple[str, int]] = set()


def _lenient(raw: bytes) -> str | bytes:
    """Text as ``str``; text that is not UTF-8 (SQLite keeps what it is given) as its
    bytes, which the column's reader refuses by name."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The query's rows. sqlite3 fails the whole query on a text value that is not
    UTF-8, naming no row (and the next read failed the same way for ever): the query
    is then run again with such values as bytes, for the row's reader to name."""
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "UTF-8" not in str(exc):
            raise
    conn.text_factory = _lenient
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.text_factory = str


def _undecoded(text: str | bytes) -> str:
    """A log's JSON text that holds text which is not UTF-8 (:func:`_fetch`), as text
    whose such bytes are lone surrogates (:func:`_raw` gives them back)."""
    return text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text


def _raw(v: Any) -> Any:
    """A value parsed from :func:`_undecoded` text: bytes where it was not UTF-8."""
    if isinstance(v, str):
        try:
            v.encode()
        except UnicodeEncodeError:
            return v.encode("utf-8", "surrogateescape")
    return v


def _decode_row(text: str | bytes | None, codec: Codec, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    if isinstance(text, bytes):
        obj = {c: _raw(v) for c, v in json.loads(_undecoded(text)).items()}
    else:
        obj = json.loads(text)
    if is_wide(len(codec.cap.info.columns)):  # json_patch dropped NULL members of later chunks
        for c in codec.cap.info.names:
            obj.setdefault(c, None)
    return codec.logged_row(obj, where)


def _old_row(text: str | bytes | None, codec: Codec, where: str) -> dict[str, Any] | None:
    """The row's values before the change, or ``None`` (not captured) where one of them
    does not read as its column's type: a value a user has just fixed must not stop the
    reader on the fix's own log row (the old values only tell an update that changed no
    synchronised column, and give a conflict its base)."""
    try:
        return _decode_row(text, codec, where)
    except ConnectorError as exc:
        log.warning("%s: the old values are taken as not captured: %s", where, exc)
        return None


def _later_change(conn: sqlite3.Connection, tbl: str, pk: str | bytes, seq: int
                  ) -> int | None:
    """The log seq of a later change of the same row, if any (the user's fix): a change
    whose values do not read is then passed over, as a batch that holds both changes
    of a key keeps only the last one's row. (Only users' changes are in the log: the
    sink deletes the rows its own writes make.)"""
    row = conn.execute(
        f"SELECT seq FROM {quote(LOG)} WHERE tbl = ? AND seq > ?"
        " AND CAST(pk AS BLOB) = CAST(? AS BLOB) ORDER BY seq LIMIT 1",
        (tbl, seq, pk)).fetchone()  # (a key that is not UTF-8 text comes as bytes)
    return None if row is None else int(row[0])


def _check_pruned(conn: sqlite3.Connection, name: str, path: Path, start: int,
                  by_table: Mapping[str, Sequence[Codec]], pipeline: str) -> None:
    marks = [_PRUNED + t for t in by_table]
    gone = conn.execute(
        f"SELECT name, CAST(value AS INTEGER) FROM {quote(META)}"
        f" WHERE name IN ({', '.join('?' * len(marks))}) AND CAST(value AS INTEGER) > ?",
        (*marks, start)).fetchall()
    if not gone:
        return
    table, seq = str(gone[0][0])[len(_PRUNED):], int(gone[0][1])
    entities = sorted({c.binding.entity for t, _ in gone
                       for c in by_table[str(t)[len(_PRUNED):]]})
    raise ConnectorError(
        f"endpoint {name!r}: changes of table {table!r} in {path} after this pipeline's"
        f" checkpoint (log seq {start}) were pruned by another reader of the table (up to"
        f" seq {seq}): another pipeline, or another configuration with this pipeline's"
        " name, reads it too. Those changes are lost to this pipeline: give each"
        " configuration a pipeline name of its own, then snapshot again with"
        f" `cdcsync resync {pipeline or 'PIPELINE'} {' '.join(entities)} --reset-stream`.")


def changes(
    conn: sqlite3.Connection,
    name: str,
    path: Path,
    codecs: Sequence[Codec],
    after: Checkpoint | None,
    limit: int,
    pipeline: str = "",
) -> ChangeBatch:
    """Users' changes of the bound tables after ``after``; the service's own are skipped.

    Raises :class:`ConnectorError` where another reader pruned changes of these tables
    that this one has not read (see ``_PRUNED``)."""
    start = _check_log(conn, after, path)
    lid = position(conn, path)["log"]
    by_table: dict[str, list[Codec]] = {}
    for codec in codecs:
        by_table.setdefault(codec.cap.info.table, []).append(codec)
    tables = list(by_table)
    if after:
        _check_pruned(conn, name, path, start, by_table, pipeline)
    if len(tables) == 1:  # the (tbl, seq) index yields the rows in order
        filt = "origin IS NULL AND tbl = ?"
    else:  # scan by seq: the index would gather and sort the whole backlog for each batch
        filt = f"origin IS NULL AND +tbl IN ({', '.join('?' * len(tables))})"
    rows = _fetch(
        conn,
        f"SELECT seq, tbl, pk, op, data, old, ts FROM {quote(LOG)} "
        f"WHERE seq > ? AND {filt} ORDER BY seq LIMIT ?",
        (start, *tables, limit),
    )
    more = False
    if len(rows) == limit:
        more = conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {quote(LOG)} WHERE seq > ? AND {filt})",
            (rows[-1][0], *tables),
        ).fetchone()[0] == 1
    # Nothing relevant remains up to the log's end: the checkpoint may skip past the
    # service's own rows and other tables' rows at the tail.
    end = rows[-1][0] if more else max(start, log_end(conn))
    out: list[Change] = []
    before = start  # the seq of the last row read whole
    for seq, tbl, pk, op, data, old, ts in rows:
        where = f"{path} log seq {seq}"
        keys = json.loads(_undecoded(pk))
        if None in keys:  # no entity's row until it has a key (logged then as an insert)
            if op != "delete":
                log.warning("%s: a row of table %r with a NULL key is not synchronised"
                            " until it has one", where, tbl)
            before = seq
            continue
        for codec in by_table[tbl]:
            try:
                row = _decode_row(data, codec, where)
            except ConnectorError as exc:  # SQLite keeps any value in any column
                fix = _later_change(conn, tbl, pk, seq)
                named = dict(zip(codec.binding.key, keys, strict=False))
                if fix is not None:
                    log.warning("%s (key %r): passed over, the row's change at log seq %d"
                                " supersedes it", exc, named, fix)
                    continue
                done = [c for c in out if c.position != (seq,)]
                if done:  # what the log holds before it goes first; the next read stops
                    return ChangeBatch(done, {"seq": before, "log": lid}, more=True)
                raise UnreadableValue(
                    f"{exc} (key {named!r}): fix the value at the source (update or delete the"
                    " row); the change that fixes it supersedes this one, and the next read"
                    " goes on from there") from exc
            out.append(Change(
                entity=codec.binding.entity,
                key=codec.logged_key(keys, where),
                op=_OPS[op],
                before=_old_row(old, codec, where),
                after=row,
                source=name,
                position=(seq,),
                committed_at=float(ts),
                row_version=seq,
            ))
        before = seq
    return ChangeBatch(out, {"seq": end, "log": lid}, more=more)


def prune_upto(conn: sqlite3.Connection, upto: int | Iterable[Checkpoint],
               tables: Sequence[str] | None = None) -> int:
    """Delete log rows with ``seq <= upto`` (or the lowest ``seq`` of several checkpoints),
    of ``tables`` only if given."""
    if isinstance(upto, int):
        seq = upto
    else:
        lid = log_id(conn)
        seqs = [int(c["seq"]) for c in upto
                if c and "seq" in c and c.get("log") in (None, lid)]
        if not seqs:
            return 0
        seq = min(seqs)
    if tables is not None and not tables:
        return 0
    which = "" if tables is None else f" AND tbl IN ({', '.join('?' * len(tables))})"
    args = (seq, *(tables or ()))
    # the last user's change going, per table: the (tbl, seq) index, backwards
    for table in captured_tables(conn) if tables is None else tables:
        top = conn.execute(
            f"SELECT seq FROM {quote(LOG)} WHERE tbl = ? AND seq <= ? AND origin IS NULL"
            " ORDER BY seq DESC LIMIT 1", (table, seq)).fetchone()
        if top is not None:
            conn.execute(
                f"INSERT INTO {quote(META)} (name, value) VALUES (?, ?) ON CONFLICT (name) DO"
                " UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS"
                " INTEGER))", (_PRUNED + table, int(top[0])))
    return conn.execute(f"DELETE FROM {quote(LOG)} WHERE seq <= ?{which}", args).rowcount
