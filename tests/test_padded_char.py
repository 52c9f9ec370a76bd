"""PostgreSQL ``character(n)`` read without its padding, from the log and from tables.

PostgreSQL sends ``'ab   '`` for ``'ab'`` in a ``char(5)``; MariaDB's ``CHAR(5)``
gives ``'ab'``. Synced both ways the rows were the same, yet each end hashed
its own spelling and ``cdcsync verify`` reported drift in every row whose value
was shorter than the column, for ever (exit 1). A SQLite target got the
padding as content. Through the CLI, against the real servers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import run
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def test_char_columns_agree_with_mariadb_both_ways_and_arrive_unpadded(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    pg(pg_dsn, "CREATE TABLE c (id int PRIMARY KEY, code char(5), name varchar(10))",
       "INSERT INTO c VALUES (1, 'ab', 'x '), (2, NULL, NULL), (3, 'abcde', 'y')")
    run(mariadb_params, "CREATE TABLE c (id INT PRIMARY KEY, code CHAR(5), name VARCHAR(10))",
        "INSERT INTO c VALUES (4, 'cd', 'z')")
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"a": pg_endpoint(pg_dsn), "m": mariadb_endpoint(mariadb_params)},
                       "c", {"a": "c", "m": "c"})
    cdcsync("setup", str(p))
    try:
        assert run_json(p)["totals"]["applied"] == 4
        assert cdcsync("verify", str(p), expect=None).returncode == 0
        pg(pg_dsn, "UPDATE c SET code = 'q' WHERE id = 1")  # read from the log
        run(mariadb_params, "UPDATE c SET code = 'r' WHERE id = 4")
        assert run_json(p)["totals"]["applied"] == 2
        assert run_json(p)["totals"]["read"] == 0  # the fixed point
        assert cdcsync("verify", str(p), expect=None).returncode == 0
        assert pg(pg_dsn, "SELECT id, code::text FROM c ORDER BY id") == [
            (1, "q"), (2, None), (3, "abcde"), (4, "r")]
    finally:
        cdcsync("teardown", str(p), "--force")


def test_a_char_key_and_value_reach_sqlite_and_postgres_without_padding(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    src, dst = pg_dsn_factory(), pg_dsn_factory()
    pg(src, "CREATE TABLE k (code char(4) PRIMARY KEY, v char(3))",
       "INSERT INTO k VALUES ('a', 'x'), ('abcd', 'xyz')")
    pg(dst, "CREATE TABLE k (code char(4) PRIMARY KEY, v char(3))")
    sqlite3.connect(tmp_path / "s.db").close()
    p = write_pipeline(tmp_path, pipeline_of(src),
                       {"a": pg_endpoint(src), "b": pg_endpoint(dst), "s": sqlite_endpoint()},
                       "k", {"a": "k", "b": "k", "s": "k"}, key=("code",),
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    try:
        assert run_json(p)["totals"]["applied"] == 4
        pg(src, "UPDATE k SET v = 'y' WHERE code = 'a'", "INSERT INTO k VALUES ('b', NULL)")
        assert run_json(p)["totals"]["applied"] == 4
        assert run_json(p)["totals"]["read"] == 0
        with sqlite3.connect(tmp_path / "s.db") as db:
            assert db.execute("SELECT code, v FROM k ORDER BY code").fetchall() == [
                ("a", "y"), ("abcd", "xyz"), ("b", None)]
        db.close()
        assert pg(dst, "SELECT code, v FROM k ORDER BY code") == [
            ("a   ", "y  "), ("abcd", "xyz"), ("b   ", None)]  # (padded again by PostgreSQL)
        assert cdcsync("verify", str(p), expect=None).returncode == 0
    finally:
        cdcsync("teardown", str(p), "--force")
