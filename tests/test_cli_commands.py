"""The CLI's contract, through the real ``cdcsync`` as a subprocess (issue 2, item 8).

Exit codes (README: 0 success, 1 failure, 2 usage or configuration error, 3
success with items waiting for a steward), ``config show`` masking secrets,
``config check`` listing every problem, ``status``, and progress bars only on
a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_quickstart import EXAMPLE, cdcsync, run_json

CDCSYNC = Path(sys.executable).with_name("cdcsync")


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    """The quickstart's pipeline and seeded databases in a directory of their own."""
    for name in ("pipeline.yaml", "seed.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    subprocess.run([sys.executable, str(tmp_path / "seed.py"), "init"], check=True,
                   capture_output=True)
    return tmp_path


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_pipeline(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    c.close()
    p = tmp_path / "p.yaml"
    p.write_text(
        "pipeline: unreach\n"
        "state: {url: sqlite:///state.db}\n"
        "connect: {tries: 2, backoff_s: 0.05}\n"
        "endpoints:\n"
        "  a: {kind: sqlite, path: a.db}\n"
        f"  b: {{kind: postgres, dsn: 'postgresql://cdc:pw@127.0.0.1:{closed_port()}/x',"
        " connect_timeout: 2}\n"
        "entities:\n  t: {key: [id], endpoints: {a: t, b: t}}\n")
    return p


# --- exit codes ----------------------------------------------------------------------------


def test_run_against_an_unreachable_server_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    res = cdcsync("run", str(unreachable_pipeline(tmp_path)), expect=1)
    # One logged retry (connect: tries 2), then the error on a line of its own.
    assert res.stderr.startswith("WARNING cdcsync.retry: reading t at endpoint 'b' failed"), \
        res.stderr
    assert res.stderr.count("\nerror: ") == 1, res.stderr
    error = res.stderr.split("\nerror: ", 1)[1]  # the driver's text may span lines
    assert error.startswith("cannot connect to PostgreSQL at 127.0.0.1:")
    assert error.rstrip().endswith("(gave up after 2 attempts; the pipeline's connect:"
                                   " section sets how many)")
    assert "Traceback" not in res.stderr


def test_usage_errors_exit_2(quickstart: Path) -> None:
    p = str(quickstart / "pipeline.yaml")
    unknown = cdcsync("run", p, "--entity", "invoices", expect=2)
    assert "unknown entity 'invoices'; the pipeline has: customers" in unknown.stderr
    assert cdcsync("run", p, "--no-such-option", expect=2).returncode == 2
    assert cdcsync("frobnicate", expect=2).returncode == 2
    missing = cdcsync("run", str(quickstart / "nope.yaml"), expect=2)
    assert "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr
    assert "no conflict 'ffff'" in cdcsync("conflicts", "show", p, "ffff", expect=2).stderr


# --- config check / show -------------------------------------------------------------------


def test_config_check_lists_every_problem_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "pipeline: demo\n"
        "batch: {size: -5}\n"
        "endpoints:\n"
        "  crm: {kind: sqlite, path: crm.db, colour: blue}\n"
        "  billing: {kind: oracle}\n"
        "entities:\n"
        "  customers:\n"
        "    key: [id]\n"
        "    endpoints: {crm: customers, shop: clients}\n")
    res = cdcsync("config", "check", str(bad), expect=2)
    assert res.stdout == ""
    assert res.stderr.splitlines() == [
        f"{bad}:2:15: batch.size: should be greater than or equal to 1, got -5",
        f"{bad}:4:37: endpoints.crm.colour: unknown key 'colour'; expected one of: kind, path",
        f"{bad}:5:19: endpoints.billing.kind: unknown endpoint kind 'oracle'; expected one "
        "of: sqlite, postgres, mysql, rest",
        f"{bad}:9:39: entities.customers.endpoints.shop: unknown endpoint 'shop' (defined "
        "endpoints: billing, crm)",
    ]


def test_config_show_prints_the_resolved_file_with_secrets_masked(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "pipeline: masked\n"
        "state: {url: 'postgresql+psycopg://cdc:${STATE_PW}@db:5432/state'}\n"
        "broker: {url: 'redis://:${REDIS_PW}@cache:6379/0'}\n"
        "endpoints:\n"
        "  crm: {kind: sqlite, path: crm.db}\n"
        "  billing: {kind: postgres, dsn: 'postgresql://cdc:${PGPASSWORD}@db:5432/billing'}\n"
        "  shop: {kind: mysql, user: cdc, password: '${MYSQL_PWD:-fallback-Secret}', "
        "database: shop}\n"
        "entities:\n"
        "  customers: {key: [id], endpoints: {crm: customers, billing: clients, "
        "shop: customers}}\n")
    secrets = {"STATE_PW": "st-Secret-1", "REDIS_PW": "rd-Secret-2", "PGPASSWORD": "pg-Secret-3"}
    res = subprocess.run([str(CDCSYNC), "config", "show", str(p)], capture_output=True,
                         text=True, env={**os.environ, **secrets}, timeout=60)
    assert res.returncode == 0, res.stderr
    for secret in [*secrets.values(), "fallback-Secret"]:
        assert secret not in res.stdout and secret not in res.stderr
    assert "postgresql+psycopg://cdc:***@db:5432/state" in res.stdout
    assert "redis://:***@cache:6379/0" in res.stdout
    assert "postgresql://cdc:***@db:5432/billing" in res.stdout
    assert "password: '***'" in res.stdout or "password: ***" in res.stdout
    assert f"path: {tmp_path / 'crm.db'}" in res.stdout  # resolved against the file


