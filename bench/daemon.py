"""The CDC daemon (issue 5): latency, throughput and memory, against the real servers.

    .venv/bin/python bench/daemon.py latency    [--rate 2000] [--seconds 30] [--runs 3]
    .venv/bin/python bench/daemon.py throughput [--changes 200000] [--runs 3]
    .venv/bin/python bench/daemon.py rss        [--changes 5000000] [--cap 300]
    .venv/bin/python bench/daemon.py idle       [--seconds 15] [--runs 3]
    .venv/bin/python bench/daemon.py steady     [--rate 2000] [--seconds 300]
                                                [--stall-at 60] [--stall 30]
                                                [--update-keys N]

Every mode runs ``cdcsync daemon`` as a separate process (as users run it), on a
pipeline between scratch databases of the local PostgreSQL and MariaDB, with the
SQLite state store and the in-process broker (options before the mode:
``--apply-threads``, ``--partitions``, ``--broker URL --worker-procs N`` to apply
in ``cdcsync worker`` processes, ``--broker URL --local-workers N`` to have the
daemon start them (``daemon.worker_processes``), ``--writer pgbench|python``).

* **latency**: PostgreSQL <-> MariaDB, bidirectional. ``pgbench -R`` commits
  ``--rate`` single-row inserts per second on PostgreSQL (and a Python thread a
  tenth of that on MariaDB, so the pipeline carries traffic both ways). Each
  row carries its commit-side timestamp; the target fills ``applied_at`` itself
  (a column the pipeline leaves alone), so every row's commit-to-applied
  latency is exact. Side by side, PostgreSQL's own logical replication (a
  publication with a column list and a subscription into a third database)
  carries the same workload: its p50/p99 are the baseline, and the ratio is
  printed.
* **throughput**: PostgreSQL -> MariaDB, one-way. A backlog of ``--changes`` mixed
  changes (50% insert, 35% update, 15% delete, in 1000-row transactions) is
  made while the daemon is stopped; the daemon is started and timed until the
  target holds exactly the source's rows. Baseline side by side: PostgreSQL's
  own subscription draining the same backlog into a PostgreSQL database.
* **rss**: the daemon's peak resident memory (VmHWM) while it drains a backlog of
  ``--changes`` changes, with a Great Expectations suite on the entity (the
  gate loaded), sampled every 0.2 s until drained or ``--cap`` seconds.
* **steady**: the daemon's resident memory at a steady load (the latency
  pipeline at ``--rate``, PostgreSQL -> MariaDB) for ``--seconds``, sampled every
  5 s, with a stall: the daemon is stopped (SIGSTOP) for ``--stall`` seconds at
  ``--stall-at`` and then catches up on what was written meanwhile, a burst of
  larger batches. Printed: RSS before the stall, its peak, and at the end; the
  baseline is the daemon itself before the burst (compare trees side by side).
* **idle**: the CPU an idle daemon costs (the latency pipeline, no writes) and
  the MariaDB server's CPU beside it over the same ``--seconds``; compare
  trees side by side (another one on ``PYTHONPATH``).

Medians over ``--runs``; ``uptime`` is printed, since the machine's other load
moves wall-clock figures. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fix_mariadb import create_database as maria_create  # noqa: E402
from tests.fix_mariadb import drop_database as maria_drop  # noqa: E402
from tests.fix_mariadb import server_params  # noqa: E402
from tests.fix_postgres import create_database, database_url, drop_database  # noqa: E402

PG_ADMIN = os.environ.get("CDCSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIA = server_params(os.environ.get("CDCSYNC_BENCH_MARIADB_URL",
                                     "mysql://cdcsync:cdcsync@127.0.0.1:3306"))
CDCSYNC = str(Path(sys.executable).with_name("cdcsync"))


def status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status in KiB (``VmRSS``, ``VmHWM``); 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/PID/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


@contextmanager
def scratch() -> Iterator[tuple[str, dict[str, Any], Path]]:
    """A PostgreSQL database, a MariaDB database and a directory, dropped afterwards. The
    directory (the state store: 4 GB after an hour of inserts, and the daemon's logs) is
    kept only when the bench failed."""
    pg = create_database(PG_ADMIN)
    md = maria_create(MARIA)
    tmp = Path(tempfile.mkdtemp(prefix="cdcsync-bench-"))
    done = False
    try:
        yield database_url(PG_ADMIN, pg), {**MARIA, "database": md}, tmp
        done = True
    finally:
        drop_database(PG_ADMIN, pg)
        maria_drop(MARIA, md)
        drop_origins(tmp / "pipeline.yaml")
        if done:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"(the daemon's logs are kept in {tmp})", file=sys.stderr)


def drop_origins(pipeline: Path) -> None:
    """PostgreSQL's replication origins are cluster-wide and few (max_replication_slots):
    drop the ones the daemon made for this pipeline, or other users run out."""
    if not pipeline.exists():
        return
    name = next(line.split(":", 1)[1].strip() for line in pipeline.read_text().splitlines()
                if line.startswith("pipeline:"))
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        for (origin,) in c.execute("SELECT roname FROM pg_replication_origin WHERE roname = %s"
                                   " OR roname LIKE %s", (f"cdcsync_{name}",
                                                          f"cdcsync_{name}.%")).fetchall():
            c.execute("SELECT pg_replication_origin_drop(%s)", (origin,))


def maria(p: dict[str, Any]) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(host=p["host"], port=int(p["port"]), user=p["user"],
                           password=p["password"], database=p["database"], autocommit=True)


PARTITIONS = 4  # --partitions
APPLY_THREADS: int | None = None  # --apply-threads (None: the config's default)
BROKER = "memory://"  # --broker
WORKER_PROCS = 0  # --worker-procs: apply in that many `cdcsync worker` processes instead
LOCAL_WORKERS = 0  # --local-workers: daemon.worker_processes (workers the daemon starts)


def write_pipeline(tmp: Path, pg: str, md: dict[str, Any], entity: str) -> Path:
    """A pipeline ``pg`` <-> ``maria`` with one entity given as YAML text."""
    p = tmp / "pipeline.yaml"
    threads = f", apply_threads: {APPLY_THREADS}" if APPLY_THREADS else ""
    threads += f", worker_processes: {LOCAL_WORKERS}" if LOCAL_WORKERS else ""
    p.write_text(f"""
pipeline: bench{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp}/state.db"}}
broker: {{url: "{BROKER}"}}
batch: {{size: 10000}}
daemon: {{metrics_port: 0, poll_ms: 5, partitions: {PARTITIONS}{threads}}}
endpoints:
  pg: {{kind: postgres, dsn: "{pg}"}}
  maria: {{kind: mysql, host: "{md['host']}", port: {md['port']}, user: "{md['user']}",
          password: "{md['password']}", database: "{md['database']}",
          server_id: {random.randint(1_000_000, 2**31 - 1)}}}
entities:
  {entity}
""")
    return p


def cli(*args: str) -> None:
    subprocess.run([CDCSYNC, *args], check=True, capture_output=True, timeout=600)


class DaemonProc:
    def __init__(self, pipeline: Path) -> None:
        self.log = pipeline.parent / "daemon.log"
        self.workers = [self._start([CDCSYNC, "worker", str(pipeline)],
                                    pipeline.parent / f"worker{i}.log")
                        for i in range(WORKER_PROCS)]
        self.proc = self._start([CDCSYNC, "daemon", str(pipeline)]
                                + (["--no-workers"] if WORKER_PROCS else []), self.log)

    @staticmethod
    def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("w") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 300
        while " ready" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{argv[1]} did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return proc

    def stages(self) -> str:
        """Mean seconds per micro-batch of each stage, from the daemon's /metrics."""
        import re
        import urllib.request

        m = re.search(r"ready on (http://\S+)", self.log.read_text())
        if m is None:
            return "(no metrics endpoint)"
        text = urllib.request.urlopen(m.group(1) + "/metrics", timeout=10).read().decode()
        sums: dict[str, list[float]] = {}  # stage -> [sum, count]
        pattern = r'^cdcsync_batch_seconds_(sum|count)\{[^}]*stage="(\w+)"[^}]*\} (\S+)$'
        for kind, stage, value in re.findall(pattern, text, re.M):
            sums.setdefault(stage, [0.0, 0.0])[kind == "count"] += float(value)
        return "  ".join(f"{k} {1000 * v[0] / v[1]:.1f} ms x{v[1]:.0f}"
                         for k, v in sorted(sums.items()) if v[1])

    def cpu_seconds(self) -> float:
        """User + system CPU of the daemon and its worker processes so far (those it
        started itself included: --local-workers)."""
        pids = [proc.pid for proc in [self.proc, *self.workers]]
        return sum(proc_cpu(pid) for pid in pids + children_of(self.proc.pid))

    def hwm_kib(self) -> int:
        return status_kib(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        for proc in [self.proc, *self.workers]:
            proc.send_signal(signal.SIGTERM)
        for proc in [self.proc, *self.workers]:
            proc.wait(timeout=30)


# --- latency -----------------------------------------------------------------------------

LAT_ENTITY = """lat:
    key: [id]
    exclude: [applied_at]
    endpoints: {pg: lat, maria: lat}
    conflict: {policy: last_writer_wins}"""


def paced(rate: float, seconds: float, do: Any) -> int:
    """Call ``do(i)`` ``rate`` times a second for ``seconds``; return how many."""
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        due = int(elapsed * rate)
        while n < due:
            do(n)
            n += 1
        time.sleep(0.0005)
    return n


WRITER = "pgbench"  # --writer


def pgbench(url: str, rate: int, seconds: float, script_text: str) -> None:
    """Run ``script_text`` ``rate`` times a second for ``seconds`` (pgbench ``-R``: Poisson
    arrivals at that mean rate)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(script_text)
        script.flush()
        run = subprocess.run(["pgbench", "-n", "-c", "1", "-R", str(rate), "-T",
                              str(round(seconds)), "-f", script.name, url],
                             capture_output=True, text=True, timeout=seconds + 120)
        if run.returncode:
            raise SystemExit(f"pgbench failed:\n{run.stderr}")


def pg_updates(url: str, rate: int, seconds: float, keys: int) -> None:
    """Update ``rate`` random rows of ``keys`` a second in ``lat`` for ``seconds``: a steady
    load whose key set, and so the state store, stays the same size."""
    pgbench(url, rate, seconds, f"\\set id random(1, {keys})\n"
                                "UPDATE lat SET t0 = clock_timestamp() WHERE id = :id;\n")


def pg_load(url: str, rate: int, seconds: float) -> int:
    """Insert ``rate`` rows a second into ``lat`` for ``seconds``; return how many.

    pgbench (``-R``: Poisson arrivals at that mean rate) keeps the load's own CPU
    small on a 2-core machine that also runs both servers and the daemon; the
    Python writer (``--writer python``) is the one of the earlier figures.
    """
    if WRITER == "python":
        with psycopg.connect(url, autocommit=True) as c:
            return paced(rate, seconds, lambda i: c.execute(
                "INSERT INTO lat (id, src, t0) VALUES (%s, 'pg', clock_timestamp())", (i,)))
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE SEQUENCE IF NOT EXISTS lat_ids")
    pgbench(url, rate, seconds, "INSERT INTO lat (id, src, t0) VALUES (nextval('lat_ids'),"
                                " 'pg', clock_timestamp());\n")
    with psycopg.connect(url, autocommit=True) as c:
        return int(c.execute("SELECT count(*) FROM lat WHERE src = 'pg'").fetchone()[0])  # type: ignore[index]


def lat_pipeline(pg: str, md: dict[str, Any], tmp: Path) -> Path:
    """The ``lat`` table on both sides and a bidirectional pipeline over it, set up."""
    with psycopg.connect(pg, autocommit=True) as c:
        c.execute("CREATE TABLE lat (id bigint PRIMARY KEY, src text, t0 timestamptz,"
                  " applied_at timestamptz DEFAULT clock_timestamp())")
    with maria(md) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE lat (id BIGINT PRIMARY KEY, src VARCHAR(8), t0 DATETIME(6),"
                    " applied_at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6))")
    p = write_pipeline(tmp, pg, md, LAT_ENTITY)
    cli("setup", str(p))
    return p


def latency_run(rate: int, seconds: float) -> dict[str, float]:
    with scratch() as (pg, md, tmp):
        p = lat_pipeline(pg, md, tmp)
        d = DaemonProc(p)
        time.sleep(2)
        cpu0 = d.cpu_seconds()
        myc = maria(md)
        stop = threading.Event()

        def back() -> None:  # the other direction, at a tenth of the rate
            i = 0
            with myc.cursor() as cur:
                while not stop.is_set():
                    cur.execute("INSERT INTO lat (id, src, t0) VALUES (%s, 'my', "
                                "UTC_TIMESTAMP(6))", (10**9 + i,))
                    i += 1
                    stop.wait(10 / rate)

        t = threading.Thread(target=back, daemon=True)
        t.start()
        written = pg_load(pg, rate, seconds)
        stop.set()
        t.join()
        with myc.cursor() as cur:
            deadline = time.monotonic() + 180  # a daemon that falls behind still catches up
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM lat WHERE src = 'pg'")
                if cur.fetchone()[0] >= written:
                    break
                time.sleep(0.1)
            cur.execute("SELECT TIMESTAMPDIFF(MICROSECOND, t0, applied_at) FROM lat "
                        "WHERE src = 'pg'")
            forward = [float(r[0]) / 1000 for r in cur.fetchall()]
        # Rows that never arrived count as infinitely late, not as absent.
        forward += [float("inf")] * (written - len(forward))
        with psycopg.connect(pg, autocommit=True) as pgc:
            backward = [float(r[0]) * 1000 for r in pgc.execute(
                "SELECT extract(epoch FROM applied_at - t0) FROM lat WHERE src = 'my'"
            ).fetchall()]
        print(f"  stages (mean per micro-batch): {d.stages()}")
        cpu = d.cpu_seconds() - cpu0
        print(f"  daemon CPU (load and catch-up): {cpu / seconds:.2f} core, "
              f"{1e6 * cpu / (written + len(backward)):.0f} us per change")
        d.stop()
        myc.close()
    return {"rate": written / seconds, "p50": pct(forward, 0.5), "p99": pct(forward, 0.99),
            "back_p50": pct(backward, 0.5), "back_p99": pct(backward, 0.99)}


def native_latency_run(rate: int, seconds: float) -> dict[str, float]:
    """PostgreSQL's own logical replication, same workload, PostgreSQL -> PostgreSQL."""
    src, dst = create_database(PG_ADMIN), create_database(PG_ADMIN)
    src_url, dst_url = database_url(PG_ADMIN, src), database_url(PG_ADMIN, dst)
    slot = f"bench_lat_{src[-8:]}"
    try:
        ddl = ("CREATE TABLE lat (id bigint PRIMARY KEY, src text, t0 timestamptz,"
               " applied_at timestamptz DEFAULT clock_timestamp())")
        with psycopg.connect(src_url, autocommit=True) as c:
            c.execute(ddl)
            c.execute("CREATE PUBLICATION bench_lat FOR TABLE lat (id, src, t0)")
            c.execute(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        with psycopg.connect(dst_url, autocommit=True) as c:
            c.execute(ddl)
            c.execute(f"CREATE SUBSCRIPTION bench_lat CONNECTION '{src_url}' PUBLICATION "
                      f"bench_lat WITH (create_slot = false, slot_name = '{slot}', "
                      "copy_data = false)")
        time.sleep(2)
        written = pg_load(src_url, rate, seconds)
        with psycopg.connect(dst_url, autocommit=True) as c:
            for _ in range(300):
                if c.execute("SELECT count(*) FROM lat").fetchone()[0] >= written:  # type: ignore[index]
                    break
                time.sleep(0.1)
            lat = [float(r[0]) * 1000 for r in c.execute(
                "SELECT extract(epoch FROM applied_at - t0) FROM lat").fetchall()]
            c.execute("ALTER SUBSCRIPTION bench_lat DISABLE")
            c.execute("ALTER SUBSCRIPTION bench_lat SET (slot_name = NONE)")
            c.execute("DROP SUBSCRIPTION bench_lat")
        with psycopg.connect(src_url, autocommit=True) as c:
            c.execute(f"SELECT pg_drop_replication_slot('{slot}')")
    finally:
        drop_database(PG_ADMIN, src)
        drop_database(PG_ADMIN, dst)
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}


def latency(args: argparse.Namespace) -> None:
    ours, theirs = [], []
    for i in range(args.runs):
        o = latency_run(args.rate, args.seconds)
        n = native_latency_run(args.rate, args.seconds)
        ours.append(o)
        theirs.append(n)
        print(f"run {i + 1}: cdcsync PG->MariaDB p50 {o['p50']:.1f} ms p99 {o['p99']:.1f} ms "
              f"(MariaDB->PG p50 {o['back_p50']:.1f} p99 {o['back_p99']:.1f}) at "
              f"{o['rate']:.0f}/s | native PG->PG p50 {n['p50']:.1f} p99 {n['p99']:.1f} ms",
              flush=True)
    med = {k: statistics.median(r[k] for r in ours) for k in ours[0]}
    nat = {k: statistics.median(r[k] for r in theirs) for k in theirs[0]}
    print(f"\nlatency at {args.rate} changes/s, medians of {args.runs} runs (load {uptime()}):")
    print(f"  cdcsync daemon  PG->MariaDB  p50 {med['p50']:.1f} ms  p99 {med['p99']:.1f} ms"
          f"   (MariaDB->PG p50 {med['back_p50']:.1f} ms  p99 {med['back_p99']:.1f} ms)")
    print(f"  PostgreSQL logical replication PG->PG  p50 {nat['p50']:.1f} ms  "
          f"p99 {nat['p99']:.1f} ms")
    print(f"  p99 ratio cdcsync/native: {med['p99'] / nat['p99']:.1f}x  (target: p99 <= 100 ms)")


# --- idle --------------------------------------------------------------------------------


def server_pid(name: str) -> int | None:
    """The pid of the first process whose command is ``name`` (e.g. mariadbd)."""
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == name:
                return int(stat.parent.name)
        except OSError:
            continue
    return None


def idle_run(seconds: float) -> dict[str, float]:
    """CPU of an idle daemon (the latency pipeline, ``poll_ms: 5``, no writes), and of
    the MariaDB server beside it over the same window: what waiting costs both."""
    maria_pid = server_pid("mariadbd")
    with scratch() as (pg, md, tmp):
        d = DaemonProc(lat_pipeline(pg, md, tmp))
        try:
            time.sleep(3)  # started and settled
            t0, cpu0 = time.monotonic(), d.cpu_seconds()
            m0 = proc_cpu(maria_pid) if maria_pid else 0.0
            time.sleep(seconds)
            wall = time.monotonic() - t0
            out = {"daemon": (d.cpu_seconds() - cpu0) / wall,
                   "mariadb": ((proc_cpu(maria_pid) - m0) / wall) if maria_pid else float("nan")}
        finally:
            d.stop()
    return out


def idle(args: argparse.Namespace) -> None:
    runs = [idle_run(args.seconds) for _ in range(args.runs)]
    for i, r in enumerate(runs):
        print(f"run {i + 1}: idle daemon {r['daemon']:.3f} core, MariaDB server beside it "
              f"{r['mariadb']:.3f} core", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\nidle, {args.seconds:.0f} s, medians of {args.runs} runs (load {uptime()}):")
    print(f"  cdcsync daemon {med['daemon']:.3f} core; MariaDB server {med['mariadb']:.3f} core"
          "  (compare side by side: another tree on PYTHONPATH)")


# --- throughput --------------------------------------------------------------------------

TP_ENTITY = """items:
    key: [id]
    direction: one-way
    source: pg
    endpoints: {pg: items, maria: items}"""
PG_ITEMS = ("CREATE TABLE items (id bigint PRIMARY KEY, name text, email text, "
            "amount numeric(12,2), qty int, seen timestamptz, flag bool, note text)")
MY_ITEMS = ("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(64), email VARCHAR(64), "
            "amount DECIMAL(12,2), qty INT, seen DATETIME(6), flag BOOL, note TEXT)")


def make_backlog(pg: str, changes: int, seed: int = 1) -> None:
    """``changes`` mixed changes in 1000-row transactions (set-based, fast to make)."""
    rng = random.Random(seed)
    next_id = 1
    with psycopg.connect(pg) as c:
        done = 0
        while done < changes:
            n = min(1000, changes - done)
            kind = rng.random()
            if kind < 0.5 or next_id < 2000:
                c.execute("INSERT INTO items SELECT g, 'name ' || g, 'u' || g || '@x.io', "
                          "g * 1.25, g %% 100, now(), g %% 2 = 0, repeat('x', 40) "
                          "FROM generate_series(%s::bigint, %s::bigint) g",
                          (next_id, next_id + n - 1))
                next_id += n
            elif kind < 0.85:
                lo = rng.randrange(1, max(2, next_id - n))
                c.execute("UPDATE items SET qty = qty + 1, note = 'updated' "
                          "WHERE id >= %s AND id < %s", (lo, lo + n))
            else:
                lo = rng.randrange(1, max(2, next_id - n))
                c.execute("DELETE FROM items WHERE id >= %s AND id < %s", (lo, lo + n))
            c.commit()
            done += n


TOTALS = "SELECT count(*), coalesce(sum(qty), 0) FROM items"  # what a drain ends at


def totals(cur: Any) -> tuple[int, int] | None:
    """Row count and sum of qty of ``items``, on a PostgreSQL or MariaDB cursor."""
    cur.execute(TOTALS)
    row = cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def pg_totals(pg: str) -> tuple[int, int] | None:
    with psycopg.connect(pg) as c, c.cursor() as cur:
        return totals(cur)


def drained(pg: str, md: dict[str, Any]) -> bool:
    """Does MariaDB hold what PostgreSQL holds (row count and sum of qty)?"""
    want = pg_totals(pg)
    with maria(md) as m, m.cursor() as cur:
        return want is not None and totals(cur) == want


def wait_drained(pg: str, md: dict[str, Any]) -> None:
    """Until MariaDB holds what PostgreSQL holds (row count and sum of qty).

    The backlog is complete before the daemon starts, so PostgreSQL is read
    once; MariaDB is polled on one connection every 0.1 s. (A new connection to
    each server every 50 ms took ~0.2 core from the machine the daemon runs on.)
    """
    want = pg_totals(pg)
    assert want is not None
    with maria(md) as m, m.cursor() as cur:  # autocommit: every poll sees what is committed
        while totals(cur) != want:
            time.sleep(0.1)


def throughput_run(changes: int) -> float:
    with scratch() as (pg, md, tmp):
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute(PG_ITEMS)
        with maria(md) as m, m.cursor() as cur:
            cur.execute(MY_ITEMS)
        p = write_pipeline(tmp, pg, md, TP_ENTITY)
        cli("setup", str(p))
        d = DaemonProc(p)  # snapshot of the empty tables, then streaming
        d.stop()
        make_backlog(pg, changes)
        t0 = time.perf_counter()
        d = DaemonProc(p)
        wait_drained(pg, md)
        seconds = time.perf_counter() - t0
        d.stop()
    return changes / seconds


def native_throughput_run(changes: int) -> float:
    src, dst = create_database(PG_ADMIN), create_database(PG_ADMIN)
    src_url, dst_url = database_url(PG_ADMIN, src), database_url(PG_ADMIN, dst)
    slot = f"bench_tp_{src[-8:]}"
    try:
        for url in (src_url, dst_url):
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(PG_ITEMS)
        with psycopg.connect(src_url, autocommit=True) as c:
            c.execute("CREATE PUBLICATION bench_tp FOR TABLE items")
            c.execute(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        with psycopg.connect(dst_url, autocommit=True) as c:
            c.execute(f"CREATE SUBSCRIPTION bench_tp CONNECTION '{src_url}' PUBLICATION bench_tp"
                      f" WITH (create_slot = false, slot_name = '{slot}', copy_data = false,"
                      " enabled = false)")
        make_backlog(src_url, changes)
        with psycopg.connect(src_url) as c:
            end = c.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0]  # type: ignore[index]
        t0 = time.perf_counter()
        with psycopg.connect(dst_url, autocommit=True) as c:
            c.execute("ALTER SUBSCRIPTION bench_tp ENABLE")
        with psycopg.connect(src_url, autocommit=True) as c:
            while True:
                row = c.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots"
                                " WHERE slot_name = %s", (slot,)).fetchone()
                if row and row[0] is not None and int(row[0]) >= int(end):
                    break
                time.sleep(0.02)
        seconds = time.perf_counter() - t0
        with psycopg.connect(dst_url, autocommit=True) as c:
            c.execute("ALTER SUBSCRIPTION bench_tp DISABLE")
            c.execute("ALTER SUBSCRIPTION bench_tp SET (slot_name = NONE)")
            c.execute("DROP SUBSCRIPTION bench_tp")
        with psycopg.connect(src_url, autocommit=True) as c:
            c.execute(f"SELECT pg_drop_replication_slot('{slot}')")
    finally:
        drop_database(PG_ADMIN, src)
        drop_database(PG_ADMIN, dst)
    return changes / seconds


def throughput(args: argparse.Namespace) -> None:
    ours, theirs = [], []
    for i in range(args.runs):
        ours.append(throughput_run(args.changes))
        theirs.append(native_throughput_run(args.changes))
        print(f"run {i + 1}: cdcsync daemon PG->MariaDB {ours[-1]:,.0f} changes/s | "
              f"native PG->PG {theirs[-1]:,.0f} changes/s", flush=True)
    o, n = statistics.median(ours), statistics.median(theirs)
    print(f"\nthroughput, {args.changes} changes, medians of {args.runs} runs (load {uptime()}):")
    print(f"  cdcsync daemon PG->MariaDB  {o:,.0f} changes/s   (target >= 30,000)")
    print(f"  PostgreSQL subscription PG->PG  {n:,.0f} changes/s   ratio {o / n:.2f}")


# --- memory ------------------------------------------------------------------------------

SUITE = {
    "name": "items",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "qty", "min_value": 0, "max_value": 100000}},
        {"type": "expect_column_value_lengths_to_be_between",
         "kwargs": {"column": "email", "max_value": 64}},
    ],
}


