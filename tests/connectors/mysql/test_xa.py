"""XA transactions at a MariaDB source.

MariaDB logs an XA transaction in two groups: its rows, ended by ``XA PREPARE``, and
later (other transactions in between, other runs even) ``XA COMMIT`` or ``XA
ROLLBACK``. The reader handed the rows out at the prepare: a rolled-back
transaction's rows reached every target, rows that never existed at the source. Now
they come with the commit and go with a rollback; while one is undecided the
checkpoint stays before its prepare, so a reader started again still finds its rows.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from connectors.mysql.source import MysqlSource
from tests.connectors.mysql.helpers import binding, drain, run, settings, source_over
from tests.pipelines import mariadb_to_pg
from tests.test_cli_quickstart import cdcsync, run_json

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))"


def prepare(mp: dict[str, Any], xid: str, *statements: str) -> None:
    """An XA transaction prepared by a session that then goes away: it stays prepared."""
    run(mp, f"XA START '{xid}'", *statements, f"XA END '{xid}'", f"XA PREPARE '{xid}'")


@pytest.fixture
def xids(mariadb_params: dict[str, Any]) -> Iterator[Callable[[], str]]:
    """Fresh XA ids; any left prepared by a failing test is rolled back (it holds locks)."""
    made: list[str] = []

    def new() -> str:
        made.append(f"t{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield new
    for xid in made:
        with contextlib.suppress(pymysql.MySQLError):
            run(mariadb_params, f"XA ROLLBACK '{xid}'")


@pytest.fixture
def source(mariadb_params: dict[str, Any]) -> Iterator[MysqlSource]:
    with source_over(mariadb_params, "t-xa", TABLE) as src:
        yield src


def ids(changes: list[Any]) -> list[int]:
    return [c.key["id"] for c in changes]


def test_a_rolled_back_xa_transaction_is_not_read(
        source: MysqlSource, mariadb_params: dict[str, Any], xids: Callable[[], str]) -> None:
    mp = mariadb_params
    start = source.log_end()
    x1, x2, x3 = xids(), xids(), xids()
    prepare(mp, x1, "INSERT INTO items VALUES (1, 'committed')")
    run(mp, f"XA COMMIT '{x1}'")
    prepare(mp, x2, "INSERT INTO items VALUES (2, 'rolled back')")
    run(mp, f"XA ROLLBACK '{x2}'")
    run(mp, f"XA START '{x3}'", "INSERT INTO items VALUES (3, 'one phase')", f"XA END '{x3}'",
        f"XA COMMIT '{x3}' ONE PHASE", "INSERT INTO items VALUES (4, 'plain')")
    changes, cp, _ = drain(source, [binding()], start)
    assert ids(changes) == [1, 3, 4]
    assert cp is not None and "read_to" not in cp


def test_an_undecided_xa_transaction_holds_the_checkpoint_before_it(
        source: MysqlSource, mariadb_params: dict[str, Any], xids: Callable[[], str]) -> None:
    mp = mariadb_params
    start = source.log_end()
    pending = xids()
    prepare(mp, pending, "INSERT INTO items VALUES (10, 'xa')",
            "UPDATE items SET name = 'not yet' WHERE id = 10")
    run(mp, "INSERT INTO items VALUES (11, 'after')")
    changes, cp, _ = drain(source, [binding()], start)
    assert ids(changes) == [11]
    assert cp is not None and cp["read_to"] != cp["gtid"]
    source.close()  # the process dies; the next one starts from the checkpoint
    run(mp, "INSERT INTO items VALUES (12, 'later')")
    again = MysqlSource("maria", settings(mp), pipeline="t-xa")
    try:
        changes, cp2, _ = drain(again, [binding()], cp)
        assert ids(changes) == [11, 12]  # 11 again: a duplicate, skipped by its position
        run(mp, f"XA COMMIT '{pending}'")
        changes, cp3, _ = drain(again, [binding()], cp2)
        assert [(c.key["id"], c.after and c.after["name"]) for c in changes] == [
            (10, "xa"), (10, "not yet")]
        assert changes[0].position > (0, 0, 0)
        assert cp3 is not None and "read_to" not in cp3
    finally:
        again.close()


def test_a_stream_held_before_an_undecided_xa_reads_on_without_repeating(
        source: MysqlSource, mariadb_params: dict[str, Any], xids: Callable[[], str]) -> None:
    mp = mariadb_params
    start = source.log_end()
    source.use_streaming(wait=0.5)
    pending = xids()
    prepare(mp, pending, "INSERT INTO items VALUES (20, 'xa')")
    run(mp, "INSERT INTO items VALUES (21, 'after')")
    seen: list[int] = []
    cp = start
    for _ in range(20):
        batch = source.changes([binding()], cp, 100)
        seen += ids(batch.changes)
        cp = batch.checkpoint
        if seen == [21]:
            break
    run(mp, "INSERT INTO items VALUES (22, 'later')", f"XA ROLLBACK '{pending}'",
        "INSERT INTO items VALUES (23, 'last')")
    for _ in range(20):
        batch = source.changes([binding()], cp, 100)
        seen += ids(batch.changes)
        cp = batch.checkpoint
        if 23 in seen:
            break
    assert seen == [21, 22, 23]
    assert "read_to" not in cp


def test_xa_transactions_through_the_cli(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any],
        xids: Callable[[], str]) -> None:
    mp = mariadb_params
    run(mp, TABLE, "INSERT INTO items VALUES (1, 'a')")
    p = mariadb_to_pg(tmp_path, mp, pg_dsn)
    cdcsync("setup", str(p))
    run_json(p)
    keep, drop = xids(), xids()
    prepare(mp, keep, "INSERT INTO items VALUES (2, 'kept')",
            "UPDATE items SET name = 'A' WHERE id = 1")
    prepare(mp, drop, "INSERT INTO items VALUES (3, 'dropped')")
    run(mp, "INSERT INTO items VALUES (4, 'plain')")
    assert run_json(p)["totals"]["applied"] == 1
    run(mp, f"XA ROLLBACK '{drop}'", "INSERT INTO items VALUES (5, 'plain')")
    assert run_json(p)["totals"]["applied"] == 1  # 5 (4, read again, is a duplicate)
    run(mp, f"XA COMMIT '{keep}'")
    assert run_json(p)["totals"]["applied"] == 2
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        got = conn.execute("SELECT id, name FROM items ORDER BY id").fetchall()
    assert got == [(1, "A"), (2, "kept"), (4, "plain"), (5, "plain")]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
    assert run_json(p)["totals"]["read"] == 0
