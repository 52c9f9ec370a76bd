"""PostgreSQL -> PostgreSQL: cdcsync's whole pipeline against PostgreSQL's own replication.

    .venv/bin/python bench/pg_to_pg.py [--changes 200000] [--snapshot-rows 1000000]
                                       [--skip snapshot,source-cost,native,connector]

In scratch databases of the local server (``$CDCSYNC_BENCH_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``), a table of 8 columns
(bigint key, two text, numeric(12,2), int, timestamptz, bool, jsonb) gets a
backlog of ``--changes`` mixed changes in 1000-row transactions (40%
INSERT, 40% UPDATE, 20% DELETE), then:

* **cdcsync**: ``run_pipeline`` of a one-way pipeline (version vectors and the
  SQLite state store on, no quality gate) catches up from its checkpoint;
  ``--state postgres`` keeps the state in a PostgreSQL database instead, as a
  production deployment whose daemons and workers share it across machines does;
* **native**: a ``CREATE SUBSCRIPTION`` (a slot created beforehand: a
  same-cluster subscription cannot create its own) to a third database,
  enabled after the backlog, timed until its slot has confirmed the backlog's
  end;

both read the same backlog, one after the other, and both targets are checked
identical to the source. Printed: both rates and their ratio.

Also:

* **connector**: the PostgreSQL connector alone, read+decode (SQL interface)
  and apply (binary COPY + set-based compare-and-set), no engine;
* **source cost**: CPU of the source's server process at a steady 2000
  single-row changes/s, for the streaming reader (the walsender) and for
  polling the SQL interface (the backend), from /proc/<pid>/stat;
* **snapshot**: ``--snapshot-rows`` rows PG -> PG through ``run_pipeline``
  (initial snapshot), and the connector's own snapshot+apply ceiling; with
  ``--snapshot-target same`` the target already holds the same rows (the
  staged snapshot, which reconciles the two by key).

A benchmark, not a test: wall-clock figures move with the machine's other load
(``uptime`` is printed with them). Process CPU times are printed alongside.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import ApplyOp, Binding
from connectors.postgres import PostgresEndpoint, open_endpoint
from tests.fix_postgres import create_database, database_url, drop_database

ADMIN = os.environ.get("CDCSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLE = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name text, email text, amount numeric(12,2),"
    " qty int, updated_at timestamptz, active bool, doc jsonb)"
)
ROW = (
    "SELECT g, 'name ' || g, 'user' || g || '@example.org', g * 1.25, g % 100,"
    " timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',"
    " g % 2 = 0, jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b'))"
)
TX = 1000
STATE = "sqlite"  # --state


def settings(dsn: str) -> Any:
    import types

    return types.SimpleNamespace(dsn=dsn, slot=None, publication=None, schema="public",
                                 connect_timeout=10)


def execute(dsn: str, *statements: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for s in statements:
            cur = conn.execute(s, params)
            rows = cur.fetchall() if cur.description else []
        return rows


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


def checksum(dsn: str) -> tuple[int, str]:
    rows = execute(dsn, "SELECT count(*), md5(coalesce(string_agg(i::text, ',' ORDER BY id),"
                        " '')) FROM items i")
    return int(rows[0][0]), str(rows[0][1])


# --- workload ----------------------------------------------------------------------------


def seed(dsn: str, n: int) -> None:
    execute(dsn, f"INSERT INTO items {ROW} FROM generate_series(1, {n}) g")


def backlog(dsn: str, changes: int, first_new: int, live: list[int]) -> int:
    """``changes`` mixed changes in 1000-row transactions; returns the WAL end after them."""
    rng = random.Random(7)
    next_id = first_new
    done = 0
    with psycopg.connect(dsn) as conn:
        while done < changes:
            n = min(TX, changes - done)
            ins, upd = int(n * 0.4), int(n * 0.4)
            dele = n - ins - upd
            conn.execute(f"INSERT INTO items {ROW} FROM generate_series({next_id},"
                         f" {next_id + ins - 1}) g")
            live.extend(range(next_id, next_id + ins))
            next_id += ins
            picked = rng.sample(range(len(live)), upd + dele)
            upd_ids = [live[i] for i in picked[:upd]]
            del_ids = [live[i] for i in picked[upd:]]
            conn.execute("UPDATE items SET qty = qty + 1, amount = amount + 0.01,"
                         " updated_at = now(), doc = doc || '{\"u\": 1}' WHERE id = ANY(%s)",
                         (upd_ids,))
            conn.execute("DELETE FROM items WHERE id = ANY(%s)", (del_ids,))
            gone = set(del_ids)
            live[:] = [i for i in live if i not in gone]
            conn.commit()
            done += n
    return int(execute(dsn, "SELECT pg_current_wal_lsn() - '0/0'")[0][0])


# --- cdcsync through the engine ------------------------------------------------------------


#: ``--state postgres``: each pipeline's state store is a database of its own on ADMIN's
#: server, named here so that teardown drops it
_STATE_DBS: dict[str, str] = {}


def pipeline(tmp: Path, name: str, src: str, dst: str, batch: int = 10000,
             chunk: int = 50000, workers: str = "auto") -> Any:
    """The one-way pipeline src -> dst, set up as ``cdcsync setup`` does it."""
    from config.loader import load_pipeline
    from sync.setup import setup_pipeline

    state = f"sqlite:///{tmp}/{name}.db"
    if STATE == "postgres":
        _STATE_DBS[name] = create_database(ADMIN)
        state = database_url(ADMIN, _STATE_DBS[name]).replace(
            "postgresql://", "postgresql+psycopg://", 1)
    path = tmp / f"{name}.yaml"
    path.write_text(f"""
