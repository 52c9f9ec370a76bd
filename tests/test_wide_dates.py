"""PostgreSQL's 'infinity' and '-infinity' dates and timestamps, end to end.

psycopg cannot load them into Python dates ("date too large"): one row holding
one stopped every read of its table, snapshot or log, for good. They now travel
as themselves: PostgreSQL and SQLite hold them exactly, a real 9999-12-31 stays
a date, and MariaDB, which cannot hold them, refuses the row, which waits as a
dead letter. Through the real CLI against the real servers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from conflict.canonical import canonical_value, coerce, row_hash
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json

TABLE = "CREATE TABLE x (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz)"
ROWS = "SELECT id, d::text, ts::text, tz::text FROM x ORDER BY id"


def pg(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as c:
        rows: list[tuple[Any, ...]] = []
        for s in statements:
            cur = c.execute(s)
            rows = cur.fetchall() if cur.description else rows
        return rows


@pytest.mark.parametrize("text", ["infinity", "-infinity", "+infinity", " Infinity "])
def test_the_infinities_are_their_own_canonical_values(text: str) -> None:
    want = "-infinity" if text.strip().startswith("-") else "infinity"
    for logical in ("date", "timestamp", "timestamptz"):
        assert coerce(text, logical) == want
    assert canonical_value(coerce(text, "date")) == want
    assert row_hash({"d": coerce(text, "date")}) != row_hash({"d": coerce("9999-12-31",
                                                                           "date")})


def test_infinite_dates_sync_between_postgres_and_sqlite_and_wait_for_mariadb(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, TABLE, "INSERT INTO x VALUES (1, 'infinity', '-infinity', 'infinity'),"
                 " (2, '2020-01-02', '2020-01-02 03:04:05', '9999-12-31 23:59:59.999999+00'),"
                 " (3, '-infinity', 'infinity', NULL)")
    pg(b, TABLE)
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP,"
                  " tz TIMESTAMPTZ)")
    c.close()
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE x (id INT PRIMARY KEY, d DATE, ts DATETIME(6),"
                    " tz DATETIME(6))")
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "b": pg_endpoint(b), "s": sqlite_endpoint(),
         "m": mariadb_endpoint(mp)},
        "x", {"a": "x", "b": "x", "s": "x", "m": "x"})
    cdcsync("setup", str(p))
    try:
        out = run_json(p, expect=3)  # the snapshot: rows 1 and 3 wait for m
        assert out["errors"] == [] and out["totals"]["rejected"] == 2, out
        assert pg(b, ROWS) == pg(a, ROWS)
        # Read from both logs: PostgreSQL's (pgoutput text) and SQLite's triggers.
        pg(a, "INSERT INTO x VALUES (4, 'infinity', 'infinity', '-infinity')",
           "UPDATE x SET d = '-infinity' WHERE id = 2")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("INSERT INTO x VALUES (5, 'infinity', '-infinity',"
                      " '2021-01-01 00:00:00.000000+00:00')")
        c.close()
        out = run_json(p, expect=3)
        assert out["errors"] == [] and out["totals"]["read"] == 3, out
        want = [(1, "infinity", "-infinity", "infinity"),
                (2, "-infinity", "2020-01-02 03:04:05", "9999-12-31 23:59:59.999999+00"),
                (3, "-infinity", "infinity", None),
                (4, "infinity", "infinity", "-infinity"),
                (5, "infinity", "-infinity", "2021-01-01 00:00:00+00")]
        assert pg(a, ROWS) == pg(b, ROWS) == want
        with sqlite3.connect(tmp_path / "s.db") as c:
            got = c.execute("SELECT id, d, ts, tz FROM x ORDER BY id").fetchall()
        c.close()
        assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in want]
        # The fixed point: nothing applied, then nothing read.
        assert run_json(p, expect=3)["totals"]["applied"] == 0
        assert run_json(p, expect=3)["totals"]["read"] == 0
        # MariaDB holds the row with real dates only; the others wait as dead letters.
        with conn.cursor() as cur:  # row 2 as the snapshot wrote it: its update refused
            cur.execute("SELECT id, d FROM x")
            assert [(i, str(d)) for i, d in cur.fetchall()] == [(2, "2020-01-02")]
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert {k for x in letters for k in x["keys"]} == {
            json.dumps({"id": i}, separators=(",", ":")) for i in (1, 2, 3, 4, 5)}
        assert all("Incorrect date" in x["error"] for x in letters)
        [drift] = json.loads(cdcsync("verify", str(p), "--json", expect=1).stdout)
        assert drift["rows"] == {"a": 5, "b": 5, "s": 5, "m": 1}, drift  # only m behind
        assert set(drift["missing"]) == set(drift["differing"]) == {"m"}
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
        conn.close()


WIDE = [(1, "20201-01-01", "0044-03-15 10:00:00.5 BC", "20201-01-01 10:00:00+00"),
        (2, "0044-03-15 BC", "294276-12-31 23:59:59.999999", "4713-01-01 00:00:00+00 BC"),
        (3, "2020-01-02", "2020-01-02 03:04:05", "0001-01-01 00:00:00+00")]


def test_years_past_9999_and_bc_sync_between_postgres_and_sqlite_and_wait_for_mariadb(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    """A typo'd year 20201 or a historical BC date stopped every read of its table
    ("date too large"); a BC date written to SQLite read back as the same day AD."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, TABLE, "INSERT INTO x VALUES " + ", ".join(
        f"({i}, '{d}', '{ts}', '{tz}')" for i, d, ts, tz in WIDE))
    pg(b, TABLE)
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP,"
                  " tz TIMESTAMPTZ)")
    c.close()
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE x (id INT PRIMARY KEY, d DATE, ts DATETIME(6),"
                    " tz DATETIME(6))")
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "b": pg_endpoint(b), "s": sqlite_endpoint(),
         "m": mariadb_endpoint(mp)},
        "x", {"a": "x", "b": "x", "s": "x", "m": "x"})
    cdcsync("setup", str(p))
    try:
        out = run_json(p, expect=3)  # the snapshot (binary COPY): rows 1 and 2 wait for m
        assert out["errors"] == [] and out["totals"]["rejected"] == 2, out
        assert pg(b, ROWS) == pg(a, ROWS)
        # Both logs: PostgreSQL's (pgoutput, text) and SQLite's triggers.
        pg(a, "INSERT INTO x VALUES (4, '5874897-12-31', '4713-01-01 00:00:00 BC',"
              " '10000-01-01 00:30:00+01')",
           "UPDATE x SET d = '0001-01-01 BC' WHERE id = 3")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("INSERT INTO x VALUES (5, '0001-12-31 BC', '12345-06-07T08:09:10',"
                      " '0044-03-15 10:00:00+02:00 BC')")
        c.close()
        out = run_json(p, expect=3)
        assert out["errors"] == [] and out["totals"]["read"] == 3, out
        want = [(1, "20201-01-01", "0044-03-15 10:00:00.5 BC", "20201-01-01 10:00:00+00"),
                (2, "0044-03-15 BC", "294276-12-31 23:59:59.999999",
                 "4713-01-01 00:00:00+00 BC"),
                (3, "0001-01-01 BC", "2020-01-02 03:04:05", "0001-01-01 00:00:00+00"),
                (4, "5874897-12-31", "4713-01-01 00:00:00 BC", "9999-12-31 23:30:00+00"),
                (5, "0001-12-31 BC", "12345-06-07 08:09:10", "0044-03-15 08:00:00+00 BC")]
        assert pg(a, ROWS) == pg(b, ROWS) == want
        with sqlite3.connect(tmp_path / "s.db") as c:
            got = c.execute("SELECT id, d FROM x ORDER BY id").fetchall()
        c.close()
        assert got == [(r[0], r[1]) for r in want]  # BC kept: never the same day AD
        # The fixed point: nothing applied, then nothing read.
        assert run_json(p, expect=3)["totals"]["applied"] == 0
        assert run_json(p, expect=3)["totals"]["read"] == 0
        # MariaDB holds no such date: those rows wait as dead letters, none of them
        # stored as another date (a BC year as the same year AD above all).
        with conn.cursor() as cur:  # row 3 as the snapshot wrote it: its update refused
            cur.execute("SELECT id, CAST(d AS CHAR), CAST(tz AS CHAR) FROM x")
            assert cur.fetchall() == ((3, "2020-01-02", "0001-01-01 00:00:00.000000"),)
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert {k for x in letters for k in x["keys"]} == {
            json.dumps({"id": i}, separators=(",", ":")) for i in (1, 2, 3, 4, 5)}
        [drift] = json.loads(cdcsync("verify", str(p), "--json", expect=1).stdout)
        assert drift["rows"] == {"a": 5, "b": 5, "s": 5, "m": 1}, drift  # only m behind
        assert set(drift["missing"]) == set(drift["differing"]) == {"m"}
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
        conn.close()


