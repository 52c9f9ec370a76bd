"""The run lock: one batch run of a pipeline at a time, freed by expiry after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sync.engine import run_pipeline
from sync.runlock import RunLock, RunLocked, RunLockLost, lock_name
from sync.state import open_store
from sync.state.leases import Lease
from sync.state.schema import leases, runs
from tests.ops.conftest import cdcsync, sql

ROOT = Path(__file__).resolve().parents[2]


def _holder(cfg: Any) -> str | None:
    store = open_store(cfg.state.url)
    try:
        return Lease(store, lock_name(cfg.pipeline), "probe").holder_now()
    finally:
        store.close()


def _wait_free(cfg: Any, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while _holder(cfg) is not None:
        assert time.monotonic() < end, "the lease never expired"
        time.sleep(0.2)


def test_two_concurrent_runs_one_runs_the_other_is_refused(cfg: Any, pipeline: Path) -> None:
    inside, tried = threading.Event(), threading.Event()
    first: dict[str, Any] = {}

    def hold_inside_run(_endpoint: str, _rows: int) -> None:
        inside.set()  # the first run is under way (it is snapshotting) ...
        assert tried.wait(60)  # ... and stays so until the second one has tried

    def first_run() -> None:
        try:
            first["summary"] = run_pipeline(cfg, progress=hold_inside_run)
        except BaseException as exc:  # reported by the assertions below
            first["error"] = exc
            inside.set()

    t = threading.Thread(target=first_run)
    t.start()
    try:
        assert inside.wait(60)
        with pytest.raises(RunLocked) as refused:
            run_pipeline(cfg)
    finally:
        tried.set()
        t.join(60)
    assert "error" not in first, first
    assert first["summary"].status == "ok"
    assert refused.value.holder is not None
    assert str(refused.value).startswith("another run of ops is in progress (holder ")
    # Exactly one run happened: the refused one did not even start a run record.
    store = open_store(cfg.state.url)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(leases)).scalar_one() == 0
    store.close()
    assert sql(pipeline.parent / "b.db", "SELECT id, name FROM items") == [(1, "one")]
    run_pipeline(cfg)  # released: the next run goes ahead


HOLD = """
import sys, time
from sync.runlock import RunLock
from sync.state import open_store
lock = RunLock(open_store(sys.argv[1]), "ops", ttl=float(sys.argv[2]))
lock.__enter__()
print(lock.holder, flush=True)
time.sleep(600)
"""


def test_a_killed_holder_is_taken_over_after_the_ttl(cfg: Any, pipeline: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLD, cfg.state.url, "6"], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            holder = proc.stdout.readline().strip()
            assert holder and _holder(cfg) == holder
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    # The dead process never released it: the lease still names it until it expires.
    with pytest.raises(RunLocked) as refused:
        run_pipeline(cfg)
    assert refused.value.holder == holder
    _wait_free(cfg)
    assert run_pipeline(cfg).status == "ok"
    assert sql(pipeline.parent / "b.db", "SELECT id, name FROM items") == [(1, "one")]


def test_cli_run_while_locked_exits_1_naming_the_holder(cfg: Any, pipeline: Path) -> None:
    store = open_store(cfg.state.url)
    try:
        with RunLock(store, "ops") as lock:
            res = cdcsync("run", str(pipeline), expect=1)
            assert f"another run of ops is in progress (holder {lock.holder})" in res.stderr
            assert sql(pipeline.parent / "b.db", "SELECT count(*) FROM items") == [(0,)]
        cdcsync("run", str(pipeline))
    finally:
        store.close()
    assert sql(pipeline.parent / "b.db", "SELECT id, name FROM items") == [(1, "one")]


def test_the_lock_is_renewed_while_a_run_lasts(cfg: Any) -> None:
    store = open_store(cfg.state.url)
    try:
        with RunLock(store, "ops", ttl=1.0, renew_every=0.1) as lock:
            t = sa.select(leases.c.expires_at).where(leases.c.name == "run:ops")
            with store.engine.connect() as conn:
                first = conn.execute(t).scalar_one()
            time.sleep(1.5)  # longer than the TTL: only renewals keep it ours
            with store.engine.connect() as conn:
                assert conn.execute(t).scalar_one() > first
            with pytest.raises(RunLocked), RunLock(store, "ops"):
                pass
            assert not lock.lost
        assert _holder(cfg) is None  # released at the end
    finally:
        store.close()


def test_a_lost_lock_fails_the_run(cfg: Any) -> None:
    store = open_store(cfg.state.url)
    try:
        lock = RunLock(store, "ops", ttl=1.0, renew_every=0.1)
        with pytest.raises(RunLockLost, match="two runs overlapped"), lock:
            # What another process does once our lease has expired: take it.
            with store.engine.begin() as conn:
                conn.execute(leases.update().where(leases.c.name == "run:ops")
                             .values(holder="other", expires_at=time.time() + 60))
            end = time.monotonic() + 30
            while not lock.lost:
                assert time.monotonic() < end
                time.sleep(0.05)
        assert _holder(cfg) == "other"  # not released from under its new holder
    finally:
        store.close()


def test_a_failed_run_releases_the_lock(cfg: Any) -> None:
    store = open_store(cfg.state.url)
    try:
        with pytest.raises(ZeroDivisionError), RunLock(store, "ops"):
            _ = 1 / 0
        assert _holder(cfg) is None
    finally:
        store.close()
