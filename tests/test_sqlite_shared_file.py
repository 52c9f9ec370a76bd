"""Two pipelines reading different tables of one SQLite file.

The change log is the file's, one for every table. A batch run prunes it after its
catch-up up to its own checkpoint; it deleted the other pipeline's unread rows with
it, and that pipeline's target never got those changes. Through the real CLI.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.test_cli_quickstart import cdcsync, rows, run_json


def pipeline(tmp: Path, name: str, table: str, target: str) -> Path:
    p = tmp / f"{name}.yaml"
    p.write_text(f"""
pipeline: {name}
state: {{url: sqlite:///{name}-state.db}}
endpoints:
  shared: {{kind: sqlite, path: shared.db}}
  {target}: {{kind: sqlite, path: {target}.db}}
entities:
  {table}:
    key: [id]
    direction: one-way
    source: shared
    endpoints: {{shared: {table}, {target}: {table}}}
""")
    cdcsync("setup", str(p))
    return p


def test_a_run_prunes_only_the_tables_its_pipeline_reads(tmp_path: Path) -> None:
    for db in ("shared.db", "b.db", "c.db"):
        with sqlite3.connect(tmp_path / db) as c:
            c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT)")
            c.execute("CREATE TABLE y (id INTEGER PRIMARY KEY, v TEXT)")
        c.close()
    p1 = pipeline(tmp_path, "p1", "x", "b")
    p2 = pipeline(tmp_path, "p2", "y", "c")
    run_json(p1)
    run_json(p2)
    with sqlite3.connect(tmp_path / "shared.db") as c:
        c.execute("INSERT INTO x VALUES (1, 'x1')")
        c.execute("INSERT INTO y VALUES (1, 'y1')")
    c.close()
    assert run_json(p1)["totals"]["applied"] == 1  # and prunes the log after its catch-up
    assert rows(tmp_path / "shared.db", "SELECT tbl FROM _cdcsync_log") == [("y",)]
    assert run_json(p2)["totals"]["applied"] == 1
    assert rows(tmp_path / "c.db", "SELECT * FROM y") == [(1, "y1")]
    cdcsync("verify", str(p2))
    assert rows(tmp_path / "shared.db", "SELECT count(*) FROM _cdcsync_log") == [(0,)]


def test_a_table_no_entity_uses_any_more_is_no_longer_captured(tmp_path: Path) -> None:
    """An entity taken out of the pipeline file left its table's triggers: every write
    to it was logged for ever (no run prunes a table it does not read), and until
    2026-12-07 even the teardown kept them, and with them the file's change log. Setup
    now drops them (tests/test_added_entity.py puts such an entity back)."""
    from tests.pipelines import sqlite_pair, sqlite_run

    a, b, p = sqlite_pair(tmp_path, "gone", "t", ["CREATE TABLE t (id INTEGER PRIMARY KEY)",
                                                  "CREATE TABLE u (id INTEGER PRIMARY KEY)"])
    two = p.read_text()
    p.write_text(two + '  u:\n    key: [id]\n    endpoints: {a: "u", b: "u"}\n')
    cdcsync("setup", str(p))
    run_json(p)
    p.write_text(two)  # u is taken out
    said = cdcsync("setup", str(p)).stdout
    assert "a: dropped 4 capture triggers on u: the pipeline no longer uses it here" in said
    sqlite_run(a, "INSERT INTO u VALUES (1)", "INSERT INTO t VALUES (1)")
    run_json(p)
    assert rows(a, "SELECT count(*) FROM _cdcsync_log") == [(0,)]
    cdcsync("teardown", str(p))
    for db in (a, b):
        assert rows(db, "SELECT name FROM sqlite_master WHERE name LIKE '%cdcsync%'") == []
