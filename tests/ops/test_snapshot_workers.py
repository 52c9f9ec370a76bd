"""A direct snapshot decided and applied by worker processes (sync/parallel.py), against
the real PostgreSQL: the same rows and key states as one process leaves, and a worker
that dies leaves the snapshot to finish in one process."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_pipeline
from sync.engine import run_pipeline
from tests.connectors.postgres.helpers import pipeline_of, query, sql
from tests.ops.conftest import cdcsync
from tests.states import comparable_states

TABLE = "CREATE TABLE items (id int PRIMARY KEY, name text, amount numeric(10,2), doc jsonb)"
ROWS = "SELECT id, name, amount, doc FROM items ORDER BY id"
COUNT = 1500
STARTUP = 4.0  # seconds: ample for spawning a worker and opening its pipeline


def _pipeline(tmp: Path, a: str, b: str, workers: int) -> Path:
    sql(a, TABLE, f"INSERT INTO items SELECT g, 'a' || g, g * 1.25,"
                  f" jsonb_build_object('g', g, 'tags', jsonb_build_array('x', g % 3))"
                  f" FROM generate_series(1, {COUNT}) g")
    sql(b, TABLE)
    return _set_up(tmp, a, b, workers)


def _set_up(tmp: Path, a: str, b: str, workers: int, entity_extra: str = "") -> Path:
    """The pipeline a <-> b of ``items``, in small chunks, set up."""
    path = tmp / "pipeline.yaml"
    path.write_text(f"""
