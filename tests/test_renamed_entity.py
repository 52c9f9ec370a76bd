"""An entity renamed in the pipeline file (``t`` -> ``clients``) was read as a new one:
its first run snapshotted it, and each row of a two-way entity edited since the last
run was taken for an edit beside its own earlier copy. Runs now stop on the shape
of a rename, and ``cdcsync entity rename|forget`` are the ways on (sync/renamed.py).
Through the real CLI.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, rows, run_json
from tests.test_renamed_endpoint import _pair


def _entity(p: Path, old: str, new: str) -> None:
    text = p.read_text()
    assert f"\n  {old}:\n" in text
    p.write_text(text.replace(f"\n  {old}:\n", f"\n  {new}:\n"))


def _entities(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "state.db") as conn:
        return sorted(e for (e,) in conn.execute("SELECT DISTINCT entity FROM key_states"))


def test_a_renamed_entity_stops_the_run_and_its_rename_carries_what_is_known(
        tmp_path: Path) -> None:
    a, b, p = _pair(tmp_path)
    _entity(p, "t", "clients")
    res = cdcsync("run", str(p), expect=1)
    assert "entity 'clients' is new to the state store, which knows 't' at the same" \
        " endpoints (a, b) by the same key" in res.stderr, res.stderr
    assert "`cdcsync entity rename PIPELINE t clients`" in res.stderr
    assert "`cdcsync entity forget PIPELINE t`" in res.stderr
    assert "Traceback" not in res.stderr
    assert rows(b, "SELECT * FROM t ORDER BY id") == [(1, "one"), (2, "TWO")]  # nothing read

    refused = cdcsync("entity", "rename", str(p), "clients", "t", expect=1)
    assert "entity 'clients' is still in the pipeline file" in refused.stderr, refused.stderr
    said = cdcsync("entity", "rename", str(p), "t", "clients").stdout
    assert "entity t renamed clients" in said, said
    assert _entities(tmp_path) == ["clients"]

    out = run_json(p)
    assert out["totals"]["resolved"] == out["totals"]["parked"] == 0, out
    assert out["totals"]["applied"] == 2, out
    assert rows(a, "SELECT * FROM t ORDER BY id") == [(1, "ONE"), (2, "TWO")]
    assert rows(b, "SELECT * FROM t ORDER BY id") == [(1, "ONE"), (2, "TWO")]
    assert run_json(p)["totals"]["applied"] == 0


def test_an_entity_gone_for_good_is_forgotten_and_the_new_one_read_as_new(
        tmp_path: Path) -> None:
    a, b, p = _pair(tmp_path)
    _entity(p, "t", "clients")
    refused = cdcsync("entity", "forget", str(p), "clients", expect=1)
    assert "entity 'clients' is still in the pipeline file" in refused.stderr, refused.stderr
    warned = cdcsync("status", str(p), expect=3).stdout
    assert "the state store keeps what it knows of entity t, which the pipeline file no" \
        " longer names: `cdcsync entity forget PIPELINE t` drops it" in " ".join(warned.split())
    said = cdcsync("entity", "forget", str(p), "t").stdout
    assert "entity t forgotten" in said, said
    assert _entities(tmp_path) == []
    again = cdcsync("entity", "forget", str(p), "t").stdout
    assert "nothing known of entity t" in again, again

    run_json(p)  # read as new: the rows differing at the two ends are conflicts
    assert _entities(tmp_path) == ["clients"]
    assert rows(a, "SELECT * FROM t ORDER BY id") == rows(b, "SELECT * FROM t ORDER BY id")
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_an_entity_with_a_dead_letter_is_neither_renamed_nor_forgotten(tmp_path: Path) -> None:
    a, b, p = sqlite_pair(tmp_path, "renamed_entity", "t",
                          ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    sqlite_run(b, "CREATE TRIGGER no_bad BEFORE INSERT ON t WHEN NEW.v = 'bad'"
                  " BEGIN SELECT RAISE(ABORT, 'v may not be bad'); END")
    sqlite_run(a, "INSERT INTO t VALUES (1, 'one'), (2, 'bad')")
    cdcsync("setup", str(p))
    run_json(p, expect=3)  # a dead letter waits at b
    _entity(p, "t", "clients")
    for args in (("rename", str(p), "t", "clients"), ("forget", str(p), "t")):
        res = cdcsync("entity", *args, expect=1)
        assert "1 dead letters (`cdcsync dlq`)" in res.stderr, res.stderr
        assert "nothing was changed" in res.stderr
    assert _entities(tmp_path) == ["t"]
