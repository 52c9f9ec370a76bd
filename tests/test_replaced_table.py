"""A bound MariaDB table made anew over itself (``CREATE OR REPLACE TABLE``): its rows
go without a row event. The run passed it by, and the rows it held stayed at every
target for good (only verify saw them). Now the run stops before applying anything
after it and names the resync, which takes the table as it is. Through the CLI,
MariaDB -> PostgreSQL.

The resync has to read the log on from its current end (``--reset-stream``): from
where it stood, before the statement, the run read it again and stopped again, as
it did after a DROP (whose message named the resync alone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import run
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_partial_row_images import _rows, synced_items


def test_a_table_made_anew_stops_the_run_and_resync_takes_it_as_it_is(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    p = synced_items(tmp_path, mp, pg_dsn)
    run(mp, "CREATE OR REPLACE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items VALUES (7, 'g', 7)")
    res = cdcsync("run", str(p), expect=1)
    assert "table items at m was made anew (CREATE OR REPLACE TABLE items" in res.stderr, \
        res.stderr
    assert "`cdcsync resync PIPELINE items --reset-stream`" in res.stderr
    assert "Traceback" not in res.stderr
    assert _rows(pg_dsn) == [(1, "a", 1), (2, "b", 2)]  # nothing after it applied
    cdcsync("resync", str(p), "items", "--reset-stream")
    run_json(p)
    assert _rows(pg_dsn) == [(7, "g", 7)]
    run(mp, "UPDATE items SET qty = 8 WHERE id = 7")
    run_json(p)
    assert _rows(pg_dsn) == [(7, "g", 8)]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_a_table_dropped_and_made_again_is_read_on_after_the_resync(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    """The stop on a DROP named a resync alone, which read the log on from before the
    DROP and stopped on it again, for good."""
    mp = mariadb_params
    p = synced_items(tmp_path, mp, pg_dsn)
    run(mp, "DROP TABLE items",
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items VALUES (5, 'e', 5)")
    res = cdcsync("run", str(p), expect=1)
    assert "table items at m was dropped (DROP TABLE" in res.stderr, res.stderr
    assert "`cdcsync resync PIPELINE items --reset-stream`" in res.stderr
    cdcsync("resync", str(p), "items", "--reset-stream")
    run_json(p)
    run(mp, "INSERT INTO items VALUES (6, 'f', 6)")
    run_json(p)
    assert _rows(pg_dsn) == [(5, "e", 5), (6, "f", 6)]