def test_the_end_of_a_day_syncs_as_itself_never_as_midnight(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    """PostgreSQL's time '24:00:00' stopped every read of its table ("hour must be
    in 0..23"); MariaDB's TIME holds it too, and SQLite keeps the text."""
    a = pg_dsn_factory()
    pg(a, "CREATE TABLE y (id int PRIMARY KEY, t time, tz timetz)",
       "INSERT INTO y VALUES (1, '24:00:00', '24:00:00+00'), (2, '00:00:00', '00:00+00'),"
       " (3, '23:59:59.999999', NULL)")
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE y (id INTEGER PRIMARY KEY, t TIME, tz TEXT)")
    c.close()
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE y (id INT PRIMARY KEY, t TIME(6), tz VARCHAR(40))")
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "s": sqlite_endpoint(), "m": mariadb_endpoint(mp)},
        "y", {"a": "y", "s": "y", "m": "y"})
    cdcsync("setup", str(p))
    try:
        out = run_json(p)  # the snapshot (binary COPY)
        assert out["errors"] == [] and out["totals"]["applied"] == 6, out
        # All three logs: pgoutput (text), SQLite's triggers, MariaDB's binlog.
        pg(a, "INSERT INTO y VALUES (4, '24:00', '24:00:00+00')",
           "UPDATE y SET t = '24:00:00' WHERE id = 2")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("INSERT INTO y VALUES (5, '24:00:00', NULL)")
        c.close()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO y VALUES (6, '24:00:00', NULL), (7, '00:00:00', NULL)")
        out = run_json(p)
        assert out["errors"] == [] and out["totals"]["read"] == 5, out
        want = [(1, "24:00:00"), (2, "24:00:00"), (3, "23:59:59.999999"), (4, "24:00:00"),
                (5, "24:00:00"), (6, "24:00:00"), (7, "00:00:00")]
        assert pg(a, "SELECT id, t::text FROM y ORDER BY id") == want
        assert pg(a, "SELECT tz::text FROM y WHERE id IN (1, 4)") == [("24:00:00+00",)] * 2
        with sqlite3.connect(tmp_path / "s.db") as c:
            assert c.execute("SELECT id, t FROM y ORDER BY id").fetchall() == want
        c.close()
        with conn.cursor() as cur:
            cur.execute("SELECT id, TIME_FORMAT(t, '%T') FROM y ORDER BY id")
            assert [(i, t) for i, t in cur.fetchall()] == [
                (i, t[:8]) for i, t in want]
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
        assert run_json(p)["totals"]["read"] == 0
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
        conn.close()


