"""A source table no longer in the pipeline's publication (dropped and created again, or
taken out of it by hand), a publication altered to publish less, and one dropped.

The new table is in no publication, so pgoutput sends none of its changes: a run
read nothing, applied nothing and exited 0, run after run, while every change made
to the table was lost to the targets (only verify saw it). Now the run stops and
names the table, the publication and the way out (setup, then resync), and that
way brings the target back in step. Through the CLI against the real server.

A publication altered to publish inserts only, or to filter rows or columns,
left the updates, deletes, rows or columns it no longer published out of the
log in silence too (2026-12-07): the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

TABLE = "CREATE TABLE items (id int PRIMARY KEY, name text)"


def _pipeline(tmp_path: Path, a: str, b: str) -> Path:
    return write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                          "items", {"a": "items", "b": "items"},
                          options=["direction: one-way", "source: a"])


def _synced(tmp_path: Path, pg_dsn_factory: Callable[[], str], rows: str
            ) -> tuple[str, str, Path, str]:
    """``items`` holding ``rows`` at a, synced one way to b: (a, b, the pipeline file, its
    publication at a)."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, TABLE, f"INSERT INTO items VALUES {rows}")
    p = _pipeline(tmp_path, a, b)
    cdcsync("setup", str(p))
    run_json(p)
    (pub,) = [str(r[0]) for r in _query(a, "SELECT pubname FROM pg_publication")]
    return a, b, p, pub


@pytest.mark.parametrize("how", [
    pytest.param(("DROP TABLE items", TABLE, "INSERT INTO items VALUES (1, 'a'), (2, 'b')"),
                 id="dropped-and-created-again"),
    pytest.param(("ALTER PUBLICATION {pub} DROP TABLE items",), id="taken-out-of-it"),
])
def test_the_run_stops_and_setup_then_resync_mend_it(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], how: tuple[str, ...]) -> None:
    a, b, p, pub = _synced(tmp_path, pg_dsn_factory, "(1, 'a'), (2, 'b')")
    assert _query(b, "SELECT count(*) FROM items") == [(2,)]
    pg(a, *(s.format(pub=f'"{pub}"') for s in how),
       "INSERT INTO items VALUES (3, 'c')", "UPDATE items SET name = 'A' WHERE id = 1")
    res = cdcsync("run", str(p), expect=1)
    assert f"table public.items of entity items is not in publication {pub}" in res.stderr
    assert "`cdcsync setup` publishes it again" in res.stderr
    assert "`cdcsync resync PIPELINE items`" in res.stderr
    assert "Traceback" not in res.stderr
    assert _query(b, "SELECT id, name FROM items ORDER BY id") == [(1, "a"), (2, "b")]
    cdcsync("setup", str(p))
    cdcsync("resync", str(p), "items")
    pg(a, "DELETE FROM items WHERE id = 2")
    run_json(p)
    assert _query(b, "SELECT id, name FROM items ORDER BY id") == [(1, "A"), (3, "c")]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
    pg(a, "INSERT INTO items VALUES (4, 'd')")  # the log carries the table's changes again
    assert run_json(p)["totals"]["applied"] == 1
    assert _query(b, "SELECT id FROM items ORDER BY id") == [(1,), (3,), (4,)]


def test_a_dropped_publication_stops_the_run_until_the_stream_is_reset(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """pgoutput looks the publication up as of each change: the changes made while it
    was gone stay undecodable once setup has created it again; ``resync --reset-stream``
    moves the slot past them and snapshots what they held."""
    a, b, p, pub = _synced(tmp_path, pg_dsn_factory, "(1, 'a')")
    pg(a, f'DROP PUBLICATION "{pub}"', "INSERT INTO items VALUES (2, 'b')")
    gone = f"publication {pub} does not exist, or did not when changes still in the slot"
    res = cdcsync("run", str(p), expect=1)
    assert gone in res.stderr and "Traceback" not in res.stderr
    cdcsync("setup", str(p))
    pg(a, "INSERT INTO items VALUES (3, 'c')")
    res = cdcsync("run", str(p), expect=1)
    assert gone in res.stderr and "--reset-stream" in res.stderr
    out = cdcsync("resync", str(p), "items", "--reset-stream").stdout
    assert "moved to the log's current end" in out
    run_json(p)
    pg(a, "UPDATE items SET name = 'A' WHERE id = 1")
    run_json(p)
    assert _query(b, "SELECT id, name FROM items ORDER BY id") == [(1, "A"), (2, "b"), (3, "c")]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def _query(dsn: str, stmt: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute(stmt)]


@pytest.mark.parametrize(("alter", "said"), [
    pytest.param("ALTER PUBLICATION {pub} SET (publish = 'insert')",
                 "does not publish update, delete, truncate", id="inserts-only"),
    pytest.param("ALTER PUBLICATION {pub} SET TABLE items WHERE (id < 3)",
                 "publishes only the rows of public.items where (id < 3)", id="row-filter"),
    # (with REPLICA IDENTITY FULL, PostgreSQL then refuses updates and deletes)
    pytest.param("ALTER PUBLICATION {pub} SET TABLE items (id)",
                 "leaves column(s) name of public.items out", id="column-list"),
])
def test_a_publication_publishing_less_stops_the_run_and_setup_puts_it_right(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], alter: str, said: str) -> None:
    a, b, p, pub = _synced(tmp_path, pg_dsn_factory, "(1, 'a'), (2, 'b')")
    pg(a, alter.format(pub=f'"{pub}"'), "INSERT INTO items VALUES (3, 'c')")
    if "(id)" not in alter:
        pg(a, "UPDATE items SET name = 'A' WHERE id = 1", "DELETE FROM items WHERE id = 2")
    res = cdcsync("run", str(p), expect=1)
    assert f"endpoint a: publication {pub} {said} (altered since setup)" in res.stderr, \
        res.stderr
    assert "`cdcsync setup` puts the publication right; then `cdcsync resync PIPELINE" \
        " items`" in res.stderr
    assert "Traceback" not in res.stderr
    assert _query(b, "SELECT id, name FROM items ORDER BY id") == [(1, "a"), (2, "b")]
    assert "again" in cdcsync("setup", str(p)).stdout
    cdcsync("resync", str(p), "items")
    run_json(p)
    pg(a, "UPDATE items SET name = 'C' WHERE id = 3")
    run_json(p)
    assert _query(b, "SELECT id, name FROM items ORDER BY id") == _query(
        a, "SELECT id, name FROM items ORDER BY id")
    assert (3, "C") in _query(b, "SELECT id, name FROM items ORDER BY id")
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