def rss(args: argparse.Namespace) -> None:
    with scratch() as (pg, md, tmp):
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute(PG_ITEMS)
        with maria(md) as m, m.cursor() as cur:
            cur.execute(MY_ITEMS)
        suite = tmp / "items.json"
        suite.write_text(json.dumps(SUITE))
        p = write_pipeline(tmp, pg, md, TP_ENTITY + f"\n    quality: {{suite: {suite}}}")
        cli("setup", str(p))
        d = DaemonProc(p)
        d.stop()
        t = time.perf_counter()
        make_backlog(pg, args.changes)
        print(f"backlog of {args.changes:,} changes made in {time.perf_counter() - t:.0f} s",
              flush=True)
        d = DaemonProc(p)
        t0 = time.perf_counter()
        peak, samples = 0, []
        while time.perf_counter() - t0 < args.cap:
            peak = max(peak, d.hwm_kib())
            samples.append(peak)
            if len(samples) % 25 == 0 and drained(pg, md):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        done = drained(pg, md)
        peak = max(peak, d.hwm_kib())
        d.stop()
    print(f"\npeak RSS of the daemon: {peak / 1024:.0f} MiB (target <= 400 MiB) with a backlog "
          f"of {args.changes:,} changes and the quality gate loaded; "
          f"{'drained' if done else 'still draining'} after {elapsed:.0f} s (load {uptime()})")