def test_a_mariadb_time_beyond_a_day_travels_as_its_text_and_waits_where_refused(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    """MariaDB's TIME is a duration (+-838 h): one '25:00:00' stopped the whole
    snapshot with a CoercionError, and nothing of the table arrived anywhere."""
    a = pg_dsn_factory()
    pg(a, "CREATE TABLE z (id int PRIMARY KEY, t time, d interval)")
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE z (id INTEGER PRIMARY KEY, t TIME, d TIME)")
    c.close()
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE z (id INT PRIMARY KEY, t TIME(6), d TIME(6))")
        cur.execute("INSERT INTO z VALUES (1, '25:00:00', '25:00:00'),"
                    " (2, '10:00:00', '-01:30:00.5'), (3, '-01:00:00', '838:59:59'),"
                    " (4, '24:00:00', '00:00:00')")
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "s": sqlite_endpoint(), "m": mariadb_endpoint(mp)},
        "z", {"m": "z", "a": "z", "s": "z"})
    cdcsync("setup", str(p))
    try:
        out = run_json(p, expect=3)  # the snapshot: PostgreSQL's time refuses 1 and 3
        assert out["errors"] == [] and out["totals"]["rejected"] == 2, out
        with conn.cursor() as cur:  # and from the binlog
            cur.execute("INSERT INTO z VALUES (5, '-00:00:01', '100:00:00')")
            cur.execute("UPDATE z SET t = '48:00:00' WHERE id = 2")
        out = run_json(p, expect=3)
        assert out["errors"] == [] and out["totals"]["read"] == 2, out
        with sqlite3.connect(tmp_path / "s.db") as c:
            assert c.execute("SELECT id, t, d FROM z ORDER BY id").fetchall() == [
                (1, "25:00:00", "25:00:00"), (2, "48:00:00", "-01:30:00.500000"),
                (3, "-01:00:00", "838:59:59"), (4, "24:00:00", "00:00:00"),
                (5, "-00:00:01", "100:00:00")]
        c.close()
        # PostgreSQL: the interval column holds every duration; its time column only
        # times of day, so rows 1, 3, 5 and 2's update wait (the snapshot's row 2 stays).
        assert pg(a, "SELECT id, t::text, extract(epoch FROM d)::float8 FROM z ORDER BY id"
                  ) == [(2, "10:00:00", -5400.5), (4, "24:00:00", 0.0)]
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert {k for x in letters for k in x["keys"]} == {
            json.dumps({"id": i}, separators=(",", ":")) for i in (1, 2, 3, 5)}
        assert all("no time of day" in x["error"] for x in letters), letters
        # The fixed point: nothing applied, then nothing read.
        assert run_json(p, expect=3)["totals"]["applied"] == 0
        assert run_json(p, expect=3)["totals"]["read"] == 0
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
        conn.close()


