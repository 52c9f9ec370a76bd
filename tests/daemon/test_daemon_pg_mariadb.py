"""The daemon between the real PostgreSQL and MariaDB: continuous writes on both
sides while the daemon is killed with -9 at random moments and the target MariaDB
is stopped and started; every scenario converges with zero drift."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tests.daemon.helpers import Daemon, cli, wait_for

PG_TABLE = ("CREATE TABLE items (id int PRIMARY KEY, name text, qty int, "
            "price numeric(10,2), seen timestamptz)")
MARIA_TABLE = ("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100), qty INT, "
               "price DECIMAL(10,2), seen DATETIME(6))")
SEED = [(i, f"item {i}", i, f"{i}.50") for i in range(1, 31)]


def maria(params: dict[str, Any]) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(host=params["host"], port=int(params["port"]), user=params["user"],
                           password=params["password"], database=params["database"],
                           autocommit=True)


def make(tmp: Path, pg_dsn: str, mp: dict[str, Any]) -> Path:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(PG_TABLE)
        c.cursor().executemany(
            "INSERT INTO items VALUES (%s, %s, %s, %s, now())", SEED)
    with maria(mp) as c, c.cursor() as cur:
        cur.execute(MARIA_TABLE)
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6))", SEED)
    p = tmp / "pipeline.yaml"
    p.write_text(f"""
pipeline: pm{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp}/state.db"}}
daemon: {{metrics_port: 0, poll_ms: 10, lease_ttl_s: 2}}
endpoints:
  pg: {{kind: postgres, dsn: "{pg_dsn}"}}
  maria: {{kind: mysql, host: "{mp['host']}", port: {mp['port']}, user: "{mp['user']}",
          password: "{mp['password']}", database: "{mp['database']}",
          server_id: {random.randint(1_000_000, 2**31 - 1)}}}
entities:
  items:
    key: [id]
    endpoints: {{pg: items, maria: items}}
    conflict: {{policy: last_writer_wins}}
""")
    cli("setup", str(p))
    return p


def writer(pg_dsn: str, mp: dict[str, Any], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    pg = psycopg.connect(pg_dsn, autocommit=True)
    my: Any = None
    while not stop.is_set():
        k, qty = rng.randrange(1, 50), rng.randrange(1000)
        try:
            if rng.random() < 0.5:
                if rng.random() < 0.1:
                    pg.execute("DELETE FROM items WHERE id = %s", (k,))
                else:
                    pg.execute("INSERT INTO items VALUES (%s, %s, %s, 1.25, now()) ON CONFLICT "
                               "(id) DO UPDATE SET qty = excluded.qty, name = excluded.name",
                               (k, f"pg{qty}", qty))
            else:
                my = my or maria(mp)
                with my.cursor() as cur:
                    if rng.random() < 0.1:
                        cur.execute("DELETE FROM items WHERE id = %s", (k,))
                    else:
                        cur.execute("INSERT INTO items VALUES (%s, %s, %s, 2.75, "
                                    "UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE qty = VALUES(qty),"
                                    " name = VALUES(name)", (k, f"my{qty}", qty))
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
            my = None  # MariaDB is being restarted by the test: write again later
            stop.wait(0.2)
        stop.wait(0.003)
    pg.close()


def in_sync(p: Path) -> bool:
    return cli("verify", str(p), expect=None).returncode == 0


def restart_mariadb() -> None:
    subprocess.run(["mariadb-admin", "--protocol=socket", "-uroot", "shutdown"], check=True,
                   timeout=60)
    subprocess.run(["start-stop-daemon", "--stop", "--oknodo", "--exec", "/usr/sbin/mariadbd",
                    "--retry", "TERM/60/KILL/5"], check=True, timeout=90)
    time.sleep(1.0)  # the target stays down a moment, under load
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec",
                    "/usr/sbin/mariadbd"], check=True, timeout=30)
    wait_for(lambda: subprocess.run(
        ["mariadb", "--protocol=socket", "-uroot", "-N", "-e", "SELECT @@log_bin"],
        capture_output=True, text=True).stdout.strip() == "1", timeout=60, what="MariaDB back")


@pytest.mark.slow
def test_kill_9_and_a_target_restart_under_continuous_writes(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    p = make(tmp_path, pg_dsn, mariadb_params)
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(pg_dsn, mariadb_params, stop, 5), daemon=True)
    rng = random.Random(17)
    d = Daemon(p)
    d.wait_ready(timeout=120)
    w.start()
    try:
        time.sleep(1.5)
        restart_mariadb()  # the target goes away and comes back mid-stream
        time.sleep(1.5)
        for _ in range(2):
            time.sleep(rng.uniform(0.3, 1.5))
            d.kill()
            d = Daemon(p)
            d.wait_ready(timeout=120)
        time.sleep(1.0)
    finally:
        stop.set()
        w.join()
    wait_for(lambda: in_sync(p), timeout=180, what="PostgreSQL and MariaDB to converge")
    code, seconds = d.terminate()
    assert code == 0, d.output()
    assert seconds < 10
    assert "Traceback" not in d.output()


def binlog_dumps(mp: dict[str, Any]) -> set[int]:
    """Ids of the replica connections streaming MariaDB's binlog (this user's)."""
    with maria(mp) as c, c.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST"
                    " WHERE COMMAND LIKE 'Binlog Dump%%'")
        return {int(r[0]) for r in cur.fetchall()}


def test_the_binlog_stays_on_one_connection_under_writes_both_ways(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    """Our own writes at MariaDB arrive in its binlog between the users' changes. A
    reader that handed back the checkpoint from before them started the binlog over
    from it, on a new replica connection each time (~0.3 s each, while the server
    looks for the GTID): changes from MariaDB waited behind those restarts."""
    p = make(tmp_path, pg_dsn, mariadb_params)
    before = binlog_dumps(mariadb_params)
    d = Daemon(p)
    d.wait_ready(timeout=120)
    wait_for(lambda: binlog_dumps(mariadb_params) - before, what="the daemon's binlog reader")
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(pg_dsn, mariadb_params, stop, 11), daemon=True)
    w.start()
    seen: set[int] = set()
    try:
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            seen |= binlog_dumps(mariadb_params) - before
            time.sleep(0.05)
    finally:
        stop.set()
        w.join()
    wait_for(lambda: in_sync(p), timeout=120, what="PostgreSQL and MariaDB to converge")
    assert len(seen) == 1, f"{len(seen)} replica connections in 5 s"
    code, _ = d.terminate()
    assert code == 0, d.output()
