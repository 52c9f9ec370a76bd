"""MariaDB fixtures: the prepared local server and a fresh database per test.

The server must have been prepared by ``scripts/prepare-services`` (ROW
binlog with full row images and metadata, and the ``cdcsync`` user the tests
connect as over TCP, since root may be socket-only on other machines). A
server that is missing or unprepared fails the tests that need it; it never
skips them.

Fixtures:

- ``mariadb_server`` (session): connection parameters (no database), checked.
- ``mariadb_params``: ``{host, port, user, password, database}`` of a new empty
  database, dropped after the test (``pymysql.connect(**mariadb_params)``).
- ``mariadb_url``: the same database as ``mysql+pymysql://user:pw@host:port/db``.
- ``mariadb_params_factory``: call it for each further database a test needs.

The server is ``$CDCSYNC_TEST_MARIADB_URL`` (default
``mysql://cdcsync:cdcsync@127.0.0.1:3306``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypedDict
from urllib.parse import quote, unquote, urlsplit

import pymysql
import pytest

from tests.dbnames import PREPARE_HINT, TEST_DB_PREFIX, is_stale, new_database_name

MARIADB_URL_ENV = "CDCSYNC_TEST_MARIADB_URL"
DEFAULT_MARIADB_URL = "mysql://cdcsync:cdcsync@127.0.0.1:3306"
# What the binlog reader needs: (log_bin, format, row image, row metadata).
REQUIRED_BINLOG = (1, "ROW", "FULL", "FULL")


class MariaDBParams(TypedDict):
    """Keyword arguments for ``pymysql.connect``; also the pipeline's mysql endpoint fields."""

    host: str
    port: int
    user: str
    password: str
    database: str


def server_params(url: str) -> MariaDBParams:
    """Connection parameters from a ``mysql://user:pw@host:port`` URL, database empty."""
    parts = urlsplit(url)
    return MariaDBParams(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database="",
    )


def params_url(params: MariaDBParams) -> str:
    """The SQLAlchemy URL (pymysql driver) of a parameter dict."""
    auth = quote(params["user"], safe="")
    if params["password"]:
        auth += ":" + quote(params["password"], safe="")
    return (
        f"mysql+pymysql://{auth}@{params['host']}:{params['port']}/"
        f"{quote(params['database'], safe='')}"
    )


def _connect(server: MariaDBParams) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    return pymysql.connect(
        host=server["host"],
        port=server["port"],
        user=server["user"],
        password=server["password"],
        autocommit=True,
        connect_timeout=5,
    )


def create_database(server: MariaDBParams) -> str:
    """Create an empty utf8mb4 test database and return its name."""
    name = new_database_name()
    with _connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    return name


def drop_database(server: MariaDBParams, dbname: str) -> None:
    """Drop a test database, first ending the sessions using it (their metadata
    locks would make DROP DATABASE wait)."""
    with _connect(server) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (dbname,),
        )
        for (session_id,) in cur.fetchall():
            try:
                cur.execute("KILL %s", (int(session_id),))
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1094:  # unknown thread id: it ended meanwhile
                    raise
        cur.execute(f"DROP DATABASE IF EXISTS `{dbname}`")


def drop_stale_databases(server: MariaDBParams) -> list[str]:
    """Drop test databases that crashed sessions left behind."""
    with _connect(server) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
            (TEST_DB_PREFIX.replace("_", r"\_") + "%",),
        )
        names = [str(name) for (name,) in cur.fetchall()]
    stale = [name for name in names if is_stale(name)]
    for name in stale:
        drop_database(server, name)
    return stale


def check_server(server: MariaDBParams) -> None:
    """Fail (never skip) unless the server answers and writes a full ROW binlog."""
    where = f"{server['host']}:{server['port']} as {server['user']}"
    try:
        with _connect(server) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata"
            )
            row = cur.fetchone()
    except pymysql.err.MySQLError as exc:
        pytest.fail(
            f"MariaDB is not reachable ({where}): {exc}\nStart and prepare it: {PREPARE_HINT}",
            pytrace=False,
        )
    if row is None or tuple(row) != REQUIRED_BINLOG:
        pytest.fail(
            f"MariaDB reports (log_bin, binlog_format, binlog_row_image, binlog_row_metadata)"
            f" = {row}, the tests need {REQUIRED_BINLOG}: {PREPARE_HINT}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def mariadb_server() -> MariaDBParams:
    """Connection parameters of the checked local MariaDB (``database`` empty)."""
    server = server_params(os.environ.get(MARIADB_URL_ENV, DEFAULT_MARIADB_URL))
    check_server(server)
    drop_stale_databases(server)
    return server


@pytest.fixture
def mariadb_params_factory(
    mariadb_server: MariaDBParams,
) -> Iterator[Callable[[], MariaDBParams]]:
    """Call it for the parameters of another new empty database; all are dropped after the test."""
    created: list[str] = []

    def make() -> MariaDBParams:
        name = create_database(mariadb_server)
        created.append(name)
        return MariaDBParams(
            host=mariadb_server["host"],
            port=mariadb_server["port"],
            user=mariadb_server["user"],
            password=mariadb_server["password"],
            database=name,
        )

    yield make
    for name in created:
        drop_database(mariadb_server, name)


@pytest.fixture
def mariadb_params(mariadb_params_factory: Callable[[], MariaDBParams]) -> MariaDBParams:
    """``{host, port, user, password, database}`` of a new empty database."""
    return mariadb_params_factory()


@pytest.fixture
def mariadb_url(mariadb_params: MariaDBParams) -> str:
    """``mysql+pymysql://`` URL of the same database as ``mariadb_params``."""
    return params_url(mariadb_params)
