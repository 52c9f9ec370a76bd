"""MariaDB sink apply rate with and without the record of its own writes, side by side.

    .venv/bin/python bench/mysql_sink.py [--rows 20000] [--batches 500,10] [--runs 5]

Two scratch databases of the local MariaDB hold the same 8-column table
(bigint, varchar, decimal, datetime(6), text, JSON, int, tinyint(1)) with
``--rows`` rows. One has the sink's record table ``cdcsync_applied`` (as
``cdcsync setup`` makes it now), the other has none, so its sink behaves as
before the record existed (compare-and-set only): that is the baseline.

Each run applies, through :class:`connectors.mysql.sink.MysqlSink`
(``skip_replication`` session), an update of every row in batches of each
``--batches`` size, expecting the row version the previous run produced;
baseline and record runs alternate, so the machine's drifting load falls on
both alike. Printed: the median rate (ops/s of wall-clock) of each, their
ratio, the client's CPU per update (the sink's own Python work: compare trees
side by side with it, the server's time moves the rates), the load average.
The order of the two alternates from run to run (baseline first, then record
first), since a run pays for the purge of the one before it.

Connection: ``$CDCSYNC_BENCH_MARIADB_URL`` (default
``mysql://cdcsync:cdcsync@127.0.0.1:3306``). Run it under the bench lock.
"""

from __future__ import annotations

import argparse
import decimal
import json
import os
import statistics
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from connectors.base import ApplyOp, ApplyStatus, Binding
from connectors.mysql import applied
from connectors.mysql.sink import MysqlSink

DBS = {"baseline": "cdcsync_bench_sink_base", "record": "cdcsync_bench_sink_rec"}
TABLE = (
    "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(12,2),"
    " ts DATETIME(6), note TEXT, doc JSON, qty INT, flag TINYINT(1))"
)


def server() -> dict[str, Any]:
    url = urlsplit(os.environ.get("CDCSYNC_BENCH_MARIADB_URL",
                                  "mysql://cdcsync:cdcsync@127.0.0.1:3306"))
    return {"host": url.hostname or "127.0.0.1", "port": url.port or 3306,
            "user": unquote(url.username or "root"), "password": unquote(url.password or "")}


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


def row(i: int, gen: int) -> dict[str, Any]:
    return {"id": i, "name": f"customer {i} g{gen}",
            "amount": decimal.Decimal(f"{i % 100000}.{gen % 100:02d}"),
            "ts": "2024-01-02 03:04:05.123456",
            "note": "a note of modest length for the text column",
            "doc": json.dumps({"n": i, "g": gen}), "qty": gen, "flag": i % 2}


def prepare(n: int) -> None:
    conn = pymysql.connect(**server(), autocommit=True)
    with conn.cursor() as cur:
        for mode, db in DBS.items():
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute(TABLE)
            if mode == "record":
                cur.execute(applied.create_sql(db))
    conn.close()


def drop() -> None:
    conn = pymysql.connect(**server(), autocommit=True)
    with conn.cursor() as cur:
        for db in DBS.values():
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
    conn.close()


class Target:
    def __init__(self, mode: str, n: int) -> None:
        settings = SimpleNamespace(**server(), database=DBS[mode], flavor="mariadb")
        self.sink = MysqlSink("bench", settings, pipeline="bench")
        self.binding = Binding(entity="t", endpoint="bench", table="t", key=("id",))
        self.versions: dict[int, Any] = dict.fromkeys(range(n))
        self.gen = 0

    def run(self, batch: int) -> tuple[float, float]:
        """Update every row once in batches of ``batch``: ops per second, and this
        process's CPU per op in µs (the sink's own Python work, without the server's)."""
        self.gen += 1
        ids = list(self.versions)
        t0, c0 = time.perf_counter(), time.process_time()
        for lo in range(0, len(ids), batch):
            part = ids[lo : lo + batch]
            ops = [ApplyOp({"id": i}, row(i, self.gen), self.versions[i], f"g{self.gen}")
                   for i in part]
            for i, res in zip(part, self.sink.apply(self.binding, ops), strict=True):
                assert res.status is ApplyStatus.APPLIED, res
                self.versions[i] = res.row_version
        return (len(ids) / (time.perf_counter() - t0),
                1e6 * (time.process_time() - c0) / len(ids))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--batches", default="500,10", help="batch sizes, comma-separated")
    ap.add_argument("--runs", type=int, default=5, help="runs per mode and batch size")
    args = ap.parse_args()
    prepare(args.rows)
    targets = {mode: Target(mode, args.rows) for mode in DBS}
    for t in targets.values():  # insert every row once (not measured)
        t.run(1000)
    print(load(), "(before)")
    rates: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    for batch in (int(b) for b in args.batches.split(",")):
        for n in range(args.runs):
            order = list(targets) if n % 2 == 0 else list(reversed(targets))  # ABBA
            for mode in order:
                rate, us = targets[mode].run(batch)
                rates.setdefault((batch, mode), []).append(rate)
                cpu.setdefault((batch, mode), []).append(us)
    print(f"\nupdates applied per second (wall-clock), {args.rows} rows, "
          f"median of {args.runs} runs")
    print(f"{'batch':>6}{'baseline':>10}{'record':>10}{'record/baseline':>17}")
    for batch in (int(b) for b in args.batches.split(",")):
        base = statistics.median(rates[(batch, "baseline")])
        rec = statistics.median(rates[(batch, "record")])
        print(f"{batch:>6}{base:>10.0f}{rec:>10.0f}{rec / base:>17.2f}")
        print(f"       runs: baseline {[round(r) for r in rates[(batch, 'baseline')]]}, "
              f"record {[round(r) for r in rates[(batch, 'record')]]}")
        print(f"       client CPU per update (median): baseline "
              f"{statistics.median(cpu[(batch, 'baseline')]):.1f} µs, record "
              f"{statistics.median(cpu[(batch, 'record')]):.1f} µs")
    print(load(), "(after)")
    for t in targets.values():
        t.sink.close()
    drop()


if __name__ == "__main__":
    main()