def test_an_interval_of_months_arrives_as_months_never_as_thirty_days(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """psycopg loads '1 mon' as timedelta(days=30): another PostgreSQL held '30 days'
    (January 31st + 1 mon is February's last day; + 30 days is March 1st). Arrays of
    intervals: tests/connectors/postgres/test_pg_types.py."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    table = "CREATE TABLE v (id int PRIMARY KEY, period interval)"
    pg(a, table, "INSERT INTO v VALUES (1, '1 mon'), (2, '1 year 2 mons -3 days 04:05:06.5'),"
                 " (3, '3 days')")
    pg(b, table)
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, period INTERVAL)")
    c.close()
    p = write_pipeline(
        tmp_path, pipeline_of(a),
        {"a": pg_endpoint(a), "b": pg_endpoint(b), "s": sqlite_endpoint()},
        "v", {"a": "v", "b": "v", "s": "v"})
    cdcsync("setup", str(p))
    try:
        run_json(p)  # the snapshot (binary COPY)
        pg(a, "INSERT INTO v VALUES (4, '-1 mons +3 days')",  # pgoutput: text
           "UPDATE v SET period = '2 mons' WHERE id = 3")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("INSERT INTO v VALUES (5, 'P1Y'), (6, 86400.5)")
        c.close()
        out = run_json(p)
        assert out["errors"] == [] and out["totals"]["read"] == 4, out
        rows = "SELECT id, period::text FROM v ORDER BY id"
        assert pg(a, rows) == pg(b, rows) == [
            (1, "1 mon"), (2, "1 year 2 mons -3 days +04:05:06.5"), (3, "2 mons"),
            (4, "-1 mons +3 days"), (5, "1 year"), (6, "1 day 00:00:00.5")]
        with sqlite3.connect(tmp_path / "s.db") as c:
            got = c.execute("SELECT id, period FROM v ORDER BY id").fetchall()
        c.close()
        # PostgreSQL's own ISO 8601 spelling, at SQLite
        iso = pg(a, "SET IntervalStyle = iso_8601", rows)
        assert got[:5] == iso[:5] and got[5] == (6, 86400.5)
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
        assert run_json(p)["totals"]["read"] == 0
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
