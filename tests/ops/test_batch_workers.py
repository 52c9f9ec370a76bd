"""A batch run on a backlog decides and applies with worker processes (sync/parallel.py),
against the real PostgreSQL: the rows that arrive, the conflicts recorded, the fixed point."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_pipeline
from sync.engine import run_pipeline
from tests.connectors.postgres.helpers import pipeline_of, query, sql
from tests.ops.conftest import cdcsync

TABLE = "CREATE TABLE items (id int PRIMARY KEY, name text, n int, doc jsonb)"
ROWS = "SELECT id, name, n, doc FROM items ORDER BY id"
STARTUP = 4.0  # seconds: ample for spawning a worker and opening its pipeline


@dataclass
class Pipeline:
    path: Path
    a: str
    b: str

    def run(self, expect: int = 0) -> dict[str, Any]:
        """``cdcsync run --json``: its summary."""
        res = cdcsync("run", "--json", str(self.path), expect=expect)
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def run_with_workers(self) -> dict[str, Any]:
        """A run in this process that gives its workers time to start (a second or so,
        while the run goes on alone) once it has started them: this test's backlogs are
        a few batches long."""
        waited: list[bool] = []

        def wait_for_workers(_label: str, _n: int) -> None:
            if multiprocessing.active_children() and not waited:
                time.sleep(STARTUP)
                waited.append(True)

        summary = run_pipeline(load_pipeline(self.path), progress=wait_for_workers)
        return summary.to_json()


def _config(tmp: Path, name: str, a: str, b_endpoint: str, workers: int = 2,
            extra: str = "") -> Path:
    path = tmp / "pipeline.yaml"
    path.write_text(f"""
