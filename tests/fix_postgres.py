"""PostgreSQL fixtures: the prepared local server and a fresh database per test.

The server must have been prepared by ``scripts/prepare-services``
(``wal_level = logical``). A server that is missing or unprepared fails the
tests that need it; it never skips them.

Fixtures:

- ``pg_server`` (session): the admin conninfo, after checking the server.
- ``pg_dsn``: a URL to a new empty database, dropped after the test.
- ``pg_dsn_factory``: call it for each further database a test needs.

Dropping a test database also drops what would otherwise outlive it or block
``DROP DATABASE``: connections, subscriptions, logical slots in it, and
replication origins whose name contains the database name (origins are
cluster-wide, so a test that creates one should put the database name in it).

For a replication connection use
``psycopg.conninfo.make_conninfo(pg_dsn, replication="database")``. The
server is ``$CDCSYNC_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from tests.dbnames import (
    PREPARE_HINT,
    TEST_DB_NAME,
    TEST_DB_PREFIX,
    is_stale,
    new_database_name,
)

PG_URL_ENV = "CDCSYNC_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url(admin: str, dbname: str) -> str:
    """A ``postgresql://`` URL for ``dbname`` on the admin connection's server."""
    params = conninfo_to_dict(admin)
    user = quote(str(params.get("user", "postgres")), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}"


def server_label(admin: str) -> str:
    """host:port and user of a conninfo, for messages (never the password)."""
    params = conninfo_to_dict(admin)
    where = f"{params.get('host', 'local socket')}:{params.get('port', 5432)}"
    return f"{where} as {params.get('user', 'the current user')}"


def _admin_connect(admin: str) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(admin, autocommit=True, connect_timeout=5)


def _drop_subscriptions(admin: str, dbname: str) -> None:
    """A subscription lives in its database and stops DROP DATABASE; drop it
    and the slot it used (which belongs to the test even if it lives elsewhere)."""
    with _admin_connect(admin) as conn:
        subs = conn.execute(
            "SELECT s.subname, s.subslotname FROM pg_subscription s"
            " JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = %s",
            (dbname,),
        ).fetchall()
    if not subs:
        return
    with _admin_connect(make_conninfo(admin, dbname=dbname)) as conn:
        for subname, _slot in subs:
            ident = sql.Identifier(str(subname))
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    with _admin_connect(admin) as conn:
        for _subname, slot in subs:
            if slot is not None:
                _drop_slot(conn, str(slot))


def _drop_slot(conn: psycopg.Connection[TupleRow], slot: str) -> None:
    """Drop a slot, ending the session that holds it first (it may take a moment to let go)."""
    for _ in range(50):
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is None:
            return
        if row[0] is not None:
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            time.sleep(0.1)
            continue
        try:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)
        except psycopg.errors.UndefinedObject:
            return
    raise RuntimeError(f"could not drop replication slot {slot!r}: still in use after 5 s")


def drop_database(admin: str, dbname: str) -> None:
    """Drop a test database and everything that would block or outlive it."""
    _drop_subscriptions(admin, dbname)
    with _admin_connect(admin) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        slots = conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (dbname,)
        ).fetchall()
        for (slot,) in slots:
            _drop_slot(conn, str(slot))
        origins = conn.execute(
            "SELECT roname FROM pg_replication_origin WHERE strpos(roname, %s) > 0", (dbname,)
        ).fetchall()
        for (origin,) in origins:
            conn.execute("SELECT pg_replication_origin_drop(%s)", (origin,))
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def create_database(admin: str) -> str:
    """Create an empty test database (from template0, which nobody can have
    modified or be connected to) and return its name."""
    name = new_database_name()
    with _admin_connect(admin) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return name


def drop_stale_databases(admin: str) -> list[str]:
    """Drop what crashed sessions left behind: test databases (their slots hold
    WAL) and replication origins named after a test database (each one that
    has progress takes one of max_replication_slots' origin states)."""
    with _admin_connect(admin) as conn:
        names = {
            str(name)
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                (TEST_DB_PREFIX,),
            ).fetchall()
        }
        for (origin,) in conn.execute("SELECT roname FROM pg_replication_origin").fetchall():
            match = TEST_DB_NAME.search(str(origin))
            if match and match.group(0) not in names and is_stale(match.group(0)):
                with contextlib.suppress(psycopg.errors.ObjectInUse):  # in use: leave it
                    conn.execute("SELECT pg_replication_origin_drop(%s)", (origin,))
    stale = sorted(name for name in names if is_stale(name))
    for name in stale:
        drop_database(admin, name)
    return stale


def check_server(admin: str) -> None:
    """Fail (never skip) unless the server answers and is prepared for logical decoding."""
    try:
        with _admin_connect(admin) as conn:
            row = conn.execute("SHOW wal_level").fetchone()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable ({server_label(admin)}): {exc}\n"
            f"Start and prepare it: {PREPARE_HINT}",
            pytrace=False,
        )
    wal_level = row[0] if row else None
    if wal_level != "logical":
        pytest.fail(
            f"PostgreSQL has wal_level={wal_level}, the tests need logical: {PREPARE_HINT}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Admin conninfo of the checked local PostgreSQL."""
    admin = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    check_server(admin)
    drop_stale_databases(admin)
    return admin


@pytest.fixture
def pg_dsn_factory(pg_server: str) -> Iterator[Callable[[], str]]:
    """Call it to get the URL of another new empty database; all are dropped after the test,
    with the replication origins the test made (they are named after its pipelines, not
    its databases, and each that has progress holds one of the server's origin states)."""
    created: list[str] = []
    before = _origins(pg_server)

    def make() -> str:
        name = create_database(pg_server)
        created.append(name)
        return database_url(pg_server, name)

    yield make
    for name in created:
        drop_database(pg_server, name)
    if created:
        with _admin_connect(pg_server) as conn:
            for origin in sorted(_origins(pg_server) - before):
                with contextlib.suppress(psycopg.errors.ObjectInUse,
                                         psycopg.errors.UndefinedObject):
                    conn.execute("SELECT pg_replication_origin_drop(%s)", (origin,))


def _origins(admin: str) -> set[str]:
    with _admin_connect(admin) as conn:
        return {str(r[0]) for r in conn.execute("SELECT roname FROM pg_replication_origin")}


@pytest.fixture
def pg_dsn(pg_dsn_factory: Callable[[], str]) -> str:
    """URL of a new empty database, dropped after the test."""
    return pg_dsn_factory()