pipeline: {pipeline_of(a)}
state: {{url: "sqlite:///{tmp}/state.db"}}
batch: {{size: 50, snapshot_chunk: 100, workers: {workers}, parallel_from: 100}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
{entity_extra}""")
    cdcsync("setup", str(path))
    return path


def _run(path: Path, on_chunk: Callable[[list[Any]], None]) -> dict[str, Any]:
    """A run in this process; ``on_chunk(children)`` after each snapshot chunk."""

    def progress(label: str, _n: int) -> None:
        if label.startswith("snapshot"):
            on_chunk(multiprocessing.active_children())

    return run_pipeline(load_pipeline(path), progress=progress).to_json()


def _wait_once(done: list[bool]) -> Callable[[list[Any]], None]:
    """Give the workers time to start (the run goes on alone meanwhile) once started."""

    def on_chunk(children: list[Any]) -> None:
        if children and not done:
            time.sleep(STARTUP)
            done.append(True)

    return on_chunk


def _fixed_point(path: Path) -> None:
    quiet = json.loads(cdcsync("run", "--json", str(path)).stdout)
    assert quiet["totals"]["applied"] == 0, quiet
    silent = json.loads(cdcsync("run", "--json", str(path)).stdout)
    assert silent["totals"]["read"] == 0 and silent["totals"]["applied"] == 0, silent
    cdcsync("verify", str(path))


def test_workers_snapshot_what_one_process_snapshots(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    summaries, states = {}, {}
    for workers in (2, 1):
        tmp = tmp_path / f"w{workers}"
        tmp.mkdir()
        a, b = pg_dsn_factory(), pg_dsn_factory()
        path = _pipeline(tmp, a, b, workers)
        try:
            summaries[workers] = s = _run(path, _wait_once([]))
            assert s["errors"] == [] and s["snapshot_rows"] == COUNT, s
            assert s["totals"]["applied"] == COUNT and s["totals"]["read"] == COUNT, s
            assert query(a, ROWS) == query(b, ROWS)
            states[workers] = comparable_states(tmp / "state.db", positions=False)
            if workers == 2:
                _fixed_point(path)
        finally:
            cdcsync("teardown", str(path), "--force", expect=None)
    assert summaries[2]["worker_batches"] >= 5, summaries[2]  # most chunks in the workers
    assert summaries[1]["worker_batches"] == 0
    assert len(states[2]) == COUNT
    assert states[2] == states[1]


def test_a_worker_that_dies_leaves_the_snapshot_to_finish_in_one_process(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _pipeline(tmp_path, a, b, 2)
    waited: list[bool] = []
    killed: list[int] = []

    def kill_a_worker(children: list[Any]) -> None:
        if not children or killed:
            return
        if not waited:  # started: let them get ready and take the next chunk
            _wait_once(waited)(children)
            return
        os.kill(children[0].pid, signal.SIGKILL)
        killed.append(children[0].pid)

    try:
        with caplog.at_level(logging.WARNING, logger="cdcsync.parallel"):
            summary = _run(path, kill_a_worker)
        assert killed, "the run never started its workers"
        assert any("died" in r.getMessage() for r in caplog.records), caplog.text
        assert summary["errors"] == [] and summary["worker_batches"] >= 1, summary
        assert summary["snapshot_rows"] == COUNT
        assert query(a, ROWS) == query(b, ROWS) and len(query(b, ROWS)) == COUNT
        assert multiprocessing.active_children() == []  # the other one was stopped
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


def test_sigterm_to_the_process_group_stops_the_run_and_its_workers_after_a_saved_chunk(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """Ctrl-C or systemd signal every process of the run: the workers leave the stop to
    the run, which stops them after the chunk in hand; none of them "dies"."""
    import subprocess

    from tests.daemon.helpers import CDCSYNC, wait_for

    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _pipeline(tmp_path, a, b, 2)
    sql(a, "INSERT INTO items SELECT g, 'a' || g, g, NULL FROM generate_series(10001, 80000) g")
    total = COUNT + 70000
    log = tmp_path / "run.log"
    try:
        with log.open("w") as err:
            run = subprocess.Popen([str(CDCSYNC), "--debug", "run", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)
        try:
            wait_for(lambda: "batch workers of" in log.read_text()
                     and " ready after " in log.read_text(), what="the workers ready")
            time.sleep(0.5)  # taking chunks
            os.killpg(run.pid, signal.SIGTERM)
            code = run.wait(timeout=10)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
        out = log.read_text()
        assert code == 1, out
        assert "stopped as asked" in out and "Traceback" not in out
        assert "died" not in out and "could not start" not in out
        stopped_at = query(b, "SELECT count(*) FROM items")[0][0]
        assert stopped_at < total
        done = json.loads(cdcsync("run", "--json", str(path)).stdout)
        assert done["errors"] == [] and done["snapshot_rows"] <= total - stopped_at + 1000, done
        assert query(a, ROWS) == query(b, ROWS) and len(query(b, ROWS)) == total
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


def test_a_daemon_snapshots_with_workers_then_streams(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """The daemon's initial snapshot takes the worker processes too; they end with it,
    and the readers start after it."""
    from tests.daemon.helpers import Daemon, wait_for

    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _pipeline(tmp_path, a, b, 2)
    sql(a, "INSERT INTO items SELECT g, 'a' || g, g, NULL FROM generate_series(10001, 30000) g")
    path.write_text(path.read_text().replace(
        "batch: {", "daemon: {metrics_port: 0, poll_ms: 10}\nbatch: {"))
    d = Daemon(path, options=("--debug",))
    try:
        # (not wait_ready: the debug log's "workers ... ready after" would pass for it)
        wait_for(lambda: "cdcsync daemon ready" in d.output(), timeout=120,
                 what="the daemon ready")
        assert "batch workers of" in d.output() and " ready after " in d.output()
        assert query(b, "SELECT count(*) FROM items")[0][0] == COUNT + 20000
        sql(a, "UPDATE items SET name = 'streamed' WHERE id = 7")
        wait_for(lambda: query(b, "SELECT name FROM items WHERE id = 7") == [("streamed",)],
                 what="the update streamed")
        code, _ = d.terminate()
        assert code == 0, d.output()
        assert "Traceback" not in d.output() and "died" not in d.output()
        assert "could not start" not in d.output()
        assert query(a, ROWS) == query(b, ROWS)
        with sqlite3.connect(tmp_path / "state.db") as c:  # the chunks the workers saved
            assert c.execute("SELECT count(*) FROM key_states").fetchone()[0] == COUNT + 20000
        c.close()
        cdcsync("verify", str(path))
    finally:
        if d.proc.poll() is None:
            d.kill()
        cdcsync("teardown", str(path), "--force", expect=None)


def test_workers_read_their_ranges_in_the_exported_snapshot(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once ready, the workers read each chunk themselves (the run finds its bounds), in
    the snapshot the run's first chunks read in: what is committed meanwhile is left to
    the stream, never read twice or lost."""
    from connectors.postgres import PostgresEndpoint

    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _pipeline(tmp_path, a, b, 2)
    calls = {"snapshot": 0, "snapshot_bounds": 0}
    for name in calls:
        real = getattr(PostgresEndpoint, name)

        def counted(self: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(PostgresEndpoint, name, counted)
    seen: list[int] = []

    def on_chunk(children: list[Any]) -> None:
        if not children:
            return
        seen.append(len(children))
        if len(seen) == 1:
            time.sleep(STARTUP)
        elif len(seen) == 2:  # ranges ahead of the snapshot change meanwhile
            sql(a, "DELETE FROM items WHERE id = 1400",
                "UPDATE items SET name = 'late' WHERE id IN (7, 1300)",
                "INSERT INTO items VALUES (1600, 'new', 1, NULL)")

    try:
        summary = _run(path, on_chunk)
        assert summary["errors"] == [], summary
        # the rows as of the snapshot's start: 1400 read, 1600 not
        assert summary["snapshot_rows"] == COUNT, summary
        assert calls["snapshot_bounds"] >= 10 and calls["snapshot"] <= 5, calls
        assert summary["worker_batches"] >= 10, summary
        assert query(a, ROWS) == query(b, ROWS)
        assert query(b, "SELECT name FROM items WHERE id IN (7, 1300, 1600) ORDER BY id") == [
            ("late",), ("late",), ("new",)]
        assert query(b, "SELECT count(*) FROM items WHERE id = 1400") == [(0,)]
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


@pytest.mark.parametrize(("ranged", "method", "fail_at", "saved"), [
    # the first chunk read and done in this process, then 3 read by the workers
    (True, "snapshot_bounds", 4, 400),
    # 2 reads find the holder, then chunks 1-5 and the failed 6th, read ahead
    (False, "snapshot", 8, 500),
])
def test_a_chunk_that_cannot_be_read_fails_the_run_after_the_one_before_is_saved(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch,
        ranged: bool, method: str, fail_at: int, saved: int) -> None:
    """Where the workers read their ranges, the run still finds each chunk's bounds; a
    source that cannot share its snapshot with them (a MariaDB consistent snapshot is
    its session's) has the run read each chunk, the next one while the workers work
    on this one. Either read failing is raised once the chunk before is saved, as a
    read in turn would be."""
    from connectors.base import RetriableError
    from connectors.postgres import PostgresEndpoint

    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _pipeline(tmp_path, a, b, 2)
    if not ranged:
        # as a source that reads no key ranges: the run reads each chunk and sends it
        monkeypatch.setattr(PostgresEndpoint, "snapshot_bounds", None)
    real = getattr(PostgresEndpoint, method)
    calls: list[int] = []

    def failing(self: Any, *args: Any) -> Any:
        calls.append(1)
        if len(calls) == fail_at and multiprocessing.active_children():
            raise RetriableError("the source went away")
        return real(self, *args)

    monkeypatch.setattr(PostgresEndpoint, method, failing)
    try:
        with pytest.raises(RetriableError, match="went away"):
            _run(path, _wait_once([]))
        monkeypatch.undo()
        with sqlite3.connect(tmp_path / "state.db") as c:
            (rows,) = c.execute("SELECT rows FROM snapshots WHERE endpoint = 'a'").fetchone()
            (states,) = c.execute("SELECT count(*) FROM key_states").fetchone()
        c.close()
        assert rows == saved and states == saved
        assert query(b, "SELECT count(*) FROM items")[0][0] == saved
        done = json.loads(cdcsync("run", "--json", str(path)).stdout)
        assert done["errors"] == [] and done["snapshot_rows"] == COUNT - saved, done
        assert query(a, ROWS) == query(b, ROWS)
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


@pytest.mark.parametrize(("chunk", "workers"), [(1000, False), (700, True)])
def test_workers_start_for_a_table_of_two_chunks_or_more(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], chunk: int, workers: bool) -> None:
    """Starting them costs about a second of both cores: a table under two chunks (1500
    rows) is done before they would be ready."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _pipeline(tmp_path, a, b, 2)
    path.write_text(path.read_text().replace("snapshot_chunk: 100,", f"snapshot_chunk: {chunk},"))
    seen: list[int] = []
    try:
        summary = _run(path, lambda children: seen.append(len(children)))
        assert summary["errors"] == [] and summary["snapshot_rows"] == COUNT, summary
        assert (max(seen) > 0) is workers, seen
        assert query(a, ROWS) == query(b, ROWS)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


@pytest.fixture
def staged_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Integer keys are merged as read (sync/snapshot_merged.py): stage them instead."""
    import sync.snapshot_merged

    monkeypatch.setattr(sync.snapshot_merged, "mergeable", lambda *_: False)


def _staged_pipeline(tmp: Path, a: str, b: str, workers: int) -> Path:
    """Both endpoints hold rows: most alike, some differing, some at one side only."""
    sql(a, TABLE, f"INSERT INTO items SELECT g, 'a' || g, g * 1.25, jsonb_build_object('g', g)"
                  f" FROM generate_series(1, {COUNT}) g")
    sql(b, TABLE, f"INSERT INTO items SELECT g, CASE WHEN g % 50 = 0 THEN 'b' ELSE 'a' END || g,"
                  f" g * 1.25, jsonb_build_object('g', g)"
                  f" FROM generate_series(101, {COUNT + 60}) g")
    return _set_up(tmp, a, b, workers, "    conflict: {policy: priority, priority: [b, a]}\n")


def test_workers_stage_and_reconcile_what_one_process_does(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], staged_only: None) -> None:
    """Endpoints that both hold rows are staged and reconciled by the workers: the same
    rows, states and conflicts as in one process, each row counted once."""
    summaries, states, conflicts, chunks = {}, {}, {}, {}
    for workers in (2, 1):
        tmp = tmp_path / f"w{workers}"
        tmp.mkdir()
        a, b = pg_dsn_factory(), pg_dsn_factory()
        path = _staged_pipeline(tmp, a, b, workers)
        seen: list[int] = []
        waited: list[bool] = []

        def progress(label: str, n: int, seen: list[int] = seen,
                     waited: list[bool] = waited) -> None:
            if label.startswith("snapshot"):
                seen.append(n)
                _wait_once(waited)(multiprocessing.active_children())

        try:
            s = summaries[workers] = run_pipeline(load_pipeline(path),
                                                  progress=progress).to_json()
            assert s["errors"] == [] and s["snapshot_rows"] == 2 * COUNT - 40, s
            assert query(a, ROWS) == query(b, ROWS)
            assert len(query(a, ROWS)) == COUNT + 60
            # priority b: b's differing rows won; a's rows b lacked were inserted there
            assert query(a, "SELECT name FROM items WHERE id IN (50, 150) ORDER BY id") == [
                ("a50",), ("b150",)]
            states[workers] = comparable_states(tmp / "state.db", positions=False)
            with sqlite3.connect(tmp / "state.db") as c:
                conflicts[workers] = sorted(c.execute(
                    "SELECT entity, key FROM conflicts").fetchall())
            chunks[workers] = sum(seen)
            if workers == 2:
                _fixed_point(path)
        finally:
            cdcsync("teardown", str(path), "--force", expect=None)
    assert chunks[2] == chunks[1] == 2 * COUNT - 40  # every staged row told once
    assert summaries[2]["worker_batches"] >= 20, summaries[2]  # staged and reconciled there
    assert summaries[1]["worker_batches"] == 0
    assert summaries[2]["totals"] == summaries[1]["totals"]
    assert len(states[2]) == COUNT + 60 and states[2] == states[1]
    assert len(conflicts[2]) == (COUNT - 100) // 50 and conflicts[2] == conflicts[1]


