"""Table shapes of modern PostgreSQL schemas: identity keys, generated columns, partitions.

An ``id int GENERATED ALWAYS AS IDENTITY`` key: the snapshot (``COPY``) wrote it,
but the first change read from the log failed to apply ("cannot insert a
non-DEFAULT value into column id"), and every run after it failed again: the
pipeline was stuck. Generated columns are computed by each table, never written.
A partitioned table is read and written as the one table it is. Through the real
CLI against the real server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

TABLE = ("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
         " price numeric(10,2), qty int,"
         " total numeric GENERATED ALWAYS AS (price * qty) STORED, note text)")
ROWS = "SELECT id, price::text, qty, total::text, note FROM t ORDER BY id"


def test_identity_keys_and_generated_columns_sync_both_ways(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, TABLE, "INSERT INTO t (price, qty, note) VALUES (1.5, 2, 'a'), (2, 3, 'b')")
    # b's identity starts elsewhere, as a bidirectional deployment must arrange
    pg(b, TABLE, "ALTER TABLE t ALTER COLUMN id RESTART WITH 1000")
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "b": pg_endpoint(b)},
        "t", {"a": "t", "b": "t"})
    cdcsync("setup", str(p))
    try:
        run_json(p)  # the snapshot
        pg(a, "INSERT INTO t (price, qty, note) VALUES (3, 3, 'c')",
           "UPDATE t SET qty = 10 WHERE id = 1")
        pg(b, "UPDATE t SET note = 'bb' WHERE id = 2",
           "INSERT INTO t (price, qty, note) VALUES (4, 1, 'd')")  # id 1000
        out = run_json(p)
        assert out["errors"] == [] and out["totals"]["applied"] == 4, out
        want = [(1, "1.50", 10, "15.00", "a"), (2, "2.00", 3, "6.00", "bb"),
                (3, "3.00", 3, "9.00", "c"), (1000, "4.00", 1, "4.00", "d")]
        assert pg(a, ROWS) == pg(b, ROWS) == want
        pg(a, "DELETE FROM t WHERE id = 1000")
        assert run_json(p)["totals"]["applied"] == 1
        assert pg(b, ROWS) == want[:3]
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
        assert run_json(p)["totals"]["read"] == 0
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


PARTITIONED = ("CREATE TABLE ev (id int, day date, note text, PRIMARY KEY (id, day))"
               " PARTITION BY RANGE (day)",
               "CREATE TABLE ev_h1 PARTITION OF ev"
               " FOR VALUES FROM ('2026-01-01') TO ('2026-07-01')",
               "CREATE TABLE ev_h2 PARTITION OF ev"
               " FOR VALUES FROM ('2026-07-01') TO ('2027-01-01')")


def test_a_partitioned_table_syncs_its_changes_both_ways(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """Changes to a partitioned table were published as its partitions' (ev_h1), which
    the reader, bound to ev, never recognised: every change after the snapshot was
    lost without a word (publish_via_partition_root)."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, *PARTITIONED, "INSERT INTO ev VALUES (1, '2026-02-01', 'a'), (2, '2026-08-01', 'b')")
    pg(b, *PARTITIONED)
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "ev", {"a": "ev", "b": "ev"}, key=["id", "day"])
    cdcsync("setup", str(p))
    try:
        run_json(p)  # the snapshot
        pg(a, "INSERT INTO ev VALUES (3, '2026-03-01', 'c'), (4, '2026-09-01', 'd')",
           "UPDATE ev SET note = 'aa' WHERE id = 1",
           "UPDATE ev SET day = '2026-10-01' WHERE id = 2")  # to the other partition
        pg(b, "INSERT INTO ev VALUES (5, '2026-05-01', 'e')")
        out = run_json(p)
        assert out["errors"] == [] and out["totals"]["read"] == 6, out
        rows = "SELECT tableoid::regclass::text, id, day::text, note FROM ev ORDER BY id"
        assert pg(a, rows) == pg(b, rows) == [
            ("ev_h1", 1, "2026-02-01", "aa"), ("ev_h2", 2, "2026-10-01", "b"),
            ("ev_h1", 3, "2026-03-01", "c"), ("ev_h2", 4, "2026-09-01", "d"),
            ("ev_h1", 5, "2026-05-01", "e")]
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
        assert run_json(p)["totals"]["read"] == 0
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
