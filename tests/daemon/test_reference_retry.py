"""The daemon's sweeper tries rows refused for a foreign key again, a few times.

Its workers apply partitions side by side, so a child row can reach a target
before its parent: the row is refused for the foreign key and dead-lettered. The
sweeper requeues such letters once they have waited a while (the parent has
arrived meanwhile), and stops after a few tries, leaving an orphan to an operator.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker

from config.loader import load_pipeline
from sync import dlq
from sync.daemon import sweeper
from sync.daemon.runtime import Runtime
from sync.daemon.worker import handle
from sync.engine import run_pipeline
from sync.setup import setup_pipeline


def at_a(tmp: Path, *statements: str) -> None:
    with sqlite3.connect(tmp / "a.db") as c:
        for s in statements:
            c.execute(s)
    c.close()


def test_the_sweeper_requeues_foreign_key_letters_a_few_times(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    b = pg_dsn_factory()
    at_a(tmp_path, "CREATE TABLE c (id INTEGER PRIMARY KEY, name TEXT)",
         "CREATE TABLE o (id INTEGER PRIMARY KEY, cid INTEGER)")
    with psycopg.connect(b, autocommit=True) as pg:
        pg.execute("CREATE TABLE c (id int PRIMARY KEY, name text)")
        pg.execute("CREATE TABLE o (id int PRIMARY KEY, cid int REFERENCES c (id))")
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"""\
pipeline: fkretry
state: {{url: "sqlite:///{tmp_path}/state.db"}}
endpoints:
  a: {{kind: sqlite, path: "{tmp_path}/a.db"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  orders: {{key: [id], direction: one-way, source: a, endpoints: {{a: o, b: o}}}}
  customers: {{key: [id], direction: one-way, source: a, endpoints: {{a: c, b: c}}}}
""")
    cfg = load_pipeline(path)
    setup_pipeline(cfg)
    assert run_pipeline(cfg).errors == []
    at_a(tmp_path, "INSERT INTO o VALUES (10, 5)")  # its customer comes later
    assert run_pipeline(cfg).total("rejected") == 1
    at_a(tmp_path, "INSERT INTO c VALUES (5, 'five')")
    assert run_pipeline(cfg).total("applied") == 1  # the customer; the order waits
    rt = Runtime(cfg, StubBroker(), handle)
    try:
        store = rt.ctx().store
        assert sweeper.retry_references(rt, 0.0) == 0  # too young
        monkeypatch.setattr(sweeper, "REFERENCE_RETRY_AFTER", 0.0)
        sweeper.sweep(rt)
        assert dlq.depth(store, "fkretry") == 0
        assert [a for a, _, _ in _audit(tmp_path)][-1] == sweeper.RETRY_ACTOR
        assert run_pipeline(cfg).total("applied") == 1  # the kept outbox entry, applied
        with psycopg.connect(b) as pg:
            assert pg.execute("SELECT id, cid FROM o").fetchall() == [(10, 5)]

        # An orphan: requeued REFERENCE_RETRIES times, then left to an operator.
        at_a(tmp_path, "INSERT INTO o VALUES (11, 404)")
        run_pipeline(cfg)
        for _ in range(sweeper.REFERENCE_RETRIES):
            assert sweeper.retry_references(rt, 1e12) == 1
            run_pipeline(cfg)  # refused again: a new letter
        assert sweeper.retry_references(rt, 1e12) == 0
        [letter] = dlq.list_letters(store, "fkretry")
        assert letter["keys"] == ['{"id":11}']
    finally:
        rt.close()


def _audit(tmp: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp / "state.db") as c:
        rows = c.execute("SELECT actor, action, pipeline FROM audit ORDER BY rowid").fetchall()
    c.close()
    return rows
