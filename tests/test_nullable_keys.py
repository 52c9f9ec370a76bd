"""An entity keyed by source columns that allow NULL (a natural key on a unique index).

A unique index lets several rows hold NULL: PostgreSQL and MariaDB kept two rows
with ``code`` NULL, the service took them for one key, the target got one of
them, and the run said every row arrived. Setup now refuses such a key at a
source, naming the columns and the ALTER that makes them NOT NULL; a target's
nullable key column is no problem (the service writes no NULL key there).
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


def test_a_nullable_natural_key_at_a_postgres_source_is_refused_until_not_null(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, "CREATE TABLE n (id serial PRIMARY KEY, code text UNIQUE, v int)",
       "INSERT INTO n (code, v) VALUES ('a', 1), (NULL, 2), (NULL, 3)")
    pg(b, "CREATE TABLE n (id serial PRIMARY KEY, code text UNIQUE, v int)")  # (a target)
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "n", {"a": "n", "b": "n"}, key=("code",),
                       options=["direction: one-way", "source: a", "exclude: [id]"])
    try:
        res = cdcsync("setup", str(p), expect=1)
        assert "key column code of entity n allows NULL" in res.stderr, res.stderr
        assert 'ALTER TABLE "public"."n" ALTER COLUMN "code" SET NOT NULL' in res.stderr
        assert "Traceback" not in res.stderr
        assert pg(a, "SELECT count(*) FROM pg_replication_slots WHERE database ="
                     " current_database()") == [(0,)]  # nothing made
        pg(a, "UPDATE n SET code = 'n' || id WHERE code IS NULL",
           "ALTER TABLE n ALTER COLUMN code SET NOT NULL")
        cdcsync("setup", str(p))  # b's nullable key column is fine: it is only written
        assert run_json(p)["totals"]["applied"] == 3
        assert pg(b, "SELECT code, v FROM n ORDER BY v") == [("a", 1), ("n2", 2), ("n3", 3)]
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_a_nullable_natural_key_at_a_mariadb_source_is_refused(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    run(mp, "CREATE TABLE n (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10) UNIQUE,"
            " v INT)", "INSERT INTO n (code, v) VALUES ('a', 1), (NULL, 2), (NULL, 3)")
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE n (code TEXT PRIMARY KEY, v INT)")
    c.close()
    p = write_pipeline(tmp_path, "nk", {"m": mariadb_endpoint(mp), "s": sqlite_endpoint()},
                       "n", {"m": "n", "s": "n"}, key=("code",),
                       options=["direction: one-way", "source: m", "exclude: [id]"])
    try:
        res = cdcsync("setup", str(p), expect=1)
        assert "key column code of entity n allows NULL" in res.stderr, res.stderr
        assert "MODIFY `code` varchar(10) NOT NULL" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_sqlite_rows_with_a_null_key_wait_until_they_have_one(tmp_path: Path) -> None:
    """SQLite lets a primary key that is not INTEGER hold NULL: two such rows were one
    key to the service (the target got one, with the last one's values). They are now
    passed over with a warning, and arrive once they have a key."""
    for db in ("a", "b"):
        with sqlite3.connect(tmp_path / f"{db}.db") as c:
            c.execute("CREATE TABLE n (code TEXT PRIMARY KEY, v INT)")
        c.close()

    def write(*stmts: str) -> None:
        with sqlite3.connect(tmp_path / "a.db") as c:
            for st in stmts:
                c.execute(st)
        c.close()

    def held() -> list[tuple[Any, ...]]:
        with sqlite3.connect(tmp_path / "b.db") as c:
            return c.execute("SELECT code, v FROM n ORDER BY v").fetchall()

    write("INSERT INTO n VALUES ('a', 1), (NULL, 2), (NULL, 3)")
    p = write_pipeline(tmp_path, "nk", {"a": sqlite_endpoint("a.db"),
                                        "b": sqlite_endpoint("b.db")},
                       "n", {"a": "n", "b": "n"}, key=("code",),
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    res = cdcsync("run", str(p), "--json")
    assert held() == [("a", 1)]
    assert "2 row(s) with a NULL key (code)" in res.stderr, res.stderr
    write("UPDATE n SET code = 'b' WHERE v = 2", "INSERT INTO n VALUES (NULL, 4)",
          "UPDATE n SET v = 30 WHERE v = 3", "DELETE FROM n WHERE v = 4")
    res = cdcsync("run", str(p), "--json")
    assert "with a NULL key is not synchronised" in res.stderr, res.stderr
    assert held() == [("a", 1), ("b", 2)]
    cdcsync("verify", str(p))
