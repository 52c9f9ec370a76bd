"""Rows that SQLite deletes for clashing with a written one (``INSERT OR REPLACE``).

``REPLACE``, ``INSERT OR REPLACE``, ``UPDATE OR REPLACE`` and a constraint's own ``ON
CONFLICT REPLACE`` delete every row the new one clashes with on a unique constraint,
and SQLite fires no delete trigger for those unless the writer's connection turned
``recursive_triggers`` on. Upserting by a natural key that way (``REPLACE INTO
products (sku, ...)``, a new rowid each time) is a common SQLite idiom: the other
rows' deletes were never captured, so the targets kept them, and a target with the
same unique constraint refused the new row (a dead letter, for good). Now a BEFORE
trigger notes the clashing rows and the AFTER trigger logs them deleted, ahead of
the new row. Through the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.pipelines import pg_endpoint, sqlite_endpoint, sqlite_pair, sqlite_run, write_pipeline
from tests.test_cli_quickstart import cdcsync, rows, run_json
from tests.test_wide_dates import pg

DDL = ("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
       " handle TEXT UNIQUE ON CONFLICT REPLACE, name TEXT)",
       "CREATE UNIQUE INDEX u_name ON u (name COLLATE NOCASE)")
SEED = ("INSERT INTO u VALUES (1, 'a@x', 'h1', 'Ann'), (2, 'b@x', 'h2', 'Bob'),"
        " (3, 'c@x', 'h3', 'Cid'), (4, 'd@x', 'h4', 'Dee'), (5, 'e@x', 'h5', 'Eve'),"
        " (6, 'f@x', 'h6', 'Fay')")
WRITES = (
    "INSERT OR REPLACE INTO u VALUES (10, 'a@x', 'h10', 'Ten')",  # 1 goes (email)
    "REPLACE INTO u (email, handle, name) VALUES ('b@x', 'h11', 'Bob2')",  # 2 goes, new id
    "UPDATE OR REPLACE u SET email = 'c@x' WHERE id = 4",  # 3 goes
    "INSERT INTO u VALUES (12, 'l@x', 'h5', 'Lee')",  # 5 goes (handle: ON CONFLICT REPLACE)
    "INSERT OR REPLACE INTO u VALUES (13, 'm@x', 'h13', 'FAY')",  # 6 goes (NOCASE index)
    "INSERT OR IGNORE INTO u VALUES (14, 'a@x', 'h14', 'Fourteen')",  # nothing goes
    "INSERT INTO u VALUES (15, 'c@x', 'h15', 'X') ON CONFLICT (email) DO UPDATE"
    " SET name = 'Dee2'",  # 4 is updated, nothing goes
)


def _rows(db: Path) -> list[tuple[object, ...]]:
    return rows(db, "SELECT id, email, handle, name FROM u ORDER BY id")


def test_rows_replaced_at_a_sqlite_source_are_deleted_at_the_other_end(tmp_path: Path) -> None:
    a, b, p = sqlite_pair(tmp_path, "replaced", "u", DDL)
    sqlite_run(a, SEED)
    cdcsync("setup", str(p))
    run_json(p)
    sqlite_run(a, *WRITES)
    want = [(4, "c@x", "h4", "Dee2"), (10, "a@x", "h10", "Ten"), (11, "b@x", "h11", "Bob2"),
            (12, "l@x", "h5", "Lee"), (13, "m@x", "h13", "FAY")]
    assert _rows(a) == want
    totals = run_json(p)["totals"]  # exit 0: no dead letter
    assert totals["applied"] == 10  # 5 deletes, 4 rows written, 4 updated
    assert _rows(b) == want
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
    # The same the other way, and then nothing more to do.
    sqlite_run(b, "REPLACE INTO u (email, handle, name) VALUES ('a@x', 'h20', 'Twenty')")
    run_json(p)
    assert [r[0] for r in _rows(a)] == [4, 11, 12, 13, 14]
    assert run_json(p)["totals"]["applied"] == 0


def test_replaced_rows_leave_a_postgres_target_too(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, dsn = tmp_path / "a.db", pg_dsn_factory()
    sqlite_run(a, *DDL, SEED)
    pg(dsn, "CREATE TABLE u (id bigint PRIMARY KEY, email text NOT NULL UNIQUE,"
            " handle text UNIQUE, name text)")
    p = write_pipeline(tmp_path, "replaced-pg", {"a": sqlite_endpoint(str(a)),
                                                  "t": pg_endpoint(dsn)},
                       "u", {"a": "u", "t": "u"}, options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    run_json(p)
    sqlite_run(a, *WRITES[:4])
    run_json(p)
    import psycopg

    with psycopg.connect(dsn) as conn:
        got = conn.execute("SELECT id, email, handle, name FROM u ORDER BY id").fetchall()
    assert got == _rows(a)


def test_a_setup_without_the_clash_triggers_is_refused_until_set_up_again(
        tmp_path: Path) -> None:
    a, b, p = sqlite_pair(tmp_path, "replaced-old", "u", DDL)
    sqlite_run(a, SEED)
    cdcsync("setup", str(p))
    run_json(p)
    sqlite_run(a, 'DROP TRIGGER "_cdcsync_u_repi"', 'DROP TRIGGER "_cdcsync_u_repu"')
    res = cdcsync("run", str(p), expect=1)
    assert "no capture yet of the rows an INSERT OR REPLACE deletes" in res.stderr
    assert "rerun `cdcsync setup`" in res.stderr and "Traceback" not in res.stderr
    assert "a: updated capture triggers on u" in cdcsync("setup", str(p)).stdout
    sqlite_run(a, WRITES[0])
    run_json(p)
    assert _rows(b) == _rows(a)
