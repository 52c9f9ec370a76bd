"""Writing: conditional, batched, tagged applies; reading current rows by key.

Keys are matched through a TEMP table whose key columns are declared with the
bound table's own types, so SQLite applies the same affinity to them as to the
table's rows, and the key text computed from them is exactly the text the
triggers log (``Decimal('1.50')`` bound as ``'1.50'`` becomes the REAL ``1.5``
in both places).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from conflict.canonical import key_text
from connectors.base import ApplyOp, ApplyResult, ApplyStatus, RowRejected
from connectors.sqlite._capture import (
    LOG,
    ORIGIN,
    ROWVER,
    SESSION,
    Captured,
    log_end,
    pk_sql,
    version_sql,
)
from connectors.sqlite._rows import Codec
from connectors.sqlite._schema import quote


class KeyTables:
    """One TEMP key table per bound table, made on first use on this connection."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[str, ...]] = {}

    def fill(self, conn: sqlite3.Connection, cap: Captured, rows: Iterable[Sequence[Any]]) -> str:
        """Load ``(i, *key)`` rows; returns the table's quoted name. Column ``pk`` is filled."""
        bare = quote(f"_cdcsync_keys_{cap.info.table}")
        name = f"temp.{bare}"
        decls = tuple(cap.info.by_name[c].declared for c in cap.key)
        shape = (*decls, "STRICT" if cap.info.strict else "")
        if self._made.get(cap.info.table) != shape:
            cols = ", ".join(f"k{i} {d}" for i, d in enumerate(decls))
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute(
                f"CREATE TEMP TABLE {bare} (i INTEGER PRIMARY KEY, pk TEXT, {cols}) {shape[-1]}"
            )
            self._made[cap.info.table] = shape
        n = len(decls)
        conn.execute(f"DELETE FROM {name}")
        conn.executemany(
            f"INSERT INTO {name} (i, {', '.join(f'k{i}' for i in range(n))}) "
            f"VALUES (?, {', '.join('?' * n)})",
            rows,
        )
        conn.execute(f"UPDATE {name} SET pk = {pk_sql('', [f'k{i}' for i in range(n)])}")
        return name

    def forget(self) -> None:
        self._made.clear()


def _versions(conn: sqlite3.Connection, keys: str, table: str) -> dict[int, tuple[Any, ...]]:
    """``i -> (pk, ver, token)`` for every loaded key (``ver``/``token`` None without one)."""
    rows = conn.execute(
        f"SELECT k.i, k.pk, rv.ver, rv.token FROM {keys} AS k LEFT JOIN {quote(ROWVER)} AS rv "
        "ON rv.tbl = ? AND rv.pk = k.pk",
        (table,),
    )
    return {r[0]: r[1:] for r in rows}


def _same_version(current: Any, expected: Any) -> bool:
    if expected is None or current is None:
        return expected is None and current is None
    try:
        return int(expected) == int(current)
    except (TypeError, ValueError):
        return False


def apply(
    conn: sqlite3.Connection, tables: KeyTables, codec: Codec, ops: Sequence[ApplyOp]
) -> list[ApplyResult]:
    """Apply ``ops`` inside the caller's write transaction, tagged as the service's own.

    A key that occurs more than once is applied in rounds (its n-th op in round
    n), so every op is checked against the row version the previous one left.

    The log rows our writes made are deleted before the transaction ends: no reader
    reads the service's own rows (they are told apart by origin, see ``_capture``),
    and the row versions keep their ``seq`` without them. Kept, they would pile up
    for ever in a target that no pipeline reads, and halve every reader's scan in one
    it does.
    """
    results: list[ApplyResult | None] = [None] * len(ops)
    texts = [op.key_text for op in ops]
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        n = seen.get(text, 0)
        seen[text] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    start = log_end(conn)  # one writer at a time: every log row after it is ours
    conn.execute(f"INSERT INTO {quote(SESSION)} (origin) VALUES (?)", (ORIGIN,))
    for part in rounds:
        _apply_round(conn, tables, codec, ops, texts, part, results)
    conn.execute(f"DELETE FROM {quote(SESSION)}")
    conn.execute(f"DELETE FROM {quote(LOG)} WHERE seq > ? AND origin IS NOT NULL", (start,))
    return [r for r in results if r is not None]


