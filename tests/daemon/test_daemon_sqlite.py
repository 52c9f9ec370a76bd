"""The daemon end to end on SQLite endpoints with the in-process broker."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.daemon.helpers import Daemon, cli, wait_for

PIPELINE = """
pipeline: d{n}
state: {{url: sqlite:///state.db}}
daemon: {{metrics_port: 0, poll_ms: 10, lease_ttl_s: 2}}
endpoints:
  a: {{kind: sqlite, path: a.db}}
  b: {{kind: sqlite, path: b.db}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
    conflict: {{policy: last_writer_wins}}
"""


def make(tmp: Path) -> Path:
    for db in ("a.db", "b.db"):
        with sqlite3.connect(tmp / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
            c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                          [(i, f"item {i}", i) for i in range(1, 21)])
    p = tmp / "pipeline.yaml"
    p.write_text(PIPELINE.format(n=random.randrange(10**6)))
    cli("setup", str(p))
    return p


def rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db, timeout=30) as c:
        return c.execute("SELECT id, name, qty FROM items ORDER BY id").fetchall()


def log_rows(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as c:
        return int(c.execute("SELECT count(*) FROM _cdcsync_log").fetchone()[0])


def test_edits_flow_both_ways_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    p = make(tmp_path)
    d = Daemon(p)
    d.wait_ready()
    wait_for(lambda: d.ready_state()["sources_held"], what="the daemon to hold its sources")
    busy = cli("run", str(p), expect=1)  # a batch run beside the daemon would read its logs
    assert "in progress" in busy.stderr and "daemon" in busy.stderr
    assert "Traceback" not in busy.stderr
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("UPDATE items SET name = 'from a' WHERE id = 1")
        c.execute("INSERT INTO items VALUES (100, 'new in a', 1)")
    with sqlite3.connect(tmp_path / "b.db") as c:
        c.execute("UPDATE items SET qty = 999 WHERE id = 2")
        c.execute("DELETE FROM items WHERE id = 3")
    wait_for(lambda: rows(tmp_path / "a.db") == rows(tmp_path / "b.db")
             and (100, "new in a", 1) in rows(tmp_path / "b.db")
             and (2, "item 2", 999) in rows(tmp_path / "a.db"), what="both sides to converge")
    assert all(r[0] != 3 for r in rows(tmp_path / "a.db"))
    # The logs are pruned up to what was confirmed (reader.PRUNE_EVERY): they grew for
    # as long as a daemon ran, the user's edits and the service's own writes alike.
    wait_for(lambda: log_rows(tmp_path / "a.db") == log_rows(tmp_path / "b.db") == 0,
             timeout=30, what="the change logs to be pruned")
    code, seconds = d.terminate()
    assert code == 0, d.output()
    assert seconds < 10
    assert "Traceback" not in d.output()
    cli("verify", str(p))
    # Fixed point after the daemon: a batch run finds nothing to apply.
    out = cli("run", str(p), "--json").stdout
    assert '"applied": 0' in out


def _writer(tmp: Path, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        db = tmp / rng.choice(["a.db", "b.db"])
        try:
            with sqlite3.connect(db, timeout=30) as c:
                k = rng.randrange(1, 40)
                if rng.random() < 0.15:
                    c.execute("DELETE FROM items WHERE id = ?", (k,))
                else:
                    c.execute("INSERT INTO items VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE "
                              "SET name = excluded.name, qty = excluded.qty",
                              (k, f"w{rng.randrange(1000)}", rng.randrange(100)))
        except sqlite3.OperationalError:
            pass
        stop.wait(0.005)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    p = make(tmp_path)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(tmp_path, stop, 7), daemon=True)
    writer.start()
    rng = random.Random(11)
    try:
        for _ in range(4):
            d = Daemon(p)
            d.wait_ready()
            threading.Event().wait(rng.uniform(0.3, 2.0))
            d.kill()
    finally:
        stop.set()
        writer.join()
    d = Daemon(p)
    d.wait_ready()
    wait_for(lambda: rows(tmp_path / "a.db") == rows(tmp_path / "b.db"), timeout=90,
             what="convergence after the kills")
    code, _ = d.terminate()
    assert code == 0, d.output()
    cli("verify", str(p))


def triggers(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=30) as c:
        return [n for (n,) in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")]


def test_teardown_is_refused_while_a_daemon_runs_and_removes_nothing(tmp_path: Path) -> None:
    """A teardown under a live daemon would pull its capture from under it, and stop
    at the first endpoint that refuses (some torn down, others not)."""
    p = make(tmp_path)
    before = {db: triggers(tmp_path / db) for db in ("a.db", "b.db")}
    assert all(before.values())
    d = Daemon(p)
    d.wait_ready()
    wait_for(lambda: d.ready_state()["sources_held"], what="the daemon to hold its sources")
    busy = cli("teardown", str(p), "--yes", expect=1)
    assert f":{d.proc.pid}:" in busy.stderr and "(reads a, reads b)" in busy.stderr
    assert "stop it before the teardown" in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr
    assert {db: triggers(tmp_path / db) for db in ("a.db", "b.db")} == before
    with sqlite3.connect(tmp_path / "a.db") as c:  # capture still works
        c.execute("UPDATE items SET name = 'after the refused teardown' WHERE id = 4")
    wait_for(lambda: rows(tmp_path / "b.db")[3][1] == "after the refused teardown",
             what="the edit to arrive")
    status = json.loads(cli("status", str(p), "--json", expect=None).stdout)
    [proc] = status["processes"]  # what an operator checks before a teardown
    assert proc["holder"].split(":")[1] == str(d.proc.pid)
    assert proc["doing"] == ["reads a", "reads b"] and proc["alive"] is True
    text = cli("status", str(p), expect=None).stdout
    assert "processes working on the pipeline" in text and "reads a, reads b" in text
    assert d.terminate()[0] == 0
    assert json.loads(cli("status", str(p), "--json", expect=None).stdout)["processes"] == []
    done = cli("teardown", str(p), "--yes")
    assert "teardown complete" in done.stdout
    assert triggers(tmp_path / "a.db") == triggers(tmp_path / "b.db") == []


def test_teardown_force_goes_on_beside_a_live_lease(tmp_path: Path) -> None:
    p = make(tmp_path)
    p.write_text(p.read_text().replace("lease_ttl_s: 2", "lease_ttl_s: 60"))
    d = Daemon(p)
    d.wait_ready()
    wait_for(lambda: d.ready_state()["sources_held"], what="the daemon to hold its sources")
    d.kill()  # its leases live on until their TTL: --force is for such leftovers
    [proc] = json.loads(cli("status", str(p), "--json", expect=None).stdout)["processes"]
    assert proc["alive"] is False and proc["until"] > time.time() + 30, proc
    assert "process gone" in cli("status", str(p), expect=None).stdout
    busy = cli("teardown", str(p), "--yes", expect=1)
    assert "that process is gone, and its lease ends within" in busy.stderr, busy.stderr
    cli("teardown", str(p), "--yes", "--force")
    assert triggers(tmp_path / "a.db") == triggers(tmp_path / "b.db") == []


def _blocked_gauge(d: Daemon, source: str) -> float:
    """``cdcsync_source_blocked`` of ``source`` on the daemon's /metrics."""
    import re
    import urllib.request

    m = re.search(r"ready on (http://\S+)", d.output())
    assert m, d.output()
    with urllib.request.urlopen(m.group(1) + "/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.search(r'^cdcsync_source_blocked\{[^}]*endpoint="' + source + r'"[^}]*\} (\S+)$',
                      text, re.M)
    assert found, text
    return float(found.group(1))


def test_an_unreadable_value_holds_its_source_until_the_row_is_fixed(tmp_path: Path) -> None:
    """'n/a' written into an INTEGER column stopped the daemon (every source) at the
    first read of it. Now that source's reader waits, saying why (log, /readyz), the
    other source reads on, and the user's fix of the row (a later change, which
    supersedes the unreadable one) lets everything behind it through."""
    p = make(tmp_path)
    d = Daemon(p)
    d.wait_ready()
    wait_for(lambda: len(d.ready_state()["sources_held"]) == 2, what="both sources held")
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("INSERT INTO items VALUES (199, 'before it', 1)")
        c.execute("INSERT INTO items VALUES (200, 'bad', 'n/a')")
        c.execute("INSERT INTO items VALUES (201, 'behind it', 1)")
    c.close()
    blocked = wait_for(lambda: d.ready_state().get("sources_blocked"),
                       what="source a to be reported blocked")
    assert list(blocked) == ["a"] and "'n/a'" in blocked["a"], blocked
    assert _blocked_gauge(d, "a") == 1.0
    with sqlite3.connect(tmp_path / "b.db") as c:  # the other source reads on
        c.execute("UPDATE items SET name = 'from b' WHERE id = 5")
    c.close()
    wait_for(lambda: (5, "from b", 5) in rows(tmp_path / "a.db"), what="b's edit at a")
    held = [r[0] for r in rows(tmp_path / "b.db") if r[0] >= 199]
    assert held == [199], held  # what a logged before the bad row arrived
    assert d.proc.poll() is None and d.ready_state()["ok"] is True
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("UPDATE items SET qty = 7 WHERE id = 200")  # the fix
    c.close()
    wait_for(lambda: {(200, "bad", 7), (201, "behind it", 1)} <= set(rows(tmp_path / "b.db")),
             what="the fixed row and the one behind it at b")
    wait_for(lambda: not d.ready_state().get("sources_blocked"), what="a to read on")
    assert _blocked_gauge(d, "a") == 0.0
    code, _ = d.terminate()
    assert code == 0, d.output()
    out = d.output()
    assert out.count("waits for a row to be fixed") == 1 and "Traceback" not in out, out
    cli("verify", str(p))


def test_a_snapshot_row_it_cannot_read_holds_the_start_until_the_row_is_fixed(
        tmp_path: Path) -> None:
    """The daemon's initial snapshot met 'n/a' in an INTEGER column and the daemon
    exited. Now it waits, says why once (log, /readyz ``snapshot_blocked``, not ready),
    and starts once the row is fixed at the source."""
    import socket
    import urllib.error
    import urllib.request

    p = make(tmp_path)
    with socket.socket() as s:  # (the daemon says its port once it is ready: too late)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p.write_text(p.read_text().replace("metrics_port: 0", f"metrics_port: {port}"))
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("INSERT INTO items VALUES (300, 'bad', 'n/a')")
    c.close()
    d = Daemon(p)

    def readyz() -> dict[str, object]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as e:
            return json.loads(e.read())  # type: ignore[no-any-return]

    wait_for(lambda: "the snapshot waits for a row to be fixed" in d.output(),
             what="the snapshot to wait")
    state = readyz()
    assert state["ok"] is False and "'n/a'" in str(state["snapshot_blocked"]), state
    assert d.proc.poll() is None
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("UPDATE items SET qty = 3 WHERE id = 300")
    c.close()
    d.wait_ready()
    wait_for(lambda: (300, "bad", 3) in rows(tmp_path / "b.db"), what="the fixed row at b")
    assert "snapshot_blocked" not in d.ready_state()
    code, _ = d.terminate()
    assert code == 0, d.output()
    assert d.output().count("the snapshot waits") == 1, d.output()
    cli("verify", str(p))
