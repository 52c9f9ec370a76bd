"""A PostgreSQL slot the server invalidated (``max_slot_wal_keep_size``, which a DBA
sets so that a stalled slot cannot fill the disk): ``wal_status = lost``; and one
dropped by hand.

Every run ended with the server's own words ("can no longer get changes from
replication slot"), `status` said "resync", and `resync --reset-stream` failed
(an invalidated slot cannot be advanced) while setup left the slot as it was:
the pipeline stayed stuck until someone dropped the slot by hand. Now the run
names the cause and the way out, and the resync makes the slot anew.

A dropped slot's run said "run `cdcsync setup`", whose new slot the next run found
past its checkpoint and said "resync". Setup now resets the stream of an endpoint
whose slot it makes anew (tests/test_pg_restored.py: a slot made below the
checkpoint, which no run could tell).

Invalidating a slot needs a server-wide setting and WAL past it: the test runs its
own PostgreSQL cluster (initdb, a port of its own), so that no other slot of the
shared test server is touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sync.state.leases import Lease, holder_id
from sync.state.store import open_store
from tests.connectors.postgres.helpers import pipeline_of
from tests.pg_cluster import private_cluster
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


@pytest.fixture
def cluster() -> Iterator[str]:
    """A private PostgreSQL cluster with a 1 MB slot WAL cap: the URL of its ``postgres``
    database."""
    with private_cluster("max_slot_wal_keep_size=1MB") as c:
        yield c.dsn


def _rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT id, name FROM items ORDER BY id")]


def test_an_invalidated_slot_stops_the_run_and_resync_makes_it_anew(
        tmp_path: Path, cluster: str, pg_dsn: str) -> None:
    a = cluster
    pg(a, "CREATE TABLE items (id int PRIMARY KEY, name text)",
       "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    name = pipeline_of(pg_dsn)  # (its fixture drops the pipeline's origins there)
    p = write_pipeline(tmp_path, name, {"a": pg_endpoint(a), "b": pg_endpoint(pg_dsn)},
                       "items", {"a": "items", "b": "items"},
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    run_json(p)
    # WAL past the cap while the slot stands still: the next checkpoint invalidates it
    for n in range(5):
        pg(a, f"INSERT INTO items VALUES ({10 + n}, 'x')", "SELECT pg_switch_wal()")
    pg(a, "CHECKPOINT")
    with psycopg.connect(a) as conn:
        assert conn.execute("SELECT wal_status FROM pg_replication_slots").fetchone() == (
            "lost",)
    said = json.loads(cdcsync("status", str(p), "--json", expect=3).stdout)["warnings"]
    assert f"a: SLOT cdcsync_{name}_a WAS INVALIDATED (wal_status=lost)" in said[0], said
    assert "`cdcsync resync PIPELINE ENTITY... --reset-stream`" in said[0]
    res = cdcsync("run", str(p), expect=1)
    assert f"replication slot cdcsync_{name}_a was invalidated: the server removed WAL it" \
        " still held (max_slot_wal_keep_size)" in res.stderr, res.stderr
    assert "`cdcsync resync PIPELINE ENTITY... --reset-stream`" in res.stderr
    assert "Traceback" not in res.stderr
    out = cdcsync("resync", str(p), "items", "--reset-stream").stdout
    assert f"slot cdcsync_{name}_a was invalidated: dropped, and created logical" \
        " replication slot" in out, out
    run_json(p)
    assert _rows(pg_dsn) == _rows(a)
    pg(a, "UPDATE items SET name = 'A' WHERE id = 1", "DELETE FROM items WHERE id = 2")
    assert run_json(p)["totals"]["applied"] == 2
    assert _rows(pg_dsn) == _rows(a)
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_a_dropped_slot_is_made_again_by_setup_which_resets_the_stream(tmp_path: Path,
                                                           pg_dsn_factory: Any) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, "CREATE TABLE items (id int PRIMARY KEY, name text)", "INSERT INTO items VALUES (1, 'a')")
    name = pipeline_of(a)
    p = write_pipeline(tmp_path, name, {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "items", {"a": "items", "b": "items"},
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    run_json(p)
    pg(a, f"SELECT pg_drop_replication_slot('cdcsync_{name}_a')",
       "INSERT INTO items VALUES (2, 'b')")
    res = cdcsync("run", str(p), expect=1)
    assert f"replication slot cdcsync_{name}_a does not exist (dropped?" in res.stderr
    assert "`cdcsync setup` creates it again and has every entity read here snapshotted" \
        " again" in res.stderr, res.stderr
    # a daemon's reader lease (this process): setup makes no slot under a live pipeline
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    lease = Lease(store, f"read:{name}:b", holder_id(), ttl=60)
    assert lease.acquire()
    busy = cdcsync("setup", str(p), expect=1)
    assert "is being worked on by" in busy.stderr and "the log it read at a is gone" \
        in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr
    assert not pg(a, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdcsync_{name}_a'")
    lease.release()
    store.close()
    out = cdcsync("setup", str(p)).stdout
    assert "a: its log was read up to the pipeline's checkpoint" in out, out
    assert "items: snapshot again at the next run" in out
    pg(a, "INSERT INTO items VALUES (3, 'c')")
    run_json(p)
    pg(a, "UPDATE items SET name = 'A' WHERE id = 1")
    assert run_json(p)["totals"]["applied"] == 1
    assert _rows(b) == [(1, "A"), (2, "b"), (3, "c")]
