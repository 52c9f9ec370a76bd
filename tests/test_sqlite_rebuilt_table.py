"""A SQLite table rebuilt the way SQLite alters tables (create a new one, copy, drop
the old, rename): Django's migrations, Alembic's batch mode and SQLite's own manual
do it. The capture triggers go with the old table, and what is written to the new
one is not captured until setup makes them again. The run already stopped on the
missing triggers; it said only "rerun setup", after which those writes stayed
behind for good. Both the run and setup now say they were not captured, and setup
has the entity snapshotted again (sync/setup.py), which brings the other side in step.

A column added (or renamed) in place keeps the triggers, made for the old
columns: the writes since were captured without the new column's values, and
"rerun setup" left them so at the targets. The same: both name the resync.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, rows, run_json

REBUILD = ("CREATE TABLE new__u (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
           "INSERT INTO new__u SELECT id, name FROM u", "DROP TABLE u",
           "ALTER TABLE new__u RENAME TO u")


def _synced(tmp_path: Path, pipeline: str) -> tuple[Path, Path, Path]:
    """``u`` with two rows at a, synced both ways with b: (a, b, the pipeline file)."""
    a, b, p = sqlite_pair(tmp_path, pipeline, "u",
                          ["CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT)"])
    sqlite_run(a, "INSERT INTO u VALUES (1, 'a'), (2, 'b')")
    cdcsync("setup", str(p))
    run_json(p)
    return a, b, p


def _rows(db: Path) -> list[tuple[object, ...]]:
    return rows(db, "SELECT id, name FROM u ORDER BY id")


def test_writes_to_a_rebuilt_table_arrive_after_setup_and_resync(tmp_path: Path) -> None:
    a, b, p = _synced(tmp_path, "rebuilt")
    sqlite_run(a, *REBUILD, "INSERT INTO u VALUES (3, 'c')", "UPDATE u SET name = 'A' WHERE id = 1")
    res = cdcsync("run", str(p), expect=1)
    assert "writes to it since were not captured" in res.stderr, res.stderr
    assert "which has entity u snapshotted again to copy them" in res.stderr
    assert "Traceback" not in res.stderr
    out = cdcsync("setup", str(p)).stdout
    assert "a: created capture triggers on u again: they were gone" in out, out
    assert "b: capture triggers on u already present" in out
    assert "entity u: its table at a was not read until now" in out  # (resynced)
    run_json(p)
    assert _rows(b) == [(1, "A"), (2, "b"), (3, "c")]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
    sqlite_run(a, "DELETE FROM u WHERE id = 2")  # captured again
    run_json(p)
    assert _rows(b) == [(1, "A"), (3, "c")]


def test_writes_after_a_column_is_added_arrive_after_setup_and_resync(tmp_path: Path) -> None:
    a, b, p = _synced(tmp_path, "added")
    sqlite_run(b, "ALTER TABLE u ADD COLUMN qty INTEGER")
    sqlite_run(a, "ALTER TABLE u ADD COLUMN qty INTEGER", "UPDATE u SET qty = 5 WHERE id = 1",
               "INSERT INTO u VALUES (3, 'c', 7)")
    res = cdcsync("run", str(p), expect=1)
    assert "changed since setup (captured: id INTEGER, name TEXT; now: id INTEGER, name" \
        " TEXT, qty INTEGER): the triggers capture the columns set up, so writes to it" \
        " since were captured without" in res.stderr, res.stderr
    assert "`cdcsync resync PIPELINE u` copies them" in res.stderr
    out = cdcsync("setup", str(p)).stdout
    assert "a: updated capture triggers on u: its columns changed since setup, so writes" \
        " to it since were captured without" in out, out
    cdcsync("resync", str(p), "u")
    run_json(p)
    assert rows(b, "SELECT id, name, qty FROM u ORDER BY id") == [
        (1, "a", 5), (2, "b", None), (3, "c", 7)]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_a_one_way_source_s_added_column_reaches_a_target_that_adds_it(
        tmp_path: Path, pg_dsn: str) -> None:
    """One way, SQLite -> PostgreSQL with ``schema_changes: add``. Setup read the source's
    table through the check that stops on its changed columns: it said "rerun setup"
    to the setup itself, for good. Past it, the resync's snapshot wrote the new column
    before the target had it ("has no column for 'qty'"): the columns a source gained
    were added at the targets after the snapshots, not before."""
    import psycopg

    from tests.pipelines import pg_endpoint, sqlite_endpoint, write_pipeline

    a = tmp_path / "a.db"
    sqlite_run(a, "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT)",
               "INSERT INTO u VALUES (1, 'a'), (2, 'b')")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE u (id bigint PRIMARY KEY, name text)")
    p = write_pipeline(tmp_path, "added1", {"a": sqlite_endpoint(str(a)), "t": pg_endpoint(pg_dsn)},
                       "u", {"a": "u", "t": "u"},
                       options=["direction: one-way", "source: a", "schema_changes: add"])
    p.write_text(p.read_text().replace("sqlite:///state.db", f"sqlite:///{tmp_path}/state.db"))
    cdcsync("setup", str(p))
    run_json(p)
    sqlite_run(a, "ALTER TABLE u ADD COLUMN qty INTEGER", "UPDATE u SET qty = 5 WHERE id = 1")
    cdcsync("run", str(p), expect=1)
    cdcsync("setup", str(p))
    cdcsync("resync", str(p), "u")
    run_json(p)
    with psycopg.connect(pg_dsn) as conn:
        got = conn.execute("SELECT id, name, qty FROM u ORDER BY id").fetchall()
    assert got == [(1, "a", 5), (2, "b", None)]
    assert run_json(p)["totals"]["applied"] == 0
