"""The sink's SQL literals (connectors/mysql/literals.py) against pymysql's and the server.

The literals replace pymysql's parameter binding in the sink's statements, so
they must be the very text pymysql would send for every value an apply
passes, in both of the server's string-escaping modes, and what the server
stores from them must be the values themselves.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.mysql.literals import Literals
from tests.connectors.mysql.helpers import user_conn

#: every type an apply's parameters take (connectors/mysql/types.py ``to_param``), and
#: some that go through pymysql's own encoders (time, timedelta, bool)
VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(),
    st.binary(max_size=64),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(min_value=dt.timedelta(days=-30), max_value=dt.timedelta(days=30)),
    st.booleans(),
)


@pytest.fixture(params=[False, True], ids=["backslash-escapes", "no-backslash-escapes"])
def conn(request: pytest.FixtureRequest, mariadb_params: dict[str, Any]
         ) -> Iterator[pymysql.connections.Connection[Any]]:
    c = user_conn(mariadb_params)
    if request.param:
        with c.cursor() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
    yield c
    c.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.lists(VALUES, min_size=1, max_size=8))
def test_a_row_is_the_text_pymysql_sends(conn: pymysql.connections.Connection[Any],
                                         row: list[Any]) -> None:
    with conn.cursor() as cur:
        expected = cur.mogrify("(" + ",".join(["%s"] * len(row)) + ")", tuple(row))
    assert Literals(conn).row(row) == expected


def test_the_server_stores_the_values_themselves(
        conn: pymysql.connections.Connection[Any]) -> None:
    nasty = ["", "'", "''", "\\", "\\'", "a\\0b", "\x00", "\n\r\t\x1a", '"', "%s", "%(x)s",
             "Ünïcødé ✓ 🐍", "x' OR '1'='1", "--", "/*", "\\\\'; DROP TABLE t; --"]
    rows = [(i, s, s.encode("utf-8") + bytes(range(256)), decimal.Decimal("-12.3400"),
             0.1 * i, dt.datetime(2026, 1, 2, 3, 4, 5, 678901), dt.date(1999, 12, 31),
             None if i % 2 else i)
            for i, s in enumerate(nasty)]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE lit (id INT PRIMARY KEY, s TEXT, b BLOB, d DECIMAL(10,4),"
                    " f DOUBLE, t DATETIME(6), dd DATE, n INT NULL) CHARSET utf8mb4")
        lit = Literals(conn)
        cur.max_stmt_length = 2000  # several statements, as a large batch would take
        assert lit.execute_many(cur, "INSERT INTO lit (id, s, b, d, f, t, dd, n)", rows) \
            == len(rows)
        cur.execute("SELECT * FROM lit WHERE " + lit.in_list(["s"], [(r[1],) for r in rows])
                    + " ORDER BY id")
        got = cur.fetchall()
        # upsert: the tail follows every statement
        lit.execute_many(cur, "INSERT INTO lit (id, s)", [(r[0], r[1] + "!") for r in rows],
                         " ON DUPLICATE KEY UPDATE s = VALUES(s)")
        cur.execute("SELECT s FROM lit ORDER BY id")
        updated = [s for (s,) in cur.fetchall()]
    assert [tuple(r) for r in got] == rows
    assert updated == [s + "!" for s in nasty]


def test_composite_keys(conn: pymysql.connections.Connection[Any]) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE ck (a INT, b VARCHAR(10), PRIMARY KEY (a, b))")
        Literals(conn).execute_many(cur, "INSERT INTO ck (a, b)",
                                    [(1, "x"), (1, "y'"), (2, "x")])
        cur.execute("SELECT a, b FROM ck WHERE "
                    + Literals(conn).in_list(["a", "b"], [(1, "y'"), (2, "x"), (3, "x")])
                    + " ORDER BY a")
        assert cur.fetchall() == ((1, "y'"), (2, "x"))