pipeline: {name}
state: {{url: "{state}"}}
batch: {{size: {batch}, snapshot_chunk: {chunk}, workers: {workers}}}
endpoints:
  src: {{kind: postgres, dsn: "{src}"}}
  dst: {{kind: postgres, dsn: "{dst}"}}
entities:
  items:
    key: [id]
    direction: one-way
    source: src
    endpoints:
      src: {{table: items}}
      dst: {{table: items}}
""")
    cfg = load_pipeline(path)
    setup_pipeline(cfg)
    return cfg


def teardown(cfg: Any) -> None:
    from sync.setup import teardown_pipeline

    teardown_pipeline(cfg, force=True)
    if cfg.pipeline in _STATE_DBS:
        drop_database(ADMIN, _STATE_DBS.pop(cfg.pipeline))


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (a run's batch workers)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    t0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return time.perf_counter() - t0, _cpu() - c0, out


# --- PostgreSQL's own replication --------------------------------------------------------------


def native(src: str, sub_db: str, start: Callable[[], int]) -> float:
    """Subscribe ``sub_db`` to ``src``; run ``start`` (makes the backlog, returns its end
    LSN) while the subscription is disabled, then time the catch-up."""
    slot = f"bench_sub_{sub_db[-8:]}"
    execute(src, "CREATE PUBLICATION bench_native FOR TABLE items",
            f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
    execute(sub_db, sql.SQL(
        "CREATE SUBSCRIPTION bench_native CONNECTION {} PUBLICATION bench_native WITH"
        " (create_slot = false, slot_name = {}, enabled = false, copy_data = false)"
    ).format(sql.Literal(src), sql.Literal(slot)).as_string())
    end = start()
    t0 = time.perf_counter()
    execute(sub_db, "ALTER SUBSCRIPTION bench_native ENABLE")
    while True:
        row = execute(src, "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots"
                           " WHERE slot_name = %s", params=(slot,))
        if row and row[0][0] is not None and int(row[0][0]) >= end:
            return time.perf_counter() - t0
        time.sleep(0.02)


def end_to_end_once(args: argparse.Namespace, tmp: Path) -> tuple[float, float | None]:
    """One side-by-side run in fresh databases: (cdcsync changes/s, native changes/s)."""
    from sync.engine import run_pipeline

    src, dst, sub = (create_database(ADMIN) for _ in range(3))
    urls = {n: database_url(ADMIN, n) for n in (src, dst, sub)}
    try:
        for u in urls.values():
            execute(u, TABLE)
        base = args.base_rows
        seed(urls[src], base)
        execute(urls[sub], f"INSERT INTO items {ROW} FROM generate_series(1, {base}) g")
        cfg = pipeline(tmp, src, urls[src], urls[dst], workers=args.workers)
        snap = timed(lambda: run_pipeline(cfg))
        print(f"  (initial snapshot of {base} rows: {base / snap[0]:,.0f} rows/s)")
        live = list(range(1, base + 1))
        end_lsn: list[int] = []

        def make_backlog() -> int:
            t0 = time.perf_counter()
            end_lsn.append(backlog(urls[src], args.changes, base + 1, live))
            print(f"  backlog: {args.changes} changes written in"
                  f" {time.perf_counter() - t0:.1f} s")
            return end_lsn[0]

        if "native" in args.skip:
            make_backlog()
            native_s = None
        else:
            native_s = native(urls[src], urls[sub], make_backlog)
        wall, cpu, summary = timed(lambda: run_pipeline(cfg))
        totals = summary.to_json()["totals"]
        ours = args.changes / wall
        same = checksum(urls[src]) == checksum(urls[dst])
        print(f"  cdcsync   PG -> PG: {args.changes} changes in {wall:.1f} s ="
              f" {ours:,.0f} changes/s (CPU of this process and its workers {cpu:.1f} s ="
              f" {1e6 * cpu / args.changes:.0f} us/change; read {totals['read']},"
              f" applied {totals['applied']}; target identical: {same}) [{uptime()}]")
        if not same:
            raise SystemExit("cdcsync's target differs from the source")
        theirs = None
        if native_s is not None:
            theirs = args.changes / native_s
            same_n = checksum(urls[src]) == checksum(urls[sub])
            print(f"  native    CREATE SUBSCRIPTION: {args.changes} changes in {native_s:.1f} s ="
                  f" {theirs:,.0f} changes/s (target identical: {same_n})")
            if not same_n:
                raise SystemExit("the subscription's target differs from the source")
            print(f"  ratio     cdcsync / native = {ours / theirs:.3f}")
        teardown(cfg)
        return ours, theirs
    finally:
        for n in (src, dst, sub):
            drop_database(ADMIN, n)


def end_to_end(args: argparse.Namespace, tmp: Path) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(args.repeat):
        print(f" end to end, run {i + 1}/{args.repeat}")
        a, b = end_to_end_once(args, tmp)
        ours.append(a)
        if b is not None:
            theirs.append(b)
    line = (f"END TO END, median of {args.repeat}: cdcsync {statistics.median(ours):,.0f}"
            f" changes/s (runs: {', '.join(f'{x:,.0f}' for x in ours)})")
    if theirs:
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        line += (f"; CREATE SUBSCRIPTION {statistics.median(theirs):,.0f} changes/s"
                 f" (runs: {', '.join(f'{x:,.0f}' for x in theirs)});"
                 f" ratio median {statistics.median(ratios):.3f}")
    print(f"{line} [{uptime()}]")


# --- the connector alone -----------------------------------------------------------------------


def connector(args: argparse.Namespace) -> None:
    src, dst = create_database(ADMIN), create_database(ADMIN)
    a_url, b_url = database_url(ADMIN, src), database_url(ADMIN, dst)
    a: PostgresEndpoint = open_endpoint("src", settings(a_url), pipeline=src)
    b: PostgresEndpoint = open_endpoint("dst", settings(b_url), pipeline=src)
    try:
        for u in (a_url, b_url):
            execute(u, TABLE)
        ba, bb = Binding("items", "src", "items", ("id",)), Binding("items", "dst", "items",
                                                                      ("id",))
        a.setup([ba], src)
        b.setup([bb], src, read=[])
        seed(a_url, 50_000)
        seed(b_url, 50_000)
        cp = a.position()
        backlog(a_url, args.changes, 50_001, list(range(1, 50_001)))
        batches = []

        def read() -> int:
            nonlocal cp
            n = 0
            while True:
                batch = a.changes([ba], cp, 10_000)
                n += len(batch.changes)
                batches.append(batch)
                assert batch.checkpoint is not None
                cp = batch.checkpoint
                a.confirm(cp)
                if not batch.more:
                    return n

        wall, cpu, n = timed(read)
        print(f"connector read+decode (SQL interface): {n} changes in {wall:.1f} s ="
              f" {n / wall:,.0f}/s, CPU {1e6 * cpu / n:.1f} us/change [{uptime()}]")
        versions: dict[Any, Any] = {}

        def apply() -> int:
            m = 0
            for batch in batches:
                last = {c.key["id"]: c for c in batch.changes}  # one apply per key, as the engine
                ops = [ApplyOp(c.key, c.after, versions.get(k), "t") for k, c in last.items()]
                if not ops:
                    continue
                for op, res in zip(ops, b.apply(bb, ops), strict=True):
                    versions[op.key["id"]] = res.row_version
                    m += 1
            return m

        # The seed rows' versions at the target, as the engine would know them.
        with psycopg.connect(b_url) as conn:
            for k, x in conn.execute("SELECT id, xmin::text::bigint FROM items"):
                versions[k] = x
        wall, cpu, m = timed(apply)
        print(f"connector apply (COPY + CAS):          {m} rows in {wall:.1f} s ="
              f" {m / wall:,.0f}/s, CPU {1e6 * cpu / m:.1f} us/change;"
              f" identical: {checksum(a_url) == checksum(b_url)}")
    finally:
        a.close()
        b.close()
        drop_database(ADMIN, src)
        drop_database(ADMIN, dst)


# --- source cost ---------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _load(url: str, mode: str, rate: int, stop: threading.Event, written: list[int]) -> None:
    """Single-row INSERTs at ``rate`` per second until ``stop``."""
    row = ROW.replace("%", "%%")
    offset = 10**7 if mode == "sql-polling" else 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the rate, not the disk, is the point
        start = time.perf_counter()
        i = 0
        while not stop.is_set():
            i += 1
            conn.execute(f"INSERT INTO items {row} FROM generate_series(%s::bigint, %s::bigint) g",
                         (i + offset, i + offset))
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        written[0] = i


def source_cost(seconds: float = 20.0, rate: int = 2000) -> None:
    db = create_database(ADMIN)
    url = database_url(ADMIN, db)
    hz = os.sysconf("SC_CLK_TCK")
    try:
        execute(url, TABLE)
        b = Binding("items", "src", "items", ("id",))
        for mode in ("streaming", "sql-polling"):
            ep: PostgresEndpoint = open_endpoint("src", settings(url), pipeline=db)
            ep.setup([b], db)
            if mode == "streaming":
                ep.use_streaming(wait=0.05)
            cp = ep.position()
            stop = threading.Event()
            written = [0]

            batch = ep.changes([b], cp, 10_000)  # opens the stream / the slot
            pid = None
            worker = threading.Thread(target=_load, args=(url, mode, rate, stop, written))
            worker.start()
            read = 0
            t_end = time.perf_counter() + seconds
            t0 = ticks0 = None
            while time.perf_counter() < t_end:
                if mode == "sql-polling":
                    time.sleep(0.01)  # a 10 ms poll
                batch = ep.changes([b], cp, 10_000)
                read += len(batch.changes)
                assert batch.checkpoint is not None
                cp = batch.checkpoint
                ep.confirm(cp)
                if pid is None:
                    if mode == "streaming":
                        row = execute(url, "SELECT active_pid FROM pg_replication_slots"
                                           " WHERE slot_name = %s", params=(ep.names.slot,))
                        pid = row[0][0] if row else None
                    else:
                        pid = ep.source.connection().info.backend_pid
                    if pid is not None:
                        t0, ticks0 = time.perf_counter(), cpu_ticks(pid)
            stop.set()
            worker.join()
            assert pid is not None and t0 is not None and ticks0 is not None
            used = (cpu_ticks(pid) - ticks0) / hz / (time.perf_counter() - t0)
            server = "walsender" if mode == "streaming" else "backend"
            print(f"source cost, {mode:11}: {server} at {used:.2f} of a core for"
                  f" {written[0] / seconds:,.0f} changes/s written, {read} read [{uptime()}]")
            ep.teardown([], db)
            ep.close()
    finally:
        drop_database(ADMIN, db)


# --- snapshot ------------------------------------------------------------------------------------


def snapshot(args: argparse.Namespace, tmp: Path) -> None:
    from sync.engine import run_pipeline

    src, dst = create_database(ADMIN), create_database(ADMIN)
    a_url, b_url = database_url(ADMIN, src), database_url(ADMIN, dst)
    n = args.snapshot_rows
    try:
        for u in (a_url, b_url):
            execute(u, TABLE)
        seed(a_url, n)
        execute(a_url, "VACUUM ANALYZE items")
        # The connector alone: snapshot chunks applied to an empty target.
        a: PostgresEndpoint = open_endpoint("src", settings(a_url), pipeline=src)
        b: PostgresEndpoint = open_endpoint("dst", settings(b_url), pipeline=src)
        ba, bb = Binding("items", "src", "items", ("id",)), Binding("items", "dst", "items",
                                                                      ("id",))

        def raw() -> int:
            after, total = None, 0
            while True:
                chunk = a.snapshot(ba, after, 50_000)
                b.apply(bb, [ApplyOp(r.key, r.row, None, "s") for r in chunk.rows])
                total += len(chunk.rows)
                after = chunk.last_key
                if chunk.done:
                    return total

        wall, cpu, total = timed(raw)
        same = checksum(a_url) == checksum(b_url)
        print(f"connector snapshot+apply: {total} rows in {wall:.1f} s = {total / wall:,.0f}"
              f" rows/s (CPU {cpu:.1f} s; identical: {same}) [{uptime()}]")
        a.close()
        b.close()
        held = args.snapshot_target == "same"  # (the connector's run left them there)
        if not held:
            execute(b_url, "TRUNCATE items")
        m = args.pipeline_snapshot_rows or n
        if m < n:  # the engine's snapshot is slower: a smaller table keeps the run short
            for u in (a_url, b_url) if held else (a_url,):
                execute(u, f"DELETE FROM items WHERE id > {m}", "VACUUM ANALYZE items")
        cfg = pipeline(tmp, src, a_url, b_url)
        wall, cpu, _ = timed(lambda: run_pipeline(cfg))
        same = checksum(a_url) == checksum(b_url)
        into = "onto the same rows (matched by key)" if held else "into an empty target"
        print(f"cdcsync snapshot PG -> PG {into}: {m} rows in {wall:.1f} s ="
              f" {m / wall:,.0f} rows/s (CPU {cpu:.1f} s = {1e6 * cpu / m:.0f} us/row;"
              f" identical: {same}) [{uptime()}]")
        teardown(cfg)
    finally:
        drop_database(ADMIN, src)
        drop_database(ADMIN, dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--snapshot-rows", type=int, default=1_000_000,
                        help="rows of the connector's snapshot+apply ceiling")
    parser.add_argument("--pipeline-snapshot-rows", type=int, default=None,
                        help="rows of the run_pipeline snapshot (default: --snapshot-rows)")
    parser.add_argument("--snapshot-target", choices=("empty", "same"), default="empty",
                        help="what the run_pipeline snapshot's target holds: nothing (the"
                        " direct path) or the source's rows (matched by key: merged as"
                        " read, as when two systems already in step are first synced)")
    parser.add_argument("--base-rows", type=int, default=50_000,
                        help="rows present before the end-to-end backlog")
    parser.add_argument("--workers", default="auto",
                        help="batch.workers of the end-to-end pipeline (1: one process)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="end-to-end runs (fresh databases each); medians printed")
    parser.add_argument("--skip", default="", help="comma list of: end-to-end, native,"
                        " connector, source-cost, snapshot")
    parser.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite",
                        help="the pipelines' state store: a SQLite file (the default) or a"
                        " PostgreSQL database on the benchmark's server")
    args = parser.parse_args()
    global STATE
    STATE = args.state
    args.skip = set(filter(None, args.skip.split(",")))
    from sync.gctune import tune

    tune()  # the collector settings `cdcsync run` runs with (this calls run_pipeline itself)
    print(f"PostgreSQL -> PostgreSQL, {args.changes} changes [{uptime()}]")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "connector" not in args.skip:
            connector(args)
        if "end-to-end" not in args.skip:
            end_to_end(args, tmp)
        if "source-cost" not in args.skip:
            source_cost()
        if "snapshot" not in args.skip:
            snapshot(args, tmp)


if __name__ == "__main__":
    main()
