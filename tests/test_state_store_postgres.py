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


def _two_files(tmp_path: Path, pg_dsn: str, rows_a: int, rows_b: int = 0) -> Path:
    """a.db <-> b.db (``items``: rows_a and rows_b rows, labels differing where both
    hold one), the state store in the PostgreSQL database ``pg_dsn``; set up."""
    import sqlite3

    for db, n in (("a.db", rows_a), ("b.db", rows_b)):
        with sqlite3.connect(tmp_path / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
            c.executemany("INSERT INTO items VALUES (?, ?)", ((i, db) for i in range(n)))
        c.close()
    url = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
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
    conflict: {{policy: priority, priority: [a, b]}}
""")
    cdcsync("setup", str(p))
    return p


def test_a_store_that_grew_finds_each_key_rather_than_scanning_the_entity(
        tmp_path: Path, pg_dsn: str) -> None:
    """Planned from a new store's statistics (none; autovacuum is off on this server,
    and elsewhere it comes by a minute later at best), the lookup of a batch's keys
    read the entity's every state and filtered them: a catch-up after a large first
    snapshot ran ~2.5x slower on a PostgreSQL store (bench/pg_to_pg.py --state
    postgres), and worse as the table grew."""
    import sqlite3

    p = _two_files(tmp_path, pg_dsn, 5000)
    assert run_json(p)["totals"]["applied"] == 5000
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("UPDATE items SET label = 'edited' WHERE id = 7")
    c.close()
    assert run_json(p)["totals"]["applied"] == 1  # its lookup brought the statistics up
    with psycopg.connect(pg_dsn) as c:  # a batch's keys: a few among many
        keys = [r[0] for r in c.execute("SELECT key FROM key_states ORDER BY random() LIMIT 20")]
    plan = _lookup_plan(pg_dsn, "stats", keys)
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "key = ANY" in index_cond, plan
    assert "Filter" not in plan, plan


def test_two_stores_that_drifted_apart_are_reconciled_each_conflict_recorded_once(
        tmp_path: Path, pg_dsn: str) -> None:
    """The staged snapshot on a PostgreSQL store: its reads of the staged rows once
    planned as a nested loop over the whole staging table (a 100k-row reconcile never
    ended), and its conflicts are now written as one insert per kind."""
    p = _two_files(tmp_path, pg_dsn, 3000, 2000)
    first = run_json(p)
    assert first["totals"]["resolved"] == 2000 and first["totals"]["applied"] == 3000, first
    cdcsync("verify", str(p))
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT count(*), count(DISTINCT key), min(winner), max(status)"
                         " FROM conflicts").fetchone() == (2000, 2000, "current", "resolved")
    assert run_json(p)["totals"]["resolved"] == 0
