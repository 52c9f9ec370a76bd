"""The first sync of two PostgreSQL databases that both hold rows, differently.

With ``track_commit_timestamp`` on (as tests/fix_postgres.py prepares the server),
PostgreSQL records when each row's transaction committed. last_writer_wins then
decides each differing row by its last writer; before 2026-12-07 a snapshot read
told no commit time, and every such row went to the greater endpoint name.
Integer keys are merged as read (sync/snapshot_merged.py), text keys staged
(sync/snapshot.py): both paths are run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync
from tests.test_wide_dates import pg


@pytest.mark.parametrize("key_type", ["integer", "text"])
def test_rows_that_differ_when_first_synced_go_to_their_last_writer(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], key_type: str) -> None:
    a, z = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, z):
        pg(dsn, f"CREATE TABLE items (id {key_type} PRIMARY KEY, name text)",
           "INSERT INTO items VALUES ('1', 'same'), ('2', 'same'), ('3', 'same')")
    pg(z, "UPDATE items SET name = 'z first' WHERE id = '1'")
    pg(a, "UPDATE items SET name = 'a later' WHERE id = '1'")  # a wins, though 'z' > 'a'
    pg(a, "UPDATE items SET name = 'a first' WHERE id = '2'")
    pg(z, "UPDATE items SET name = 'z later' WHERE id = '2'")
    p = write_pipeline(tmp_path, f"first_{key_type}", {"a": pg_endpoint(a), "z": pg_endpoint(z)},
                       "items", {"a": "items", "z": "items"})
    cdcsync("setup", str(p))
    try:
        cdcsync("run", str(p))
        want = [("1", "a later"), ("2", "z later"), ("3", "same")]
        for dsn in (a, z):
            got = pg(dsn, "SELECT id::text, name FROM items ORDER BY id")
            assert got == want, (dsn, got)
        recs = json.loads(cdcsync("conflicts", "list", str(p), "--all", "--json").stdout)
        assert len(recs) == 2 and {r["status"] for r in recs} == {"resolved"}, recs
        for rec in recs:
            assert "is later than" in rec["reason"] and "snapshot" not in rec["reason"], rec
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p))
