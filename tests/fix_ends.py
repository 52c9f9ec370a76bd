"""Two endpoints of one kind for end-to-end tests through the CLI: SQLite files or
PostgreSQL databases, each holding table ``t`` (``id``, a unique ``code``, ``v``).
A pytest plugin (tests/conftest.py): the fixture ``two_ends`` gives a pair of each."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pipelines import pg_endpoint, sqlite_endpoint

TABLE = "CREATE TABLE t (id integer PRIMARY KEY, code text NOT NULL UNIQUE, v text)"


class Sqlite:
    def __init__(self, tmp: Path, name: str) -> None:
        self.path = tmp / f"{name}.db"
        self.spec = sqlite_endpoint(str(self.path))
        self.run(TABLE)

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql).fetchall()


class Postgres:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.spec = pg_endpoint(dsn)
        self.run(TABLE)

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []


@pytest.fixture(params=["sqlite", "postgres"])
def two_ends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any]:
    if request.param == "sqlite":
        return Sqlite(tmp_path, "a"), Sqlite(tmp_path, "b")
    factory: Callable[[], str] = request.getfixturevalue("pg_dsn_factory")
    return Postgres(factory()), Postgres(factory())
