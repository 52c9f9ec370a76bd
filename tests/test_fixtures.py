"""The real-server fixtures themselves: fresh, empty, isolated, and gone afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import psycopg.conninfo
import pymysql
import pytest
import redis

from tests import fix_mariadb, fix_postgres, fix_redis
from tests.dbnames import STALE_AFTER_SECONDS, TEST_DB_PREFIX, is_stale, new_database_name
from tests.fix_mariadb import MariaDBParams

# ------------------------------------------------------------------ names


def test_database_names_are_unique_valid_identifiers() -> None:
    names = {new_database_name() for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert name.startswith(TEST_DB_PREFIX)
        assert len(name) < 64
        assert name.replace("_", "").isalnum()
        assert name == name.lower()


def test_only_old_test_databases_are_stale() -> None:
    now = time.time()
    old = f"{TEST_DB_PREFIX}{int(now) - STALE_AFTER_SECONDS - 5}_1_abcd"
    fresh = f"{TEST_DB_PREFIX}{int(now) - 5}_1_abcd"
    assert is_stale(old, now)
    assert not is_stale(fresh, now)
    assert not is_stale("postgres", now)
    assert not is_stale(f"{TEST_DB_PREFIX}x_1_abcd", now)


# ------------------------------------------------------------- PostgreSQL


def test_pg_dsn_is_a_new_empty_database_ready_for_decoding(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        relations = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()
        wal_level = conn.execute("SHOW wal_level").fetchone()
    assert name is not None and name[0].startswith(TEST_DB_PREFIX)
    assert relations == (0,)
    assert wal_level == ("logical",)


def test_pg_dsn_factory_gives_distinct_databases(pg_dsn_factory: Callable[[], str]) -> None:
    first, second = pg_dsn_factory(), pg_dsn_factory()
    assert first != second
    with psycopg.connect(first) as a, psycopg.connect(second) as b:
        a.execute("CREATE TABLE only_in_first (id int)")
        a.commit()
        seen = b.execute("SELECT to_regclass('only_in_first') IS NULL").fetchone()
    assert seen == (True,)


def test_pg_dsn_accepts_logical_replication_connections(pg_dsn: str) -> None:
    conninfo = psycopg.conninfo.make_conninfo(pg_dsn, replication="database")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("IDENTIFY_SYSTEM").fetchone()
    assert row is not None and row[3] == psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]


PG_INNER_TEST = """
import psycopg, pytest
from psycopg.conninfo import make_conninfo

OPEN = []

@pytest.fixture(scope="session", autouse=True)
def idle_connections():
    yield
    for conn in OPEN:
        conn.close()

def test_leaves_things_behind(pg_dsn_factory):
    for _ in range(2):
        dsn = pg_dsn_factory()
        conn = psycopg.connect(dsn, autocommit=True)
        OPEN.append(conn)  # still connected when the fixture drops the database
        name = conn.execute("SELECT current_database()").fetchone()[0]
        with open({record!r}, "a") as f:
            f.write(name + "\\n")
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("CREATE PUBLICATION p FOR TABLE t")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        # A slot in use by a streaming reader blocks even DROP DATABASE WITH (FORCE).
        reader = psycopg.connect(make_conninfo(dsn, replication="database"), autocommit=True)
        OPEN.append(reader)
        reader.execute(
            f'START_REPLICATION SLOT "{name}" LOGICAL 0/0'
            " (proto_version '1', publication_names 'p')"
        )
        conn.execute("SELECT pg_replication_origin_create(%s)", ("cdcsync_" + name,))
        conn.execute(
            "CREATE SUBSCRIPTION s CONNECTION '" + dsn + "' PUBLICATION p WITH (connect = false)"
        )
