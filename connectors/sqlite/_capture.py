"""The capture objects: change log, session marker, row versions, triggers, metadata.

Every write to a bound table, by anyone, fires an AFTER trigger that appends
one row to ``_cdcsync_log`` (two for an UPDATE that changes the key: a delete
of the old key and an insert of the new one) and sets the key's row version in
``_cdcsync_rowver`` to that log row's ``seq``. The service's apply transaction
holds one row in ``_cdcsync_session`` while it writes, and the triggers copy
it into the log's ``origin``: that is how the service's own writes are told
apart, by identity and never by content. (Triggers cannot read TEMP tables,
so the marker is a main-schema table; SQLite has one writer at a time, so no
other session ever sees it.) No reader reads the service's own rows, so the
sink deletes them before its transaction commits: the row versions keep their
``seq``, and a one-way target, whose log nobody reads or prunes, does not keep
a row for every row the service ever wrote there. ``cdcsync setup`` deletes
those that older versions left.

A row that ``INSERT OR REPLACE`` deletes for clashing with the written one on
another unique constraint fires no trigger: a BEFORE trigger notes such rows in
``_cdcsync_replaced`` and the AFTER trigger logs them as deleted (:func:`clashes`).

``_cdcsync_meta`` records, per table, the columns and key the triggers were
generated for, so that a later schema change is reported instead of silently
capturing the wrong columns, and a ``log_id`` that changes when the log is
recreated, so that a checkpoint into an older log is refused rather than
silently skipping the new log's first rows.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors.base import Binding, SchemaError
from connectors.claims import Claim, refuse_clashes
from connectors.sqlite._schema import TableInfo, introspect, literal, quote
from connectors.sqlite._types import logged_sql

LOG = "_cdcsync_log"
SESSION = "_cdcsync_session"
ROWVER = "_cdcsync_rowver"
REPLACED = "_cdcsync_replaced"
META = "_cdcsync_meta"
PREFIX = "_cdcsync_"
ORIGIN = "cdcsync"  # what the service's own writes are tagged with

SHARED_DDL: dict[str, tuple[str, ...]] = {
    LOG: (
        f"CREATE TABLE {quote(LOG)} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL, data TEXT, old TEXT, "
        "origin TEXT, ts REAL NOT NULL)",
        f"CREATE INDEX {quote(LOG + '_tbl_seq')} ON {quote(LOG)} (tbl, seq)",
    ),
    SESSION: (f"CREATE TABLE {quote(SESSION)} (origin TEXT)",),
    ROWVER: (
        f"CREATE TABLE {quote(ROWVER)} (tbl TEXT NOT NULL, pk TEXT NOT NULL, "
        "ver INTEGER NOT NULL, token TEXT, PRIMARY KEY (tbl, pk)) WITHOUT ROWID",
    ),
    META: (f"CREATE TABLE {quote(META)} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",),
    REPLACED: (f"CREATE TABLE {quote(REPLACED)} (tbl TEXT NOT NULL, pk TEXT NOT NULL,"
               " old TEXT, origin TEXT, ts REAL NOT NULL)",),
}

_FUNCTION_PAIRS = 60  # SQLite allows 127 arguments to json_object: 2 per column
_TS = "(julianday('now') - 2440587.5) * 86400.0"
_ORIGIN = f"(SELECT origin FROM {quote(SESSION)} LIMIT 1)"
_SET_ROWVER = (
    f"INSERT INTO {quote(ROWVER)} (tbl, pk, ver, token) "
    f"SELECT tbl, pk, seq, NULL FROM {quote(LOG)} WHERE seq = last_insert_rowid() "
    "ON CONFLICT (tbl, pk) DO UPDATE SET ver = excluded.ver, token = NULL"
)


def pk_sql(prefix: str, key: Sequence[str]) -> str:
    """The key's text in the log and the row versions: a JSON array in key order."""
    return "json_array(" + ", ".join(logged_sql(f"{prefix}{quote(c)}") for c in key) + ")"