@pytest.mark.parametrize("phase", ["stage", "reconcile"])
def test_a_worker_that_dies_while_staging_or_reconciling_leaves_the_rest_to_one_process(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], phase: str,
        caplog: pytest.LogCaptureFixture, staged_only: None) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _staged_pipeline(tmp_path, a, b, 2)
    killed: list[int] = []
    waited: list[bool] = []
    state_db = tmp_path / "state.db"

    def reconciling() -> bool:
        try:
            with sqlite3.connect(state_db) as c:
                return bool(c.execute("SELECT count(*) FROM key_states").fetchone()[0])
        except sqlite3.Error:  # not there yet, or busy
            return False

    def kill_a_worker(label: str, _n: int) -> None:
        children = multiprocessing.active_children()
        if killed or not children or not label.startswith("snapshot"):
            return
        if phase == "stage":  # once they stage (the run stages until they are ready)
            if "ready after" in caplog.text:
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(children[0].pid)
            else:
                _wait_once(waited)(children)
            return
        while not reconciling():  # (the run's last staging chunk: reconcile is next)
            time.sleep(0.005)
        os.kill(children[0].pid, signal.SIGKILL)
        killed.append(children[0].pid)

    def last_chunk_then_kill(label: str, n: int) -> None:
        if phase == "reconcile":
            _wait_once(waited)(multiprocessing.active_children())  # ready to reconcile
            with sqlite3.connect(state_db) as c:
                staged = c.execute("SELECT count(*) FROM snapshot_rows").fetchone()[0]
            if staged < 2 * COUNT - 40:
                return
            threading.Thread(target=kill_a_worker, args=(label, n), daemon=True).start()
            return
        kill_a_worker(label, n)

    try:
        with caplog.at_level(logging.INFO, logger="cdcsync.parallel"):
            summary = run_pipeline(load_pipeline(path), progress=last_chunk_then_kill).to_json()
        assert killed, "no worker was killed"
        assert any("died" in r.getMessage() for r in caplog.records), caplog.text
        assert summary["errors"] == [] and summary["worker_batches"] >= 1, summary
        assert query(a, ROWS) == query(b, ROWS) and len(query(b, ROWS)) == COUNT + 60
        with sqlite3.connect(state_db) as c:
            assert c.execute("SELECT count(*) FROM key_states").fetchone()[0] == COUNT + 60
            assert c.execute("SELECT count(*) FROM conflicts").fetchone()[0] == 28
        assert multiprocessing.active_children() == []  # the other one was stopped
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


