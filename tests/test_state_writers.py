"""Every write transaction of one process waits on one mutex for the SQLite state store.

SQLite has one writer at a time; a writer that finds the database locked sleeps
in SQLite's busy handler (1, 2, 5 ... 100 ms between tries) and can wake long
after the lock was freed: a reader's lease renewal caught there stalled its
batch. Here SQLite's busy handler is switched off (``busy_timeout = 0``): a
writer that reached SQLite while another held the lock would fail at once.
Lease renewals, run records and unlocked transactions must queue on the
process's mutex instead, behind the daemon's locked transactions.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sync.state import open_store
from sync.state.leases import Lease
from sync.state.store import StateStore


def _no_busy_wait(store: StateStore) -> None:
    @sa.event.listens_for(store.engine, "connect")
    def _zero(dbapi_conn: Any, _record: Any) -> None:  # after open_store's own pragmas
        dbapi_conn.execute("PRAGMA busy_timeout = 0")

    store.engine.dispose()  # connections made from now on


def test_unlocked_writers_queue_behind_a_locked_transaction(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    _no_busy_wait(store)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    done: list[str] = []

    def locked_writer() -> None:
        with store.transaction(lock="cdcsync-state:p") as conn:  # BEGIN IMMEDIATE
            StateStore.put_checkpoint(conn, "p", "a", "*", {"lsn": 1})
            holding.set()
            assert release.wait(10)
        done.append("locked")

    def run(name: str, fn: Any) -> threading.Thread:
        def body() -> None:
            try:
                fn()
                done.append(name)
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=body)
        t.start()
        return t

    first = threading.Thread(target=locked_writer)
    first.start()
    assert holding.wait(10)
    others = [
        run("lease", lambda: Lease(store, "read:p:a", "me", ttl=5).acquire()),
        run("run", lambda: store.start_run("p", "run")),
        run("checkpoint", lambda: _put(store)),
    ]
    for t in others:
        t.join(0.3)
    assert errors == []  # none reached SQLite while the lock was held ("database is locked")
    assert done == []  # all three wait
    release.set()
    first.join(10)
    for t in others:
        t.join(10)
    assert errors == []
    assert done[0] == "locked" and sorted(done[1:]) == ["checkpoint", "lease", "run"]
    assert store.checkpoint("p", "b", "*") == {"lsn": 2}


def _put(store: StateStore) -> None:
    with store.transaction() as conn:
        StateStore.put_checkpoint(conn, "p", "b", "*", {"lsn": 2})
