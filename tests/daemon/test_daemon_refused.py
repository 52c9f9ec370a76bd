"""A target that refuses the daemon's connection (its password changed, say) is down,
not a fault of the rows: the backlog waits behind its breaker and flows once the
account works again; nothing goes to the dead-letter queue.

Before connections refused by MariaDB (error 1045) were permanent errors, and every
key applied meanwhile was dead-lettered, left for an operator to requeue by hand.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.connectors.mysql.test_pipeline_pg import maria_yaml
from tests.daemon.helpers import Daemon, cli, wait_for
from tests.fix_mariadb import MariaDBParams


@pytest.fixture
def account(mariadb_params: MariaDBParams) -> Iterator[tuple[MariaDBParams, str]]:
    """A MariaDB account of this test's own (its password is changed under the daemon)."""
    user = f"cdcsync_pw_{random.randrange(10**8)}"
    admin = pymysql.connect(**{**mariadb_params, "database": None}, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'first'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'")
        yield MariaDBParams(**{**mariadb_params, "user": user, "password": "first"}), user
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


def _as_admin(params: MariaDBParams, *statements: str) -> None:
    with pymysql.connect(**{**params, "database": None}, autocommit=True) as c, \
            c.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)


def _rows(params: MariaDBParams) -> list[tuple[object, ...]]:
    with pymysql.connect(**params) as c, c.cursor() as cur:
        cur.execute("SELECT id, name FROM items ORDER BY id")
        return list(cur.fetchall())


def test_a_target_refusing_the_daemon_holds_its_backlog_until_it_accepts(
        tmp_path: Path, mariadb_params: MariaDBParams,
        account: tuple[MariaDBParams, str]) -> None:
    mine, user = account
    with pymysql.connect(**mariadb_params) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))")
        c.commit()
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO items VALUES (1, 'one')")
    p = tmp_path / "pipeline.yaml"
    p.write_text(f"""
pipeline: refused{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp_path}/state.db"}}
daemon: {{metrics_port: 0, poll_ms: 10, partitions: 1}}  # one applier: its session ends
endpoints:
  a: {{kind: sqlite, path: {tmp_path}/a.db}}
{maria_yaml("m", dict(mine))}entities:
  items:
    key: [id]
    direction: one-way
    source: a
    endpoints: {{a: items, m: items}}
""")
    cli("setup", str(p))
    d = Daemon(p)
    d.wait_ready()
    wait_for(lambda: _rows(mariadb_params) == [(1, "one")], what="the snapshot")
    with sqlite3.connect(tmp_path / "a.db") as c:  # through the applier: its session opens
        c.execute("INSERT INTO items VALUES (2, 'two')")
    wait_for(lambda: len(_rows(mariadb_params)) == 2, what="the first change")

    # The account's password changes and its sessions are ended: the sink reconnects.
    _as_admin(mariadb_params, f"ALTER USER '{user}'@'%' IDENTIFIED BY 'second'")
    with pymysql.connect(**{**mariadb_params, "database": None}) as c, c.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s", (user,))
        for (pid,) in cur.fetchall():
            cur.execute(f"KILL {int(pid)}")
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"row {i}") for i in range(3, 13)])
    wait_for(lambda: "Access denied" in d.output(), what="the refused reconnection")
    wait_for(lambda: "kept for later" in d.output() or "failed permanently" in d.output(),
             what="the refused apply to be handled")
    assert "failed permanently" not in d.output(), d.output()
    letters = json.loads(cli("dlq", "list", str(p), "--json").stdout)
    assert letters == [], letters  # the rows are not at fault
    assert _rows(mariadb_params) == [(1, "one"), (2, "two")]

    _as_admin(mariadb_params, f"ALTER USER '{user}'@'%' IDENTIFIED BY 'first'")
    wait_for(lambda: len(_rows(mariadb_params)) == 12, timeout=90,
             what="the backlog to arrive once the account works again")
    assert _rows(mariadb_params) == [(1, "one"), (2, "two")] + [
        (i, f"row {i}") for i in range(3, 13)]
    assert json.loads(cli("dlq", "list", str(p), "--json").stdout) == []
    code, _ = d.terminate()
    assert code == 0
    assert "Traceback" not in d.output()  # a refusal is one line, not a crash report
    assert json.loads(cli("verify", str(p), "--json").stdout)[0]["in_sync"] is True
