"""Contention at a target is not an outage: its circuit breaker stays closed.

A deadlock, a lock wait timeout or a serialization failure means the target
answered and other transactions won; opening the breaker would hold back every
key bound there for a cooldown. Real servers: a PostgreSQL target whose
database sets ``lock_timeout`` (as a DBA may) with a row locked by another
session; a MariaDB lock wait timeout as the MySQL connector classifies it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from dramatiq.brokers.stub import StubBroker

from config.loader import load_pipeline
from connectors.base import ContentionError, RetriableError
from connectors.mysql.session import classify
from sync.daemon.runtime import Runtime
from sync.daemon.worker import _apply_keys, handle
from sync.engine import run_pipeline
from sync.metrics import BreakerState
from sync.setup import setup_pipeline
from tests.daemon.helpers import decide_as_a_reader


def _pipeline(tmp: Path, dsn: str) -> Any:
    with sqlite3.connect(tmp / "a.db") as c:
        c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
        c.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"v{i}") for i in (1, 2, 3)])
    c.close()
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("CREATE TABLE items (id bigint PRIMARY KEY, label text)")
        dbname = pg.info.dbname
        pg.execute(f'ALTER DATABASE "{dbname}" SET lock_timeout = \'150ms\'')
    path = tmp / "pipeline.yaml"
    path.write_text(f"""\
pipeline: contention
state: {{url: "sqlite:///{tmp}/state.db"}}
endpoints:
  a: {{kind: sqlite, path: "{tmp}/a.db"}}
  b: {{kind: postgres, dsn: "{dsn}"}}
entities:
  items:
    key: [id]
    direction: one-way
    source: a
    endpoints: {{a: items, b: items}}
""")
    cfg = load_pipeline(path)
    setup_pipeline(cfg)
    return cfg


def test_a_locked_row_at_the_target_does_not_open_its_breaker(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    dsn = pg_dsn_factory()
    cfg = _pipeline(tmp_path, dsn)
    assert run_pipeline(cfg).errors == []  # the snapshot: b holds rows 1..3
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("UPDATE items SET label = 'new' WHERE id = 1")
    c.close()
    rt = Runtime(cfg, StubBroker(), handle)
    try:
        _contend(rt, dsn)
    finally:
        rt.close()


def _contend(rt: Runtime, dsn: str) -> None:
    ctx = rt.ctx()
    keys, _ = decide_as_a_reader(ctx, "a")  # a's change, committed with its outbox
    assert len(keys) == 1
    with psycopg.connect(dsn) as locker:
        locker.execute("SELECT * FROM items WHERE id = 1 FOR UPDATE")  # held until rollback
        for _ in range(4):  # more than the breaker's threshold of consecutive failures
            assert _apply_keys(rt, "items", keys, {}) == []
        assert rt.breaker("b").state is BreakerState.CLOSED
        assert ctx.store.outbox_keys(ctx.pipeline, "items") == keys  # kept for later
        locker.rollback()
    assert _apply_keys(rt, "items", keys, {}) == []
    assert ctx.store.outbox_keys(ctx.pipeline, "items") == []
    with psycopg.connect(dsn) as pg:
        assert pg.execute("SELECT label FROM items WHERE id = 1").fetchone() == ("new",)


def test_the_postgres_connector_calls_a_lock_timeout_contention(pg_dsn: str) -> None:
    from connectors.postgres.connect import classified

    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        pg.execute("CREATE TABLE t (id int PRIMARY KEY)")
        pg.execute("INSERT INTO t VALUES (1)")
    with psycopg.connect(pg_dsn) as locker, psycopg.connect(pg_dsn) as other:
        locker.execute("SELECT * FROM t FOR UPDATE")
        other.execute("SET lock_timeout = '50ms'")
        with pytest.raises(ContentionError), classified("update t"):
            other.execute("UPDATE t SET id = 2")


def test_a_stopped_server_is_not_contention(pg_dsn: str) -> None:
    """The other side of the line: a connection the server ended is a retriable fault
    that the breaker counts."""
    from connectors.postgres.connect import classified

    with psycopg.connect(pg_dsn, autocommit=True) as victim, \
            psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(RetriableError) as caught, classified("select"):
            victim.execute("SELECT 1")
    assert not isinstance(caught.value, ContentionError)


def test_the_mysql_connector_calls_a_lock_wait_timeout_contention(
        mariadb_params: dict[str, Any]) -> None:
    db = mariadb_params["database"]
    locker = pymysql.connect(**mariadb_params, autocommit=False)
    other = pymysql.connect(**mariadb_params, autocommit=False)
    try:
        with locker.cursor() as cur:
            cur.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY) ENGINE=InnoDB")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (1)")
            locker.commit()
            cur.execute(f"SELECT * FROM `{db}`.t WHERE id = 1 FOR UPDATE")
        with other.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(pymysql.err.OperationalError) as caught:
                cur.execute(f"UPDATE `{db}`.t SET id = 2 WHERE id = 1")
        assert isinstance(classify(caught.value, "update t"), ContentionError)
    finally:
        locker.close()
        other.close()
