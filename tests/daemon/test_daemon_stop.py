"""SIGTERM during the long work before streaming starts: exit 0 in time, resume next time.

Real processes on SQLite endpoints: the daemon's initial snapshot, the daemon's
catch-up after a batch run that died mid-batch, and ``cdcsync run``'s catch-up
are each stopped at their next durable point; the next start finishes them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_pipeline
from sync.context import open_pipeline
from tests.daemon.helpers import Daemon, cli, wait_for
from tests.ops.conftest import sql

ROWS = 60_000

PIPELINE = """\
pipeline: stop
state: {{url: "sqlite:///{tmp}/state.db"}}
daemon: {{metrics_port: 0, poll_ms: 10, lease_ttl_s: 2}}
batch: {{size: {size}, snapshot_chunk: 500, workers: 1}}
endpoints:
  a: {{kind: sqlite, path: "{tmp}/a.db"}}
  b: {{kind: sqlite, path: "{tmp}/b.db"}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
"""


def _make(tmp: Path, *, size: int = 500, rows: int = ROWS) -> Path:
    for db in ("a.db", "b.db"):
        sql(tmp / db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    with sqlite3.connect(tmp / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                      ((i, f"item {i}", i) for i in range(1, rows + 1)))
    c.close()
    p = tmp / "pipeline.yaml"
    p.write_text(PIPELINE.format(tmp=tmp, size=size))
    cli("setup", str(p))
    return p


def _count(db: Path, where: str = "") -> int:
    return int(sql(db, f"SELECT count(*) FROM items {where}")[0][0])


def _snapshot_rows(tmp: Path) -> int:
    got = sql(tmp / "state.db", "SELECT coalesce(sum(rows), 0) FROM snapshots")
    return int(got[0][0])


def _terminate_in_time(d: Daemon) -> None:
    code, seconds = d.terminate()
    assert code == 0, d.output()
    assert seconds < 10, seconds
    assert "Traceback" not in d.output()


def test_sigterm_during_the_initial_snapshot_exits_0_and_the_next_start_resumes(
        tmp_path: Path) -> None:
    p = _make(tmp_path)
    d = Daemon(p)
    wait_for(lambda: _snapshot_rows(tmp_path) > 0, what="the snapshot under way")
    _terminate_in_time(d)
    assert "stopped during the snapshot" in d.output()
    assert " ready" not in d.output()  # stopped before streaming started
    stopped_at = _snapshot_rows(tmp_path)
    assert 0 < stopped_at < ROWS  # the snapshot's progress is kept, unfinished
    assert _count(tmp_path / "b.db") == stopped_at  # every saved chunk applied, no more
    status = cli("status", str(p), expect=None).stdout
    assert "snapshots under way" in status and "reading and applying" in status
    assert f"{stopped_at:,}" in status
    d = Daemon(p)
    d.wait_ready(timeout=120)
    wait_for(lambda: _count(tmp_path / "b.db") == ROWS, timeout=120, what="the whole table")
    sql(tmp_path / "a.db", "UPDATE items SET name = 'after' WHERE id = 7")
    wait_for(lambda: sql(tmp_path / "b.db", "SELECT name FROM items WHERE id = 7")
             == [("after",)], what="streaming after the snapshot")
    _terminate_in_time(d)
    assert "snapshots under way" not in cli("status", str(p), expect=None).stdout
    cli("verify", str(p))
    assert sql(tmp_path / "a.db", "SELECT * FROM items ORDER BY id") == sql(
        tmp_path / "b.db", "SELECT * FROM items ORDER BY id")


def _die_mid_batch(p: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch run applies a batch and dies before saving it (sync/capture.py
    save_once): its marks say where writes of ours may stand."""
    from sync import capture
    from sync.capture import read_batch, save_once
    from sync.summary import RunSummary

    class Died(Exception):
        pass

    def die(*_a: Any, **_k: Any) -> None:
        raise Died

    with open_pipeline(load_pipeline(p)) as ctx:
        batch, _ = read_batch(ctx, "b", 100)
        assert batch.changes
        monkeypatch.setattr(capture, "commit", die)
        with pytest.raises(Died):
            save_once(ctx, "b", batch.changes, RunSummary(pipeline=ctx.pipeline),
                      batch.checkpoint)
        monkeypatch.undo()
        assert ctx.store.any_marks(ctx.pipeline)


def _marks(p: Path) -> bool:
    with open_pipeline(load_pipeline(p), with_types=False) as ctx:
        return ctx.store.any_marks(ctx.pipeline)


def test_sigterm_during_the_catch_up_of_a_dead_batch_run_exits_0_and_keeps_its_marks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _make(tmp_path, size=200)
    cli("run", str(p))  # the snapshot
    sql(tmp_path / "b.db", f"INSERT INTO items SELECT id + {ROWS}, 'from b', -1 FROM items"
                            " WHERE id <= 50")
    _die_mid_batch(p, monkeypatch)  # (it wrote b's new rows at a)
    sql(tmp_path / "a.db",  # a long catch-up
         f"UPDATE items SET qty = qty + 1000000 WHERE id <= {ROWS}")
    d = Daemon(p)
    wait_for(lambda: "died mid-batch" in d.output(), what="the catch-up to start")
    wait_for(lambda: _count(tmp_path / "b.db", "WHERE qty > 1000000") > 0,
             what="the catch-up under way")
    _terminate_in_time(d)
    assert "stopped during the catch-up" in d.output()
    assert " ready" not in d.output()
    assert _count(tmp_path / "b.db", "WHERE qty > 1000000") < ROWS  # stopped part-way
    assert _marks(p)  # checked only after a whole catch-up: still there
    d = Daemon(p)
    d.wait_ready(timeout=180)
    wait_for(lambda: not _marks(p), timeout=60, what="the marks checked")
    wait_for(lambda: sql(tmp_path / "a.db", "SELECT * FROM items ORDER BY id") == sql(
        tmp_path / "b.db", "SELECT * FROM items ORDER BY id"), timeout=120,
        what="both sides equal")
    _terminate_in_time(d)
    cli("verify", str(p))
    assert _count(tmp_path / "a.db", "WHERE qty = -1") == 50  # b's inserts stand


def test_sigterm_stops_a_batch_run_after_its_last_saved_batch(tmp_path: Path) -> None:
    p = _make(tmp_path, size=200)
    cli("run", str(p))
    sql(tmp_path / "a.db", "UPDATE items SET qty = qty + 1000000")
    run = Daemon(p, verb="run")  # `cdcsync run` as a process, its stderr kept
    wait_for(lambda: _count(tmp_path / "b.db", "WHERE qty > 1000000") > 0,
             what="the catch-up under way")
    code, seconds = run.terminate()
    assert code == 1, run.output()
    assert seconds < 10, seconds
    out = run.output()
    assert "SIGTERM: stopping after the current batch" in out
    assert "stopped as asked" in out and "Traceback" not in out
    done = _count(tmp_path / "b.db", "WHERE qty > 1000000")
    assert done < ROWS
    status = cli("status", str(p)).stdout
    assert "interrupted" in status
    cli("run", str(p))
    assert _count(tmp_path / "b.db", "WHERE qty > 1000000") == ROWS
    cli("verify", str(p))


def test_a_batch_run_waits_for_a_daemons_snapshot_however_long_it_lasts(
        tmp_path: Path) -> None:
    """The daemon's snapshot holds the pipeline's run lock, renewed while it lasts (here
    past the 2 s of the daemon's lease TTL): a batch run beside it is refused."""
    import time

    p = _make(tmp_path, rows=200_000)
    d = Daemon(p)
    wait_for(lambda: _snapshot_rows(tmp_path) > 0, what="the snapshot under way")
    began = time.monotonic()
    refused_late = 0
    while _snapshot_rows(tmp_path) > 0:
        res = cli("run", str(p), expect=None)
        if _snapshot_rows(tmp_path) == 0:
            break  # it ended meanwhile: this attempt says nothing
        assert res.returncode == 1 and "in progress" in res.stderr, (res.returncode,
                                                                     res.stderr)
        if time.monotonic() - began > 3:
            refused_late += 1
    # (none: a batch run went beside the snapshot and ended it, or it ended too soon)
    assert refused_late >= 1, "no batch run was refused once the lease TTL had passed"
    d.wait_ready(timeout=120)
    wait_for(lambda: _count(tmp_path / "b.db") == 200_000, what="the whole table")
    _terminate_in_time(d)
    cli("verify", str(p))