def row_sql(prefix: str, columns: Sequence[str]) -> str:
    """A JSON object of the row; wide tables are built in chunks and merged.

    ``json_patch`` drops NULL members of the chunks after the first: a column
    missing from a logged row therefore reads as NULL.
    """
    parts = []
    for i in range(0, len(columns), _FUNCTION_PAIRS):
        pairs = ", ".join(
            f"{literal(c)}, {logged_sql(prefix + quote(c))}"
            for c in columns[i : i + _FUNCTION_PAIRS]
        )
        parts.append(f"json_object({pairs})")
    out = parts[0]
    for part in parts[1:]:
        out = f"json_patch({out}, {part})"
    return out


def is_wide(columns: int) -> bool:
    """Whether a logged row of this many columns is built in chunks (see :func:`row_sql`)."""
    return columns > _FUNCTION_PAIRS


def trigger_names(table: str) -> dict[str, str]:
    return {s: f"{PREFIX}{table}_{s}" for s in ("ins", "upd", "updk", "del")}


def clash_trigger_names(table: str) -> dict[str, str]:
    """The BEFORE triggers of a table whose rows can clash on another key than the
    entity's (:func:`clashes`)."""
    return {s: f"{PREFIX}{table}_{s}" for s in ("repi", "repu")}


def clashes(info: TableInfo, key: Sequence[str]) -> tuple[tuple[tuple[str, str], ...], ...]:
    """The unique constraints a row can clash with another row's on while the two
    have different keys: all of them but the key itself.

    ``INSERT OR REPLACE``, ``REPLACE``, ``UPDATE OR REPLACE`` and a constraint's own
    ``ON CONFLICT REPLACE`` delete the rows the new one clashes with, and SQLite fires
    no delete trigger for them unless the writer's connection turned
    ``recursive_triggers`` on: the other rows' deletes were never captured (the targets
    kept them, and refused the new row where their constraint holds too). So a BEFORE
    trigger notes the rows the new one clashes with in ``_cdcsync_replaced``; the AFTER
    trigger, which fires only once the row is written, logs them as deleted ahead of
    it. A row that is not written (``OR IGNORE``, ``DO NOTHING``, ``OR FAIL``) has no
    AFTER trigger: its notes are cleared by the next BEFORE trigger. Partial and
    expression indexes are not followed.
    """
    own = set(key)
    return tuple(c for c in info.clashes if {n for n, _ in c} != own)


def _clash_sql(info: TableInfo, key: Sequence[str], old: bool) -> str:
    """BEFORE INSERT/UPDATE: note the rows ``NEW`` clashes with (see :func:`clashes`)."""
    t = info.table
    found = " OR ".join(
        "(" + " AND ".join(f"t.{quote(c)} = NEW.{quote(c)} COLLATE {quote(coll)}"
                           for c, coll in cons) + ")"
        for cons in clashes(info, key))
    other = f"{pk_sql('t.', key)} IS NOT {pk_sql('NEW.', key)}"
    if old:
        other += f" AND {pk_sql('t.', key)} IS NOT {pk_sql('OLD.', key)}"
    return (
        f"DELETE FROM {quote(REPLACED)} WHERE tbl = {literal(t)};\n"
        f"INSERT INTO {quote(REPLACED)} (tbl, pk, old, origin, ts) SELECT {literal(t)}, "
        f"{pk_sql('t.', key)}, {row_sql('t.', info.names)}, {_ORIGIN}, {_TS} "
        f"FROM {quote(t)} AS t WHERE ({found}) AND {other};\n"
    )


def _replaced_sql(table: str) -> str:
    """AFTER INSERT/UPDATE: the rows the written one replaced, logged as deleted first."""
    tbl = literal(table)
    return (
        f"INSERT INTO {quote(LOG)} (tbl, pk, op, data, old, origin, ts) SELECT tbl, pk,"
        f" 'delete', NULL, old, origin, ts FROM {quote(REPLACED)} WHERE tbl = {tbl};\n"
        f"INSERT INTO {quote(ROWVER)} (tbl, pk, ver, token) SELECT r.tbl, r.pk, (SELECT"
        f" l.seq FROM {quote(LOG)} AS l WHERE l.tbl = r.tbl AND l.pk = r.pk ORDER BY l.seq"
        f" DESC LIMIT 1), NULL FROM {quote(REPLACED)} AS r WHERE r.tbl = {tbl}"
        " ON CONFLICT (tbl, pk) DO UPDATE SET ver = excluded.ver, token = NULL;\n"
        f"DELETE FROM {quote(REPLACED)} WHERE tbl = {tbl};\n"
    )


