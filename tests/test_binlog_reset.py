"""A MariaDB binlog that ends before the pipeline's checkpoint: reset (``RESET MASTER``),
or the server restored from a backup or replaced.

Every run read nothing and said ok, while the new binlog's transactions numbered up
to the checkpoint went by unread; and after the ``resync --reset-stream`` that is
the way out, each key's last read position (from the old numbering, higher than
the new) had every change read since taken for one read already, and dropped.
Now the run stops naming the way out, and the resync forgets the reset log's
positions. Through the CLI, MariaDB -> PostgreSQL.

``RESET MASTER`` itself would reset the binlog under every other user of the test
server (other test runs on the machine): the test moves the stored checkpoint and
the keys' positions past the server's binlog instead, which is what a reset leaves.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import run
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_partial_row_images import _rows, synced_items


def _past_the_binlog(state: Path) -> None:
    """The checkpoint and every position read at ``m`` moved 1000 transactions and
    files on: the server's binlog then ends before them, as after a reset."""
    with sqlite3.connect(state) as conn:
        for endpoint, entity, text in conn.execute(
                "SELECT endpoint, entity, checkpoint FROM checkpoints WHERE endpoint = 'm'"
                ).fetchall():
            cp = json.loads(text)
            if cp.get("gtid"):
                domain, server, seq = cp["gtid"].split("-")
                cp["gtid"] = f"{domain}-{server}-{int(seq) + 1000}"
                cp["file"] = "mysql-bin.999999"
                conn.execute("UPDATE checkpoints SET checkpoint = ? WHERE endpoint = ?"
                             " AND entity = ?", (json.dumps(cp), endpoint, entity))
        for key, text in conn.execute("SELECT key, state FROM key_states").fetchall():
            st = json.loads(text)
            if st["e"]["m"]["p"] is not None:
                st["e"]["m"]["p"] = [999999, *st["e"]["m"]["p"][1:]]
                conn.execute("UPDATE key_states SET state = ? WHERE key = ?",
                             (json.dumps(st), key))


def test_a_binlog_behind_the_checkpoint_stops_the_run_and_resync_gets_past_it(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    p = synced_items(tmp_path, mp, pg_dsn)
    run(mp, "UPDATE items SET qty = 10 WHERE id = 1", "UPDATE items SET qty = 20 WHERE id = 2")
    run_json(p)  # (both keys now have a last read position at m)
    _past_the_binlog(tmp_path / "state.db")
    run(mp, "UPDATE items SET name = 'A' WHERE id = 1")
    res = cdcsync("run", str(p), expect=1)
    assert "the server's binlog ends at GTID" in res.stderr, res.stderr
    assert "it was reset (RESET MASTER), or the server was restored from a backup or" \
        " replaced" in res.stderr
    assert "--reset-stream`" in res.stderr and "Traceback" not in res.stderr
    assert "instead of `--reset-stream` writes what the pipeline knows" in res.stderr
    cdcsync("resync", str(p), "items", "--reset-stream")
    run_json(p)
    assert _rows(pg_dsn) == [(1, "A", 10), (2, "b", 20)]
    # Read from the binlog as it is, the changes since are the keys' news, not replays
    run(mp, "UPDATE items SET name = 'A2' WHERE id = 1", "DELETE FROM items WHERE id = 2")
    assert run_json(p)["totals"]["applied"] == 2
    assert _rows(pg_dsn) == [(1, "A2", 10)]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
