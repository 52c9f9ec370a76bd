"""The daemon with the machine's RabbitMQ as its broker (``amqp://``), a worker beside it."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from tests.daemon.helpers import Daemon, cli, wait_for
from tests.daemon.test_daemon_redis import PIPELINE
from tests.daemon.test_daemon_sqlite import rows

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def test_edits_flow_through_rabbitmq(tmp_path: Path) -> None:
    for db in ("a.db", "b.db"):
        with sqlite3.connect(tmp_path / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
            c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                          [(i, f"item {i}", i) for i in range(1, 6)])
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPELINE.replace('"redis://127.0.0.1:{port}/0"', f'"{AMQP}"')
                 .format(n=random.randrange(10**6), port=0))
    cli("setup", str(p))
    d = Daemon(p)
    d.wait_ready()
    w = Daemon(p, verb="worker")  # a second process consuming the same queues
    w.wait_ready()
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                      [(i, f"new {i}", i) for i in range(100, 140)])
    with sqlite3.connect(tmp_path / "b.db") as c:
        c.execute("UPDATE items SET qty = 77 WHERE id = 2")
    wait_for(lambda: rows(tmp_path / "a.db") == rows(tmp_path / "b.db")
             and (2, "item 2", 77) in rows(tmp_path / "a.db")
             and len(rows(tmp_path / "b.db")) == 45, timeout=60, what="both sides to converge")
    for proc in (w, d):
        code, seconds = proc.terminate()
        assert code == 0, proc.output()
        assert seconds < 10
    cli("verify", str(p))