def _log_insert(table: str, op: str, pk: str, data: str, old: str) -> str:
    return (
        f"INSERT INTO {quote(LOG)} (tbl, pk, op, data, old, origin, ts) VALUES "
        f"({literal(table)}, {pk}, '{op}', {data}, {old}, {_ORIGIN}, {_TS});\n"
        f"{_SET_ROWVER};\n"
    )


def trigger_sql(info: TableInfo, key: Sequence[str]) -> dict[str, str]:
    """CREATE TRIGGER statements by trigger name."""
    t, cols = info.table, info.names
    names = trigger_names(t)
    new_pk, old_pk = pk_sql("NEW.", key), pk_sql("OLD.", key)
    new_row, old_row = row_sql("NEW.", cols), row_sql("OLD.", cols)
    on = quote(t)
    replaced = _replaced_sql(t) if clashes(info, key) else ""

    def trig(name: str, event: str, body: str, when: str = "", at: str = "AFTER") -> str:
        return f"CREATE TRIGGER {quote(name)} {at} {event} ON {on}{when} BEGIN\n{body}END"

    out = {
        names["ins"]: trig(names["ins"], "INSERT",
                           replaced + _log_insert(t, "insert", new_pk, new_row, "NULL")),
        names["upd"]: trig(
            names["upd"], "UPDATE",
            replaced + _log_insert(t, "update", new_pk, new_row, old_row),
            f" WHEN {new_pk} IS {old_pk}",
        ),
        names["updk"]: trig(
            names["updk"], "UPDATE",
            replaced + _log_insert(t, "delete", old_pk, "NULL", old_row)
            + _log_insert(t, "insert", new_pk, new_row, "NULL"),
            f" WHEN {new_pk} IS NOT {old_pk}",
        ),
        names["del"]: trig(names["del"], "DELETE",
                           _log_insert(t, "delete", old_pk, "NULL", old_row)),
    }
    if replaced:
        before = clash_trigger_names(t)
        out[before["repi"]] = trig(before["repi"], "INSERT", _clash_sql(info, key, False),
                                   at="BEFORE")
        out[before["repu"]] = trig(before["repu"], "UPDATE", _clash_sql(info, key, True),
                                   at="BEFORE")
    return out


@dataclass(frozen=True)
class Captured:
    """A bound table as its triggers capture it."""

    info: TableInfo
    key: tuple[str, ...]  # endpoint key columns, in the logged pk's order
    versions: bool = True  # False: not set up, so there are no row versions to read


def version_sql(cap: Captured) -> tuple[str, str]:
    """The row version of the row aliased ``t``: (select expression, join clause)."""
    if not cap.versions:
        return "NULL", ""
    return "rv.ver", (
        f" LEFT JOIN {quote(ROWVER)} AS rv ON rv.tbl = {literal(cap.info.table)} "
        f"AND rv.pk = {pk_sql('t.', cap.key)}"
    )


def _meta_name(table: str) -> str:
    return f"table:{table}"


def captured_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables set up for capture in this file (their META rows)."""
    return [str(name)[len(_meta_name("")):] for (name,) in conn.execute(
        f"SELECT name FROM {quote(META)} WHERE name LIKE 'table:%'")]


def _put_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute(f"INSERT INTO {quote(META)} (name, value) VALUES (?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))


_CLAIM = "pipeline:"  # META rows naming each pipeline's tables (connectors.claims)


def _claim_name(pipeline: str, endpoint: str) -> str:
    return _CLAIM + json.dumps([pipeline, endpoint])


def claims(conn: sqlite3.Connection) -> list[Claim]:
    """Every pipeline's record of the tables it reads and writes in this file."""
    if not _exists(conn, "table", META):
        return []
    out = []
    for name, value in conn.execute(
            f"SELECT name, value FROM {quote(META)} WHERE name LIKE 'pipeline:%'"):
        doc = json.loads(value)
        # (a record made before it named the endpoint is named after the pipeline)
        pipeline = doc.get("pipeline", str(name)[len(_CLAIM):])
        out.append(Claim(str(pipeline), str(doc.get("endpoint", "")), frozenset(doc["reads"]),
                         frozenset(doc["writes"])))
    return out


