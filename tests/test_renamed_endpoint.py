"""An endpoint renamed in the pipeline file (``a`` -> ``crm``) was read as a new one:
snapshotted, each row edited since the last sync taken for an edit beside its own
earlier copy, and the policy picked among copies of the same edits by timestamps
(it could keep the other endpoint's older copy). Runs now stop on the shape of a
rename and name both ways out (sync/renamed.py). Through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, rows, run_json


def _renamed(p: Path, old: str, new: str) -> None:
    text = p.read_text()
    p.write_text(text.replace(f"  {old}: {{kind", f"  {new}: {{kind").replace(
        f'{{"{old}": "t"', f'{{"{new}": "t"').replace(f'{old}: "t"', f'{new}: "t"'))


def _pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b, p = sqlite_pair(tmp_path, "renamed", "t",
                          ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    sqlite_run(a, "INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    cdcsync("setup", str(p))
    run_json(p)
    sqlite_run(a, "UPDATE t SET v = 'ONE' WHERE id = 1")  # on their way at the rename
    sqlite_run(b, "UPDATE t SET v = 'TWO' WHERE id = 2")
    return a, b, p


def test_a_renamed_endpoint_stops_the_run_until_its_name_is_back(tmp_path: Path) -> None:
    a, b, p = _pair(tmp_path)
    _renamed(p, "a", "crm")
    assert "crm: {kind" in p.read_text()
    res = cdcsync("run", str(p), expect=1)
    assert "entity 't': endpoint crm is new to it, and a, which the state store knows it" \
        " by, is no longer in the pipeline file" in res.stderr, res.stderr
    assert "`cdcsync resync PIPELINE t --forget a`" in res.stderr
    assert "Traceback" not in res.stderr
    _renamed(p, "crm", "a")
    out = run_json(p)
    assert out["totals"]["resolved"] == out["totals"]["parked"] == 0, out
    assert rows(a, "SELECT * FROM t ORDER BY id") == [(1, "ONE"), (2, "TWO")]
    assert rows(b, "SELECT * FROM t ORDER BY id") == [(1, "ONE"), (2, "TWO")]


def test_an_endpoint_gone_for_good_is_forgotten_and_the_new_one_read_as_new(
        tmp_path: Path) -> None:
    a, b, p = _pair(tmp_path)
    _renamed(p, "a", "crm")
    refused = cdcsync("resync", str(p), "t", "--forget", "b", expect=1)
    assert "endpoint 'b' is still one of entity 't''s" in refused.stderr, refused.stderr
    said = cdcsync("resync", str(p), "t", "--forget", "a").stdout
    assert "t: endpoint a forgotten" in said, said
    run_json(p)
    assert rows(a, "SELECT * FROM t ORDER BY id") == rows(b, "SELECT * FROM t ORDER BY id")
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
