"""The quickstart, end to end, through the real CLI as a subprocess, on SQLite files."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "quickstart"


def cdcsync(*args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cdcsync")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sync.cli"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    if expect is not None:
        assert res.returncode == expect, (res.returncode, res.stdout, res.stderr)
    return res


def run_json(pipeline: Path, expect: int = 0) -> dict[str, Any]:
    res = cdcsync("run", str(pipeline), "--json", expect=expect)
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    for name in ("pipeline.yaml", "seed.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    subprocess.run([sys.executable, str(tmp_path / "seed.py"), "init"], check=True,
                   capture_output=True)
    return tmp_path


def test_quickstart_end_to_end(quickstart: Path) -> None:
    p = quickstart / "pipeline.yaml"
    crm, billing = quickstart / "data" / "crm.db", quickstart / "data" / "billing.db"
    cdcsync("config", "check", str(p))
    cdcsync("setup", str(p))

    # First run: snapshot. Equal rows are the baseline; billing's extra client reaches the CRM.
    first = run_json(p)
    assert first["status"] == "ok"
    assert first["totals"]["applied"] == 1
    assert rows(crm, "SELECT name, email, tier FROM customers WHERE id = 5") == [
        ("Barbara Liskov", "barbara@example.com", "gold")]

    subprocess.run([sys.executable, str(quickstart / "seed.py"), "edit"], check=True,
                   capture_output=True)
    second = run_json(p, expect=3)  # a conflict waits for a steward
    assert second["totals"]["resolved"] == 1
    assert second["totals"]["parked"] == 1
    assert second["open_conflicts"] == 1
    # Customer 1: different columns edited on each side -> merged on both.
    for db, table, key in ((crm, "customers", "id"), (billing, "clients", "client_id")):
        assert rows(db, f"SELECT phone, tier FROM {table} WHERE {key} = 1") == [
            ("+44 20 7946 9999", "platinum")]
    # One-sided edits flowed; billing-only columns stayed where they were.
    assert rows(billing, "SELECT full_name, balance FROM clients WHERE client_id = 6") == [
        ("Donald Knuth", 0)]
    assert rows(crm, "SELECT count(*) FROM customers WHERE id = 4") == [(0,)]
    assert rows(billing, "SELECT balance FROM clients WHERE client_id = 3") == [(120.5,)]
    # Customer 2 is parked: each side keeps its own edit until a steward decides.
    assert rows(crm, "SELECT email FROM customers WHERE id = 2") == [("grace.hopper@navy.mil",)]
    assert rows(billing, "SELECT email FROM clients WHERE client_id = 2") == [
        ("ghopper@billing.example",)]
    assert cdcsync("verify", str(p), expect=1).returncode == 1

    listed = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
    assert [(c["entity"], c["status"]) for c in listed] == [("customers", "open")]
    cid = listed[0]["id"]
    shown = cdcsync("conflicts", "show", str(p), cid[:8]).stdout
    assert "grace.hopper@navy.mil" in shown and "ghopper@billing.example" in shown

    cdcsync("conflicts", "resolve", str(p), cid, "--pick", "crm", "--by", "steward-ann",
             "--note", "CRM owns contact data")
    assert rows(billing, "SELECT email FROM clients WHERE client_id = 2") == [
        ("grace.hopper@navy.mil",)]
    decided = json.loads(cdcsync("conflicts", "show", str(p), cid, "--json").stdout)
    assert (decided["status"], decided["decided_by"]) == ("resolved", "steward-ann")

    # Fixed point: the next run applies nothing, the one after reads nothing.
    third = run_json(p)
    assert third["totals"]["applied"] == 0
    fourth = run_json(p)
    assert fourth["totals"]["read"] == 0 and fourth["totals"]["applied"] == 0
    cdcsync("verify", str(p))


def test_verify_reports_drift_made_behind_the_services_back(quickstart: Path) -> None:
    p = quickstart / "pipeline.yaml"
    cdcsync("setup", str(p))
    run_json(p)
    cdcsync("teardown", str(p), "--yes")  # no more capture: an edit now goes unseen
    with sqlite3.connect(quickstart / "data" / "billing.db") as conn:
        conn.execute("UPDATE clients SET tier = 'lead' WHERE client_id = 3")
    res = cdcsync("verify", str(p), "--json", expect=1)
    report = json.loads(res.stdout)
    assert report[0]["differing"]["billing"]["count"] == 1
    assert report[0]["in_sync"] is False


def test_config_error_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: x\nendpoints:\n  a: {kind: sqlite, path: a.db}\nentitys: {}\n")
    res = cdcsync("run", str(bad), expect=2)
    assert "bad.yaml:4" in res.stderr
    assert "entitys" in res.stderr
    assert "Traceback" not in res.stderr


def test_config_check_reports_a_custom_policy_that_does_not_import(tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        "pipeline: x\n"
        "endpoints:\n  a: {kind: sqlite, path: a.db}\n  b: {kind: sqlite, path: b.db}\n"
        "entities:\n  t:\n    key: [id]\n    endpoints: {a: t, b: t}\n"
        "    conflict: {policy: custom, function: 'nowhere_module:decide'}\n")
    res = cdcsync("config", "check", str(cfg), expect=2)
    assert "entities.t.conflict.function" in res.stderr
    assert "nowhere_module" in res.stderr
    # A module next to the pipeline file is importable by its dotted path.
    (tmp_path / "nowhere_module.py").write_text("def decide(case):\n    return None\n")
    assert "ok" in cdcsync("config", "check", str(cfg)).stdout
