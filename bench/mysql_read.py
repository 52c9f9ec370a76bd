"""Binlog read+decode speed: the stock mysql-replication reader vs cdcsync's, side by side.

    .venv/bin/python bench/mysql_read.py [--single 20000] [--bulk 100000] [--runs 5]

Writes two workloads into a scratch database of the local MariaDB (8 columns:
bigint, varchar, decimal, datetime(6), text, JSON, int, tinyint(1)):

* ``single``: one-row transactions (INSERT);
* ``bulk``: 1000-row transactions, mixed (60% INSERT, 30% UPDATE, 10% DELETE);

then reads each workload back from its starting GTID, ``--runs`` times per
reader, and prints the median rate of:

* ``stock``: ``BinLogStreamReader`` (``is_mariadb=True``, ``auto_position``),
  iterating rows events and decoding ``.rows``;
* ``reader``: :class:`connectors.mysql.binlog.BinlogReader` (cached table maps,
  compiled decoders), rows decoded to typed values;
* ``source``: :meth:`MysqlSource.changes` end to end: canonical
  :class:`~sync.change.Change` records with their row-version hashes.

Connection: ``$CDCSYNC_BENCH_MARIADB_URL`` (default
``mysql://cdcsync:cdcsync@127.0.0.1:3306``). A benchmark, not a test: the
machine's other load moves the figures, hence medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from connectors.base import Binding
from connectors.mysql.binlog import BinlogReader
from connectors.mysql.source import MysqlSource

DB = "cdcsync_bench_read"
TABLE = (
    "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(12,2),"
    " ts DATETIME(6), note TEXT, doc JSON, qty INT, flag TINYINT(1))"
)
INSERT = "INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"


def server() -> dict[str, Any]:
    url = urlsplit(os.environ.get("CDCSYNC_BENCH_MARIADB_URL",
                                  "mysql://cdcsync:cdcsync@127.0.0.1:3306"))
    return {"host": url.hostname or "127.0.0.1", "port": url.port or 3306,
            "user": unquote(url.username or "root"), "password": unquote(url.password or "")}


def row(i: int) -> tuple[Any, ...]:
    return (i, f"customer {i}", f"{i % 100000}.{i % 100:02d}", "2024-01-02 03:04:05.123456",
            "a note of modest length for the text column", json.dumps({"n": i, "tags": ["a"]}),
            i % 1000, i % 2)


def gtid(cur: Any) -> str:
    cur.execute("SELECT @@gtid_binlog_pos")
    return str(cur.fetchone()[0])


def prepare(n_single: int, n_bulk: int) -> dict[str, tuple[str, int]]:
    """Write both workloads; return their (start GTID, change count)."""
    conn = pymysql.connect(**server(), autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"USE {DB}")
        cur.execute(TABLE)
        work: dict[str, tuple[str, int]] = {}
        t0 = time.perf_counter()
        work["single"] = (gtid(cur), n_single)
        for i in range(n_single):
            cur.execute(INSERT, row(i))
        print(f"wrote {n_single} single-row transactions in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        start = gtid(cur)
        conn.autocommit(False)
        base = 10_000_000
        inserts, updates, deletes = n_bulk * 6 // 10, n_bulk * 3 // 10, n_bulk // 10
        for lo in range(0, inserts, 1000):
            cur.executemany(INSERT, [row(base + i) for i in range(lo, min(lo + 1000, inserts))])
            conn.commit()
        for lo in range(0, updates, 1000):
            cur.execute("UPDATE t SET qty = qty + 1, name = CONCAT(name, '!') "
                        "WHERE id >= %s AND id < %s", (base + lo, base + min(lo + 1000, updates)))
            conn.commit()
        for lo in range(0, deletes, 1000):
            cur.execute("DELETE FROM t WHERE id >= %s AND id < %s",
                        (base + inserts - deletes + lo,
                         base + inserts - deletes + min(lo + 1000, deletes)))
            conn.commit()
        work["bulk"] = (start, inserts + updates + deletes)
        print(f"wrote {inserts + updates + deletes} changes in 1000-row transactions in "
              f"{time.perf_counter() - t0:.1f}s")
    conn.close()
    return work


def read_stock(start: str, count: int) -> int:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import MariadbGtidEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    rows_events = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)
    stream = BinLogStreamReader(
        connection_settings=dict(server()),
        server_id=990_001, is_mariadb=True, auto_position=start, blocking=True,
        only_events=[*rows_events, XidEvent, MariadbGtidEvent], only_schemas=[DB],
        enable_logging=False,
    )
    n = 0
    try:
        for event in stream:
            if isinstance(event, rows_events):
                n += len(event.rows)
                if n >= count:
                    break
    finally:
        stream.close()
    return n


def _settings() -> SimpleNamespace:
    return SimpleNamespace(**server(), database=DB, server_id=990_002, flavor="mariadb")


def read_reader(start: str, count: int) -> int:
    src = MysqlSource("bench", _settings())
    reader = BinlogReader(_settings(), server_id=990_003,
                          describe=lambda d, t: src.schemas.get(t))
    reader.wanted = frozenset({(DB, "t")})
    reader.start(start)
    n = 0
    try:
        while n < count:
            tx = reader.next()
            if tx is None:
                break
            n += len(tx.rows)
    finally:
        reader.close()
        src.close()
    return n


def read_source(start: str, count: int) -> int:
    src = MysqlSource("bench", _settings())
    b = Binding(entity="t", endpoint="bench", table="t", key=("id",))
    n = 0
    cp: dict[str, Any] = {"gtid": start}
    try:
        while n < count:
            batch = src.changes([b], cp, 10_000)
            n += len(batch.changes)
            cp = dict(batch.checkpoint or cp)
            if not batch.more:
                break
    finally:
        src.close()
    return n


def measure(fn: Callable[[str, int], int], start: str, count: int, runs: int
            ) -> tuple[float, float]:
    """Median changes per second of wall time, and per second of this process's CPU
    (the second is what a loaded machine distorts least)."""
    rates, cpu_rates = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn(start, count)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        if n < count:
            raise SystemExit(f"{fn.__name__} read {n} of {count} changes")
        rates.append(n / elapsed)
        cpu_rates.append(n / cpu)
    return statistics.median(rates), statistics.median(cpu_rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--single", type=int, default=20_000, help="single-row transactions")
    ap.add_argument("--bulk", type=int, default=100_000, help="changes in 1000-row transactions")
    ap.add_argument("--runs", type=int, default=5, help="runs per reader (median)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    work = prepare(args.single, args.bulk)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name, (start, count) in work.items():
        results[name] = {
            "stock": measure(read_stock, start, count, args.runs),
            "reader": measure(read_reader, start, count, args.runs),
            "source": measure(read_source, start, count, args.runs),
        }
    for label, i in (("wall-clock", 0), ("client CPU", 1)):
        print(f"\nread+decode, changes per second of {label}, median of {args.runs} runs")
        print(f"{'workload':<10}{'stock':>10}{'reader':>10}{'source':>10}"
              f"{'reader/stock':>14}{'source/stock':>14}")
        for name, r in results.items():
            st, rd, so = r["stock"][i], r["reader"][i], r["source"][i]
            print(f"{name:<10}{st:>10.0f}{rd:>10.0f}{so:>10.0f}{rd / st:>14.2f}{so / st:>14.2f}")
    if args.json:
        print(json.dumps({w: {r: {"wall": v[0], "cpu": v[1]} for r, v in rs.items()}
                          for w, rs in results.items()}))
    conn = pymysql.connect(**server(), autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    conn.close()


if __name__ == "__main__":
    main()
