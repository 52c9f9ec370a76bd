"""MariaDB <-> PostgreSQL first snapshot through the engine: rows per second.

    flock /tmp/cdcsync-bench.lock .venv/bin/python bench/mysql_snapshot.py \\
        [--rows 600000] [--target empty|same] [--runs 1]

A scratch MariaDB database holds ``--rows`` rows of a 6-column table (BIGINT key,
VARCHAR, DECIMAL(12,2), INT, DATETIME(6), TINYINT(1)); a scratch PostgreSQL database
holds the same table empty (``--target empty``: the direct path, sync/snapshot_direct.py)
or with the same rows (``--target same``: two systems in step first synced, merged
by key, sync/snapshot_merged.py). A bidirectional pipeline (SQLite state store,
``batch.workers: auto``) is set up and ``run_pipeline`` takes the snapshot in this
process and its workers. Printed per run: rows/s of wall-clock, the user CPU of this
process and its children, whether PostgreSQL ends with every row; then the median.

To compare trees side by side, run each tree's copy with its tree on ``PYTHONPATH``
(the bench puts its own tree first on ``sys.path``), alternating.

Connections: ``$CDCSYNC_BENCH_MARIADB_URL`` (default
``mysql://root@127.0.0.1:3306``) and ``$CDCSYNC_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import pymysql

PG = os.environ.get("CDCSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIA = urlsplit(os.environ.get("CDCSYNC_BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306"))


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


def cpu() -> float:
    return sum(resource.getrusage(who).ru_utime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def once(rows: int, target: str) -> float:
    """One snapshot of ``rows`` rows in fresh databases; returns rows/s."""
    from config.loader import load_pipeline
    from sync.engine import run_pipeline
    from sync.setup import setup_pipeline, teardown_pipeline

    db = "cdcsync_bench_snap_" + uuid.uuid4().hex[:8]
    maria = pymysql.connect(host=MARIA.hostname or "127.0.0.1", port=MARIA.port or 3306,
                            user=unquote(MARIA.username or "root"),
                            password=unquote(MARIA.password or ""), autocommit=True)
    pg = psycopg.connect(PG, autocommit=True)
    tmp = tempfile.TemporaryDirectory(prefix="cdcsync-bench-snap-")
    path = Path(tmp.name) / "pipeline.yaml"
    try:
        with maria.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{db}`")
            cur.execute(f"CREATE TABLE `{db}`.items (id BIGINT PRIMARY KEY, name VARCHAR(40),"
                        " amount DECIMAL(12,2), qty INT, at DATETIME(6), flag TINYINT(1))")
            cur.execute(f"INSERT INTO `{db}`.items SELECT seq, CONCAT('name ', seq),"
                        " seq * 1.25, seq % 100, '2026-01-01 00:00:00.123456', seq % 2"
                        f" FROM `{db}`.seq_1_to_{rows}")
        pg.execute(f'CREATE DATABASE "{db}"')
        dsn = PG.rsplit("/", 1)[0] + f"/{db}"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE items (id bigint PRIMARY KEY, name varchar(40),"
                      " amount numeric(12,2), qty int, at timestamp(6), flag smallint)")
            if target == "same":
                c.execute("INSERT INTO items SELECT g, 'name ' || g, g * 1.25, g % 100,"
                          f" '2026-01-01 00:00:00.123456', g % 2 FROM generate_series(1, {rows}) g")
        path.write_text(f"""
pipeline: {db}
state: {{url: "sqlite:///{tmp.name}/state.db"}}
batch: {{workers: auto}}
endpoints:
  maria:
    kind: mysql
    host: {MARIA.hostname or "127.0.0.1"}
    port: {MARIA.port or 3306}
    user: {unquote(MARIA.username or "root")}
    password: "{unquote(MARIA.password or "")}"
    database: {db}
    server_id: {4_300_000 + os.getpid() % 10_000}
  pg: {{kind: postgres, dsn: "{dsn}"}}
entities:
  items:
    key: [id]
    endpoints: {{maria: items, pg: items}}
""")
        setup_pipeline(load_pipeline(path))
        c0, t0 = cpu(), time.perf_counter()
        summary = run_pipeline(load_pipeline(path)).to_json()
        wall, used = time.perf_counter() - t0, cpu() - c0
        with psycopg.connect(dsn) as c:
            held = c.execute("SELECT count(*) FROM items").fetchone()
        print(f"  {rows} rows in {wall:.1f} s = {rows / wall:,.0f} rows/s (user CPU {used:.1f} s;"
              f" PostgreSQL holds {held[0] if held else 0}; errors {summary['errors']};"
              f" rounds in workers {summary['worker_batches']}; conflicts"
              f" {summary['totals'].get('resolved', 0) + summary['totals'].get('parked', 0)})"
              f" [{load()}]", flush=True)
        teardown_pipeline(load_pipeline(path), force=True)
        return rows / wall
    finally:
        with maria.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        pg.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        maria.close()
        pg.close()
        tmp.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=600_000)
    ap.add_argument("--target", choices=("empty", "same"), default="empty",
                    help="what PostgreSQL holds first: nothing, or MariaDB's rows")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    print(f"MariaDB <-> PostgreSQL first snapshot, {args.rows} rows, target {args.target}"
          f" [{load()}]", flush=True)
    rates = [once(args.rows, args.target) for _ in range(args.runs)]
    print(f"median {statistics.median(rates):,.0f} rows/s (runs: "
          f"{', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
