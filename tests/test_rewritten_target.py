"""A table rewritten at a PostgreSQL endpoint: every row gets a new xmin, no change is logged.

``ALTER TABLE ... ALTER COLUMN ... TYPE`` (or pg_repack, or a restored dump)
writes every row again. The sink's compare-and-set on the xmin the service knew
then failed for every existing row, each apply was given up for a user edit on
its way, and none came: the endpoint kept its rows as they were for good, every
later update of them lost there (`cdcsync verify` showed them). A row whose
content is still the one known there is now written again against its new xmin;
a real edit there is still a conflict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def test_updates_reach_rows_a_table_rewrite_gave_new_versions(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        pg(dsn, "CREATE TABLE t (id int PRIMARY KEY, v text, n int)")
    pg(a, "INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 5) g")
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "t", {"a": "t", "b": "t"},
                       options=["conflict: {policy: manual}"])
    try:
        cdcsync("setup", str(p))
        assert run_json(p)["totals"]["applied"] == 5
        before = pg(b, "SELECT xmin::text FROM t ORDER BY id")
        pg(b, "ALTER TABLE t ALTER COLUMN n TYPE bigint")  # a rewrite, the same content
        assert pg(b, "SELECT xmin::text FROM t ORDER BY id") != before
        pg(b, "UPDATE t SET v = 'edited at b' WHERE id = 4")  # a user's edit there
        pg(a, "UPDATE t SET v = 'new ' || id WHERE id IN (1, 2, 4)",
           "DELETE FROM t WHERE id = 3")
        out = run_json(p, expect=3)  # 3: key 4 waits for a steward
        assert out["totals"]["parked"] == 1, out
        assert pg(b, "SELECT id, v FROM t ORDER BY id") == [
            (1, "new 1"), (2, "new 2"), (4, "edited at b"), (5, "v5")]
        # and the rows keep flowing afterwards
        pg(a, "UPDATE t SET n = 50 WHERE id = 5")
        run_json(p, expect=3)
        assert pg(b, "SELECT n FROM t WHERE id = 5") == [(50,)]
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
