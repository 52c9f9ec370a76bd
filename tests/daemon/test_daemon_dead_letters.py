"""The daemon's workers and the dead-letter queue: a row the target refuses for good
becomes a letter, the rest flows, and a requeue after the fix lets the sweeper apply it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.daemon.helpers import Daemon, cli, wait_for
from tests.daemon.test_daemon_sqlite import make, rows

POISON = ("CREATE TRIGGER poison BEFORE INSERT ON items WHEN NEW.name LIKE 'poison%' "
          "BEGIN SELECT RAISE(ABORT, 'poison refused'); END")


def letters(p: Path) -> list[dict[str, object]]:
    return json.loads(cli("dlq", "list", str(p), "--json").stdout)  # type: ignore[no-any-return]


def test_a_refused_row_is_a_dead_letter_until_requeued(tmp_path: Path) -> None:
    p = make(tmp_path)
    with sqlite3.connect(tmp_path / "b.db") as c:
        c.execute(POISON)
    d = Daemon(p)
    d.wait_ready()
    fine = [i for i in range(100, 140)]  # in one transaction: some share 50's partition
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?, 1)",
                      [(50, "poison-50"), *((i, "fine") for i in fine)])
    wait_for(lambda: letters(p), what="a dead letter")
    # The batches' other rows were applied: only the refused one is in the letter.
    wait_for(lambda: set(fine) <= {r[0] for r in rows(tmp_path / "b.db")},
             what="the rest of the transaction at b")
    with sqlite3.connect(tmp_path / "a.db") as c:  # other keys keep flowing
        c.execute("INSERT INTO items VALUES (51, 'fine', 1)")
    wait_for(lambda: (51, "fine", 1) in rows(tmp_path / "b.db"), what="the next row at b")
    [letter] = letters(p)
    assert letter["target"] == "b" and "poison refused" in str(letter["error"])
    assert letter["keys"] == ['{"id":50}'], letter
    assert all(r[0] != 50 for r in rows(tmp_path / "b.db"))
    assert cli("verify", str(p), expect=None).returncode == 1  # b is behind on key 50

    with sqlite3.connect(tmp_path / "b.db") as c:  # the operator fixes the cause
        c.execute("DROP TRIGGER poison")
    cli("dlq", "requeue", str(p), str(letter["id"]), "--by", "test")
    wait_for(lambda: (50, "poison-50", 1) in rows(tmp_path / "b.db"), timeout=60,
             what="the requeued row at b (the sweeper re-sends it)")
    assert letters(p) == []
    code, seconds = d.terminate()
    assert code == 0, d.output()
    assert seconds < 10
    cli("verify", str(p))