pipeline: {name}
state: {{url: "sqlite:///{tmp}/state.db"}}
batch: {{size: 50, workers: {workers}, parallel_from: 50}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {b_endpoint}
entities:
  items:
    key: [id]
    endpoints:
      a: {{table: items}}
      b: {{table: items}}
    conflict: {{policy: field_merge, fallback: last_writer_wins}}
{extra}
""")
    return path


@pytest.fixture
def pg_pg(tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> Iterator[Pipeline]:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, TABLE)
    path = _config(tmp_path, pipeline_of(a), a, f'{{kind: postgres, dsn: "{b}"}}')
    cdcsync("setup", str(path))
    yield Pipeline(path, a, b)
    cdcsync("teardown", str(path), "--force", expect=None)


def _conflicts(p: Pipeline) -> list[tuple[str, int]]:
    with sqlite3.connect(p.path.parent / "state.db") as conn:
        rows = conn.execute("SELECT key, count(*) FROM conflicts GROUP BY key").fetchall()
    conn.close()
    return rows


def _fixed_point(p: Pipeline) -> None:
    """With no user edits, the next run applies nothing and the one after reads nothing."""
    quiet = p.run()
    assert quiet["totals"]["applied"] == 0, quiet
    silent = p.run()
    assert silent["totals"]["read"] == 0 and silent["totals"]["applied"] == 0, silent
    cdcsync("verify", str(p.path))


def test_a_backlog_on_both_sides_is_synced_by_worker_processes(pg_pg: Pipeline) -> None:
    p = pg_pg
    assert p.run()["snapshot_rows"] == 0  # what follows is read from the logs
    sql(p.a, "INSERT INTO items SELECT g, 'a' || g, g, jsonb_build_object('g', g)"
             " FROM generate_series(1, 400) g")
    sql(p.b, "INSERT INTO items SELECT g, 'b' || g, g, NULL FROM generate_series(1001, 1300) g")
    temp_locks = set(Path(tempfile.gettempdir()).glob("cdcsync-state-lock-*"))
    first = p.run_with_workers()
    assert first["worker_batches"] > 0, first
    # the workers' write lock is the store's own file, beside it: nothing left elsewhere
    assert (p.path.parent / "state.db-cdcsync-lock").exists()
    assert set(Path(tempfile.gettempdir()).glob("cdcsync-state-lock-*")) == temp_locks
    assert first["errors"] == [] and first["totals"]["applied"] == 700, first
    assert query(p.a, ROWS) == query(p.b, ROWS) and len(query(p.a, ROWS)) == 700
    _fixed_point(p)
    # Edits of both sides meeting on keys 1-100 (different fields: merged), deletes and
    # inserts on either side, each side's backlog several batches long.
    sql(p.a, "UPDATE items SET n = n + 1000 WHERE id <= 200",
        "DELETE FROM items WHERE id BETWEEN 301 AND 350")
    sql(p.b, "UPDATE items SET name = 'b-edit' || id WHERE id <= 100",
        "DELETE FROM items WHERE id BETWEEN 1001 AND 1050",
        "INSERT INTO items SELECT g, 'new' || g, g, '[1, 2]' FROM generate_series(2001, 2200) g")
    second = p.run_with_workers()
    assert second["worker_batches"] > 0 and second["errors"] == [], second
    rows = query(p.a, ROWS)
    assert rows == query(p.b, ROWS)
    assert len(rows) == 700 - 50 - 50 + 200
    by_id = {r[0]: r for r in rows}
    assert all(by_id[i][1:3] == (f"b-edit{i}", i + 1000) for i in range(1, 101))  # merged
    assert all(by_id[i][1:3] == (f"a{i}", i + 1000) for i in range(101, 201))
    assert not any(i in by_id for i in (*range(301, 351), *range(1001, 1051)))
    assert by_id[2001][3] == [1, 2]
    conflicts = _conflicts(p)
    assert len(conflicts) == 100 and {n for _, n in conflicts} == {1}  # each recorded once
    _fixed_point(p)


def test_a_worker_that_dies_leaves_the_run_to_finish_in_one_process(
        pg_pg: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    """A worker killed between batches: the run notices at the next one, does that batch
    itself (the parts other workers saved read as duplicates) and the rest too."""
    p = pg_pg
    assert p.run()["snapshot_rows"] == 0
    sql(p.a, "INSERT INTO items SELECT g, 'a' || g, g, NULL FROM generate_series(1, 600) g")
    killed: list[int] = []
    waited: list[bool] = []

    def kill_a_worker(_label: str, _n: int) -> None:
        children = multiprocessing.active_children()
        if not children or killed:
            return
        if not waited:  # started: let them get ready and take the next batch
            time.sleep(STARTUP)
            waited.append(True)
            return
        pid = children[0].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    cfg = load_pipeline(p.path)
    with caplog.at_level(logging.WARNING, logger="cdcsync.parallel"):
        summary = run_pipeline(cfg, progress=kill_a_worker)
    assert killed, "the run never started its workers"
    assert any("died" in r.getMessage() for r in caplog.records), caplog.text
    assert summary.errors == [] and summary.worker_batches >= 1
    assert query(p.a, ROWS) == query(p.b, ROWS) and len(query(p.b, ROWS)) == 600
    assert multiprocessing.active_children() == []  # the others were stopped
    _fixed_point(p)


def test_a_sqlite_target_keeps_the_run_in_one_process(
        tmp_path: Path, pg_dsn: str) -> None:
    """A SQLite file takes one writer at a time: no workers for a pipeline writing one."""
    sql(pg_dsn, TABLE)
    db = tmp_path / "b.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, n INTEGER,"
                     " doc JSON)")
    conn.close()
    path = _config(tmp_path, pipeline_of(pg_dsn), pg_dsn, f'{{kind: sqlite, path: "{db}"}}')
    cdcsync("setup", str(path))
    try:
        p = Pipeline(path, pg_dsn, str(db))
        assert p.run()["snapshot_rows"] == 0
        sql(pg_dsn, "INSERT INTO items SELECT g, 'a' || g, g, NULL FROM generate_series(1, 300) g")
        out = p.run()
        assert out["worker_batches"] == 0 and out["totals"]["applied"] == 300, out
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*), sum(n) FROM items").fetchone() == (
                300, 300 * 301 // 2)
        conn.close()
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


def test_a_row_refused_for_good_in_a_worker_holds_neither_the_rest_nor_the_checkpoint(
        pg_pg: Pipeline) -> None:
    """A worker's apply refused for a row's data (a CHECK only b has): the refused row is
    isolated and dead-lettered in the worker, its key left in the outbox, every other
    row arrives, the run ends waiting for an operator and the batch is not read again;
    once b accepts the row and the letter is requeued, a run applies it."""
    p = pg_pg
    assert p.run()["snapshot_rows"] == 0
    sql(p.b, "ALTER TABLE items ADD CONSTRAINT no_negative CHECK (n >= 0)")
    sql(p.a, "INSERT INTO items SELECT g, 'a' || g, g, NULL FROM generate_series(1, 400) g",
        "INSERT INTO items VALUES (401, 'poison', -1, NULL)")  # in the last batch
    waited: list[bool] = []

    def wait_for_workers(_label: str, _n: int) -> None:
        if multiprocessing.active_children() and not waited:
            time.sleep(STARTUP)
            waited.append(True)

    out = run_pipeline(load_pipeline(p.path), progress=wait_for_workers)
    assert waited, "the run never started its workers"
    assert out.worker_batches > 0 and out.status == "attention" and out.dead_letters == 1
    assert out.total("rejected") == 1 and out.total("applied") == 400
    assert [r[0] for r in query(p.b, ROWS)] == list(range(1, 401))
    key = json.dumps({"id": 401}, separators=(",", ":"))
    with sqlite3.connect(p.path.parent / "state.db") as conn:
        outbox = conn.execute("SELECT key, endpoint FROM outbox").fetchall()
        [(letter, keys, error)] = conn.execute(
            "SELECT id, keys, error FROM dead_letters").fetchall()
    conn.close()
    assert outbox == [(key, "b")]
    assert json.loads(keys) == [key] and "no_negative" in error
    sql(p.b, "ALTER TABLE items DROP CONSTRAINT no_negative")
    held = p.run(expect=3)  # the letter holds the key until an operator decides
    assert held["totals"]["read"] == 0 and held["totals"]["applied"] == 0, held
    cdcsync("dlq", "requeue", str(p.path), str(letter))
    last = p.run()
    assert last["totals"]["read"] == 0 and last["totals"]["applied"] == 1, last
    assert query(p.a, ROWS) == query(p.b, ROWS)
    _fixed_point(p)


def test_a_column_added_mid_backlog_restarts_the_workers_with_it(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A batch carrying a schema event is done by the run itself (it changes the run's
    view of the entity) and the workers are stopped; those started after it know the
    new column, and its values reach the sink."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, TABLE)
    path = _config(tmp_path, pipeline_of(a), a, f'{{kind: postgres, dsn: "{b}"}}',
                   extra="    schema_changes: add")
    cdcsync("setup", str(path))
    try:
        p = Pipeline(path, a, b)
        assert p.run()["snapshot_rows"] == 0
        sql(a, "INSERT INTO items SELECT g, 'a' || g, g, NULL FROM generate_series(1, 300) g",
            "ALTER TABLE items ADD COLUMN vip int",
            "INSERT INTO items SELECT g, 'a' || g, g, NULL, g FROM generate_series(301, 600) g")
        waited: set[frozenset[int | None]] = set()

        def wait_for_workers(_label: str, _n: int) -> None:
            pids = frozenset(c.pid for c in multiprocessing.active_children())
            if pids and pids not in waited:  # a new set: let it start
                time.sleep(STARTUP)
                waited.add(pids)

        with caplog.at_level(logging.INFO, logger="cdcsync.parallel"):
            summary = run_pipeline(load_pipeline(path), progress=wait_for_workers)
        assert summary.errors == [] and summary.worker_batches > 0
        starts = [r for r in caplog.records if r.getMessage().startswith("starting")]
        assert len(starts) >= 2, caplog.text  # stopped at the event, started again after
        rows = query(b, "SELECT id, vip FROM items ORDER BY id")
        assert rows == [(i, None if i <= 300 else i) for i in range(1, 601)]
        _fixed_point(p)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


def _hold_the_write_lock(path: str, held: Any) -> None:
    from sync.parallel import write_lock

    lock = write_lock(path)
    lock.acquire()
    held.send(True)
    time.sleep(60)  # killed before


def test_the_write_lock_of_a_store_is_one_file_whatever_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file per run (mkstemp) was left behind by every run killed with -9."""
    from sync.parallel import lock_path

    monkeypatch.chdir(tmp_path)
    assert lock_path(f"sqlite:///{tmp_path}/s.db") == f"{tmp_path}/s.db-cdcsync-lock"
    assert lock_path("sqlite:///rel.db") == f"{tmp_path}/rel.db-cdcsync-lock"
    assert lock_path("sqlite:///s.db?timeout=5") == f"{tmp_path}/s.db-cdcsync-lock"
    pg = lock_path("postgresql://u@h/db")
    assert pg == lock_path("postgresql://u@h/db") != lock_path("postgresql://u@h/other")
    assert Path(pg).parent == Path(tempfile.gettempdir())
    assert Path(pg).name.startswith(f"cdcsync-state-lock-{os.getuid()}-")


def test_a_worker_killed_holding_the_state_lock_blocks_no_one(tmp_path: Path) -> None:
    """The workers queue their state-store writes on one lock. A worker killed while it
    held it (OOM, kill -9) must not leave it held: the other worker would wait for it,
    and the run for that worker, forever (a multiprocessing lock did)."""
    from filelock import Timeout

    from sync.parallel import write_lock

    spawn = multiprocessing.get_context("spawn")
    path = str(tmp_path / "state-lock")
    ours, theirs = spawn.Pipe()
    holder = spawn.Process(target=_hold_the_write_lock, args=(path, theirs), daemon=True)
    holder.start()
    assert ours.poll(30) and ours.recv() is True
    lock = write_lock(path)
    with pytest.raises(Timeout):
        lock.acquire(timeout=0.3)  # held by the other process
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with lock.acquire(timeout=5), lock:  # let go with its holder; reentrant, as the
        pass  # per-process lock it stands for
