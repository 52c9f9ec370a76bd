"""A state the reader handed over may be older than what its applier has recorded since
(the reader decided a newer version while the older one's apply flew): its apply jobs
expect the row as it was before our own write. On PostgreSQL, which keeps nothing of a
deleted row, such a job can insert over a user's delete, or find our own delete and be
dropped as if a user's edit were on its way (sync/daemon/worker.py _apply_keys)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker

from config.loader import load_pipeline
from sync.daemon.runtime import Runtime
from sync.daemon.worker import _apply_keys, handle
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from tests.daemon.helpers import decide_as_a_reader
from tests.ops.conftest import before_the_lock


@pytest.fixture
def dsn(pg_dsn_factory: Callable[[], str]) -> str:
    return pg_dsn_factory()


@pytest.fixture
def rt(tmp_path: Path, dsn: str) -> Iterator[Runtime]:
    """a (SQLite) <-> b (PostgreSQL) after the snapshot: both hold row 1 'one'."""
    at_a(tmp_path, "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
    at_a(tmp_path, "INSERT INTO items VALUES (1, 'one')")
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("CREATE TABLE items (id bigint PRIMARY KEY, label text)")
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"""\
pipeline: handover
state: {{url: "sqlite:///{tmp_path}/state.db"}}
endpoints:
  a: {{kind: sqlite, path: "{tmp_path}/a.db"}}
  b: {{kind: postgres, dsn: "{dsn}"}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
""")
    cfg = load_pipeline(path)
    setup_pipeline(cfg)
    assert run_pipeline(cfg).errors == []
    runtime = Runtime(cfg, StubBroker(), handle)
    yield runtime
    runtime.close()


def at_a(tmp: Path, statement: str) -> None:
    with sqlite3.connect(tmp / "a.db") as c:
        c.execute(statement)
    c.close()


def at_b(dsn: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as pg:
        cur = pg.execute(statement)
        return cur.fetchall() if cur.description else []


def _next_version_meanwhile(rt: Runtime, monkeypatch: pytest.MonkeyPatch, tmp: Path,
                            statement: str) -> None:
    """When the applier is about to record its results, ``statement`` runs at a and the
    reader decides it and hands its state over (as a daemon's reader thread may)."""
    ctx = rt.ctx()

    def reader() -> None:
        at_a(tmp, statement)
        keys, decided = decide_as_a_reader(ctx, "a")
        rt.hand_over("items", {k: decided.states["items"][k] for k in keys},
                     decided.saved_at)

    before_the_lock(monkeypatch, ctx, reader)


def _hand_over_the_next_change(rt: Runtime) -> list[str]:
    keys, decided = decide_as_a_reader(rt.ctx(), "a")
    rt.hand_over("items", {k: decided.states["items"][k] for k in keys}, decided.saved_at)
    return keys


def test_an_insert_handed_over_before_our_delete_was_recorded_still_reaches_the_target(
        rt: Runtime, tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row 1 is deleted at a, and put back while the delete's apply flies: the insert's
    handed state expects the row the delete removed. It stranded b in the PostgreSQL
    <-> MariaDB kill test under load (dropped as if a user's edit were on its way)."""
    at_a(tmp_path, "DELETE FROM items WHERE id = 1")
    keys = _hand_over_the_next_change(rt)
    _next_version_meanwhile(rt, monkeypatch, tmp_path, "INSERT INTO items VALUES (1, 'again')")
    assert _apply_keys(rt, "items", keys, {}) == []  # the delete, recorded on the insert's
    assert at_b(dsn, "SELECT label FROM items") == []
    handle(rt, "items", keys, {})
    assert at_b(dsn, "SELECT label FROM items") == [("again",)]
    ctx = rt.ctx()
    assert ctx.store.outbox_keys(ctx.pipeline, "items") == []


def test_an_insert_handed_over_before_it_was_recorded_is_not_made_again_over_a_delete(
        rt: Runtime, tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row 2 is inserted at a and edited while its insert flies; a user then deletes it
    at b. The edit's handed state still expects no row at b: applied from it, the edit
    went in as an insert over that delete and brought the row back."""
    at_a(tmp_path, "INSERT INTO items VALUES (2, 'x')")
    keys = _hand_over_the_next_change(rt)
    _next_version_meanwhile(rt, monkeypatch, tmp_path, "UPDATE items SET label = 'y' WHERE id = 2")
    assert _apply_keys(rt, "items", keys, {}) == []
    assert at_b(dsn, "SELECT label FROM items WHERE id = 2") == [("x",)]
    at_b(dsn, "DELETE FROM items WHERE id = 2")  # a user's delete, not read yet
    handle(rt, "items", keys, {})
    assert at_b(dsn, "SELECT label FROM items WHERE id = 2") == []


def test_a_delete_whose_result_a_dead_worker_lost_is_told_from_a_users(
        rt: Runtime, tmp_path: Path, dsn: str) -> None:
    """The worker deletes row 1 at b and dies before recording it; row 1 is then put
    back at a. The insert's apply expects the row the delete removed and finds none:
    the sink's record of its deletes says the absence is ours (STALE), so the insert
    is made; before, it was dropped as if a user's delete were on its way."""
    from sync.apply import apply_to_target, pending_by_target

    ctx = rt.ctx()
    ent = ctx.entities["items"]
    at_a(tmp_path, "DELETE FROM items WHERE id = 1")
    keys, deleted = decide_as_a_reader(ctx, "a")
    states = deleted.states["items"]
    apply_to_target(ctx, ent, "b", pending_by_target(states)["b"], states)  # not recorded
    assert at_b(dsn, "SELECT label FROM items") == []
    at_a(tmp_path, "INSERT INTO items VALUES (1, 'again')")
    decide_as_a_reader(ctx, "a")
    handle(rt, "items", keys, {})
    assert at_b(dsn, "SELECT label FROM items") == [("again",)]
    assert ctx.store.outbox_keys(ctx.pipeline, "items") == []
