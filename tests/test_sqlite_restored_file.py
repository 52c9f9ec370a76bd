"""A SQLite endpoint's file put back from an older copy (a backup restored, a file
copied over it): its change log numbers on from where the copy stood, below the
pipeline's checkpoint.

Every run read nothing and said ok until the numbers passed the checkpoint, and
read on from there: the writes made meanwhile never reached the other side. Now the
run stops naming the way out (`resync --reset-stream`), which takes the file as it
is and reads on. Through the CLI, SQLite <-> SQLite.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, rows, run_json


def _copy(src: Path, dst: Path) -> None:
    """``src`` copied over ``dst`` as SQLite's backup API does (the way to take and put
    back a consistent copy of a live file)."""
    with sqlite3.connect(src) as s, sqlite3.connect(dst) as d:
        s.backup(d)


def _backed_up(tmp: Path, rows: str) -> tuple[Path, Path, Path]:
    """A two-way pair holding ``rows`` (set up and run once) and a backup of ``a``
    (``tmp/backup.db``): a, b and the pipeline file."""
    a, b, p = sqlite_pair(tmp, "restored", "u",
                          ["CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT)"])
    sqlite_run(a, f"INSERT INTO u VALUES {rows}")
    cdcsync("setup", str(p))
    run_json(p)
    _copy(a, tmp / "backup.db")
    return a, b, p


def test_a_file_put_back_from_an_older_copy_stops_the_run_until_resynced(
        tmp_path: Path) -> None:
    a, b, p = _backed_up(tmp_path, "(1, 'a'), (2, 'b')")
    sqlite_run(a, *(f"UPDATE u SET name = 'v{i}' WHERE id = 1" for i in range(5)))
    run_json(p)
    _copy(tmp_path / "backup.db", a)
    sqlite_run(a, "UPDATE u SET name = 'B' WHERE id = 2")
    res = cdcsync("run", str(p), expect=1)
    assert f"the change log of {a} ends at seq" in res.stderr, res.stderr
    assert "before this pipeline's checkpoint" in res.stderr
    assert "`cdcsync resync PIPELINE ENTITY... --reset-stream`" in res.stderr
    assert rows(b, "SELECT id, name FROM u ORDER BY id") == [(1, "v4"), (2, "b")]
    cdcsync("resync", str(p), "u", "--reset-stream")
    run_json(p)
    # The file as it was put back is the news: its row 1 went back to 'a' there
    assert rows(b, "SELECT id, name FROM u ORDER BY id") == [(1, "a"), (2, "B")]
    sqlite_run(a, "UPDATE u SET name = 'after' WHERE id = 1")
    assert run_json(p)["totals"]["applied"] == 1
    assert rows(b, "SELECT id, name FROM u ORDER BY id") == [(1, "after"), (2, "B")]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_resync_restored_writes_what_is_known_over_the_older_copy(tmp_path: Path) -> None:
    """`--restored a` instead: the edits the copy lost come back to it, b's own edits
    stay, and a row written to a since it was put back goes to b."""
    a, b, p = _backed_up(tmp_path, "(1, 'a'), (2, 'b'), (3, 'c')")
    sqlite_run(a, "UPDATE u SET name = 'A' WHERE id = 1", "DELETE FROM u WHERE id = 3")
    sqlite_run(b, "UPDATE u SET name = 'B' WHERE id = 2", "INSERT INTO u VALUES (7, 'g')")
    run_json(p)
    _copy(tmp_path / "backup.db", a)
    sqlite_run(a, "INSERT INTO u VALUES (5, 'e')")
    res = cdcsync("run", str(p), expect=1)
    assert "`--restored ENDPOINT` instead of `--reset-stream`" in res.stderr, res.stderr
    cdcsync("resync", str(p), "u", "--restored", "a")
    totals = run_json(p)["totals"]
    assert totals["resolved"] == totals["parked"] == 0
    want = [(1, "A"), (2, "B"), (5, "e"), (7, "g")]
    assert rows(a, "SELECT id, name FROM u ORDER BY id") == want
    assert rows(b, "SELECT id, name FROM u ORDER BY id") == want
    sqlite_run(a, "UPDATE u SET name = 'E' WHERE id = 5")
    assert run_json(p)["totals"]["applied"] == 1
    assert rows(b, "SELECT id, name FROM u ORDER BY id")[2] == (5, "E")
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
