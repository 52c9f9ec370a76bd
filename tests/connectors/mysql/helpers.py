"""Small helpers shared by the MySQL/MariaDB connector tests (real server, no mocks)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pymysql

from connectors.base import Binding
from connectors.mysql.source import MysqlSource
from sync.change import Change, Checkpoint


def unique_server_id() -> int:
    """A replica server_id of its own: test runs sharing the server (two people, CI)
    must not kill each other's binlog readers, as one id in two readers does."""
    return random.randint(1_000_000, 2**31 - 1)


def settings(params: Mapping[str, Any], **extra: Any) -> SimpleNamespace:
    """The endpoint settings the config package would build (duck-typed)."""
    base: dict[str, Any] = {"kind": "mysql", "server_id": unique_server_id(),
                            "flavor": "mariadb"}
    base.update(params)
    base.update(extra)
    return SimpleNamespace(**base)


def user_conn(params: Mapping[str, Any]) -> pymysql.connections.Connection[Any]:
    """A plain client session, as a user of the database would have."""
    return pymysql.connect(host=params["host"], port=params["port"], user=params["user"],
                           password=params["password"], database=params["database"],
                           autocommit=True, charset="utf8mb4")


def run(params: Mapping[str, Any], *statements: str | tuple[str, Sequence[Any]]) -> None:
    """Run statements in one user session, each committed on its own."""
    with user_conn(params) as conn, conn.cursor() as cur:
        for st in statements:
            if isinstance(st, tuple):
                cur.execute(st[0], st[1])
            else:
                cur.execute(st)


def query(params: Mapping[str, Any], sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with user_conn(params) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def binding(table: str = "items", entity: str | None = None, key: Iterable[str] = ("id",),
            **kw: Any) -> Binding:
    return Binding(entity=entity or table, endpoint="maria", table=table, key=tuple(key), **kw)


def drain(source: MysqlSource, bindings: Sequence[Binding], after: Checkpoint | None,
          limit: int = 1000) -> tuple[list[Change], Checkpoint | None, list[Any]]:
    """Every change up to the end of the log, batch after batch."""
    out: list[Change] = []
    events: list[Any] = []
    cp = after
    while True:
        batch = source.changes(bindings, cp, limit)
        out.extend(batch.changes)
        events.extend(batch.events)
        cp = batch.checkpoint
        if not batch.more:
            return out, cp, events


@contextlib.contextmanager
def source_over(params: Mapping[str, Any], pipeline: str, *ddl: str) -> Iterator[MysqlSource]:
    """A MysqlSource of ``pipeline`` after running ``ddl`` (the tables it reads), closed after."""
    run(params, *ddl)
    src = MysqlSource("maria", settings(params), pipeline=pipeline)
    try:
        yield src
    finally:
        src.close()
