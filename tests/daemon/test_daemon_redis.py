"""The daemon on a real Redis broker, across processes: workers elsewhere, a second
daemon taking over a dead one's sources, and a Redis restart that loses every message.

Redis here is a private real server on its own port (started by the test), so that
restarting it does not disturb anything else using the machine's Redis.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.helpers import Daemon, PrivateRedis, cli, wait_for
from tests.daemon.test_daemon_sqlite import _writer, rows

PIPELINE = """
pipeline: r{n}
state: {{url: sqlite:///state.db}}
broker: {{url: "redis://127.0.0.1:{port}/0"}}
daemon: {{metrics_port: 0, poll_ms: 10, lease_ttl_s: 1.5, partitions: 3}}
endpoints:
  a: {{kind: sqlite, path: a.db}}
  b: {{kind: sqlite, path: b.db}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
    conflict: {{policy: last_writer_wins}}
"""


def make(tmp: Path, port: int, state: str = "sqlite:///state.db") -> Path:
    for db in ("a.db", "b.db"):
        with sqlite3.connect(tmp / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
            c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                          [(i, f"item {i}", i) for i in range(1, 21)])
    p = tmp / "pipeline.yaml"
    p.write_text(PIPELINE.format(n=random.randrange(10**6), port=port)
                 .replace("url: sqlite:///state.db", f'url: "{state}"'))
    cli("setup", str(p))
    return p


def converged(tmp: Path) -> bool:
    return rows(tmp / "a.db") == rows(tmp / "b.db")


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_workers_die_redis_restarts_and_a_second_daemon_takes_over(
        tmp_path: Path, private_redis: PrivateRedis, store: str,
        pg_dsn_factory: Callable[[], str]) -> None:
    """With the state store in a SQLite file, and in PostgreSQL: the store that daemons
    and workers on several machines share (their leases, outbox, checkpoints)."""
    state = "sqlite:///state.db" if store == "sqlite" else pg_dsn_factory().replace(
        "postgresql://", "postgresql+psycopg://", 1)
    p = make(tmp_path, private_redis.port, state)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(tmp_path, stop, 3), daemon=True)
    first = Daemon(p)
    first.wait_ready()
    extra = Daemon(p, verb="worker")  # more apply capacity in another process
    extra.wait_ready()
    second = Daemon(p)  # a standby daemon: it holds no source while the first lives
    second.wait_ready()
    writer.start()
    try:
        time.sleep(1.5)
        extra.kill()  # a worker dies mid-stream: its partitions' leases expire
        time.sleep(1.0)
        private_redis.restart()  # every queued message vanishes
        time.sleep(1.5)
        assert second.ready_state()["sources_held"] == []  # the first holds both sources
        first.kill()  # the lease holder dies: the standby takes its sources over
        wait_for(lambda: sorted(second.ready_state()["sources_held"]) == ["a", "b"],
                 timeout=15, what="the standby to take over both sources")
    finally:
        stop.set()
        writer.join()
    wait_for(lambda: converged(tmp_path), timeout=120, what="convergence")
    code, seconds = second.terminate()
    assert code == 0, second.output()
    assert seconds < 10
    cli("verify", str(p))


def apply_leases(tmp: Path) -> dict[str, list[int]]:
    """The partitions each process holds now (live apply leases in the state store)."""
    with sqlite3.connect(tmp / "state.db") as c:
        rows = c.execute("SELECT name, holder FROM leases WHERE name LIKE 'apply:%' "
                         "AND expires_at >= ?", (time.time(),)).fetchall()
    held: dict[str, list[int]] = {}
    for name, holder in rows:
        held.setdefault(holder, []).append(int(name.rsplit(":", 1)[1]))
    return {h: sorted(ps) for h, ps in held.items()}


@pytest.mark.slow
def test_worker_processes_share_the_partitions_and_take_over_a_dead_ones(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    p = make(tmp_path, private_redis.port)  # three partitions
    readers = Daemon(p, args=("--no-workers",))  # applies nothing itself
    readers.wait_ready()
    first = Daemon(p, verb="worker")
    first.wait_ready()
    wait_for(lambda: [len(ps) for ps in apply_leases(tmp_path).values()] == [3],
             timeout=15, what="the first worker to take every partition")
    second = Daemon(p, verb="worker")
    second.wait_ready()
    # the first hands back what is over its share once its messages are applied
    wait_for(lambda: sorted(len(ps) for ps in apply_leases(tmp_path).values()) == [1, 2],
             timeout=20, what="the partitions to be shared by the two workers")
    held = apply_leases(tmp_path)
    assert sorted(p for ps in held.values() for p in ps) == [0, 1, 2]  # each once
    assert not any(h.split(":")[1] == str(readers.proc.pid) for h in held)
    assert readers.ready_state()["partitions_held"] == []
    assert sorted(first.ready_state()["partitions_held"]
                  + second.ready_state()["partitions_held"]) == [0, 1, 2]
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(tmp_path, stop, 3), daemon=True)
    writer.start()
    try:
        time.sleep(1.5)
        second.kill()  # its partitions' leases expire; the first takes them back
        wait_for(lambda: [len(ps) for ps in apply_leases(tmp_path).values()] == [3],
                 timeout=20, what="the surviving worker to take every partition")
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    wait_for(lambda: converged(tmp_path), timeout=60, what="convergence")
    assert first.terminate()[0] == 0, first.output()
    assert readers.terminate()[0] == 0, readers.output()
    cli("verify", str(p))


def test_worker_alone_needs_a_shared_broker(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(PIPELINE.replace('"redis://127.0.0.1:{port}/0"', "memory://").format(
        n=1, port=0))
    for db in ("a.db", "b.db"):
        sqlite3.connect(tmp_path / db).execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    for argv in (["worker", str(p)], ["daemon", "--no-workers", str(p)]):
        res = cli(*argv, expect=2)
        assert "redis://" in res.stderr and "Traceback" not in res.stderr