def steady(args: argparse.Namespace) -> None:
    with scratch() as (pg, md, tmp):
        p = lat_pipeline(pg, md, tmp)
        if args.update_keys:  # synced by the daemon's initial snapshot, then updated
            with psycopg.connect(pg, autocommit=True) as c:
                c.execute("INSERT INTO lat (id, src, t0) SELECT g, 'pg', clock_timestamp()"
                          " FROM generate_series(1, %s) g", (args.update_keys,))
        d = DaemonProc(p)
        work = functools.partial(pg_updates, keys=args.update_keys) if args.update_keys \
            else pg_load
        load = threading.Thread(target=work, args=(pg, args.rate, args.seconds), daemon=True)
        t0 = time.perf_counter()
        load.start()
        samples: list[tuple[float, int]] = []
        stalled = resumed = False
        while load.is_alive():
            now = time.perf_counter() - t0
            if not stalled and now >= args.stall_at:
                d.proc.send_signal(signal.SIGSTOP)
                stalled = True
            if stalled and not resumed and now >= args.stall_at + args.stall:
                d.proc.send_signal(signal.SIGCONT)
                resumed = True
            if not stalled or resumed:
                samples.append((now, status_kib(d.proc.pid, "VmRSS")))
                print(f"  {now:6.0f} s  RSS {samples[-1][1] / 1024:6.1f} MiB", flush=True)
            time.sleep(5.0)
        if stalled and not resumed:
            d.proc.send_signal(signal.SIGCONT)
        d.stop()
    before = [kib for at, kib in samples if at < args.stall_at]
    after = [kib for at, kib in samples if at >= args.stall_at]
    print(f"\nRSS at {args.rate}/s over {args.seconds:.0f} s, stalled {args.stall:.0f} s at "
          f"{args.stall_at:.0f} s (load {uptime()}):")
    if before:
        print(f"  before the stall (median): {statistics.median(before) / 1024:.1f} MiB")
    if after:
        print(f"  peak after it: {max(after) / 1024:.1f} MiB; at the end: "
              f"{after[-1] / 1024:.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    la = sub.add_parser("latency")
    la.add_argument("--rate", type=int, default=2000)
    la.add_argument("--seconds", type=float, default=30)
    la.add_argument("--runs", type=int, default=3)
    tp = sub.add_parser("throughput")
    tp.add_argument("--changes", type=int, default=200_000)
    tp.add_argument("--runs", type=int, default=3)
    il = sub.add_parser("idle")
    il.add_argument("--seconds", type=float, default=15)
    il.add_argument("--runs", type=int, default=3)
    st = sub.add_parser("steady")
    st.add_argument("--rate", type=int, default=2000)
    st.add_argument("--seconds", type=float, default=300)
    st.add_argument("--stall-at", type=float, default=60)
    st.add_argument("--stall", type=float, default=30)
    st.add_argument("--update-keys", type=int, default=0,
                    help="updates of this many rows instead of inserts (a state store of"
                    " a fixed size)")
    rs = sub.add_parser("rss")
    rs.add_argument("--changes", type=int, default=5_000_000)
    rs.add_argument("--cap", type=float, default=300)
    ap.add_argument("--partitions", type=int, default=4,
                    help="the pipeline's daemon.partitions (apply queues)")
    ap.add_argument("--apply-threads", type=int, default=None,
                    help="the pipeline's daemon.apply_threads (appliers per process)")
    ap.add_argument("--writer", choices=["pgbench", "python"], default="pgbench",
                    help="what writes the latency load into PostgreSQL")
    ap.add_argument("--broker", default="memory://",
                    help="the pipeline's broker.url, e.g. redis://127.0.0.1:6379/0")
    ap.add_argument("--worker-procs", type=int, default=0,
                    help="apply in N `cdcsync worker` processes (daemon --no-workers); "
                         "needs a shared --broker")
    ap.add_argument("--local-workers", type=int, default=0,
                    help="the pipeline's daemon.worker_processes: N `cdcsync worker` "
                         "processes the daemon starts itself; needs a shared --broker")
    args = ap.parse_args()
    global PARTITIONS, APPLY_THREADS, BROKER, WORKER_PROCS, LOCAL_WORKERS, WRITER
    PARTITIONS, BROKER, WORKER_PROCS = args.partitions, args.broker, args.worker_procs
    LOCAL_WORKERS = args.local_workers
    APPLY_THREADS = args.apply_threads
    WRITER = args.writer
    if (WORKER_PROCS or LOCAL_WORKERS) and BROKER.startswith("memory"):
        ap.error("--worker-procs and --local-workers need a shared --broker "
                 "(redis:// or amqp://)")
    {"latency": latency, "throughput": throughput, "rss": rss, "idle": idle,
     "steady": steady}[args.mode](args)


if __name__ == "__main__":
    main()
