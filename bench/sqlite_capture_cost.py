"""What capture costs a user's writes to a SQLite table, with and without a unique
constraint besides the key (whose rows ``INSERT OR REPLACE`` may delete: the clash
triggers of connectors/sqlite/_capture.py note them before each write).

Run: ``.venv/bin/python bench/sqlite_capture_cost.py [rows] [repeat]`` (defaults 100000, 5).
Each round times ``rows`` inserts then ``rows`` updates, one transaction each, into
a fresh file for each of three tables, in turn: no capture; captured, the key its
only unique constraint; captured with ``email UNIQUE`` too. Printed: the median
seconds of each and their ratios (the rounds alternate, so the machine's drift
falls on all three alike). Not a test: no assertion.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Binding
from connectors.sqlite import SqliteEndpoint

SHAPES = {
    "no capture": ("", False),
    "captured": ("", True),
    "captured, email UNIQUE": (" UNIQUE", True),
}


def once(n: int, unique: str, captured: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "t.db"
        with sqlite3.connect(db) as conn:
            conn.execute(f"CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT{unique}, name TEXT)")
        if captured:
            with SqliteEndpoint("x", db) as ep:
                ep.setup([Binding("u", "x", "u", ("id",))], "bench")
        conn = sqlite3.connect(db)
        start = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO u VALUES (?, ?, ?)",
                             ((i, f"u{i}@x.example", "n") for i in range(n)))
        with conn:
            conn.executemany("UPDATE u SET name = ? WHERE id = ?", (("m", i) for i in range(n)))
        took = time.perf_counter() - start
        conn.close()
        return took


def main(n: int, repeat: int) -> None:
    times: dict[str, list[float]] = {k: [] for k in SHAPES}
    for _ in range(repeat):
        for label, (unique, captured) in SHAPES.items():
            times[label].append(once(n, unique, captured))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["no capture"]
    for label, m in med.items():
        print(f"{label:<24} {n} inserts + {n} updates: median {m:6.2f} s"
              f" ({2 * n / m:>9,.0f} writes/s), x{m / base:.2f} of no capture"
              f" [{', '.join(f'{t:.2f}' for t in times[label])}]")
    print(f"clash triggers: x{med['captured, email UNIQUE'] / med['captured']:.2f} of captured"
          " (the unique index's own upkeep included)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 5)
