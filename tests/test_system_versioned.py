"""MariaDB system-versioned tables (``WITH SYSTEM VERSIONING``) at either end.

Such a table keeps old row versions in itself, and the binlog logs them as
rows: an UPDATE logs the update and the insert of a history row holding the
old values under the same key, a DELETE logs an update ending the row. Read as
such, every update was undone at the targets by its history row, every deleted
row stayed there, and the implicit period columns (``row_start``, ``row_end``,
in no query's result but in every row image) stopped a SQLite target's run
for good. Through the CLI, with the ways to declare the period.

A table versioned by transaction id has its writes logged as statements, as
does a session whose ``binlog_format`` is STATEMENT or MIXED: such writes were
passed by in silence (a DDL statement is logged so too). Setup now refuses
such a table and a run stops at such a statement, naming the way out.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.mysql.helpers import query, run
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

TABLES = {
    "implicit": "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)) WITH SYSTEM VERSIONING",
    "timestamps": (
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20),"
        " vs TIMESTAMP(6) GENERATED ALWAYS AS ROW START,"
        " ve TIMESTAMP(6) GENERATED ALWAYS AS ROW END,"
        " PERIOD FOR SYSTEM_TIME(vs, ve)) WITH SYSTEM VERSIONING"),
}
BY_TRANSACTION = (
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20),"
        " vs BIGINT UNSIGNED GENERATED ALWAYS AS ROW START INVISIBLE,"
        " ve BIGINT UNSIGNED GENERATED ALWAYS AS ROW END INVISIBLE,"
        " PERIOD FOR SYSTEM_TIME(vs, ve)) ENGINE=InnoDB WITH SYSTEM VERSIONING")


def _pg_rows(dsn: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT id, name FROM items ORDER BY id")]


def _in_sync(p: Path) -> bool:
    return all(d["in_sync"] for d in json.loads(cdcsync("verify", str(p), "--json").stdout))


@pytest.mark.parametrize("form", sorted(TABLES))
def test_updates_and_deletes_of_a_versioned_source_arrive_as_such(
        form: str, tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    from tests.connectors.postgres.helpers import pipeline_of

    mp = mariadb_params
    run(mp, TABLES[form], "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    lite = tmp_path / "s.db"
    sqlite3.connect(lite).close()
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"m": mariadb_endpoint(mp), "t": pg_endpoint(pg_dsn),
                        "s": sqlite_endpoint(str(lite))},
                       "items", {"m": "items", "t": "items", "s": "items"},
                       options=["direction: one-way", "source: m"])
    cdcsync("setup", str(p))
    run_json(p)
    run(mp, "UPDATE items SET name = 'a2' WHERE id = 1",
        "DELETE FROM items WHERE id = 2",
        "INSERT INTO items (id, name) VALUES (4, 'd')",
        "START TRANSACTION", "UPDATE items SET name = 'c2' WHERE id = 3",
        "UPDATE items SET name = 'c3' WHERE id = 3", "COMMIT")
    assert query(mp, "SELECT COUNT(*) FROM items FOR SYSTEM_TIME ALL")[0][0] > 4  # history
    out = run_json(p)
    assert out["totals"]["applied"] == 2 * 4  # (id 3's two updates: its last row, once)
    want = [(1, "a2"), (3, "c3"), (4, "d")]
    assert _pg_rows(pg_dsn) == want
    with sqlite3.connect(lite) as conn:
        assert conn.execute("SELECT id, name FROM items ORDER BY id").fetchall() == want
        # the period columns are the source's own, as generated columns are
        assert [r[1] for r in conn.execute("PRAGMA table_info(items)")] == ["id", "name"]
    # Purging the history changes no current row
    run(mp, "DELETE HISTORY FROM items")
    assert run_json(p)["totals"]["read"] == 0
    assert _in_sync(p)


def test_a_versioned_table_synchronised_both_ways_with_postgresql(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    """Our own writes make history rows at the versioned side too: none comes back."""
    from tests.connectors.postgres.helpers import pipeline_of

    mp = mariadb_params
    run(mp, TABLES["implicit"], "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    pg(pg_dsn, "CREATE TABLE items (id int PRIMARY KEY, name varchar(20))",
       "INSERT INTO items VALUES (3, 'c')")
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"m": mariadb_endpoint(mp), "t": pg_endpoint(pg_dsn)},
                       "items", {"m": "items", "t": "items"})
    cdcsync("setup", str(p))
    run_json(p)
    pg(pg_dsn, "UPDATE items SET name = 'a-pg' WHERE id = 1", "DELETE FROM items WHERE id = 3")
    run(mp, "UPDATE items SET name = 'b-m' WHERE id = 2", "INSERT INTO items VALUES (4, 'd')")
    run_json(p)
    want = [(1, "a-pg"), (2, "b-m"), (4, "d")]
    assert _pg_rows(pg_dsn) == want
    assert [tuple(r) for r in query(mp, "SELECT id, name FROM items ORDER BY id")] == want
    # The fixed point: the history rows our applies made at MariaDB are no new edits
    assert run_json(p)["totals"]["applied"] == 0
    assert run_json(p)["totals"]["read"] == 0
    run(mp, "DELETE FROM items WHERE id = 1")
    run_json(p)
    assert _pg_rows(pg_dsn) == want[1:]
    assert _in_sync(p)


def test_a_table_versioned_by_transaction_id_is_refused_as_a_source(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    from tests.pipelines import mariadb_to_pg

    run(mariadb_params, BY_TRANSACTION)
    p = mariadb_to_pg(tmp_path, mariadb_params, pg_dsn)
    res = cdcsync("setup", str(p), expect=1)
    assert "table items is system-versioned by transaction id (its period column ve is" \
        " bigint(20) unsigned): MariaDB logs its writes as statements" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_a_write_logged_as_a_statement_stops_the_run_and_resync_gets_past_it(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    from tests.pipelines import mariadb_to_pg

    mp = mariadb_params
    run(mp, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE other (id INT PRIMARY KEY)",
        "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    p = mariadb_to_pg(tmp_path, mp, pg_dsn)
    cdcsync("setup", str(p))
    run_json(p)
    # A statement-logged write of a table no entity reads is no concern
    run(mp, "SET SESSION binlog_format = 'STATEMENT'", "INSERT INTO other VALUES (1)")
    assert run_json(p)["totals"]["read"] == 0
    run(mp, "SET SESSION binlog_format = 'STATEMENT'",
        "UPDATE items SET name = 'secret' WHERE id = 1",
        "SET SESSION binlog_format = 'ROW'", "INSERT INTO items VALUES (3, 'c')")
    res = cdcsync("run", str(p), expect=1)
    assert "logged a statement (UPDATE) that may write items, not the rows it wrote" \
        " (binlog_format = STATEMENT or MIXED" in res.stderr, res.stderr
    assert "`cdcsync resync PIPELINE items --reset-stream`" in res.stderr
    assert "secret" not in res.stderr and "Traceback" not in res.stderr
    assert _pg_rows(pg_dsn) == [(1, "a"), (2, "b")]  # nothing half-applied
    cdcsync("resync", str(p), "items", "--reset-stream")
    run_json(p)
    assert _pg_rows(pg_dsn) == [(1, "secret"), (2, "b"), (3, "c")]
    run(mp, "DELETE FROM items WHERE id = 2")
    run_json(p)
    assert _pg_rows(pg_dsn) == [(1, "secret"), (3, "c")]
    assert _in_sync(p)
