"""Dropping a column of a captured SQLite table, as the README says: SQLite refuses to
drop a column the capture triggers read, so `cdcsync teardown`, drop it, `cdcsync
setup`, `cdcsync resync PIPELINE ENTITY --reset-stream`. The teardown drops the change
log and setup makes it anew: every run stopped on the old log's checkpoint, naming no
command that helped (a resync without ``--reset-stream`` keeps that checkpoint), and
the README's procedure left ``--reset-stream`` out (until 2026-12-07)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, rows, run_json


def test_the_readme_drop_column_procedure_works_and_the_stop_names_the_way_out(
        tmp_path: Path) -> None:
    a, b, p = sqlite_pair(tmp_path, "dropcol", "items", [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, extra TEXT)",
        "INSERT INTO items VALUES (1, 'ann', 'x'), (2, 'bob', 'y')"])
    cdcsync("setup", str(p))
    run_json(p)
    assert rows(b, "SELECT id, name FROM items ORDER BY id") == [(1, "ann"), (2, "bob")]

    try:  # what sends the user to the procedure
        sqlite_run(a, "ALTER TABLE items DROP COLUMN extra")
    except sqlite3.OperationalError as exc:
        assert "_cdcsync_" in str(exc), exc
    else:
        raise AssertionError("SQLite dropped a column the capture triggers read")

    cdcsync("teardown", str(p), "--yes")
    for db in (a, b):
        sqlite_run(db, "ALTER TABLE items DROP COLUMN extra")
    cdcsync("setup", str(p))

    # Without --reset-stream: every run stops, and says which command helps.
    stop = cdcsync("run", str(p), expect=1)
    assert "was recreated" in stop.stderr, stop.stderr
    assert "--reset-stream" in stop.stderr, stop.stderr
    cdcsync("resync", str(p), "items")
    again = cdcsync("run", str(p), expect=1)
    assert "--reset-stream" in again.stderr, again.stderr

    # The procedure's last step, as the README and the message name it.
    cdcsync("resync", str(p), "items", "--reset-stream")
    run_json(p)
    assert rows(b, "SELECT id, name FROM items ORDER BY id") == [(1, "ann"), (2, "bob")]
    # The new log is read from then on, both ways.
    sqlite_run(a, "UPDATE items SET name = 'ann, after' WHERE id = 1")
    sqlite_run(b, "INSERT INTO items (id, name) VALUES (3, 'cy')")
    run_json(p)
    assert rows(b, "SELECT id, name FROM items ORDER BY id") == [
        (1, "ann, after"), (2, "bob"), (3, "cy")]
    assert rows(a, "SELECT id, name FROM items ORDER BY id") == [
        (1, "ann, after"), (2, "bob"), (3, "cy")]
    assert "in sync" in cdcsync("verify", str(p)).stdout
