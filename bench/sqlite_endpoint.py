"""Throughput of the SQLite endpoint: capture overhead, changes(), apply(), snapshot().

Run: ``.venv/bin/python bench/sqlite_endpoint.py [rows] [batch]`` (defaults 100000, 5000).
Uses a temporary directory; prints rows/s per step by wall clock and by this process's
CPU time (the latter is steadier on a shared machine). Not a test: no assertion.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from connectors.base import ApplyOp, Binding
from connectors.sqlite import SqliteEndpoint

DDL = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, email TEXT, amount DECIMAL(10,2), "
    "score REAL, active BOOLEAN, born DATE, updated TIMESTAMP)"
)
B = Binding("t", "bench", "t", ("id",))


def rows(n: int, tag: str) -> list[tuple[object, ...]]:
    return [(i, f"{tag}{i}", f"u{i}@x.example", f"{i % 1000}.25", i / 7, i % 2,
             "2024-01-02", "2024-01-02 03:04:05.000000+00:00") for i in range(n)]


_cpu0 = 0.0


def clock() -> float:
    global _cpu0
    _cpu0 = time.process_time()
    return time.perf_counter()


def rate(label: str, n: int, t0: float) -> None:
    wall, cpu = time.perf_counter() - t0, time.process_time() - _cpu0
    print(f"{label:<44} {n:>7} rows {n / wall:>9,.0f} rows/s wall {n / cpu:>9,.0f} rows/s cpu")


def main(n: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain, captured = Path(tmp, "plain.db"), Path(tmp, "cap.db")
        for p in (plain, captured):
            c = sqlite3.connect(p)
            c.execute("PRAGMA journal_mode = WAL")
            c.execute(DDL)
            c.commit()
            c.close()
        ep = SqliteEndpoint("bench", captured)
        ep.setup([B], "bench")
        for p, label in ((plain, "user insert, no triggers"), (captured, "user insert, captured")):
            c = sqlite3.connect(p)
            t0 = clock()
            c.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows(n, "a"))
            c.commit()
            rate(f"{label} (one transaction)", n, t0)
            c.close()
        t0 = clock()
        cp, seen = None, 0
        while True:
            b = ep.changes([B], cp, batch)
            seen += len(b.changes)
            cp = b.checkpoint
            if not b.more:
                break
        rate(f"changes() read + decode, batch {batch}", seen, t0)
        t0 = clock()
        after, seen = None, 0
        while True:
            chunk = ep.snapshot(B, after, batch)
            seen += len(chunk.rows)
            after = chunk.last_key
            if chunk.done:
                break
        rate(f"snapshot(), chunk {batch}", seen, t0)
        versions = {r.key["id"]: r.row_version for r in ep.snapshot(B, None, n).rows}
        ts = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
        ops = [ApplyOp({"id": i}, {"id": i, "name": f"b{i}", "email": None,
                                   "amount": Decimal("1.50"), "score": 0.5, "active": True,
                                   "born": dt.date(2000, 1, 1), "updated": ts},
                       versions[i], f"tok{i}") for i in range(n)]
        t0 = clock()
        for i in range(0, n, batch):
            ep.apply(B, ops[i : i + batch])
        rate(f"apply() upserts (updates), batch {batch}", n, t0)
        new = [ApplyOp({"id": n + i}, {"id": n + i, "name": "c"}, None, f"n{i}")
               for i in range(n)]
        t0 = clock()
        for i in range(0, n, batch):
            ep.apply(B, new[i : i + batch])
        rate(f"apply() upserts (inserts), batch {batch}", n, t0)
        t0 = clock()
        res = ep.apply(B, ops[:batch])
        rate(f"apply() replay -> already, batch {batch}", len(res), t0)
        keys = [{"id": i} for i in range(n)]
        t0 = clock()
        for i in range(0, n, batch):
            ep.read(B, keys[i : i + batch])
        rate(f"read(), batch {batch}", n, t0)
        cur = ep.read(B, [{"id": n + i} for i in range(n)])
        dels = [ApplyOp({"id": n + i}, None, cur[f'{{"id":{n + i}}}'][1], f"d{i}")
                for i in range(n)]
        t0 = clock()
        for i in range(0, n, batch):
            ep.apply(B, dels[i : i + batch])
        rate(f"apply() deletes, batch {batch}", n, t0)
        ep.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 5000)
