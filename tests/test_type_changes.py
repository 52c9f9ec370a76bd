"""A column whose type changes at the source (integer to text, say) while the targets'
columns keep theirs.

The first value the targets' type could not read (``'abc'``) stopped every run
with ``CoercionError: cannot read 'abc' as int``, naming no entity, endpoint or
row, and `cdcsync verify` died of it too. Such a value now goes on as it is
(said once per column, with the way out); each endpoint that cannot take it
refuses the row as a dead letter with the reason, the rest flows; once the
targets' columns follow, a requeue brings the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def test_a_value_the_targets_type_cannot_read_waits_as_a_dead_letter(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        pg(dsn, "CREATE TABLE t (id int PRIMARY KEY, v int)")
    pg(a, "INSERT INTO t VALUES (1, 10), (2, 20)")
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "t", {"a": "t", "b": "t"}, options=["direction: one-way", "source: a"])
    try:
        cdcsync("setup", str(p))
        run_json(p)
        pg(a, "ALTER TABLE t ALTER COLUMN v TYPE text",
           "INSERT INTO t VALUES (3, 'abc')", "UPDATE t SET v = '21' WHERE id = 2")
        res = cdcsync("run", str(p), "--json", expect=3)  # 3: a dead letter waits
        assert "Traceback" not in res.stderr
        assert "entity t, column v: a value the column's type int (as b declares it)" \
            in res.stderr, res.stderr
        assert json.loads(res.stdout)["totals"]["applied"] == 1  # the readable one
        assert pg(b, "SELECT id, v FROM t ORDER BY id") == [(1, 10), (2, 21)]
        [letter] = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert "column 'v'" in letter["error"], letter
        drift = cdcsync("verify", str(p), "--json", expect=1)  # drift, not a crash
        assert json.loads(drift.stdout)[0]["missing"]["b"]["count"] == 1

        pg(b, "ALTER TABLE t ALTER COLUMN v TYPE text")  # the target follows
        cdcsync("dlq", "requeue", str(p), str(letter["id"]))
        run_json(p)
        assert pg(b, "SELECT id, v FROM t ORDER BY id") == [(1, "10"), (2, "21"), (3, "abc")]
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
