"""A run asked to stop (SIGTERM/SIGINT) ends at its next durable point and resumes there.

SQLite endpoints in process: ``run_pipeline(stop=...)`` with the stop set part-way
through a direct snapshot, a staged snapshot (while staging and while reconciling)
and a catch-up. The run raises :class:`Interrupted`, is recorded as interrupted,
has saved what it did, and the next run finishes the work with nothing lost or
applied twice. The CLI and daemon paths are in tests/daemon/test_daemon_stop.py.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_pipeline
from sync import snapshot as snapshot_mod
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from sync.signals import Interrupted
from sync.status import collect_status
from tests.ops.conftest import sql

N = 300


def _pipeline(tmp: Path) -> Path:
    for db in ("a.db", "b.db"):
        sql(tmp / db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    with sqlite3.connect(tmp / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                      [(i, f"item {i}", i) for i in range(1, N + 1)])
    c.close()
    path = tmp / "pipeline.yaml"
    path.write_text(f"""\
pipeline: stops
state: {{url: "sqlite:///{tmp}/state.db"}}
batch: {{size: 25, snapshot_chunk: 40, workers: 1}}
endpoints:
  a: {{kind: sqlite, path: "{tmp}/a.db"}}
  b: {{kind: sqlite, path: "{tmp}/b.db"}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
""")
    setup_pipeline(load_pipeline(path))
    return path


def _rows(db: Path) -> list[tuple[Any, ...]]:
    return sql(db, "SELECT id, name, qty FROM items ORDER BY id")


def _last_run(tmp: Path) -> str:
    return str(sql(tmp / "state.db", "SELECT status FROM runs ORDER BY id DESC LIMIT 1")[0][0])


def _stop_after(first: int, stop: threading.Event) -> Any:
    """A progress callback that asks to stop once it has been told of ``first`` calls."""
    calls = [0]

    def progress(label: str, _n: int) -> None:
        calls[0] += 1
        if calls[0] >= first:
            stop.set()

    return progress


def _finish_and_check(path: Path, tmp: Path) -> dict[str, Any]:
    """The next run finishes the work: both sides equal, then the fixed point."""
    done = run_pipeline(load_pipeline(path)).to_json()
    assert done["errors"] == [] and done["status"] == "ok", done
    assert _rows(tmp / "a.db") == _rows(tmp / "b.db")
    quiet = run_pipeline(load_pipeline(path)).to_json()
    assert quiet["totals"]["applied"] == 0, quiet
    return done


@pytest.mark.parametrize("path_taken", ["direct", "staged"])
def test_a_snapshot_stopped_between_chunks_resumes_where_it_stopped(
        tmp_path: Path, path_taken: str) -> None:
    path = _pipeline(tmp_path)
    if path_taken == "staged":  # a row at b too: rows are matched by key (staged path)
        sql(tmp_path / "b.db", "INSERT INTO items VALUES (1000, 'only at b', 0)")
    stop = threading.Event()
    with pytest.raises(Interrupted, match="resumes"):
        run_pipeline(load_pipeline(path), progress=_stop_after(2, stop), stop=stop)
    assert _last_run(tmp_path) == "interrupted"
    (chunks_saved,) = sql(tmp_path / "state.db", "SELECT sum(rows) FROM snapshots")[0]
    assert chunks_saved == 80  # two chunks of 40, then the stop
    under_way = collect_status(load_pipeline(path), endpoints=False)["snapshots"]
    if path_taken == "direct":
        assert len(_rows(tmp_path / "b.db")) == 80  # applied with their chunks
        assert [(s["endpoint"], s["status"], s["rows"]) for s in under_way] == [
            ("a", "direct", 80)]
    else:  # staged: a's first two chunks, b not read yet
        assert [(s["endpoint"], s["status"], s["rows"]) for s in under_way] == [
            ("a", "reading", 80), ("b", "reading", 0)]
    done = _finish_and_check(path, tmp_path)
    assert collect_status(load_pipeline(path), endpoints=False)["snapshots"] == []
    assert len(_rows(tmp_path / "b.db")) == N + (1 if path_taken == "staged" else 0)
    # Nothing read twice by the snapshot: the rest of it only.
    assert done["snapshot_rows"] == (N - 80 if path_taken == "direct" else N + 1)


def test_a_reconcile_stopped_between_batches_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pipeline(tmp_path)
    sql(tmp_path / "b.db", "INSERT INTO items VALUES (1000, 'only at b', 0)")
    stop = threading.Event()
    applied = [0]
    real = snapshot_mod.apply_pending

    def apply_then_stop(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        applied[0] += 1
        if applied[0] == 3:
            stop.set()
        return out

    monkeypatch.setattr(snapshot_mod, "apply_pending", apply_then_stop)
    with pytest.raises(Interrupted):
        run_pipeline(load_pipeline(path), stop=stop)
    monkeypatch.undo()
    assert applied[0] == 3  # three batches of 25 keys reconciled, then the stop
    # 75 keys in the store's order, b's own row 1000 among them (it went to a): 74 new at b
    assert len(_rows(tmp_path / "b.db")) == 1 + 3 * 25 - 1
    assert _last_run(tmp_path) == "interrupted"
    _finish_and_check(path, tmp_path)
    assert len(_rows(tmp_path / "b.db")) == N + 1


def test_a_catch_up_stopped_between_batches_resumes_with_nothing_applied_twice(
        tmp_path: Path) -> None:
    path = _pipeline(tmp_path)
    assert run_pipeline(load_pipeline(path)).errors == []
    sql(tmp_path / "a.db", "UPDATE items SET qty = qty + 1000")
    stop = threading.Event()
    with pytest.raises(Interrupted):
        run_pipeline(load_pipeline(path), progress=_stop_after(3, stop), stop=stop)
    assert _last_run(tmp_path) == "interrupted"
    moved = sql(tmp_path / "b.db", "SELECT count(*) FROM items WHERE qty > 1000")[0][0]
    assert moved == 3 * 25  # three batches saved, then the stop
    done = _finish_and_check(path, tmp_path)
    assert done["totals"]["read"] == N - moved  # the rest, not the batches saved again
    assert done["totals"]["applied"] == N - moved


def test_a_stop_asked_before_the_run_starts_reads_nothing(tmp_path: Path) -> None:
    path = _pipeline(tmp_path)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        run_pipeline(load_pipeline(path), stop=stop)
    assert _rows(tmp_path / "b.db") == []
    _finish_and_check(path, tmp_path)