def _forget_claim() -> str:
    return (f"DELETE FROM {quote(META)} WHERE name LIKE 'pipeline:%' AND"
            " coalesce(json_extract(value, '$.pipeline'), substr(name, 10)) = '{pipeline}'")


def _exists(conn: sqlite3.Connection, kind: str, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
    ).fetchone()
    return row is not None


def log_id(conn: sqlite3.Connection) -> str | None:
    if not _exists(conn, "table", META):
        return None
    row = conn.execute(f"SELECT value FROM {quote(META)} WHERE name = 'log_id'").fetchone()
    return None if row is None else str(row[0])


def log_end(conn: sqlite3.Connection) -> int:
    """The highest ``seq`` ever handed out (pruned rows included)."""
    row = conn.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = ?", (LOG,)
    ).fetchone()
    return int(row[0]) if row else 0


def is_captured(conn: sqlite3.Connection, table: str) -> bool:
    """Is ``table`` set up, every capture trigger of it in place?"""
    return is_set_up(conn, table) and all(
        _exists(conn, "trigger", name) for name in trigger_names(table).values())


def is_set_up(conn: sqlite3.Connection, table: str) -> bool:
    if not _exists(conn, "table", META):
        return False
    row = conn.execute(
        f"SELECT 1 FROM {quote(META)} WHERE name = ?", (_meta_name(table),)
    ).fetchone()
    return row is not None


def _rerun(path: Path) -> str:
    return f"rerun `cdcsync setup` for {path}"


def check_binding(info: TableInfo | None, binding: Binding, path: Path) -> TableInfo:
    """The table exists, has the binding's columns, and a unique key on its key."""
    if info is None:
        raise SchemaError(f"table {binding.table!r} does not exist in {path}")
    missing = [binding.endpoint_column(c) for c in binding.key]
    missing += [binding.endpoint_column(c) for c in (binding.only or ())]
    missing += list(binding.columns.values())
    absent = sorted({c for c in missing if c not in info.by_name})
    if absent:
        raise SchemaError(
            f"table {binding.table!r} in {path} has no column(s) {', '.join(map(repr, absent))}"
        )
    key = frozenset(binding.endpoint_key)
    if key not in info.unique_keys:
        raise SchemaError(
            f"table {binding.table!r} in {path}: no PRIMARY KEY or UNIQUE index on exactly the "
            f"key ({', '.join(binding.endpoint_key)}); the sink's upsert needs one"
        )
    return info


def captured(conn: sqlite3.Connection, binding: Binding, path: Path) -> Captured:
    """The table as set up, checked against what it is now.

    Raises:
        SchemaError: not set up, or the table, its key or its columns changed since.
    """
    info = check_binding(introspect(conn, binding.table), binding, path)
    row = None
    if _exists(conn, "table", META):
        row = conn.execute(
            f"SELECT value FROM {quote(META)} WHERE name = ?", (_meta_name(binding.table),)
        ).fetchone()
    if row is None:
        raise SchemaError(f"table {binding.table!r} in {path} is not set up for capture: "
                          f"run `cdcsync setup`")
    meta = json.loads(row[0])
    key = tuple(meta["key"])
    if key != binding.endpoint_key:
        raise SchemaError(
            f"table {binding.table!r} in {path} was set up with key ({', '.join(key)}), the "
            f"pipeline now says ({', '.join(binding.endpoint_key)}): {_rerun(path)}"
        )
    if meta["columns"] != info.signature:
        was = ", ".join(f"{n} {d}".strip() for n, d in meta["columns"])
        now = ", ".join(f"{n} {d}".strip() for n, d in info.signature)
        raise SchemaError(
            f"table {binding.table!r} in {path} changed since setup (captured: {was}; now: "
            f"{now}): the triggers capture the columns set up, so writes to it since were"
            f" captured without the new or renamed columns' values: {_rerun(path)}, then"
            f" `cdcsync resync PIPELINE {binding.entity}` copies them"
        )
    wanted = list(trigger_names(binding.table).values())
    if clashes(info, key):
        wanted += clash_trigger_names(binding.table).values()
    gone = [n for n in wanted if not _exists(conn, "trigger", n)]
    if gone and not set(gone) - set(clash_trigger_names(binding.table).values()):
        raise SchemaError(
            f"{binding.table!r} in {path} has a unique constraint besides its key, and no"
            " capture yet of the rows an INSERT OR REPLACE deletes for clashing with it (set"
            f" up before 2026-12-07, or the index is new): {_rerun(path)}")
    if gone:
        raise SchemaError(
            f"capture trigger(s) {', '.join(gone)} on {binding.table!r} in {path} are missing "
            f"(was the table rebuilt? writes to it since were not captured): {_rerun(path)},"
            f" which has entity {binding.entity} snapshotted again to copy them"
        )
    return Captured(info, key)


