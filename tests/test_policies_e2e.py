"""Each conflict policy end to end: two real SQLite databases, edits made on both sides
without knowledge of each other, one `cdcsync run`, the rows at both ends checked.

Every case has the same three concurrent edits (b's made after a's):
row 1: the same column (name) on both sides; row 2: deleted at a, updated at b;
row 3: different columns (a: name, b: qty). The policy rules are unit-tested in
tests/conflict/test_policies.py (tie-breaks included); this is what they do to rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli_quickstart import cdcsync

CUSTOM = '''\
def resolve(case):
    """Both names, sorted; the larger quantity. No opinion on a deletion."""
    cur, inc = case.current.content, case.incoming.content
    if cur is None or inc is None:
        return None
    names = sorted({cur["name"], inc["name"]})
    return {**cur, "name": " / ".join(names), "qty": max(cur["qty"], inc["qty"])}
'''

ORIGINAL = {1: ("one", 1), 2: ("two", 2), 3: ("three", 3)}
Rows = dict[int, tuple[str, int]]

CASES: dict[str, tuple[str, Rows, Rows, int, int]] = {
    # conflict config -> rows at both ends (a, b), resolved, parked
    "last_writer_wins": (
        "{policy: last_writer_wins}",
        {1: ("B", 1), 2: ("two", 99), 3: ("three", 33)},  # b's later edits win whole rows
        {1: ("B", 1), 2: ("two", 99), 3: ("three", 33)}, 3, 0),
    "priority": (
        "{policy: priority, priority: [a, b]}",
        {1: ("A", 1), 3: ("A3", 3)}, {1: ("A", 1), 3: ("A3", 3)}, 3, 0),
    "field_merge": (
        "{policy: field_merge, fallback: priority, priority: [b]}",
        {1: ("B", 1), 2: ("two", 99), 3: ("A3", 33)},  # disjoint columns merge
        {1: ("B", 1), 2: ("two", 99), 3: ("A3", 33)}, 3, 0),
    "custom": (
        "{policy: custom, function: 'house_rules:resolve', fallback: priority, priority: [a]}",
        {1: ("A / B", 1), 3: ("A3 / three", 33)}, {1: ("A / B", 1), 3: ("A3 / three", 33)},
        3, 0),
    "manual": (
        "{policy: manual}",
        {1: ("A", 1), 3: ("A3", 3)},  # nothing moves: each side keeps its own edit
        {1: ("B", 1), 2: ("two", 99), 3: ("three", 33)}, 0, 3),
    "delete_wins": (
        "{policy: priority, priority: [b], on_delete: delete_wins}",
        {1: ("B", 1), 3: ("three", 33)}, {1: ("B", 1), 3: ("three", 33)}, 3, 0),
    "update_wins": (
        "{policy: priority, priority: [a], on_delete: update_wins}",
        {1: ("A", 1), 2: ("two", 99), 3: ("A3", 3)}, {1: ("A", 1), 2: ("two", 99), 3: ("A3", 3)},
        3, 0),
}


def rows(db: Path) -> Rows:
    with sqlite3.connect(db) as c:
        got = {r[0]: (r[1], r[2]) for r in c.execute("SELECT id, name, qty FROM items")}
    c.close()
    return got


def edit(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as c:
        for st in statements:
            c.execute(st)
    c.close()


def first_sync(tmp: Path, ddl: str, at_z: str, at_a: str, *,
               conflict: str | None = None) -> tuple[Path, Path, Path]:
    """Two SQLite files, z and a (z first: a is staged after it), each holding
    ``items`` (``ddl``) with its rows (``VALUES`` lists), and a pipeline between them
    (``conflict``: the entity's conflict settings), set up: the files, the pipeline."""
    z, a = tmp / "z.db", tmp / "a.db"
    edit(z, ddl, f"INSERT INTO items VALUES {at_z}")
    edit(a, ddl, f"INSERT INTO items VALUES {at_a}")
    p = tmp / "p.yaml"
    p.write_text(f"""pipeline: first
state: {{url: sqlite:///{tmp}/state.db}}
endpoints:
  z: {{kind: sqlite, path: {z}}}
  a: {{kind: sqlite, path: {a}}}
entities:
  items:
    key: [id]
    {f"conflict: {conflict}" if conflict else ""}
    endpoints: {{z: items, a: items}}
""")
    cdcsync("setup", str(p))
    return z, a, p


@pytest.mark.parametrize("case", list(CASES))
def test_each_policy_decides_concurrent_edits_at_both_ends(case: str, tmp_path: Path) -> None:
    conflict, want_a, want_b, resolved, parked = CASES[case]
    for db in ("a.db", "b.db"):
        edit(tmp_path / db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INT)",
             *(f"INSERT INTO items VALUES ({k}, '{n}', {q})" for k, (n, q) in ORIGINAL.items()))
    (tmp_path / "house_rules.py").write_text(CUSTOM)
    p = tmp_path / "pipeline.yaml"
    p.write_text("pipeline: policies\nstate: {url: sqlite:///state.db}\n"
                 "endpoints:\n  a: {kind: sqlite, path: a.db}\n  b: {kind: sqlite, path: b.db}\n"
                 "entities:\n  items:\n    key: [id]\n    endpoints: {a: items, b: items}\n"
                 f"    conflict: {conflict}\n")
    cdcsync("setup", str(p))
    assert json.loads(cdcsync("run", str(p), "--json").stdout)["totals"]["applied"] == 0

    edit(tmp_path / "a.db", "UPDATE items SET name = 'A' WHERE id = 1",
         "DELETE FROM items WHERE id = 2", "UPDATE items SET name = 'A3' WHERE id = 3")
    time.sleep(0.01)  # b's edits are the later ones, to the microsecond
    edit(tmp_path / "b.db", "UPDATE items SET name = 'B' WHERE id = 1",
         "UPDATE items SET qty = 99 WHERE id = 2", "UPDATE items SET qty = 33 WHERE id = 3")
    res = cdcsync("run", str(p), "--json", expect=3 if parked else 0)
    summary: dict[str, Any] = json.loads(res.stdout)
    assert (summary["totals"]["resolved"], summary["totals"]["parked"]) == (resolved, parked)
    assert rows(tmp_path / "a.db") == want_a
    assert rows(tmp_path / "b.db") == want_b

    decided = json.loads(cdcsync("conflicts", "list", str(p), "--all", "--json").stdout)
    assert len(decided) == 3
    assert all(c["status"] == ("open" if parked else "resolved") for c in decided)
    if not parked:
        cdcsync("verify", str(p))
        again = json.loads(cdcsync("run", str(p), "--json").stdout)
        assert again["totals"]["applied"] == 0