def _apply_round(
    conn: sqlite3.Connection,
    tables: KeyTables,
    codec: Codec,
    ops: Sequence[ApplyOp],
    texts: Sequence[str],
    part: list[int],
    results: list[ApplyResult | None],
) -> None:
    cap = codec.cap
    table = cap.info.table
    keys = {i: codec.stored_key(ops[i].key) for i in part}
    temp = tables.fill(conn, cap, ((i, *k) for i, k in keys.items()))
    current = _versions(conn, temp, table)
    deletes: list[tuple[Any, ...]] = []
    upserts: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    applied: list[int] = []
    for i in part:
        op = ops[i]
        _pk, ver, token = current[i]
        if _same_version(ver, op.expected):
            applied.append(i)
            if op.row is None:
                deletes.append(keys[i])
            else:
                cols, values = codec.stored_row(op.key, op.row)
                upserts.setdefault(cols, []).append(values)
        elif token is not None and token == op.token:
            results[i] = ApplyResult(texts[i], ApplyStatus.ALREADY, ver)
        elif token is not None:  # an earlier write of ours, its result lost with a worker
            results[i] = ApplyResult(texts[i], ApplyStatus.STALE, ver)
        elif op.expected is None and not _holds(conn, table, cap, keys[i]):
            # Known absent with no version (a snapshot read it absent), and absent: the
            # version is a deleted row's, which no read gave (deleted before the
            # snapshot's position, its delete is never read). Until 2026-12-07 the write
            # was skipped, waiting for that delete to be read: the target stayed behind.
            applied.append(i)
            if op.row is not None:
                cols, values = codec.stored_row(op.key, op.row)
                upserts.setdefault(cols, []).append(values)
        else:
            results[i] = ApplyResult(texts[i], ApplyStatus.SKIPPED, ver)
    if not applied:
        return
    t = quote(table)
    if deletes:  # first, so that a unique value can move from a deleted row to another
        conn.executemany(f"DELETE FROM {t} WHERE {_exact_key_match(cap)}", deletes)
    for cols, batch in upserts.items():
        conn.executemany(_upsert_sql(t, cols, cap.key), batch)
    conn.executemany(
        f"UPDATE {quote(ROWVER)} SET token = ? WHERE tbl = ? AND pk = ?",
        [(ops[i].token, table, current[i][0]) for i in applied],
    )
    after = _versions(conn, temp, table)
    for i in applied:
        if after[i][1] is None and ops[i].row is not None and cap.versions:
            raise _not_written(conn, cap, texts[i], keys[i])
        results[i] = ApplyResult(texts[i], ApplyStatus.APPLIED, after[i][1])


def _key_match(cap: Captured) -> str:
    """``k1 = ? AND k2 = ?``: a row by its key, compared as the table compares it."""
    return " AND ".join(f"{quote(c)} = ?" for c in cap.key)


def _holds(conn: sqlite3.Connection, table: str, cap: Captured, key: Sequence[Any]) -> bool:
    """Does ``table`` hold a row of ``key`` (its stored values)?"""
    return conn.execute(f"SELECT 1 FROM {quote(table)} WHERE {_exact_key_match(cap)}",
                        tuple(key)).fetchone() is not None


def _exact_key_match(cap: Captured) -> str:
    """A row by its very key, whatever the column's collation: ``NOCASE`` or ``RTRIM``
    holds ``abc`` and ``ABC`` equal, and a delete of a key the table does not hold
    took its twin, a row of another key. The first term finds the row by the key's
    index, the second (``BINARY``, which an explicit ``COLLATE`` imposes on the
    comparison) keeps only the row whose key is the same bytes."""
    return " AND ".join(f"{quote(c)} = ?{i} AND {quote(c)} = ?{i} COLLATE BINARY"
                        for i, c in enumerate(cap.key, 1))


def _not_written(conn: sqlite3.Connection, cap: Captured, text: str,
                 key: Sequence[Any]) -> RowRejected:
    """Why a row written by key holds no version under its key: the upsert's ``ON
    CONFLICT`` took another row for it, whose key the key's collation holds equal
    (``NOCASE``: ``abc``/``ABC``; ``RTRIM``: ``a``/``a ``), and overwrote that row's
    other columns with this row's (rolled back with the batch: the row is refused
    and waits as a dead letter); or a trigger kept the row out."""
    t = quote(cap.info.table)
    cols = ", ".join(quote(c) for c in cap.key)
    twin = conn.execute(f"SELECT {cols} FROM {t} WHERE {_key_match(cap)}",
                        tuple(key)).fetchone()
    where = f"table {cap.info.table!r}"
    if twin is not None and tuple(twin) != tuple(key):
        return RowRejected(
            f"{where}: keys the entity tells apart are one key under the key's collation"
            f" (NOCASE or RTRIM): case or trailing spaces are ignored. Declare the key"
            f" column without it (a new table) and requeue the dead letter\nkey {text} is"
            f" the same key here as {list(twin)!r}, which the table holds")
    return RowRejected(f"{where}: the row of key {text} was not written (a trigger kept it"
                       " out?)")


def _upsert_sql(table: str, cols: tuple[str, ...], key: tuple[str, ...]) -> str:
    sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in cols if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(map(quote, cols))}) "
        f"VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT ({', '.join(map(quote, key))}) "
        + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
    )


def read(
    conn: sqlite3.Connection,
    tables: KeyTables,
    codec: Codec,
    keys: Iterable[Mapping[str, Any]],
) -> dict[str, tuple[dict[str, Any], Any]]:
    """Current rows and row versions of ``keys`` by key text (absent keys left out)."""
    cap = codec.cap
    temp = tables.fill(conn, cap, ((i, *codec.stored_key(k)) for i, k in enumerate(keys)))
    match = " AND ".join(f"t.{quote(c)} = k.k{i}" for i, c in enumerate(cap.key))
    ver, join = version_sql(cap)
    rows = conn.execute(
        f"SELECT {', '.join(f't.{quote(c)}' for c in codec.columns)}, {ver} "
        f"FROM {temp} AS k JOIN {quote(cap.info.table)} AS t ON {match}{join}"
    )
    out: dict[str, tuple[dict[str, Any], Any]] = {}
    where = f"table {cap.info.table!r}"
    for r in rows:
        key, row = codec.row(r, where)
        out[key_text(key)] = (row, r[-1])
    return out
