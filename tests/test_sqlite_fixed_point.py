"""SQLite <-> SQLite, bidirectional, with every logical type: convergence and the fixed point.

After a sync with no new user edits the next run applies nothing (in any direction) and
the one after reads nothing. Values that users write in different spellings (a decimal as
text or REAL, JSON with another key order, a bool as 0/1, a timestamp with an offset) must
hash alike once they are read back from the other side's change log, or the pair ping-pongs
forever (issue 2, items 6 and "Done when"). Through the real CLI, as a subprocess.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.test_cli_quickstart import cdcsync, run_json

DDL = ("CREATE TABLE items (id INTEGER PRIMARY KEY, qty BIGINT, ratio REAL, "
       "price DECIMAL(10,2), label VARCHAR(40), active BOOLEAN, due DATE, seen TIMESTAMP, "
       "at TIMESTAMPTZ, prefs JSON, blob BLOB, ref UUID, local TEXT)")

PIPELINE = """\
pipeline: fixed
state: {url: sqlite:///state.db}
endpoints:
  a: {kind: sqlite, path: a.db}
  b: {kind: sqlite, path: b.db}
entities:
  items:
    key: [id]
    direction: bidirectional
    exclude: [local]
    endpoints: {a: items, b: items}
    conflict: {policy: field_merge, fallback: last_writer_wins}
"""

COLUMNS = "id, qty, ratio, price, label, active, due, seen, at, prefs, blob, ref"


def sql(db: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    with sqlite3.connect(db) as c:
        for st in statements:
            if isinstance(st, tuple):
                c.execute(*st)
            else:
                c.execute(st)
    c.close()


def rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as c:
        got = c.execute(f"SELECT {COLUMNS} FROM items ORDER BY id").fetchall()
    c.close()
    return got


def assert_fixed_point(p: Path) -> None:
    again = run_json(p)
    assert again["totals"]["applied"] == 0, again
    assert again["totals"]["parked"] == 0 and again["totals"]["resolved"] == 0, again
    last = run_json(p)
    assert last["totals"]["read"] == 0 and last["totals"]["applied"] == 0, last


def test_sqlite_pair_with_every_type_converges_and_reaches_the_fixed_point(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    sql(a, DDL,
        "INSERT INTO items VALUES (1, 7, 0.1, '10.50', 'first', 1, '2024-01-02', "
        "'2024-01-02 03:04:05.123456', '2024-01-02T03:04:05+02:00', '{\"b\": 1, \"a\": [1, 2]}',"
        " x'00ff', '12345678-1234-5678-1234-567812345678', 'a only')",
        "INSERT INTO items (id, qty, price, label) VALUES (2, -3, 3, 'only in a')")
    # Row 1 at b: the same values in other spellings; row 3 only at b.
    sql(b, DDL,
        "INSERT INTO items VALUES (1, 7, 0.1, 10.5, 'first', 'true', '2024-01-02', "
        "'2024-01-02T03:04:05.123456', '2024-01-02 01:04:05+00:00', '{\"a\":[1,2],\"b\":1}', "
        "x'00ff', '12345678-1234-5678-1234-567812345678', 'b only')",
        "INSERT INTO items (id, ratio, active, prefs) VALUES (3, 1e300, 0, '[]')")
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPELINE)
    cdcsync("setup", str(p))

    first = run_json(p)
    assert first["status"] == "ok"
    assert first["totals"]["applied"] == 2  # row 2 to b, row 3 to a; row 1 is equal already
    assert first["totals"]["parked"] == first["totals"]["resolved"] == 0
    cdcsync("verify", str(p))
    assert_fixed_point(p)

    # Edits on both sides, of every type, including different columns of one row.
    sql(a, "UPDATE items SET price = '11.00', prefs = '{\"z\": null, \"a\": 1.5}', "
           "active = 0 WHERE id = 1",
        "UPDATE items SET seen = '2025-06-30 23:59:59.999999', blob = x'', ref = NULL "
        "WHERE id = 2",
        ("INSERT INTO items (id, qty, ratio, price, label) VALUES (4, ?, ?, ?, ?)",
         (2**62, 1 / 3, "0.01", "déjà vu \u4e2d")),
        "UPDATE items SET local = 'not synced' WHERE id = 3")
    sql(b, "UPDATE items SET label = 'edited at b', due = '1999-12-31', "
           "at = '2030-01-01T00:00:00-05:00' WHERE id = 1",
        "DELETE FROM items WHERE id = 3",
        "UPDATE items SET ratio = -0.5 WHERE id = 2")
    second = run_json(p)
    assert second["status"] == "ok", second
    assert second["totals"]["resolved"] == 2  # rows 1 and 2: disjoint columns merged
    assert rows(a) == rows(b)
    assert [r[0] for r in rows(a)] == [1, 2, 4]
    assert rows(a)[0][4] == "edited at b"
    cdcsync("verify", str(p))
    assert_fixed_point(p)
    # Columns left out of the entity stay each side's own.
    with sqlite3.connect(a) as ca, sqlite3.connect(b) as cb:
        assert ca.execute("SELECT local FROM items WHERE id = 1").fetchone() == ("a only",)
        assert cb.execute("SELECT local FROM items WHERE id = 1").fetchone() == ("b only",)
    ca.close()
    cb.close()