def test_a_reconcile_done_again_after_a_crash_keeps_what_it_decided(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch, staged_only: None) -> None:
    """A run that dies after reconciling keys (states saved, applies made) leaves the
    staged rows: the next run reconciles again, and the keys it finds decided by this
    snapshot stay as decided. Their staged rows are older than our writes: taken for
    news, b's winning rows would be overwritten by a's losing ones."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _staged_pipeline(tmp_path, a, b, 1)
    import sync.snapshot

    def crash(*_args: Any) -> None:
        raise RuntimeError("killed before the streams start")

    try:
        with monkeypatch.context() as m:
            m.setattr(sync.snapshot, "start_streams", crash)
            with pytest.raises(RuntimeError, match="killed before"):
                run_pipeline(load_pipeline(path))
        assert query(a, "SELECT name FROM items WHERE id = 150") == [("b150",)]
        again = run_pipeline(load_pipeline(path)).to_json()
        assert again["errors"] == [], again
        assert query(a, "SELECT name FROM items WHERE id IN (50, 150) ORDER BY id") == [
            ("a50",), ("b150",)]
        assert query(a, ROWS) == query(b, ROWS) and len(query(b, ROWS)) == COUNT + 60
        with sqlite3.connect(tmp_path / "state.db") as c:
            assert c.execute("SELECT count(*) FROM conflicts").fetchone()[0] == 28
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)


@pytest.mark.parametrize(("a_rows", "b_rows", "started"), [
    (150, 0, False),  # the direct path: under two chunks of 100
    (150, 150, False),  # merged by key: under two chunks at both ends
    (250, 150, True),  # merged: two chunks or more at one end
], ids=["direct-small", "merged-small", "merged-large"])
def test_worker_processes_start_for_two_chunks_or_more(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch,
        a_rows: int, b_rows: int, started: bool) -> None:
    """Their start costs about a second of both cores: not for a small table, even one
    never analyzed (its planner estimate is unknown, so it used to count as large)."""
    from sync.parallel import BatchWorkers

    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn, n in ((a, a_rows), (b, b_rows)):
        sql(dsn, TABLE, f"INSERT INTO items SELECT g, 'n' || g, g * 1.25, '{{}}'::jsonb"
                        f" FROM generate_series(1, {n}) g")
    path = _set_up(tmp_path, a, b, 2)
    starts: list[int] = []
    spawn = BatchWorkers._start

    def counted(self: BatchWorkers) -> None:
        starts.append(self.count)
        spawn(self)

    monkeypatch.setattr(BatchWorkers, "_start", counted)
    try:
        s = run_pipeline(load_pipeline(path)).to_json()
        assert s["errors"] == [] and s["snapshot_rows"] == a_rows + b_rows, s
        assert query(a, ROWS) == query(b, ROWS) and len(query(a, ROWS)) == max(a_rows, b_rows)
        assert bool(starts) is started, starts
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)
