"""The daemon while a target database is stopped and started, on a MariaDB of its own.

The test starts a private MariaDB server (its own data directory and port, ROW
binlog), so stopping it disturbs nobody else on the machine; the shared server
on 3306 is never touched. SQLite ``a`` <-> private MariaDB ``m``, last writer
wins, continuous writes on both sides while the target is stopped and started
and the daemon is killed with -9 at random moments. Beyond convergence (zero
drift, SIGTERM exits 0 within 10 s), it checks that:

* the circuit breaker of the stopped target opens and closes again once the
  target is back (``cdcsync_breaker_state`` on ``/metrics``);
* no change is applied twice in effect: every write carries a global,
  increasing sequence number, and most keys are written on one side only, so
  at each endpoint such a key's history (kept by a trigger) never goes back to
  an older value, which a stale or replayed apply after a crash would do;
* every conflict is recorded once, not again by a replay.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.daemon.helpers import Daemon, cli, wait_for

MARIADBD = "/usr/sbin/mariadbd"


class PrivateMariaDB:
    """A MariaDB server of this test's own, stopped and started at will."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # Outside pytest's tmp_path, which the server's user may not traverse.
        self.dir = Path(tempfile.mkdtemp(prefix="cdcsync-mariadb-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.data.mkdir()
        subprocess.run(["mariadb-install-db", f"--datadir={self.data}", "--user=mysql",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(["chown", "-R", "mysql:mysql", str(self.dir)], check=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with (self.dir / "err.log").open("a") as err:  # the child keeps its own descriptor
            self.proc = self._spawn(err)
        wait_for(self._answers, timeout=60, what="the private MariaDB to start")

    def _spawn(self, err: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.data}", "--user=mysql",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.dir}/sock", f"--pid-file={self.dir}/pid",
             f"--log-bin={self.data}/bin", "--server-id=7", "--binlog-format=ROW",
             "--binlog-row-image=FULL", "--binlog-row-metadata=FULL",
             "--innodb-buffer-pool-size=32M", "--skip-name-resolve"],
            stdout=subprocess.DEVNULL, stderr=err)

    def _answers(self) -> bool:
        with self.connect() as c, c.cursor() as cur:
            cur.execute("SELECT @@log_bin")
            return bool(cur.fetchone() == (1,))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a clean shutdown, as an operator stops a server
            self.proc.wait(timeout=60)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self, database: str | None = None) -> pymysql.connections.Connection[Any]:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                               database=database, autocommit=True, connect_timeout=2)


@pytest.fixture
def private_mariadb() -> Iterator[PrivateMariaDB]:
    m = PrivateMariaDB()
    yield m
    m.remove()


SQLITE_HISTORY = [
    "CREATE TABLE hist (n INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER, qty INTEGER)",
    "CREATE TRIGGER hist_i AFTER INSERT ON items BEGIN "
    "INSERT INTO hist (id, qty) VALUES (NEW.id, NEW.qty); END",
    "CREATE TRIGGER hist_u AFTER UPDATE ON items BEGIN "
    "INSERT INTO hist (id, qty) VALUES (NEW.id, NEW.qty); END",
]
MARIA_HISTORY = [
    "CREATE TABLE hist (n BIGINT AUTO_INCREMENT PRIMARY KEY, id INT, qty BIGINT)",
    "CREATE TRIGGER hist_i AFTER INSERT ON items FOR EACH ROW "
    "INSERT INTO hist (id, qty) VALUES (NEW.id, NEW.qty)",
    "CREATE TRIGGER hist_u AFTER UPDATE ON items FOR EACH ROW "
    "INSERT INTO hist (id, qty) VALUES (NEW.id, NEW.qty)",
]


def make(tmp: Path, m: PrivateMariaDB) -> Path:
    seed = [(i, f"v{i}", i) for i in range(1, 31)]
    with sqlite3.connect(tmp / "a.db") as c:
        c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
        for ddl in SQLITE_HISTORY:
            c.execute(ddl)
        c.executemany("INSERT INTO items VALUES (?, ?, ?)", seed)
    with m.connect() as c, c.cursor() as cur:
        cur.execute("CREATE DATABASE t")
        cur.execute("USE t")
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT)")
        for ddl in MARIA_HISTORY:
            cur.execute(ddl)
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s)", seed)
    p = tmp / "pipeline.yaml"
    p.write_text(f"""
pipeline: tr{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp}/state.db"}}
daemon: {{metrics_port: 0, poll_ms: 10, lease_ttl_s: 2}}
endpoints:
  a: {{kind: sqlite, path: "{tmp}/a.db"}}
  m: {{kind: mysql, host: 127.0.0.1, port: {m.port}, user: root, password: "", database: t,
      server_id: {random.randint(1_000_000, 2**31 - 1)}}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, m: items}}
    conflict: {{policy: last_writer_wins}}
""")
    cli("setup", str(p))
    return p


ONLY_A, ONLY_M = range(1, 16), range(16, 31)  # keys written at one side only; the rest at both


def side_of(key: int, rng: random.Random) -> str:
    return "a" if key in ONLY_A else "m" if key in ONLY_M else rng.choice("am")