def test_rows_that_differ_when_first_synced_are_decided_by_name_not_by_read_order(
        tmp_path: Path) -> None:
    """The first sync of two files that both hold rows: they carry no commit times, so
    last_writer_wins decides rows that differ by its tie-break (the greater endpoint
    name, z), not by which file was staged later (a: until 2026-12-07 a won, and the
    report said a's edit was later, by the 2 ms between the two reads), and says so."""
    z, a, p = first_sync(tmp_path, "CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT,"
                         " qty INTEGER)", "('k1', 'at z', 1), ('k2', 'same', 2)",
                         "('k1', 'at a', 1), ('k2', 'same', 2)")
    cdcsync("run", str(p))
    assert rows(z) == rows(a) == {"k1": ("at z", 1), "k2": ("same", 2)}
    (rec,) = json.loads(cdcsync("conflicts", "list", str(p), "--all", "--json").stdout)
    assert rec["status"] == "resolved" and rec["policy"] == "last_writer_wins"
    assert "both rows were read by a snapshot" in rec["reason"], rec["reason"]
    assert "tie broken by endpoint name: 'z' > 'a'" in rec["reason"], rec["reason"]
    shown = cdcsync("conflicts", "show", str(p), rec["id"]).stdout
    assert shown.count("read by a snapshot") >= 2, shown  # both sides' headers
    from config.loader import load_pipeline
    from sync.review.app import create_app

    page = create_app(load_pipeline(p)).test_client().get(f"/conflicts/{rec['id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "committed" not in html, html
    assert html.count("read by a snapshot (no commit time)") == 2, html
    cdcsync("verify", str(p))


def test_a_timestamp_column_decides_rows_that_differ_when_first_synced(
        tmp_path: Path) -> None:
    """``timestamp_column: updated_at``: last_writer_wins keeps the row the application
    stamped later, where the snapshot's reads tell no commit times (the tie would go to
    the greater name, z, for both rows)."""
    z, a, p = first_sync(
        tmp_path, "CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT, updated_at TEXT)",
        "('k1', 'z old', '2026-01-01T08:00:00Z'), ('k2', 'z new', '2026-03-01T08:00:00Z'),"
        " ('k3', 'same', NULL)",
        "('k1', 'a new', '2026-02-01T08:00:00Z'), ('k2', 'a old', '2026-01-15T08:00:00Z'),"
        " ('k3', 'a', NULL)", conflict="{timestamp_column: updated_at}")
    cdcsync("run", str(p))
    want = {("k1", "a new"), ("k2", "z new"), ("k3", "same")}  # k3: no stamps, by name
    for db in (z, a):
        with sqlite3.connect(db) as c:
            assert set(c.execute("SELECT id, name FROM items")) == want
        c.close()
    recs = json.loads(cdcsync("conflicts", "list", str(p), "--all", "--json").stdout)
    reasons = sorted(r["reason"] for r in recs)
    assert len(reasons) == 3 and "a's row has updated_at" in " ".join(reasons), reasons
    assert any("tie broken by endpoint name" in r for r in reasons), reasons
    # a column the entity does not have is named before anything is read
    p.write_text(p.read_text().replace("timestamp_column: updated_at",
                                       "timestamp_column: modified"))
    res = cdcsync("run", str(p), expect=1)
    assert "conflict.timestamp_column 'modified' is not one of its columns" in res.stderr
