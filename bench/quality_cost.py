"""What the data-quality gate costs: per row, and as a share of a whole pipeline run.

Run: ``.venv/bin/python bench/quality_cost.py [changes] [runs]`` (defaults 50000, 5).

A SQLite CRM -> SQLite billing pipeline (the embedded default) with a 7-expectation
suite (not-null, regex, uniqueness, length, range, value set) on an entity of 5 synced
columns. Each run snapshots 10k customers, then times the catch-up of ``changes``
updates made at the CRM, read and validated in batches of 10,000 changes, with 0.1% of
them bad (so every batch also pays the COMPLETE pass on the expectations that failed).
The gate's own time is measured around ``sync.quality.hook.screen`` (everything it does:
quarantine lookups, coercion, the DataFrame, both GX passes, the quarantine rows).
Medians over ``runs``; wall clock and this process's CPU time (steadier on a shared
machine: SQLite runs in-process, so CPU time covers the whole pipeline). Also a run
without a suite, and the gate alone on one 10k batch. Not a test: no assertion.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.quality.conftest import SUITE, make_shop  # noqa: E402

BATCH = 10_000
CUSTOMERS = 10_000


class Timed:
    """Wall and CPU seconds spent inside the gate during a run."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.rows = 0

    def wrap(self, fn: Any) -> Any:
        def timed(ctx: Any, source: str, changes: list[Any], *args: Any) -> Any:
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(ctx, source, changes, *args)
            finally:
                self.wall += time.perf_counter() - w
                self.cpu += time.process_time() - c
                self.rows += len(changes)
        return timed


def one_run(changes: int, with_suite: bool) -> dict[str, float]:
    import sync.quality.hook as hook

    with tempfile.TemporaryDirectory() as tmp:
        shop = make_shop(Path(tmp), suite=SUITE if with_suite else None, size=BATCH)
        shop.crm.many("INSERT INTO customers (id, name, email, amount, status) "
                      "VALUES (?,?,?,?,?)",
                      [(i, f"Customer {i}", f"c{i}@example.com", i % 500, "active")
                       for i in range(CUSTOMERS)])
        shop.setup()
        shop.run()  # the snapshot: not timed
        updates = []
        for n in range(changes):
            i = n % CUSTOMERS
            bad = n % 1000 == 999
            updates.append((f"Customer {i} v{n // CUSTOMERS}",
                            f"c{i}-at-example.com" if bad else f"c{i}.{n}@example.com",
                            -1 if bad else n % 700, i))
        shop.crm.many("UPDATE customers SET name = ?, email = ?, amount = ? WHERE id = ?",
                      updates)
        timer = Timed()
        original = hook.screen
        hook.screen = timer.wrap(original)
        try:
            w, c = time.perf_counter(), time.process_time()
            summary = shop.run()
            wall, cpu = time.perf_counter() - w, time.process_time() - c
        finally:
            hook.screen = original
        read = summary.total("read")
        assert read == changes, (read, changes)
        return {"wall": wall, "cpu": cpu, "gate_wall": timer.wall, "gate_cpu": timer.cpu,
                "quarantined": float(len(shop.items()))}


def gate_alone(runs: int) -> dict[str, float]:
    """One 10k batch through QualityGate.validate: all good, and 0.1% bad."""
    from types import SimpleNamespace

    from sync.change import Change, Op
    from sync.quality.gate import QualityGate
    from sync.quality.suite import load_suite

    types = {"id": "int", "name": "text", "email": "text", "amount": "decimal",
             "status": "text"}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "suite.json"
        p.write_text(json.dumps(SUITE))
        gate = QualityGate(load_suite(p, set(types), types), types)

    def batch(bad_every: int) -> list[Change]:
        return [Change("customers", {"id": i}, Op.UPDATE, None,
                       {"id": i, "name": f"Customer {i}",
                        "email": "bad" if i % bad_every == bad_every - 1 else f"c{i}@example.com",
                        "amount": str(i % 700), "status": "active"},
                       "crm", (i,), 0.0) for i in range(BATCH)]

    out: dict[str, float] = {}
    for name, changes in (("clean", batch(10**9)), ("0.1% bad", batch(1000))):
        gate.validate(SimpleNamespace(types=types), changes)  # warm
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            gate.validate(SimpleNamespace(types=types), changes)
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    changes = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"$ .venv/bin/python bench/quality_cost.py {changes} {runs}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    t = time.perf_counter()
    import great_expectations  # noqa: F401

    print(f"import great_expectations: {time.perf_counter() - t:.2f} s (once per process)")
    one_run(BATCH, True)  # warm: GX context, suite, caches
    with_suite = [one_run(changes, True) for _ in range(runs)]
    without = [one_run(changes, False) for _ in range(runs)]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"\n{changes} changes in batches of {BATCH}, {runs} runs each, medians:")
    for clock in ("wall", "cpu"):
        total, gate, plain = med(with_suite, clock), med(with_suite, f"gate_{clock}"), \
            med(without, clock)
        print(f"  {clock:4}: run with suite {total:6.2f} s, of which gate {gate:5.2f} s = "
              f"{100 * gate / total:4.1f}% | run without suite {plain:6.2f} s | "
              f"gate per row {1e6 * gate / changes:5.1f} µs")
    shares = [r["gate_cpu"] / r["cpu"] for r in with_suite]
    print(f"  gate share of CPU per run: {', '.join(f'{100 * s:.1f}%' for s in shares)}")
    print(f"  quarantined per run: {med(with_suite, 'quarantined'):.0f}")
    alone = gate_alone(runs)
    for name, secs in alone.items():
        print(f"  QualityGate.validate alone, 10k changes, {name:8}: {1000 * secs:6.1f} ms "
              f"({1e6 * secs / BATCH:4.1f} µs per row)")


if __name__ == "__main__":
    main()