def setup(conn: sqlite3.Connection, bindings: Sequence[Binding], path: Path,
          claim: Claim | None = None) -> list[str]:
    """Create whatever is missing or outdated; inside the caller's write transaction.

    ``claim``: the pipeline's tables here, refused if another pipeline's clash with
    them (:mod:`connectors.claims`), else recorded."""
    lines: list[str] = []
    if claim is not None:
        refuse_clashes(claim, claims(conn), str(path), shared_reads=True,
                       forget=_forget_claim())
    for table, ddl in SHARED_DDL.items():
        if _exists(conn, "table", table):
            lines.append(f"{table} already present")
            continue
        for stmt in ddl:
            conn.execute(stmt)
        lines.append(f"created {table}")
    if log_id(conn) is None:
        conn.execute(f"INSERT INTO {quote(META)} (name, value) VALUES ('log_id', ?)",
                     (uuid.uuid4().hex,))
    conn.execute(f"DELETE FROM {quote(SESSION)}")  # no writer is active: any row is stale
    # The service's own log rows, which no reader reads: left by versions that kept them
    # (the sink now deletes its rows as it writes them).
    ours = conn.execute(f"DELETE FROM {quote(LOG)} WHERE origin IS NOT NULL").rowcount
    if ours:
        lines.append(f"deleted {ours} log row(s) of the service's own writes from {LOG}")
    tables: dict[str, tuple[TableInfo, tuple[str, ...]]] = {}
    for b in bindings:
        info = check_binding(introspect(conn, b.table), b, path)
        if tables.setdefault(b.table, (info, b.endpoint_key))[1] != b.endpoint_key:
            raise SchemaError(f"table {b.table!r} in {path} is bound with two different keys")
    for info, key in tables.values():
        lines.append(_setup_table(conn, info, key))
    if claim is not None:
        lines += _release_unbound(conn, claim, set(tables))
        _put_meta(conn, _claim_name(claim.pipeline, claim.endpoint),
                  json.dumps({"pipeline": claim.pipeline, "endpoint": claim.endpoint,
                              "reads": sorted(claim.reads), "writes": sorted(claim.writes)}))
    return lines


def _release_unbound(conn: sqlite3.Connection, claim: Claim, bound: set[str]) -> list[str]:
    """Drop the capture of the tables the pipeline used here at its last setup and no
    longer binds (an entity taken out of the pipeline file), but for those another
    pipeline uses. Kept (until 2026-12-07), their triggers logged every write for ever:
    no run prunes a table it does not read. Put back, such an entity's table is one the
    pipeline did not read until then, and setup snapshots it again (sync/setup.py)."""
    had = [c for c in claims(conn) if (c.pipeline, c.endpoint) == (claim.pipeline,
                                                                  claim.endpoint)]
    if not had:
        return []
    used = {t for c in claims(conn) if c.pipeline != claim.pipeline for t in c.reads | c.writes}
    return [f"dropped {n} capture triggers on {table}: the pipeline no longer uses it here"
            for table in sorted((had[0].reads | had[0].writes) - bound - used)
            if (n := _release(conn, table))]


def _release(conn: sqlite3.Connection, table: str) -> int:
    """Drop ``table``'s capture: its triggers, record, log rows and row versions; returns
    how many triggers were dropped."""
    dropped = 0
    for name in [*trigger_names(table).values(), *clash_trigger_names(table).values()]:
        if _exists(conn, "trigger", name):
            conn.execute(f"DROP TRIGGER {quote(name)}")
            dropped += 1
    if _exists(conn, "table", META):
        conn.execute(f"DELETE FROM {quote(META)} WHERE name = ?", (_meta_name(table),))
    for shared in (LOG, ROWVER, REPLACED):
        if _exists(conn, "table", shared):
            conn.execute(f"DELETE FROM {quote(shared)} WHERE tbl = ?", (table,))
    return dropped


