"""``daemon.worker_processes``: the daemon starts `cdcsync worker` children, leaves applying
to them, starts a dead one again, stops them with itself; orphans stop by themselves."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from sync.daemon import children
from sync.daemon.children import LocalWorkers, child_port
from tests.daemon.helpers import Daemon, PrivateRedis, cli, wait_for
from tests.daemon.test_daemon_redis import PIPELINE, apply_leases, converged, make
from tests.daemon.test_daemon_sqlite import _writer


def with_children(tmp: Path, redis: PrivateRedis, count: int) -> tuple[Path, Daemon, list[int]]:
    """A pipeline (tests.daemon.test_daemon_redis.make) whose daemon starts ``count``
    workers; the daemon, ready, and its workers' pids."""
    p = make(tmp, redis.port)
    p.write_text(p.read_text().replace(
        "partitions: 3}", f"partitions: 3, worker_processes: {count}}}"))
    d = Daemon(p)
    d.wait_ready()
    # Each worker is a fresh interpreter importing the whole stack: on a busy 2-core
    # machine (the full suite running) that took over 30 s once, hence the margins.
    try:
        pids: list[int] = wait_for(lambda: len(got := d.ready_state()["local_workers"])
                                   == count and got, timeout=90, what=f"{count} local workers")
    except AssertionError as exc:  # why the workers did not come up: the daemon's log says
        d.terminate()
        raise AssertionError(f"{exc}\nthe daemon's output:\n{d.output()[-4000:]}") from exc
    return p, d, pids


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
    p, d, children = with_children(tmp_path, private_redis, 2)
    for pid in children:
        parent, argv = parent_and_command(pid)
        assert parent == d.proc.pid
        assert "worker" in argv and str(p) in argv
    # the children apply, each a member with its share; the daemon holds no partition
    wait_for(lambda: sorted(len(ps) for ps in apply_leases(tmp_path).values()) == [1, 2],
             timeout=90, what="the partitions shared by the two children")
    assert d.ready_state()["partitions_held"] == []
    assert not any(h.split(":")[1] == str(d.proc.pid) for h in apply_leases(tmp_path))
    # `status` tells the operator who does what
    procs = {int(pr["holder"].split(":")[1]): pr["doing"] for pr in json.loads(
        cli("status", str(p), "--json", expect=None).stdout)["processes"]}
    assert procs[d.proc.pid] == ["reads a", "reads b"], procs
    assert sorted(procs[c] for c in children) == [
        ["applies 1 partition"], ["applies 2 partitions"]], procs

    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(tmp_path, stop, 5), daemon=True)
    writer.start()
    try:
        time.sleep(1.0)
        os.kill(children[0], 9)  # a child dies mid-stream: the daemon starts another
        fresh = wait_for(lambda: (pids := d.ready_state()["local_workers"]) and len(pids) == 2
                         and children[0] not in pids and pids, timeout=90,
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
    p, d, (child,) = with_children(tmp_path, private_redis, 1)
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


def test_a_metrics_port_in_use_is_a_clear_usage_error(tmp_path: Path) -> None:
    """Several processes on one machine meet this first (a second `cdcsync worker`, or a
    daemon's workers on the ports after its own): the address, and what to change."""
    p = tmp_path / "p.yaml"
    p.write_text(PIPELINE.replace('"redis://127.0.0.1:{port}/0"', "memory://")
                 .format(n=1, port=0))
    for db in ("a.db", "b.db"):
        sqlite3.connect(tmp_path / db).execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    cli("setup", str(p))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = cli("daemon", "--metrics-port", str(port), str(p), expect=2)
    assert f"cannot serve metrics on 127.0.0.1:{port}" in res.stderr
    assert "--metrics-port" in res.stderr and "Traceback" not in res.stderr


def test_children_serve_metrics_on_the_ports_after_the_daemons() -> None:
    assert [child_port(9464, i) for i in range(3)] == [9465, 9466, 9467]
    assert child_port(0, 0) == child_port(0, 5) == 0  # any free port, like the daemon's


def test_a_worker_that_cannot_be_started_is_tried_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No process to be had (here: no such program) is logged and tried again after the
    backoff, not raised in the supervising thread (which would end supervision)."""
    caplog.set_level(logging.WARNING, logger="cdcsync.daemon")
    monkeypatch.setattr(children, "_command", lambda: [str(tmp_path / "no-such-program")])
    workers = LocalWorkers(tmp_path / "p.yaml", 1, 0)
    workers.start()
    try:
        assert workers.pids() == []
        assert "local worker 1 could not be started" in caplog.text
        # a program that runs (and ignores the worker's arguments) is started next time
        monkeypatch.setattr(children, "_command",
                            lambda: [sys.executable, "-c", "import time; time.sleep(60)"])
        (pid,) = wait_for(workers.pids, timeout=10, what="the worker started again")
        assert alive(pid)
    finally:
        workers.terminate()
        workers.wait(time.monotonic() + 5)
    assert not alive(pid)
