"""An endpoint that cannot be reached when a command starts is tried again with backoff.

Retried, each retry logged; reported with a clear message (no traceback) when it stays
away; used as soon as it is back within the retries (a real PostgreSQL behind a port that
starts forwarding only after a while).
"""

from __future__ import annotations

import contextlib
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from config import load_pipeline
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from tests.fix_mariadb import MariaDBParams
from tests.ops.conftest import cdcsync


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(tmp: Path, dsn: str, *, tries: int, backoff: float) -> Path:
    (tmp / "b.db").touch()
    with sqlite3.connect(tmp / "b.db") as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    path = tmp / "p.yaml"
    path.write_text(f"""
pipeline: reach{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp}/state.db"}}
connect: {{tries: {tries}, backoff_s: {backoff}}}
endpoints:
  a: {{kind: postgres, dsn: "{dsn}"}}
  b: {{kind: sqlite, path: {tmp}/b.db}}
entities:
  t:
    key: [id]
    direction: one-way
    source: a
    endpoints: {{a: t, b: t}}
""")
    return path


def test_a_server_that_stays_away_is_retried_then_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, f"postgresql://postgres@127.0.0.1:{_free_port()}/nope",
                  tries=3, backoff=0.05)
    res = cdcsync("run", str(path), expect=1)
    assert res.stderr.count("retry ") == 2
    assert "retry 1/2" in res.stderr and "retry 2/2" in res.stderr
    assert "gave up after 3 attempts" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


class _LateForwarder:
    """Listens on ``port`` only after ``delay`` seconds, then forwards to ``target``."""

    def __init__(self, port: int, target: tuple[str, int], delay: float) -> None:
        self.port, self.target, self.delay = port, target, delay
        self.stop = threading.Event()
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        if self.stop.wait(self.delay):
            return
        with socket.create_server(("127.0.0.1", self.port)) as srv:
            srv.settimeout(0.1)
            while not self.stop.is_set():
                try:
                    client, _ = srv.accept()
                except TimeoutError:
                    continue
                self.accepted += 1
                upstream = socket.create_connection(self.target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := a.recv(65536):
                    b.sendall(data)
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.fixture
def late_pg(pg_dsn_factory: Callable[[], str]) -> Iterator[tuple[str, str, _LateForwarder]]:
    """A real database, and its URL through a port that opens 0.6 s from now."""
    dsn = pg_dsn_factory()
    parts = urlsplit(dsn)
    port = _free_port()
    fwd = _LateForwarder(port, (parts.hostname or "127.0.0.1", parts.port or 5432), 0.6)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    late = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
    yield dsn, late, fwd
    fwd.stop.set()
    fwd.thread.join(timeout=5)


def test_a_server_that_comes_back_during_the_retries_is_used(
        tmp_path: Path, late_pg: tuple[str, str, _LateForwarder]) -> None:
    dsn, late, fwd = late_pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        c.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    path = _write(tmp_path, late, tries=6, backoff=0.2)
    cfg = load_pipeline(path)
    t0 = time.monotonic()
    setup_pipeline(cfg)  # its first connection is refused: the port is not open yet
    assert time.monotonic() - t0 >= 0.5 and fwd.accepted > 0
    summary = run_pipeline(cfg)
    assert not summary.errors
    with sqlite3.connect(tmp_path / "b.db") as c:
        assert c.execute("SELECT id, name FROM t ORDER BY id").fetchall() == [
            (1, "one"), (2, "two")]
    setup_pipeline(cfg, "teardown")


@pytest.mark.parametrize("dsn", [
    "postgresql://cdcsync_no_such_role@127.0.0.1:5432/postgres",
    "postgresql://postgres@127.0.0.1:5432/cdcsync_no_such_database",
], ids=["unknown-role", "unknown-database"])
def test_a_server_that_refuses_us_is_reported_at_once(tmp_path: Path, dsn: str) -> None:
    """The server answered and said no: retrying only delays the message (with the
    defaults, ~17 s of retries before this change)."""
    path = _write(tmp_path, dsn, tries=5, backoff=0.5)
    for verb in ("setup", "run"):
        res = cdcsync(verb, str(path), expect=1)
        assert "retry" not in res.stderr, res.stderr
        assert "refused the connection" in res.stderr and "not retried" in res.stderr
        assert "does not exist" in res.stderr  # the server's own reason
        assert "Traceback" not in res.stderr + res.stdout


def test_a_mariadb_refusing_the_password_is_reported_at_once(
        tmp_path: Path, mariadb_params: MariaDBParams) -> None:
    from tests.connectors.mysql.test_pipeline_pg import maria_yaml

    p = {**mariadb_params, "password": "certainly-not-the-password"}
    (tmp_path / "b.db").touch()
    path = tmp_path / "p.yaml"
    path.write_text(f"""
pipeline: refused{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp_path}/state.db"}}
connect: {{tries: 5, backoff_s: 0.5}}
endpoints:
{maria_yaml("m", p)}  b: {{kind: sqlite, path: {tmp_path}/b.db}}
entities:
  t:
    key: [id]
    direction: one-way
    source: m
    endpoints: {{m: t, b: t}}
""")
    res = cdcsync("setup", str(path), expect=1)
    assert "retry" not in res.stderr, res.stderr
    assert "Access denied" in res.stderr and "not retried" in res.stderr
    assert "certainly-not-the-password" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr + res.stdout
