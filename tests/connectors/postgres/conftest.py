"""Fixtures of the PostgreSQL connector tests: a fresh database per test (tests/fix_postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.postgres import PostgresEndpoint
from tests.connectors.postgres.helpers import endpoint, sql


@pytest.fixture
def table_t(pg_dsn: str) -> str:
    """``pg_dsn`` with a table ``t`` of a few common columns."""
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2),"
                " note text)")
    return pg_dsn


@pytest.fixture
def ep(table_t: str) -> Iterator[PostgresEndpoint]:
    """An endpoint ``a`` on ``table_t``, set up for table ``t``, closed after the test."""
    from tests.connectors.postgres.helpers import binding

    e = endpoint(table_t)
    e.setup([binding()], e.pipeline)
    yield e
    e.close()


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_origins(pg_server: str) -> None:
    """Replication origins left by crashed or untidy runs (their pipeline has no slot
    left) fill the server's origin array (max_replication_slots entries), and then no
    sink can tag its writes: drop them before the session, as the PostgreSQL fixture
    drops stale databases."""
    import psycopg

    from connectors.postgres.setup import drop_origins, orphan_origins

    with psycopg.connect(pg_server, autocommit=True) as conn:
        drop_origins(conn, orphan_origins(conn))
