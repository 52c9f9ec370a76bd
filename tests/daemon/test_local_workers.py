"""``daemon.worker_processes``: the daemon starts `cdcsync worker` children, leaves applying
to them, starts a dead one again, stops them with itself; orphans stop by themselves."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.daemon.children import child_port
from tests.daemon.helpers import Daemon, cli, wait_for
from tests.daemon.test_daemon_redis import PIPELINE, PrivateRedis, apply_leases, converged, make
from tests.daemon.test_daemon_sqlite import _writer


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    r = PrivateRedis(tmp_path)
    yield r
    r.stop()


def with_children(p: Path, count: int) -> None:
    text = p.read_text().replace("partitions: 3}", f"partitions: 3, worker_processes: {count}}}")
    p.write_text(text)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a child that exited and was not reaped yet is a zombie: gone for our purpose
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def parent_and_command(pid: int) -> tuple[int, list[str]]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return int(stat[1]), argv


@pytest.mark.slow
def test_the_daemon_runs_its_workers_and_starts_a_dead_one_again(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    p = make(tmp_path, private_redis.port)
    with_children(p, 2)
    d = Daemon(p)
    d.wait_ready()
    children = wait_for(lambda: len(d.ready_state()["local_workers"]) == 2
                        and d.ready_state()["local_workers"], timeout=30,
                        what="two local workers")
    for pid in children:
        parent, argv = parent_and_command(pid)
        assert parent == d.proc.pid
        assert "worker" in argv and str(p) in argv
    # the children apply, each a member with its share; the daemon holds no partition
    wait_for(lambda: sorted(len(ps) for ps in apply_leases(tmp_path).values()) == [1, 2],
             timeout=30, what="the partitions shared by the two children")
    assert d.ready_state()["partitions_held"] == []
    assert not any(h.split(":")[1] == str(d.proc.pid) for h in apply_leases(tmp_path))

    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(tmp_path, stop, 5), daemon=True)
    writer.start()
    try:
        time.sleep(1.0)
        os.kill(children[0], 9)  # a child dies mid-stream: the daemon starts another
        fresh = wait_for(lambda: (pids := d.ready_state()["local_workers"]) and len(pids) == 2
                         and children[0] not in pids and pids, timeout=30,
                         what="the dead child replaced")
        assert children[1] in fresh
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    wait_for(lambda: converged(tmp_path), timeout=60, what="convergence")
    assert "local worker 1" in d.output() and "starting it again" in d.output()
    code, seconds = d.terminate()
    assert code == 0, d.output()
    assert seconds < 10
    assert not any(alive(pid) for pid in fresh), "children outlived the daemon"
    cli("verify", str(p))


@pytest.mark.slow
def test_children_of_a_killed_daemon_stop_by_themselves(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    p = make(tmp_path, private_redis.port)
    with_children(p, 1)
    d = Daemon(p)
    d.wait_ready()
    (child,) = wait_for(lambda: d.ready_state()["local_workers"], timeout=30,
                        what="the local worker")
    d.kill()  # kill -9: no chance to stop its children
    wait_for(lambda: not alive(child), timeout=15, what="the orphaned worker to stop")
    # a new daemon starts its own and syncs what was written meanwhile
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("UPDATE items SET name = 'while no daemon ran' WHERE id = 3")
    d2 = Daemon(p)
    d2.wait_ready()
    wait_for(lambda: converged(tmp_path), timeout=60, what="convergence")
    assert d2.terminate()[0] == 0, d2.output()


def test_worker_processes_need_a_shared_broker(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(PIPELINE.replace('"redis://127.0.0.1:{port}/0"', "memory://")
                 .replace("partitions: 3}", "partitions: 3, worker_processes: 2}")
                 .format(n=1, port=0))
    res = cli("config", "check", str(p), expect=2)
    assert f"{p}:5:" in res.stderr and "daemon.worker_processes" in res.stderr
    assert "shared broker" in res.stderr
    # the command-line option on a pipeline that is valid without it: a usage error
    p.write_text(PIPELINE.replace('"redis://127.0.0.1:{port}/0"', "memory://")
                 .format(n=1, port=0))
    res = cli("daemon", "--worker-processes", "1", str(p), expect=2)
    assert "redis://" in res.stderr and "Traceback" not in res.stderr


def test_children_serve_metrics_on_the_ports_after_the_daemons() -> None:
    assert [child_port(9464, i) for i in range(3)] == [9465, 9466, 9467]
    assert child_port(0, 0) == child_port(0, 5) == 0  # any free port, like the daemon's
