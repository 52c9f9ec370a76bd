"""The first snapshot of MariaDB and PostgreSQL tables that both hold rows, merged by
key as it is read (sync/snapshot_merged.py) with worker processes. MariaDB's snapshot
is its session's own, so the run reads every round and sends each worker its keys'
rows (PostgreSQL alone: tests/ops/test_snapshot_merged.py, the workers read)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg

from config import load_pipeline
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from tests.connectors.mysql.helpers import query, run
from tests.connectors.mysql.test_e2e import cdcsync
from tests.connectors.mysql.test_pipeline_pg import maria_yaml, pg_rows

COUNT = 1200


def test_mariadb_and_postgres_rows_merged_by_key_with_workers(
        tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str) -> None:
    run(mariadb_params, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items SELECT seq, CONCAT('m', seq), seq FROM seq_1_to_"
        f"{COUNT}")
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, name varchar(20), qty int)")
        # 101..1260: every 40th of the shared keys differs; 1201..1260 are PostgreSQL's own
        c.execute(f"INSERT INTO items SELECT g, CASE WHEN g % 40 = 0 THEN 'p' ELSE 'm' END"
                  f" || g, g FROM generate_series(101, {COUNT + 60}) g")
    name = f"merged_{mariadb_params['database'][-8:]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
pipeline: {name}
state: {{url: "sqlite:///{tmp_path / name}.db"}}
batch: {{size: 50, snapshot_chunk: 100, workers: 2, parallel_from: 100}}
endpoints:
{maria_yaml("maria", mariadb_params)}  pg: {{kind: postgres, dsn: '{pg_dsn}'}}
entities:
  items:
    key: [id]
    endpoints: {{maria: items, pg: items}}
    conflict: {{policy: priority, priority: [pg, maria]}}
""")
    setup_pipeline(load_pipeline(path))
    staged: list[int] = []
    waited: list[bool] = []

    def progress(label: str, _n: int) -> None:
        if label.startswith("snapshot"):
            with sqlite3.connect(tmp_path / f"{name}.db") as c:
                staged.append(c.execute("SELECT count(*) FROM snapshot_rows").fetchone()[0])
            if multiprocessing.active_children() and not waited:
                time.sleep(4.0)  # the workers ready (the run goes on alone meanwhile)
                waited.append(True)

    try:
        s = run_pipeline(load_pipeline(path), progress=progress).to_json()
        assert s["errors"] == [] and s["snapshot_rows"] == COUNT + COUNT - 40, s
        assert s["worker_batches"] >= 3, s  # rounds decided in the workers
        assert staged and max(staged) == 0  # merged, not staged
        rows = query(mariadb_params, "SELECT id, name, qty FROM items ORDER BY id")
        assert rows == [tuple(r) for r in pg_rows(pg_dsn, "SELECT id, name, qty FROM items"
                                                        " ORDER BY id")]
        assert len(rows) == COUNT + 60
        by_id = {r[0]: r[1] for r in rows}
        assert (by_id[40], by_id[120], by_id[121], by_id[1240]) == (
            "m40", "p120", "m121", "p1240")  # pg won where they differed
        with sqlite3.connect(tmp_path / f"{name}.db") as c:
            assert c.execute("SELECT count(*) FROM key_states").fetchone()[0] == COUNT + 60
            assert c.execute("SELECT count(*) FROM conflicts").fetchone()[0] == (
                COUNT // 40 - 2)  # 120..1200
        quiet = json.loads(cdcsync("run", "--json", str(path)).stdout)
        assert quiet["totals"]["applied"] == 0, quiet
        cdcsync("verify", str(path))
    finally:
        cdcsync("teardown", str(path), "--yes", "--force", expect=None)
