"""A steward's conflict commands on data that looks like something else.

Square brackets in keys and values were read as rich markup: ``[/k]`` stopped
``conflicts list`` and ``show`` with a MarkupError (one such key made every open
conflict unlistable), ``[b]urgent[/b]`` lost its brackets. ``show`` printed NULL
as "∅ (deleted)" and other values as Python reprs (``Decimal('2')``). A
column-by-column decision silently took every column not named from whichever
side came first, losing the other side's edit of it; ``--field`` split a column
named ``a=b`` at its own "="; a ``%`` in an id prefix matched as a wildcard.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, run_json

DDL = ('CREATE TABLE t (id TEXT PRIMARY KEY, note TEXT, n INTEGER, "a=b" TEXT, amount DECIMAL)',)


def parked(tmp: Path) -> tuple[Path, Path, Path, str]:
    """Key ``[/k]`` edited at both ends (note, and n at b only): one open conflict."""
    a, b, p = sqlite_pair(tmp, "steward", "t", DDL)
    p.write_text(p.read_text() + "    conflict: {policy: manual}\n")
    sqlite_run(a, "INSERT INTO t VALUES ('[/k]', 'x', 1, 'q', NULL)")
    cdcsync("setup", str(p))
    run_json(p)
    sqlite_run(a, "UPDATE t SET note = 'see [b]urgent[/b]', \"a=b\" = 'from a'")
    sqlite_run(b, "UPDATE t SET note = 'see [red]other[/red]', n = 99, \"a=b\" = 'from b'")
    assert run_json(p, expect=3)["totals"]["parked"] == 1
    listed = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
    return a, b, p, listed[0]["id"]


def test_brackets_in_keys_and_values_are_shown_as_they_are(tmp_path: Path) -> None:
    _, _, p, cid = parked(tmp_path)
    out = cdcsync("conflicts", "list", str(p)).stdout
    assert "[/k]" in out, out
    shown = cdcsync("conflicts", "show", str(p), cid).stdout
    assert "see [b]urgent[/b]" in shown and "see [red]other[/red]" in shown, shown
    # the row's NULL is a NULL, not a deletion
    amount = next(line for line in shown.splitlines() if "amount" in line)
    assert "NULL" in amount and "deleted" not in amount, shown


def test_a_column_by_column_decision_names_every_column_that_differs(tmp_path: Path) -> None:
    a, b, p, cid = parked(tmp_path)
    res = cdcsync("conflicts", "resolve", str(p), cid, "--field", "note=b", expect=None)
    assert res.returncode != 0
    assert "choose a version for every column whose values differ: n, a=b" in res.stderr, res
    assert json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)[0]["id"] == cid
    # "a=b=a": column "a=b" from a
    cdcsync("conflicts", "resolve", str(p), cid, "--field", "note=b", "--field", "n=b",
            "--field", "a=b=a")
    for db in (a, b):
        with sqlite3.connect(db) as c:
            assert c.execute('SELECT note, n, "a=b" FROM t').fetchall() == [
                ("see [red]other[/red]", 99, "from a")]
        c.close()


def test_a_wildcard_in_an_id_prefix_matches_nothing(tmp_path: Path) -> None:
    _, _, p, cid = parked(tmp_path)
    res = cdcsync("conflicts", "show", str(p), "%" + cid[1:3], "--json", expect=None)
    assert res.returncode != 0 and cid not in res.stdout
    assert cid in cdcsync("conflicts", "show", str(p), cid[:6], "--json").stdout


def manual_pair(tmp: Path, pipeline: str, check: str = "") -> tuple[Path, Path, Path]:
    """Two SQLite files holding ``t`` row (1, 'x', 1), synced, conflicts parked; ``check``:
    a constraint on ``n`` at b only."""
    a, b, p = sqlite_pair(tmp, pipeline, "t", (
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)",))
    sqlite_run(b, "DROP TABLE t", f"CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT,"
                                  f" n INTEGER {check})")
    p.write_text(p.read_text() + "    conflict: {policy: manual}\n")
    sqlite_run(a, "INSERT INTO t VALUES (1, 'x', 1)")
    cdcsync("setup", str(p))
    run_json(p)
    return a, b, p


def test_a_decision_an_endpoint_refuses_is_not_reported_as_done(tmp_path: Path) -> None:
    a, b, p = manual_pair(tmp_path, "refused", check="CHECK (n < 1000)")
    sqlite_run(a, "UPDATE t SET n = 5000")
    sqlite_run(b, "UPDATE t SET name = 'y'")
    run_json(p, expect=3)
    cid = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)[0]["id"]
    res = cdcsync("conflicts", "resolve", str(p), cid, "--pick", "a", expect=3)
    assert "1 endpoint(s) refused the decided version" in res.stderr, res
    assert len(json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)) == 1


def test_after_a_column_by_column_decision_a_later_conflict_shows_the_decided_version(
        tmp_path: Path) -> None:
    """The decided version kept the origin it had (a's): a's next concurrent edit then
    parked a conflict whose sides, keyed by endpoint, held a's edit alone, and
    ``--pick b`` (the decided version b holds) failed with "no side 'b'"."""
    a, b, p = manual_pair(tmp_path, "fields")
    sqlite_run(a, "UPDATE t SET name = 'a1'")
    sqlite_run(b, "UPDATE t SET name = 'b1', n = 2")
    run_json(p, expect=3)
    first = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)[0]["id"]
    sqlite_run(a, "UPDATE t SET n = 3")  # not read yet
    cdcsync("conflicts", "resolve", str(p), first, "--field", "name=b", "--field", "n=b")
    run_json(p, expect=3)
    [again] = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
    shown = json.loads(cdcsync("conflicts", "show", str(p), again["id"], "--json").stdout)
    sides = shown["sides"].get("by_endpoint") or {
        s["e"]: s for s in (shown["sides"]["current"], shown["sides"]["incoming"])}
    assert sorted(sides) == ["a", "b"], shown
    cdcsync("conflicts", "resolve", str(p), again["id"], "--pick", "b")
    run_json(p)
    for db in (a, b):
        with sqlite3.connect(db) as c:
            assert c.execute("SELECT name, n FROM t").fetchall() == [("b1", 2)]
        c.close()
    cdcsync("verify", str(p))