def writer(tmp: Path, m: PrivateMariaDB, stop: threading.Event, seed: int) -> None:
    """Writes with increasing numbers; keys 31-39 on both sides (conflicts), others on one."""
    rng = random.Random(seed)
    seq = itertools.count(1000)
    my: Any = None
    while not stop.is_set():
        k, n = rng.randrange(1, 40), next(seq)
        delete = rng.random() < 0.1
        try:
            if side_of(k, rng) == "a":
                with sqlite3.connect(tmp / "a.db", timeout=30) as c:
                    if delete:  # the delete's number is written first: history sees it
                        c.execute("UPDATE items SET qty = ? WHERE id = ?", (n, k))
                        c.execute("DELETE FROM items WHERE id = ?", (k,))
                    else:
                        c.execute("INSERT INTO items VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE"
                                  " SET name = excluded.name, qty = excluded.qty",
                                  (k, f"a{n}", n))
            else:
                my = my or m.connect("t")
                my.begin()
                with my.cursor() as cur:
                    if delete:
                        cur.execute("UPDATE items SET qty = %s WHERE id = %s", (n, k))
                        cur.execute("DELETE FROM items WHERE id = %s", (k,))
                    else:
                        cur.execute("INSERT INTO items VALUES (%s, %s, %s) ON DUPLICATE KEY "
                                    "UPDATE name = VALUES(name), qty = VALUES(qty)",
                                    (k, f"m{n}", n))
                my.commit()
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
            my = None  # the server is stopped by the test: write again later
            stop.wait(0.2)
        except sqlite3.OperationalError:
            pass
        stop.wait(0.006)  # commit times apart, so last-writer-wins follows the numbers


def metric(d: Daemon, name: str, **labels: str) -> float | None:
    found = re.search(r"ready on (http://\S+)", d.output())
    assert found, d.output()
    with urllib.request.urlopen(found.group(1) + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def goes_back(history: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(key, value, earlier larger value) wherever a single-writer key's history went back.

    Keys written on both sides are left out: last writer wins may rightly pick the
    smaller number there, since MariaDB's binlog dates commits to the second.
    """
    seen: dict[int, int] = {}
    back = []
    for key, qty in history:
        if key not in ONLY_A and key not in ONLY_M:
            continue
        if qty < seen.get(key, qty):
            back.append((key, qty, seen[key]))
        seen[key] = max(qty, seen.get(key, qty))
    return back


@pytest.mark.slow
@pytest.mark.parametrize("kills", [0, 2])
def test_target_stopped_and_started_and_kill_9_under_writes_on_both_sides(
        tmp_path: Path, private_mariadb: PrivateMariaDB, kills: int) -> None:
    m = private_mariadb
    p = make(tmp_path, m)
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(tmp_path, m, stop, 23), daemon=True)
    rng = random.Random(29)
    d = Daemon(p)
    d.wait_ready(timeout=120)
    w.start()
    try:
        time.sleep(1.5)
        m.stop()  # the target goes away mid-stream; writes on a go on
        wait_for(lambda: metric(d, "cdcsync_breaker_state", endpoint="m") == 1, timeout=60,
                 what="the breaker of the stopped target to open")
        time.sleep(1.0)
        assert d.proc.poll() is None, d.output()  # a target down is not fatal
        m.start()
        wait_for(lambda: metric(d, "cdcsync_breaker_state", endpoint="m") == 0, timeout=60,
                 what="the breaker to close once the target is back")
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.5))
            d.kill()
            d = Daemon(p)
            d.wait_ready(timeout=120)
        time.sleep(1.0)
    finally:
        stop.set()
        w.join()
    try:
        wait_for(lambda: cli("verify", str(p), expect=None).returncode == 0, timeout=120,
                 what="a and m to converge")
    except AssertionError:
        with m.connect("t") as c, c.cursor() as cur:
            cur.execute("SELECT id, name, qty FROM items ORDER BY id")
            at_m = cur.fetchall()
        with sqlite3.connect(tmp_path / "a.db") as c:
            at_a = c.execute("SELECT id, name, qty FROM items ORDER BY id").fetchall()
        raise AssertionError(f"not converged: {cli('verify', str(p), expect=None).stdout}\n"
                             f"only at a: {sorted(set(at_a) - set(at_m))}\n"
                             f"only at m: {sorted(set(at_m) - set(at_a))}") from None
    code, seconds = d.terminate()
    assert code == 0, d.output()
    assert seconds < 10
    assert "Traceback" not in d.output()

    with sqlite3.connect(tmp_path / "a.db") as c:
        hist_a = c.execute("SELECT id, qty FROM hist ORDER BY n").fetchall()
    with m.connect("t") as c, c.cursor() as cur:
        cur.execute("SELECT id, qty FROM hist ORDER BY n")
        hist_m = [(int(i), int(q)) for i, q in cur.fetchall()]
    assert len(hist_a) > 100 and len(hist_m) > 100  # both sides were written to
    assert goes_back(hist_a) == [], "a stale version was applied at a"
    assert goes_back(hist_m) == [], "a stale version was applied at m"

    with sqlite3.connect(tmp_path / "state.db") as c:
        recorded = c.execute("SELECT key, sides FROM conflicts").fetchall()
    keyed = [(k, json.dumps(json.loads(s), sort_keys=True)) for k, s in recorded]
    assert len(keyed) == len(set(keyed)), "a conflict was recorded twice"


def test_goes_back_finds_a_stale_value() -> None:
    assert goes_back([(1, 5), (1, 7), (2, 1), (1, 6), (1, 8)]) == [(1, 6, 7)]
    assert goes_back([(1, 5), (1, 5), (1, 9)]) == []
    assert goes_back([(35, 7), (35, 6)]) == []  # written on both sides: not judged
