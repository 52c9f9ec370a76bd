"""A row deleted at one end of a two-way entity between ``cdcsync setup`` and its
first run: the snapshot reads it absent there and present at the other end, and
its first-run rule (a row missing at one end is an insert there) writes it back.

At a SQLite endpoint that insert was skipped for good until 2026-12-07: the capture
keeps a deleted row's version, which the compare-and-set of a write expecting no
row refused, waiting for the delete to be read; but the delete stands before the
snapshot's position and is never read. The run said ok, nothing was pending, and
``verify`` found the ends apart for ever. Through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_key_change import pipeline


def test_a_row_deleted_before_the_first_run_leaves_both_ends_alike(
        tmp_path: Path, two_ends: tuple[Any, Any]) -> None:
    a, b = two_ends
    for end in (a, b):
        end.run("INSERT INTO t VALUES (1, 'x', 'one'), (2, 'y', 'two')")
    p = pipeline(tmp_path, a, b, "id")
    cdcsync("setup", str(p))
    a.run("DELETE FROM t WHERE id = 2")
    out = run_json(p)
    assert out["totals"]["skipped"] == 0, out
    want = [(1, "x", "one"), (2, "y", "two")]
    assert a.run("SELECT id, code, v FROM t ORDER BY id") == want
    assert b.run("SELECT id, code, v FROM t ORDER BY id") == want
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert all(d["in_sync"] for d in drift), drift
    a.run("DELETE FROM t WHERE id = 2")  # and a delete read from the log goes through
    run_json(p)
    assert b.run("SELECT id FROM t ORDER BY id") == [(1,)]
