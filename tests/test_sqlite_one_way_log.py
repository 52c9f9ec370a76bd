"""A one-way SQLite target's change log does not grow with what the service writes there.

The triggers log every write, the service's own included (its row versions are the log's
``seq``). Nothing reads a one-way target's log, so nothing ever pruned it: the log held a
row for every row the service had ever written there. Through the real CLI.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.test_cli_quickstart import cdcsync, rows, run_json

PIPELINE = """\
pipeline: oneway_log
state: {url: sqlite:///state.db}
endpoints:
  a: {kind: sqlite, path: a.db}
  b: {kind: sqlite, path: b.db}
entities:
  items:
    key: [id]
    direction: one-way
    source: a
    endpoints: {a: items, b: items}
"""

DDL = "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)"


def write(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as c:
        for st in statements:
            c.execute(st)
    c.close()


def test_the_services_writes_leave_no_rows_in_a_one_way_targets_log(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    write(a, DDL, *(f"INSERT INTO items VALUES ({i}, 'v{i}')" for i in range(50)))
    write(b, DDL)
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPELINE)
    cdcsync("setup", str(p))
    assert run_json(p)["totals"]["applied"] == 50
    write(a, "UPDATE items SET label = 'edited' WHERE id < 10", "DELETE FROM items WHERE id >= 40")
    assert run_json(p)["totals"]["applied"] == 20

    assert rows(b, "SELECT count(*), sum(label = 'edited') FROM items") == [(40, 10)]
    assert rows(b, "SELECT count(*) FROM _cdcsync_log") == [(0,)]  # was 70
    assert rows(a, "SELECT count(*) FROM _cdcsync_log") == [(0,)]  # the source: pruned
    # The row versions the sink compares are still there, and still move.
    assert rows(b, "SELECT count(*) FROM _cdcsync_rowver WHERE ver IS NOT NULL") == [(50,)]
    write(a, "UPDATE items SET label = 'again' WHERE id = 1")
    assert run_json(p)["totals"]["applied"] == 1
    assert rows(b, "SELECT label FROM items WHERE id = 1") == [("again",)]
    cdcsync("verify", str(p))

    # A user's own edit at the target is logged as ever (another pipeline may read it).
    write(b, "UPDATE items SET label = 'by hand' WHERE id = 2")
    assert rows(b, "SELECT op, origin FROM _cdcsync_log") == [("update", None)]


def test_setup_deletes_the_service_rows_an_older_version_left(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    write(a, DDL, "INSERT INTO items VALUES (1, 'x')")
    write(b, DDL)
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPELINE)
    cdcsync("setup", str(p))
    run_json(p)
    # What an older version left behind: its own rows, and a user's edit.
    write(b, "INSERT INTO _cdcsync_log (tbl, pk, op, data, origin, ts) "
             "VALUES ('items', '[1]', 'insert', '{}', 'cdcsync', 0)",
          "INSERT INTO _cdcsync_log (tbl, pk, op, data, origin, ts) "
          "VALUES ('items', '[2]', 'insert', '{}', 'cdcsync', 0)",
          "UPDATE items SET label = 'by hand' WHERE id = 1")
    out = cdcsync("setup", str(p)).stdout
    assert "deleted 2 log row(s) of the service's own writes" in out
    assert rows(b, "SELECT pk, origin FROM _cdcsync_log") == [("[1]", None)]
