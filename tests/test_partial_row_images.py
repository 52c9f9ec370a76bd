"""Row images without every column at a MariaDB source (``binlog_row_image`` MINIMAL or
NOBLOB, which a session may set and a server's setting may change to after setup).

Their unlogged columns are unknown. The run stopped with ``KeyError: 'id'``, naming
nothing, run after run. Now it stops naming the transaction, the table, the columns,
the setting and the way out, which works; columns the entity does not synchronise
may be missing. Through the CLI, MariaDB -> PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import run
from tests.pipelines import mariadb_to_pg
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def _rows(dsn: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT * FROM items ORDER BY id")]


def _pipeline(tmp_path: Path, mp: dict[str, Any], dsn: str, *options: str) -> Path:
    return mariadb_to_pg(tmp_path, mp, dsn, options=options)


def synced_items(tmp_path: Path, mp: dict[str, Any], dsn: str) -> Path:
    """MariaDB ``items`` (id, name, qty) holding two rows, synced one way to PostgreSQL:
    the pipeline file."""
    run(mp, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2)")
    p = _pipeline(tmp_path, mp, dsn)
    cdcsync("setup", str(p))
    run_json(p)
    return p


def test_a_minimal_image_stops_the_run_and_resync_gets_past_it(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    p = synced_items(tmp_path, mp, pg_dsn)
    run(mp, "SET SESSION binlog_row_image = 'MINIMAL'", "UPDATE items SET name = 'A' WHERE id = 1",
        "SET SESSION binlog_row_image = 'FULL'", "INSERT INTO items VALUES (3, 'c', 3)")
    res = cdcsync("run", str(p), expect=1)
    assert "logged rows of items without column(s) name, qty (" in res.stderr, res.stderr
    assert "binlog_row_image = MINIMAL or NOBLOB" in res.stderr
    assert "`cdcsync resync PIPELINE items --reset-stream`" in res.stderr
    assert "Traceback" not in res.stderr and "KeyError" not in res.stderr
    assert _rows(pg_dsn) == [(1, "a", 1), (2, "b", 2)]  # nothing half-applied
    cdcsync("resync", str(p), "items", "--reset-stream")
    run_json(p)
    assert _rows(pg_dsn) == [(1, "A", 1), (2, "b", 2), (3, "c", 3)]
    run(mp, "UPDATE items SET qty = 9 WHERE id = 2")
    run_json(p)
    assert _rows(pg_dsn)[1] == (2, "b", 9)
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_an_unsynchronised_blob_may_be_left_out(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    run(mp, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), body LONGTEXT)",
        "INSERT INTO items VALUES (1, 'a', 'long')")
    pg(pg_dsn, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    p = _pipeline(tmp_path, mp, pg_dsn, "exclude: [body]")
    cdcsync("setup", str(p))
    run_json(p)
    run(mp, "SET SESSION binlog_row_image = 'NOBLOB'", "UPDATE items SET name = 'A' WHERE id = 1")
    assert run_json(p)["totals"]["applied"] == 1
    assert _rows(pg_dsn) == [(1, "A")]
