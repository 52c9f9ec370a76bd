"""One-way targets that ``cdcsync setup`` creates from the source's schema.

SQLite targets were never created ("table 'w' does not exist": setup stopped
there, before the MariaDB target too); a PostgreSQL ``numeric`` without a scale
made a MariaDB ``DECIMAL(65,30)`` whose every row the sink refused (quantizing
to 30 places overflowed the default 28-digit decimal context). Through the CLI.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql

from connectors.base import Binding, Column, TableSchema
from connectors.creation import created_columns
from connectors.sqlite._create import DECLARED
from connectors.sqlite._types import logical_type
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

SOURCE = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE w (id bigint PRIMARY KEY, n numeric, p numeric(10,2), f float8,
  t text NOT NULL, vc varchar(5), b boolean, d date, ts timestamp, tz timestamptz,
  tm time, iv interval, u uuid, j jsonb, by bytea, ta text[], e mood, ip inet)
"""
ROW = ("INSERT INTO w VALUES (1, 1.500, 2.25, 0.1, 'é', 'hello', true, '2024-02-29',"
       " '2024-01-02 03:04:05.5', '2024-01-02 03:04:05+02', '10:11:12', '3 days',"
       " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": [1, null]}', '\\xdead',"
       " '{x,\"y z\"}', 'sad', '10.0.0.1'), (2, NULL, NULL, NULL, 'x', NULL, NULL, NULL,"
       " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")


def test_each_logical_type_gets_a_sqlite_type_that_reads_back_as_it() -> None:
    for logical, declared in DECLARED.items():
        want = {"array": "json", "any": "text"}.get(logical, logical)
        assert logical_type(declared) == want, (logical, declared)


def test_setup_creates_one_way_targets_at_sqlite_and_mariadb(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a = pg_dsn_factory()
    pg(a, *SOURCE.strip().split(";\n"), ROW)
    sqlite3.connect(tmp_path / "s.db").close()
    mp = mariadb_params
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "s": sqlite_endpoint(), "m": mariadb_endpoint(mp)},
        "w", {"a": "w", "s": "w", "m": "w"},
        options=["direction: one-way", "source: a", "exclude: [iv]"])
    out = cdcsync("setup", str(p)).stdout
    assert "s: created table w from a's w" in out and "m: created table w" in out, out
    try:
        run = run_json(p)
        assert run["errors"] == [] and run["totals"]["applied"] == 4, run
        with sqlite3.connect(tmp_path / "s.db") as c:
            cols = {r[1]: (r[2], r[3]) for r in c.execute("PRAGMA table_info(w)")}
            assert cols["id"] == ("INTEGER", 1) and cols["t"] == ("TEXT", 1)
            assert cols["n"] == ("DECIMAL TEXT", 0) and cols["j"] == ("JSON", 0)
            assert "iv" not in cols  # excluded from the entity
            assert c.execute("SELECT n, t, b, d, u FROM w WHERE id = 1").fetchone() == (
                "1.500", "é", 1, "2024-02-29", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        c.close()
        conn = pymysql.connect(**mp)
        with conn.cursor() as cur:
            cur.execute("SELECT CAST(n AS CHAR), CAST(p AS CHAR), t FROM w WHERE id = 1")
            assert cur.fetchone() == ("1.500000000000000000000000000000", "2.25", "é")
        conn.close()
        pg(a, "UPDATE w SET n = 12345678901234567890.123, t = 'y' WHERE id = 2")
        assert run_json(p)["totals"]["applied"] == 2
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
        with sqlite3.connect(tmp_path / "s.db") as c:  # every digit
            assert c.execute("SELECT n FROM w WHERE id = 2").fetchone() == (
                "12345678901234567890.123",)
        c.close()
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_created_columns_follow_the_binding_and_keep_zero_dates_nullable() -> None:
    """Every engine's create_table takes its columns from created_columns: a MariaDB
    NOT NULL date reads a zero date as NULL, so a target without zero dates keeps
    it nullable (PostgreSQL did; SQLite's created table now does too)."""
    source = TableSchema("t", (Column("id", "int", "int", False), Column("d", "date", "date",
                                                                          False),
                               Column("n", "text", "text", True),
                               Column("skip", "text", "text", False)), ("id",))
    src = Binding("t", "m", "t", ("id",), exclude=frozenset({"skip"}))
    dst = Binding("t", "s", "t", ("id",), columns={"n": "note"})
    got = [(name, c.name, nn) for name, c, nn in created_columns(
        dst, source, src, source_kind="mysql", zero_dates=True)]
    assert got == [("id", "id", True), ("d", "d", False), ("note", "n", False)]
    assert [nn for _, _, nn in created_columns(dst, source, src, source_kind="mysql")] == [
        True, True, False]
