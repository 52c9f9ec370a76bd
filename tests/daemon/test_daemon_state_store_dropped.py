"""The daemon keeps going when its PostgreSQL state store drops the connection.

A restart, a failover or a pooler's idle timeout ends the state store's
sessions. The error was SQLAlchemy's own, not a RetriableError: the first
reader to touch the store stopped, and with it the daemon (it exited and
nothing more was synced). Now a dropped connection is retried like a source
that is away: readers wait and read again, postponed applies are sent again
by the sweeper, and nothing is lost.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import psycopg

from tests.daemon.helpers import Daemon, cli, wait_for

PIPELINE = """
pipeline: dropped{n}
state: {{url: "{state}"}}
daemon: {{metrics_port: 0, poll_ms: 10, lease_ttl_s: 2}}
endpoints:
  a: {{kind: sqlite, path: a.db}}
  b: {{kind: sqlite, path: b.db}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
"""


def _count(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as c:
        n = int(c.execute("SELECT count(*) FROM items").fetchone()[0])
    c.close()
    return n


def _insert(db: Path, ids: range) -> None:
    with sqlite3.connect(db, timeout=30) as c:
        c.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in ids])
    c.close()


def _drop_sessions(admin: str, database: str) -> int:
    with psycopg.connect(admin, autocommit=True) as c:
        return len(c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = %s AND pid <> pg_backend_pid()",
                             (database,)).fetchall())


def test_the_daemon_survives_its_state_store_dropping_every_session(
        tmp_path: Path, pg_dsn: str) -> None:
    for db in ("a.db", "b.db"):
        with sqlite3.connect(tmp_path / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        c.close()
    state = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPELINE.format(n=random.randrange(10**6), state=state))
    cli("setup", str(p))
    database = pg_dsn.rsplit("/", 1)[1].split("?")[0]
    admin = pg_dsn.rsplit("/", 1)[0] + "/postgres"
    d = Daemon(p)
    d.wait_ready()
    _insert(tmp_path / "a.db", range(1, 51))
    wait_for(lambda: _count(tmp_path / "b.db") == 50, what="the first rows at b")
    for round_ in range(3):  # each time the daemon has connected again
        wait_for(lambda: _drop_sessions(admin, database) > 0, what="sessions to drop")
        first = 51 + round_ * 50
        _insert(tmp_path / "a.db", range(first, first + 50))
    wait_for(lambda: _count(tmp_path / "b.db") == 200, timeout=90,
             what=f"every row at b: {d.output()[-2000:]}")
    assert d.proc.poll() is None, d.output()
    assert "dropped the connection" in d.output()
    code, _ = d.terminate()
    assert code == 0, d.output()
    assert cli("verify", str(p)).returncode == 0