def _setup_table(conn: sqlite3.Connection, info: TableInfo, key: tuple[str, ...]) -> str:
    wanted = trigger_sql(info, key)
    changed = existed = 0
    # Set up before, and its triggers gone: the table was dropped and created again (the
    # way Django, Alembic's batch mode and SQLite's own docs alter a table), and whatever
    # was written to it meanwhile was not captured.
    before = conn.execute(f"SELECT value FROM {quote(META)} WHERE name = ?",
                          (_meta_name(info.table),)).fetchone()
    rebuilt = before is not None and not any(
        _exists(conn, "trigger", n) for n in trigger_names(info.table).values())
    # Set up before with other columns (ALTER TABLE ADD or RENAME COLUMN): the triggers
    # made for the old ones captured the writes since without the new columns' values.
    altered = before is not None and json.loads(before[0])["columns"] != info.signature
    for name, sql in wanted.items():
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
        ).fetchone()
        existed += row is not None
        if row is not None and row[0] == sql:
            continue
        conn.execute(f"DROP TRIGGER IF EXISTS {quote(name)}")
        conn.execute(sql)
        changed += 1
    for name in clash_trigger_names(info.table).values():  # no longer needed (index dropped)
        if name not in wanted and _exists(conn, "trigger", name):
            conn.execute(f"DROP TRIGGER {quote(name)}")
            changed += 1
    meta = json.dumps({"columns": info.signature, "key": list(key)})
    _put_meta(conn, _meta_name(info.table), meta)
    if not changed:
        return f"capture triggers on {info.table} already present"
    if rebuilt:
        return (f"created capture triggers on {info.table} again: they were gone (the table"
                " was rebuilt?), so writes to it since were not captured")
    if altered:
        return (f"updated capture triggers on {info.table}: its columns changed since setup,"
                " so writes to it since were captured without the new or renamed columns'"
                " values; `cdcsync resync PIPELINE ENTITY` copies them")
    verb = "updated" if existed else "created"
    return f"{verb} capture triggers on {info.table} ({len(info.columns)} columns)"


def teardown(conn: sqlite3.Connection, bindings: Sequence[Binding],
             owner: tuple[str, str] | None = None) -> list[str]:
    """Drop the bound tables' triggers, but for tables another pipeline still uses;
    drop the shared tables once no table uses them.

    ``owner``: (pipeline, endpoint) whose record of its tables is forgotten (``None``:
    nobody's)."""
    lines: list[str] = []
    has_meta = _exists(conn, "table", META)
    used: dict[str, str] = {}  # table -> another pipeline using it
    tables = list(dict.fromkeys(b.table for b in bindings))
    if owner is not None and has_meta:
        conn.execute(f"DELETE FROM {quote(META)} WHERE name IN (?, ?)",
                     (_claim_name(*owner), _CLAIM + owner[0]))
        for other in claims(conn):
            for table in other.reads | other.writes:
                used.setdefault(table, other.pipeline)
        # and the tables no pipeline claims: an entity's the pipeline file no longer names,
        # whose triggers (until 2026-12-07 left in place) logged its writes for ever
        tables += sorted(set(captured_tables(conn)) - set(used) - set(tables))
    for table in tables:
        if table in used:
            lines.append(f"kept the capture triggers on {table}: pipeline"
                         f" {used[table]!r} uses that table too")
            continue
        dropped = _release(conn, table)
        lines.append(f"dropped {dropped} capture triggers on {table}" if dropped
                     else f"no capture triggers on {table}")
    others = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ? ESCAPE '\\'",
        (PREFIX.replace("_", "\\_") + "%",),
    ).fetchone()[0]
    if others:
        lines.append(f"kept the change log: {others} capture triggers of other tables remain")
        return lines
    for table in SHARED_DDL:
        if _exists(conn, "table", table):
            conn.execute(f"DROP TABLE {quote(table)}")
            lines.append(f"dropped {table}")
    return lines
