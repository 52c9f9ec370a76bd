"""The state store on PostgreSQL: the quickstart flow, with a column-by-column decision."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.test_cli_quickstart import (  # noqa: F401
    EXAMPLE,
    cdcsync,
    quickstart,
    rows,
    run_json,
)


def test_quickstart_on_a_postgres_state_store(quickstart: Path, pg_dsn: str) -> None:  # noqa: F811
    p = quickstart / "pipeline.yaml"
    url = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    p.write_text(p.read_text().replace("url: sqlite:///data/state.db", f'url: "{url}"'))
    billing = quickstart / "data" / "billing.db"
    cdcsync("setup", str(p))
    run_json(p)
    import subprocess
    import sys

    subprocess.run([sys.executable, str(quickstart / "seed.py"), "edit"], check=True,
                   capture_output=True)
    second = run_json(p, expect=3)
    assert (second["totals"]["resolved"], second["totals"]["parked"]) == (1, 1)
    (conflict,) = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
    cdcsync("conflicts", "resolve", str(p), conflict["id"], "--field", "email=billing",
            "--by", "steward-with-a-long-name")
    assert rows(billing, "SELECT email FROM clients WHERE client_id = 2") == [
        ("ghopper@billing.example",)]
    shown = json.loads(cdcsync("conflicts", "show", str(p), conflict["id"], "--json").stdout)
    assert shown["winner"] == "fields:email=billing"
    assert shown["decided_by"] == "steward-with-a-long-name"
    assert run_json(p)["totals"]["applied"] == 0
    cdcsync("verify", str(p))


def _lookup_plan(dsn: str, pipeline: str, keys: list[str]) -> str:
    """PostgreSQL's plan for the store's own lookup of ``keys`` (its very SQL)."""
    from sync.state.store import _driver_sql_for, _in_list

    sql = _driver_sql_for("postgresql", "format")
    with psycopg.connect(dsn) as c:
        rows = c.execute("EXPLAIN " + sql.select_stamps + _in_list(sql.mark, len(keys)),
                         (pipeline, "items", *keys)).fetchall()
    return "\n".join(r[0] for r in rows)


def test_after_a_snapshot_a_lookup_finds_each_key_rather_than_scanning_the_entity(
        tmp_path: Path, pg_dsn: str) -> None:
    """Planned from a new store's statistics (none), the lookup of a batch's keys read
    the entity's every state and filtered them: a catch-up after a large first
    snapshot ran ~3x slower on a PostgreSQL store (bench/pg_to_pg.py --state postgres)
    until autovacuum came by."""
    import sqlite3

    url = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    for db in ("a.db", "b.db"):
        with sqlite3.connect(tmp_path / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
            if db == "a.db":
                c.executemany("INSERT INTO items VALUES (?, 'x')", ((i,) for i in range(5000)))
        c.close()
    p = tmp_path / "pipeline.yaml"
    p.write_text(f"""
pipeline: stats
state: {{url: "{url}"}}
endpoints:
  a: {{kind: sqlite, path: a.db}}
  b: {{kind: sqlite, path: b.db}}
entities:
  items:
    key: [id]
    endpoints: {{a: items, b: items}}
""")
    cdcsync("setup", str(p))
    assert run_json(p)["totals"]["applied"] == 5000
    with psycopg.connect(pg_dsn) as c:  # a batch's keys: a few among many
        keys = [r[0] for r in c.execute("SELECT key FROM key_states ORDER BY random() LIMIT 20")]
    plan = _lookup_plan(pg_dsn, "stats", keys)
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "key = ANY" in index_cond, plan
    assert "Filter" not in plan, plan