# --- status --------------------------------------------------------------------------------


def test_status_shows_checkpoints_runs_and_what_waits_for_a_steward(quickstart: Path) -> None:
    p = quickstart / "pipeline.yaml"
    cdcsync("setup", str(p))
    run_json(p)
    subprocess.run([sys.executable, str(quickstart / "seed.py"), "edit"],
                   check=True, capture_output=True)
    run_json(p, expect=3)

    res = cdcsync("status", str(p), "--json", expect=3)  # a conflict waits for a steward
    info = json.loads(res.stdout)
    assert info["open_conflicts"] == 1
    assert info["outbox"] == 0
    assert info["warnings"] == []
    assert {c["endpoint"] for c in info["checkpoints"]} == {"crm", "billing"}
    assert [r["status"] for r in info["runs"]][:2] == ["attention", "ok"]  # newest first
    text = cdcsync("status", str(p), expect=3).stdout
    assert "open conflicts: 1" in text and "recent runs" in text

    # Decided column by column: billing's e-mail (the only column both sides edited).
    [conflict] = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
    bad = cdcsync("conflicts", "resolve", str(p), conflict["id"], "--field", "email", expect=2)
    assert "--field takes COLUMN=ENDPOINT, not 'email'" in bad.stderr
    cdcsync("conflicts", "resolve", str(p), conflict["id"], "--field", "email=billing",
            "--by", "ann", "--note", "billing owns e-mail")
    data = quickstart / "data"
    with sqlite3.connect(data / "crm.db") as crm, sqlite3.connect(data / "billing.db") as bill:
        assert crm.execute("SELECT email FROM customers WHERE id = 2").fetchall() == [
            ("ghopper@billing.example",)]
        assert bill.execute("SELECT email FROM clients WHERE client_id = 2").fetchall() == [
            ("ghopper@billing.example",)]
    crm.close()
    bill.close()
    with sqlite3.connect(data / "state.db") as state:
        [(actor, action, detail)] = state.execute(
            "SELECT actor, action, detail FROM audit WHERE action LIKE 'conflict.%'").fetchall()
    state.close()
    assert (actor, action) == ("ann", "conflict.resolve")
    assert json.loads(detail)["conflict"] == conflict["id"]
    assert "billing owns e-mail" in detail
    assert json.loads(cdcsync("status", str(p), "--json").stdout)["open_conflicts"] == 0
    cdcsync("verify", str(p))


def test_status_reports_an_unreachable_endpoint_as_a_warning(tmp_path: Path) -> None:
    res = cdcsync("status", str(unreachable_pipeline(tmp_path)), "--json", expect=3)
    info = json.loads(res.stdout)
    a, b = info["warnings"]
    assert a == f"a: {tmp_path / 'a.db'} is not set up for capture: run `cdcsync setup`"
    assert b.startswith("endpoint b unreachable: cannot connect to PostgreSQL at 127.0.0.1:"), b
    assert info["open_conflicts"] == 0 and info["checkpoints"] == []


def test_a_run_that_fails_before_it_begins_is_in_the_history_and_status_names_it(
        tmp_path: Path) -> None:
    """A run that stopped while opening its endpoints (a server out of reach, a table that
    drifted) was in no history: ``status`` showed the last run that began, ok, and
    exited 0 however many runs failed since."""
    p = unreachable_pipeline(tmp_path)
    cdcsync("run", str(p), expect=1)
    info = json.loads(cdcsync("status", str(p), "--json", expect=3).stdout)
    assert [(r["command"], r["status"]) for r in info["runs"]] == [("run", "failed")]
    said = [w for w in info["warnings"] if w.startswith("the last run (#")]
    assert len(said) == 1 and "Error: cannot connect to PostgreSQL at 127.0.0.1:" in said[0], said


# --- progress bars -------------------------------------------------------------------------


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run cdcsync with stdout and stderr on a pseudo-terminal; its exit code and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(CDCSYNC), *args], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=120), out.decode("utf-8", "replace")