"""


def test_pg_databases_and_what_blocks_dropping_them_are_gone_after_the_test(
    pytester: pytest.Pytester, pg_server: str, tmp_path: Path
) -> None:
    record = tmp_path / "names"
    pytester.makepyfile(test_inner=PG_INNER_TEST.replace("{record!r}", repr(str(record))))
    result = pytester.runpytest_inprocess("-p", "tests.fix_postgres", "-q")
    result.assert_outcomes(passed=1)
    names = record.read_text().split()
    assert len(names) == 2
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in names:
            left = conn.execute(
                "SELECT (SELECT count(*) FROM pg_database WHERE datname = %(n)s),"
                " (SELECT count(*) FROM pg_replication_slots WHERE slot_name = %(n)s),"
                " (SELECT count(*) FROM pg_replication_origin WHERE roname LIKE '%%' || %(n)s)",
                {"n": name},
            ).fetchone()
            assert left == (0, 0, 0), name


def test_pg_stale_databases_are_dropped(pg_server: str) -> None:
    old = f"{TEST_DB_PREFIX}{int(time.time()) - STALE_AFTER_SECONDS - 60}_1_{'0' * 8}"
    orphan_origin = f"pipeline_{old.replace('_1_', '_2_')}"  # its database is already gone
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{old}"')
        conn.execute("SELECT pg_replication_origin_create(%s)", (orphan_origin,))
    dropped = fix_postgres.drop_stale_databases(pg_server)
    with psycopg.connect(pg_server) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = %s),"
            " (SELECT count(*) FROM pg_replication_origin WHERE roname = %s)",
            (old, orphan_origin),
        )
        assert left.fetchone() == (0, 0)
    assert old in dropped


def test_pg_unreachable_server_fails_naming_the_prepare_script() -> None:
    with pytest.raises(pytest.fail.Exception, match="scripts/prepare-services"):
        fix_postgres.check_server("host=127.0.0.1 port=1 user=postgres dbname=postgres")


# ---------------------------------------------------------------- MariaDB


def _mariadb(params: MariaDBParams) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    return pymysql.connect(**params, autocommit=True)


def _schema_exists(server: MariaDBParams, name: str) -> bool:
    with _mariadb(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cur.fetchone() is not None


def test_mariadb_params_is_a_new_empty_database_with_a_row_binlog(
    mariadb_params: MariaDBParams,
) -> None:
    with _mariadb(mariadb_params) as conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE(), @@log_bin, @@binlog_format")
        row = cur.fetchone()
        cur.execute(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
        )
        tables = cur.fetchone()
    assert row is not None
    assert row[0] == mariadb_params["database"]
    assert row[0].startswith(TEST_DB_PREFIX)
    assert row[1:] == (1, "ROW")
    assert tables == (0,)


def test_mariadb_url_names_the_same_database(
    mariadb_params: MariaDBParams, mariadb_url: str
) -> None:
    server = fix_mariadb.server_params(mariadb_url.replace("mysql+pymysql://", "mysql://", 1))
    assert mariadb_url.startswith("mysql+pymysql://")
    assert mariadb_url.endswith("/" + mariadb_params["database"])
    assert {k: server[k] for k in ("host", "port", "user", "password")} == {
        k: mariadb_params[k] for k in ("host", "port", "user", "password")
    }


def test_mariadb_params_factory_gives_distinct_databases(
    mariadb_params_factory: Callable[[], MariaDBParams],
) -> None:
    first, second = mariadb_params_factory(), mariadb_params_factory()
    assert first["database"] != second["database"]
    with _mariadb(first) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE only_in_first (id int)")
    with _mariadb(second) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()


MARIADB_INNER_TEST = """
import pymysql, pytest

OPEN = []

@pytest.fixture(scope="session", autouse=True)
def idle_connections():
    yield
    for conn in OPEN:
        try:
            conn.close()
        except pymysql.err.Error:
            pass  # killed by the fixture, as intended

def test_leaves_a_lock_behind(mariadb_params):
    conn = pymysql.connect(**mariadb_params)
    OPEN.append(conn)
    with open({record!r}, "w") as f:
        f.write(mariadb_params["database"])
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY)")
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM t")  # an open transaction holds a metadata lock on t
"""


def test_mariadb_database_is_dropped_after_the_test_even_when_locked(
    pytester: pytest.Pytester, mariadb_server: MariaDBParams, tmp_path: Path
) -> None:
    record = tmp_path / "name"
    pytester.makepyfile(test_inner=MARIADB_INNER_TEST.replace("{record!r}", repr(str(record))))
    result = pytester.runpytest_inprocess("-p", "tests.fix_mariadb", "-q")
    result.assert_outcomes(passed=1)
    name = record.read_text()
    assert name.startswith(TEST_DB_PREFIX)
    assert not _schema_exists(mariadb_server, name)


def test_mariadb_stale_databases_are_dropped(mariadb_server: MariaDBParams) -> None:
    old = f"{TEST_DB_PREFIX}{int(time.time()) - STALE_AFTER_SECONDS - 60}_1_{'0' * 8}"
    with _mariadb(mariadb_server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{old}`")
    dropped = fix_mariadb.drop_stale_databases(mariadb_server)
    assert not _schema_exists(mariadb_server, old)
    assert old in dropped


def test_mariadb_unreachable_server_fails_naming_the_prepare_script() -> None:
    server = fix_mariadb.server_params("mysql://cdcsync:cdcsync@127.0.0.1:1")
    with pytest.raises(pytest.fail.Exception, match="scripts/prepare-services"):
        fix_mariadb.check_server(server)


# ------------------------------------------------------------------ Redis


def test_redis_url_is_an_empty_database_of_its_own(redis_url: str, redis_server: str) -> None:
    number = int(redis_url.rsplit("/", 1)[1])
    assert number >= 1
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("k", "v")
    with redis.Redis.from_url(f"{redis_server}/0") as admin:
        assert admin.get(fix_redis.LEASE_KEY.format(number)) is not None


def test_redis_claims_are_exclusive_and_released_flushed(redis_server: str) -> None:
    a = fix_redis.claim_database(redis_server, "token-a")
    b = fix_redis.claim_database(redis_server, "token-b")
    try:
        assert a != b
        with redis.Redis.from_url(f"{redis_server}/{a}") as client:
            client.set("left-behind", "1")
    finally:
        fix_redis.release_database(redis_server, a, "token-a")
        fix_redis.release_database(redis_server, b, "token-b")
    # Another test may claim the number at once: look only for what this one left.
    with redis.Redis.from_url(f"{redis_server}/{a}") as client:
        assert client.exists("left-behind") == 0
    with redis.Redis.from_url(f"{redis_server}/0") as admin:
        assert admin.get(fix_redis.LEASE_KEY.format(a)) != b"token-a"
