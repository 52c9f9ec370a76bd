"""A PostgreSQL ``real`` and the MariaDB ``FLOAT`` it is synced to read as one value.

MariaDB's single was read as the shortest decimal of 6 to 9 digits that reads back
as it, where PostgreSQL shows the shortest of any length: subnormals showed as
drift in ``cdcsync verify`` for ever (``pg 1e-45 my 1.4013e-45``, ``pg 1e-40 my
9.99995e-41``), and so did a power of two whose nearest decimal of a length misses
(``1.2621775e-29`` against ``1.26217745e-29``) and a single past 2**24 whose short
decimal lies halfway to its neighbour, which PostgreSQL does not take
(``2.0675501e+08`` against ``206755000``). Through the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

VALUES = ("(20, 1e-45), (21, 1e-40), (22, -1e-41), (23, 1.2621775e-29), (24, 206755008),"
          " (25, 0.1), (26, 3.4e38), (27, 0.25), (28, NULL)")


def test_reals_synced_to_mariadb_floats_verify_in_sync(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a = pg_dsn_factory()
    pg(a, "CREATE TABLE t (id int PRIMARY KEY, f4 real)", f"INSERT INTO t VALUES {VALUES}")
    p = write_pipeline(tmp_path, pipeline_of(a),
                       {"a": pg_endpoint(a), "m": mariadb_endpoint(mariadb_params)},
                       "t", {"a": "t", "m": "t"}, options=["direction: one-way", "source: a"])
    p.write_text(p.read_text().replace("sqlite:///state.db", f"sqlite:///{tmp_path}/state.db"))
    cdcsync("setup", str(p))
    try:
        out = run_json(p)
        assert out["errors"] == [] and out["totals"]["applied"] == 9, out
        conn = pymysql.connect(**mariadb_params)
        with conn.cursor() as cur:
            cur.execute("SELECT COLUMN_TYPE FROM information_schema.COLUMNS"
                        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'"
                        " AND COLUMN_NAME = 'f4'")
            assert cur.fetchone() == ("float",)
        conn.close()
        drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
        assert [d["in_sync"] for d in drift] == [True], drift
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