def test_progress_bars_show_on_a_terminal_only(quickstart: Path) -> None:
    p = str(quickstart / "pipeline.yaml")
    cdcsync("setup", p)
    code, tty = on_a_terminal("run", p)
    assert code == 0
    assert "snapshot crm" in tty and "snapshot billing" in tty
    subprocess.run([sys.executable, str(quickstart / "seed.py"), "edit"],
                   check=True, capture_output=True)
    code, tty = on_a_terminal("run", p)
    assert code == 3
    assert "read crm" in tty and "read billing" in tty  # the catch-up of each source log

    # The same commands with output to a pipe: no bar, no escape sequence.
    piped = cdcsync("resync", p, "customers")
    again = cdcsync("run", p, expect=None)
    for res in (piped, again):
        assert "snapshot crm" not in res.stdout + res.stderr
        assert "read crm" not in res.stdout + res.stderr
        assert "\x1b[" not in res.stdout + res.stderr
    assert "cdcsync run: quickstart" in again.stdout


def test_the_summary_table_accounts_for_every_apply(quickstart: Path) -> None:
    """Per direction: read, applied, echoes, resolved, parked, duration; the applied column
    adds up to the run's total, merges written back to an edit's own side included."""
    p = str(quickstart / "pipeline.yaml")
    cdcsync("setup", p)
    cdcsync("run", p)
    subprocess.run([sys.executable, str(quickstart / "seed.py"), "edit"], check=True,
                   capture_output=True)
    table = cdcsync("run", p, expect=3).stdout
    header = next(line for line in table.splitlines() if "direction" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "entity", "direction", "read", "applied", "echoes dropped", "conflicts resolved",
        "conflicts parked", "duration"]
    cells = [[c.strip() for c in line.strip("│").split("│")]
             for line in table.splitlines() if line.startswith("│ customers")]
    by_direction = {c[1]: c[2:7] for c in cells}
    assert by_direction == {"crm -> billing": ["3", "2", "0", "0", "0"],
                            "billing -> crm": ["4", "1", "0", "1", "1"],
                            "merge -> crm": ["0", "1", "0", "0", "0"]}
    last = json.loads(cdcsync("status", p, "--json", expect=3).stdout)["runs"][0]["summary"]
    assert last["totals"]["applied"] == sum(int(c[3]) for c in cells) == 4
    assert last["totals"]["read"] == sum(int(c[2]) for c in cells) == 7


def test_verify_reports_missing_extra_and_differing_rows(quickstart: Path) -> None:
    p = str(quickstart / "pipeline.yaml")
    cdcsync("setup", p)
    cdcsync("run", p)
    assert json.loads(cdcsync("verify", p, "--json").stdout)[0]["in_sync"] is True
    cdcsync("teardown", p, "--yes")  # edits behind the service's back from now on
    with sqlite3.connect(quickstart / "data" / "billing.db") as c:
        c.execute("DELETE FROM clients WHERE client_id = 1")
        c.execute("INSERT INTO clients (client_id, full_name, email) VALUES (9, 'Extra', 'x@y')")
        c.execute("UPDATE clients SET tier = 'lead' WHERE client_id = 3")
        c.execute("UPDATE clients SET balance = 5 WHERE client_id = 2")  # not synchronised
    c.close()
    res = cdcsync("verify", p, "--json", expect=1)
    [report] = json.loads(res.stdout)
    assert report["in_sync"] is False
    got = {what: report[what]["billing"]["count"] for what in ("missing", "extra", "differing")}
    assert got == {"missing": 1, "extra": 1, "differing": 1}
    text = cdcsync("verify", p, expect=1).stdout
    assert "DRIFT found" in text


def test_teardown_is_refused_while_a_batch_run_holds_the_pipeline(quickstart: Path) -> None:
    """The run lock as a live `cdcsync run` holds it: the teardown removes nothing."""
    from config import load_pipeline
    from sync.runlock import RunLock
    from sync.state import open_store

    p = str(quickstart / "pipeline.yaml")
    cdcsync("setup", p)
    cfg = load_pipeline(quickstart / "pipeline.yaml")
    db = quickstart / "data" / "billing.db"
    triggers = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
    with sqlite3.connect(db) as c:
        before = c.execute(triggers).fetchone()[0]
    c.close()
    assert before > 0
    store = open_store(cfg.state.url)  # (made absolute by the loader)
    try:
        with RunLock(store, cfg.pipeline, holder="elsewhere:42:run"):
            res = cdcsync("teardown", p, "--yes", expect=1)
    finally:
        store.close()
    assert "elsewhere:42:run (batch run)" in res.stderr and "Traceback" not in res.stderr
    with sqlite3.connect(db) as c:
        assert c.execute(triggers).fetchone()[0] == before
    c.close()
    cdcsync("teardown", p, "--yes")  # the lock released: it goes ahead
    with sqlite3.connect(db) as c:
        assert c.execute(triggers).fetchone()[0] == 0
    c.close()
