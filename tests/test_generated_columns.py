"""Generated columns and awkward names on every engine, through the real CLI.

Each table computes its generated columns itself: they are never synchronised
(PostgreSQL's and SQLite's were left out already). A MariaDB table with one
stopped every run ("gained columns total, v ... schema_changes: stop"): its
binlog carries them while the entity did not. Names with spaces, capitals,
a reserved word and a double quote are quoted everywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

PG_TABLE = ('CREATE TABLE "Order Items" ("Id" int PRIMARY KEY, "Unit Price" numeric(10,2),'
            ' "select" int, "we""ird" text,'
            ' total numeric GENERATED ALWAYS AS ("Unit Price" * "select") STORED)')
MARIADB_TABLE = ("CREATE TABLE `Order Items` (`Id` INT PRIMARY KEY, `Unit Price` DECIMAL(10,2),"
                 " `select` INT, `we\"ird` TEXT,"
                 " total DECIMAL(20,2) AS (`Unit Price` * `select`) PERSISTENT,"
                 " v DECIMAL(20,2) AS (`Unit Price` + 1) VIRTUAL)")
SQLITE_TABLE = ('CREATE TABLE "Order Items" ("Id" INTEGER PRIMARY KEY, "Unit Price" NUMERIC,'
                ' "select" INTEGER, "we""ird" TEXT,'
                ' total NUMERIC GENERATED ALWAYS AS ("Unit Price" * "select") STORED)')


def test_generated_columns_are_computed_by_each_table_never_synchronised(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a = pg_dsn_factory()
    pg(a, PG_TABLE, """INSERT INTO "Order Items" VALUES (1, 1.5, 2, 'x'), (2, 3, 1, 'y')""")
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(MARIADB_TABLE)
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute(SQLITE_TABLE)
    c.close()
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "m": mariadb_endpoint(mp), "s": sqlite_endpoint()},
        "items", {"a": "Order Items", "m": "Order Items", "s": "Order Items"}, key=["Id"])
    cdcsync("setup", str(p))
    try:
        run_json(p)  # the snapshot
        with conn.cursor() as cur:  # the binlog carries total and v
            cur.execute("INSERT INTO `Order Items` (`Id`, `Unit Price`, `select`, `we\"ird`)"
                        " VALUES (3, 2, 2, 'z')")
            cur.execute("UPDATE `Order Items` SET `select` = 5 WHERE `Id` = 1")
        pg(a, """UPDATE "Order Items" SET "we""ird" = 'yy' WHERE "Id" = 2""")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute('INSERT INTO "Order Items" ("Id", "Unit Price", "select", "we""ird")'
                      " VALUES (4, 1, 1, 's')")
        c.close()
        out = run_json(p)
        assert out["errors"] == [] and out["totals"]["read"] == 4, out
        want = [(1, "1.50", 5, "x", "7.50"), (2, "3.00", 1, "yy", "3.00"),
                (3, "2.00", 2, "z", "4.00"), (4, "1.00", 1, "s", "1.00")]
        assert pg(a, 'SELECT "Id", "Unit Price"::text, "select", "we""ird", total::text'
                     ' FROM "Order Items" ORDER BY 1') == want
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM `Order Items` ORDER BY 1")
            assert cur.fetchall() == tuple(
                (i, Decimal(u), n, w, Decimal(t), Decimal(u) + 1) for i, u, n, w, t in want)
        with sqlite3.connect(tmp_path / "s.db") as c:
            got = c.execute('SELECT "Id", "select", "we""ird", total FROM "Order Items"'
                            " ORDER BY 1").fetchall()
        c.close()
        assert got == [(i, n, w, float(t)) for i, _, n, w, t in want]
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
        assert run_json(p)["totals"]["read"] == 0
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
        conn.close()
