"""MariaDB -> PostgreSQL end to end: ``cdcsync run`` side by side with pg_chameleon.

    flock /tmp/cdcsync-bench.lock .venv/bin/python bench/mysql_to_pg.py \\
        [--changes 200000] [--base 50000] [--runs 3] [--skip-chameleon]

In a scratch database of the local MariaDB (``$CDCSYNC_BENCH_MARIADB_URL``,
default ``mysql://cdcsync:cdcsync@127.0.0.1:3306``), a table of 8 columns
(BIGINT key, two VARCHAR, DECIMAL(12,2), INT, DATETIME(6), TINYINT(1), JSON)
holds ``--base`` rows. Every replica starts from it before any change is
written:

* ``--runs`` cdcsync pipelines (one-way MariaDB -> PostgreSQL, the SQLite state
  store on, version vectors and compare-and-set as always; no quality gate),
  each with its own target database of the local PostgreSQL
  (``$CDCSYNC_BENCH_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``),
  set up by ``cdcsync setup`` (which creates the target table from the
  source's schema) and snapshotted by a first ``cdcsync run``;
* ``--runs`` pg_chameleon 2.0.21 replicas, each into another PostgreSQL
  database (``create_replica_schema``, ``add_source``, ``init_replica``).

Then ``--changes`` mixed changes are written in 1000-row transactions (40%
INSERT, 40% UPDATE of four columns, 20% DELETE), and each replica catches up
with that same backlog, one at a time, alternating (cdcsync 1, pg_chameleon 1,
cdcsync 2, ...), so that the machine's drifting load falls on both alike:

* cdcsync: ``cdcsync run PIPELINE --json`` as a subprocess, timed from its
  start to its exit (interpreter start-up included);
* pg_chameleon: ``start_replica`` (foreground, ``log_dest: stdout``), timed from
  its start until its target holds the source's final content (polled every
  0.5 s by row count and two column sums), then stopped with SIGINT.

Printed: each run, the median rates, their ratio, the load average; and
whether every target ends identical to the source: all rows compared in one
canonical form (DECIMAL as text with its scale, DATETIME to the microsecond,
booleans as 0/1, JSON parsed with sorted keys; pg_chameleon keeps JSON as
text, cdcsync as jsonb).

pg_chameleon is a benchmark peer, not a dependency of cdcsync. On first use
the bench installs it into its own virtualenv, ``/var/tmp/pg_chameleon-2.0.21``
(``python3.11 -m venv`` + ``pip install pg_chameleon==2.0.21``;
``$CDCSYNC_BENCH_CHAMELEON_VENV`` names another), outside the repository. It
refuses to run as root: run as root, the bench creates an ordinary user
``cdcbench`` (``useradd -m``) and runs it through ``runuser -u cdcbench --``;
its configuration files go to that user's ``~/.pg_chameleon/configuration/``
and are removed at the end. pg_chameleon's MariaDB account
(``cdcsync_bench_cham``, with a fresh random password each run) gets what its
``init_replica`` needs: LOCK TABLES, RELOAD, SELECT, REPLICATION SLAVE, BINLOG
MONITOR, SLAVE MONITOR; it is dropped at the end. ``init_replica`` runs with
``--debug`` (in daemon mode it fails silently).

A benchmark, not a test: wall-clock figures move with the machine's other
load (the load average is printed with them); run it under the bench lock.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fix_mariadb import MariaDBParams, server_params  # noqa: E402
from tests.fix_mariadb import create_database as create_maria  # noqa: E402
from tests.fix_mariadb import drop_database as drop_maria  # noqa: E402
from tests.fix_postgres import create_database as create_pg  # noqa: E402
from tests.fix_postgres import database_url  # noqa: E402
from tests.fix_postgres import drop_database as drop_pg  # noqa: E402

PG_ADMIN = os.environ.get("CDCSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIA_URL = os.environ.get("CDCSYNC_BENCH_MARIADB_URL", "mysql://cdcsync:cdcsync@127.0.0.1:3306")
CHAMELEON_VERSION = "2.0.21"
CHAMELEON_VENV = Path(os.environ.get("CDCSYNC_BENCH_CHAMELEON_VENV",
                                     f"/var/tmp/pg_chameleon-{CHAMELEON_VERSION}"))
CHAMELEON_OS_USER = "cdcbench"
CHAMELEON_DB_USER = "cdcsync_bench_cham"
CHAMELEON_SCHEMA = "bench"  # pg_chameleon's target schema in its own database
TX = 1000

TABLE = (
    "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200),"
    " amount DECIMAL(12,2), qty INT, updated_at DATETIME(6), active TINYINT(1), doc JSON)"
)
COLUMNS = "id, name, email, amount, qty, updated_at, active, doc"


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


# --- the source ------------------------------------------------------------------------------


def maria(params: MariaDBParams, *, autocommit: bool = True) -> Any:
    return pymysql.connect(host=params["host"], port=params["port"], user=params["user"],
                           password=params["password"], database=params["database"] or None,
                           autocommit=autocommit, charset="utf8mb4")


def row(i: int, rng: random.Random) -> tuple[Any, ...]:
    return (i, f"customer {i}", f"user{i}@example.org",
            Decimal(rng.randrange(0, 10_000_000)) / 100, rng.randrange(0, 1000),
            datetime(2024, 1, 1) + (datetime(2024, 6, 1) - datetime(2024, 1, 1)) * rng.random(),
            rng.randrange(2), json.dumps({"k": i, "tags": ["a", "b"][: rng.randrange(3)]}))


INSERT = f"INSERT INTO items ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"


def seed(params: MariaDBParams, n: int, rng: random.Random) -> None:
    with maria(params, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
        for lo in range(1, n + 1, 5000):
            cur.executemany(INSERT, [row(i, rng) for i in range(lo, min(lo + 5000, n + 1))])
            conn.commit()


def backlog(params: MariaDBParams, changes: int, first_id: int, live: list[int],
            rng: random.Random) -> None:
    """``changes`` changes in transactions of TX rows: 40% INSERT, 40% UPDATE, 20% DELETE."""
    next_id, done = first_id, 0
    with maria(params, autocommit=False) as conn, conn.cursor() as cur:
        while done < changes:
            n = min(TX, changes - done)
            ins, upd = int(n * 0.4), int(n * 0.4)
            dele = n - ins - upd
            cur.executemany(INSERT, [row(i, rng) for i in range(next_id, next_id + ins)])
            live.extend(range(next_id, next_id + ins))
            next_id += ins
            picked = rng.sample(range(len(live)), upd + dele)
            upd_ids = [live[i] for i in picked[:upd]]
            del_ids = [live[i] for i in picked[upd:]]
            marks = ", ".join(["%s"] * len(upd_ids))
            cur.execute("UPDATE items SET qty = qty + 1, amount = amount + 0.01,"
                        " updated_at = NOW(6), doc = JSON_SET(doc, '$.u', qty)"
                        f" WHERE id IN ({marks})", upd_ids)
            marks = ", ".join(["%s"] * len(del_ids))
            cur.execute(f"DELETE FROM items WHERE id IN ({marks})", del_ids)
            gone = set(del_ids)
            live[:] = [i for i in live if i not in gone]
            conn.commit()
            done += n


def fingerprint_maria(params: MariaDBParams) -> tuple[int, int, Decimal]:
    with maria(params) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), sum(qty), sum(amount) FROM items")
        n, q, a = cur.fetchone()
    return int(n), int(q or 0), Decimal(a or 0)


# --- comparing the ends ------------------------------------------------------------------------


def canonical(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """One form for a row read from either engine (see the module docstring)."""
    id_, name, email, amount, qty, ts, active, doc = r
    if isinstance(ts, datetime) and ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    if isinstance(doc, str):
        doc = json.loads(doc)
    return (int(id_), name, email, None if amount is None else str(amount), qty,
            None if ts is None else ts.isoformat(), None if active is None else int(active),
            None if doc is None else json.dumps(doc, sort_keys=True))


def rows_maria(params: MariaDBParams) -> dict[int, tuple[Any, ...]]:
    with maria(params) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM items")
        return {int(r[0]): canonical(r) for r in cur}


def rows_pg(dsn: str, table: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn, conn.cursor(name="dump") as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {table}")
        return {int(r[0]): canonical(r) for r in cur}


def differences(source: dict[int, tuple[Any, ...]], target: dict[int, tuple[Any, ...]]) -> str:
    missing = source.keys() - target.keys()
    extra = target.keys() - source.keys()
    differing = [k for k in source.keys() & target.keys() if source[k] != target[k]]
    if not (missing or extra or differing):
        return f"identical ({len(source)} rows)"
    example = f", e.g. {source[differing[0]]} != {target[differing[0]]}" if differing else ""
    return (f"NOT identical: {len(missing)} missing, {len(extra)} extra, {len(differing)}"
            f" differing{example}")


# --- cdcsync -----------------------------------------------------------------------------------


def cdcsync_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("cdcsync")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sync.cli"]


def cdcsync(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*cdcsync_cmd(), *args], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"cdcsync {' '.join(args)} exited {res.returncode}:\n{res.stdout}"
                         f"\n{res.stderr}")
    return res


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Cdcsync:
    pipeline: str  # also its target database's name
    path: Path
    dsn: str
    seconds: float = 0.0
    cpu: float = 0.0
    totals: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, tmp: Path, src: MariaDBParams, workers: str = "auto") -> Cdcsync:
        name = create_pg(PG_ADMIN)
        dsn = database_url(PG_ADMIN, name)
        path = tmp / f"{name}.yaml"
        path.write_text(f"""
pipeline: {name}
state: {{url: "sqlite:///{tmp}/{name}.db"}}
batch: {{workers: {workers}}}
endpoints:
  maria:
    kind: mysql
    host: {src['host']}
    port: {src['port']}
    user: {src['user']}
    password: "{src['password']}"
    database: {src['database']}
  pg: {{kind: postgres, dsn: "{dsn}"}}
entities:
  items:
    key: [id]
    direction: one-way
    source: maria
    endpoints:
      maria: {{table: items}}
      pg: {{table: items}}
""")
        return cls(name, path, dsn)

    def setup(self) -> None:
        cdcsync("setup", str(self.path))
        cdcsync("run", str(self.path))  # the initial snapshot

    def catch_up(self) -> None:
        c0, t0 = children_cpu(), time.perf_counter()
        out = cdcsync("run", str(self.path), "--json")
        self.seconds, self.cpu = time.perf_counter() - t0, children_cpu() - c0
        self.totals = json.loads(out.stdout)["totals"]

    def close(self) -> None:
        try:
            subprocess.run([*cdcsync_cmd(), "teardown", str(self.path), "--yes", "--force"],
                           capture_output=True, cwd=ROOT, timeout=120)
        finally:
            drop_pg(PG_ADMIN, self.pipeline)


def fingerprint_pg(dsn: str, table: str) -> tuple[int, int, Decimal]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row_ = conn.execute(f"SELECT count(*), sum(qty), sum(amount) FROM {table}").fetchone()
    assert row_ is not None
    return int(row_[0]), int(row_[1] or 0), Decimal(row_[2] or 0)


# --- pg_chameleon ------------------------------------------------------------------------------


def chameleon_venv() -> Path:
    exe = CHAMELEON_VENV / "bin" / "chameleon"
    if not exe.exists():
        print(f"installing pg_chameleon {CHAMELEON_VERSION} into {CHAMELEON_VENV} (once)")
        python = shutil.which("python3.11", path="/usr/bin:/usr/local/bin") or "python3"
        subprocess.run([python, "-m", "venv", str(CHAMELEON_VENV)], check=True)
        subprocess.run([str(CHAMELEON_VENV / "bin" / "pip"), "install", "-q",
                        f"pg_chameleon=={CHAMELEON_VERSION}"], check=True)
    return exe


def chameleon_user() -> tuple[list[str], Path]:
    """The command prefix that runs pg_chameleon as an ordinary user, and that user's home."""
    if os.geteuid() != 0:
        return [], Path.home()
    try:
        pw = pwd.getpwnam(CHAMELEON_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", CHAMELEON_OS_USER], check=True)
        pw = pwd.getpwnam(CHAMELEON_OS_USER)
    return ["runuser", "-u", CHAMELEON_OS_USER, "--"], Path(pw.pw_dir)


def chameleon_account(server: MariaDBParams) -> str:
    """pg_chameleon's MariaDB account, with a fresh password; returns the password."""
    password = secrets.token_hex(12)
    with maria(server) as conn, conn.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            user = f"'{CHAMELEON_DB_USER}'@'{host}'"
            cur.execute(f"CREATE USER IF NOT EXISTS {user}")
            cur.execute(f"ALTER USER {user} IDENTIFIED BY %s", (password,))
            cur.execute("GRANT LOCK TABLES, RELOAD, SELECT, REPLICATION SLAVE, BINLOG MONITOR,"
                        f" SLAVE MONITOR ON *.* TO {user}")
    return password


def drop_chameleon_account(server: MariaDBParams) -> None:
    with maria(server) as conn, conn.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"DROP USER IF EXISTS '{CHAMELEON_DB_USER}'@'{host}'")


@dataclass
class Chameleon:
    name: str  # its target database's name, and its configuration's
    dsn: str
    exe: Path
    prefix: list[str]
    home: Path
    seconds: float = 0.0
    cpu: float = 0.0
    log: str = ""

    @classmethod
    def create(cls) -> Chameleon:
        exe = chameleon_venv()
        prefix, home = chameleon_user()
        name = create_pg(PG_ADMIN)
        return cls(name, database_url(PG_ADMIN, name), exe, prefix, home)

    def setup(self, src: MariaDBParams, password: str, server_id: int) -> None:
        """Its configuration file, replica schema, source, and initial copy."""
        name, home, pg = self.name, self.home, urlsplit(self.dsn)
        conf = home / ".pg_chameleon" / "configuration"
        for d in (conf, home / ".pg_chameleon" / "logs", home / ".pg_chameleon" / "pid"):
            d.mkdir(parents=True, exist_ok=True)
        config = {
            "pid_dir": "~/.pg_chameleon/pid/", "log_dir": "~/.pg_chameleon/logs/",
            "log_dest": "stdout", "log_level": "info", "log_days_keep": 1,
            "rollbar_key": "", "rollbar_env": "",
            "type_override": {"tinyint(1)": {"override_to": "boolean",
                                             "override_tables": ["*"]}},
            "pg_conn": {"host": pg.hostname or "127.0.0.1", "port": str(pg.port or 5432),
                        "user": unquote(pg.username or "postgres"),
                        "password": unquote(pg.password or ""), "database": name,
                        "charset": "utf8"},
            "sources": {"mysql": {
                "db_conn": {"host": src["host"], "port": str(src["port"]),
                            "user": CHAMELEON_DB_USER, "password": password,
                            "charset": "utf8", "connect_timeout": 10},
                "schema_mappings": {src["database"]: CHAMELEON_SCHEMA},
                "limit_tables": [f"{src['database']}.items"], "skip_tables": None,
                "grant_select_to": None, "lock_timeout": "120s", "my_server_id": server_id,
                "replica_batch_size": 10000, "replay_max_rows": 10000,
                "batch_retention": "1 day", "copy_max_memory": "300M", "copy_mode": "direct",
                "out_dir": "/tmp", "sleep_loop": 1, "on_error_replay": "continue",
                "on_error_read": "continue", "auto_maintenance": "disabled",
                "gtid_enable": False, "type": "mysql",
                "skip_events": {"insert": None, "delete": None, "update": None},
                "keep_existing_schema": False, "net_read_timeout": 600,
            }},
        }
        path = self.config_path
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        path.chmod(0o600)
        if self.prefix:
            subprocess.run(["chown", "-R", f"{CHAMELEON_OS_USER}:{CHAMELEON_OS_USER}",
                            str(home / ".pg_chameleon")], check=True)
        self.command("create_replica_schema", source=False)
        self.command("add_source")
        self.command("init_replica")

    @property
    def config_path(self) -> Path:
        return self.home / ".pg_chameleon" / "configuration" / f"{self.name}.yml"

    def argv(self, command: str, source: bool = True) -> list[str]:
        return [*self.prefix, str(self.exe), command, "--config", self.name,
                *(["--source", "mysql"] if source else [])]

    def command(self, command: str, source: bool = True) -> None:
        # --debug: without it a failing init_replica says nothing.
        res = subprocess.run([*self.argv(command, source), "--debug"], capture_output=True,
                             text=True, cwd=self.home)
        out = res.stdout + res.stderr
        if res.returncode != 0 or any(w in out for w in ("Traceback", "ERROR - ", "FATAL")):
            raise SystemExit(f"pg_chameleon {command} failed ({res.returncode}):\n{out[-3000:]}")

    def catch_up(self, expected: tuple[int, int, Decimal], timeout: float) -> None:
        """Start the replica, wait until the target holds ``expected``, stop it."""
        t0 = time.perf_counter()
        with tempfile.TemporaryFile("w+") as log:
            proc = subprocess.Popen(self.argv("start_replica"), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=self.home,
                                    start_new_session=True)
            try:
                while True:
                    time.sleep(0.5)
                    if fingerprint_pg(self.dsn, f"{CHAMELEON_SCHEMA}.items") == expected:
                        self.seconds = time.perf_counter() - t0
                        self.cpu = group_cpu(proc.pid)
                        break
                    if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                        log.seek(0)
                        raise SystemExit(f"pg_chameleon did not catch up (exit {proc.poll()}):"
                                         f"\n{log.read()[-3000:]}")
            finally:
                stop_group(proc)
                log.seek(0)
                self.log = log.read()

    def close(self) -> None:
        self.config_path.unlink(missing_ok=True)
        drop_pg(PG_ADMIN, self.name)


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group (and the
    children they reaped), from /proc: pg_chameleon's processes do not all end
    in a wait of ours."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGINT (pg_chameleon's own stop signal) to the process group we started, then KILL."""
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return  # leader and its children gone
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.time() + wait
        while time.time() < deadline:  # its read/replay children end after it
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


# --- the run -----------------------------------------------------------------------------------


def median_rate(changes: int, runs: list[Any]) -> float:
    return float(statistics.median(changes / r.seconds for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=200_000)
    ap.add_argument("--base", type=int, default=50_000, help="rows before the changes")
    ap.add_argument("--runs", type=int, default=3, help="replicas of each kind (median)")
    ap.add_argument("--skip-chameleon", action="store_true")
    ap.add_argument("--workers", default="auto",
                    help="batch.workers of cdcsync's pipelines (1: one process)")
    ap.add_argument("--timeout", type=float, default=600, help="per pg_chameleon catch-up")
    args = ap.parse_args()
    rng = random.Random(42)
    server = server_params(MARIA_URL)
    db = create_maria(server)
    src = MariaDBParams(**{**server, "database": db})
    tmp_dir = tempfile.TemporaryDirectory(prefix="cdcsync-m2p-")
    tmp = Path(tmp_dir.name)
    ours: list[Cdcsync] = []
    theirs: list[Chameleon] = []
    print(f"MariaDB -> PostgreSQL, {args.changes} changes in {TX}-row transactions over"
          f" {args.base} rows, {args.runs} run(s) each [{load()}]", flush=True)
    try:
        seed(src, args.base, rng)
        for _ in range(args.runs):
            ours.append(Cdcsync.create(tmp, src, args.workers))
            ours[-1].setup()
        if not args.skip_chameleon:
            password = chameleon_account(server)
            for i in range(args.runs):
                server_id = 4_240_000 + os.getpid() % 1000 * 10 + i
                theirs.append(Chameleon.create())
                theirs[-1].setup(src, password, server_id)
        print(f"  {len(ours)} cdcsync pipeline(s) and {len(theirs)} pg_chameleon replica(s)"
              f" hold the {args.base} base rows [{load()}]", flush=True)
        t0 = time.perf_counter()
        backlog(src, args.changes, args.base + 1, list(range(1, args.base + 1)), rng)
        print(f"  backlog: {args.changes} changes written in {time.perf_counter() - t0:.1f} s",
              flush=True)
        expected = fingerprint_maria(src)
        for i in range(args.runs):
            c = ours[i]
            c.catch_up()
            print(f"  cdcsync      run {i + 1}: {c.seconds:6.1f} s ="
                  f" {args.changes / c.seconds:8,.0f} changes/s (CPU of cdcsync run: {c.cpu:.1f} s;"
                  f" read {c.totals.get('read')},"
                  f" applied {c.totals.get('applied')}) [{load()}]", flush=True)
            if theirs:
                h = theirs[i]
                h.catch_up(expected, args.timeout)
                print(f"  pg_chameleon run {i + 1}: {h.seconds:6.1f} s ="
                      f" {args.changes / h.seconds:8,.0f} changes/s (CPU of its processes:"
                      f" {h.cpu:.1f} s) [{load()}]", flush=True)
        source = rows_maria(src)
        print("\nends compared with the source:")
        for c in ours:
            print(f"  cdcsync      {c.pipeline}: {differences(source, rows_pg(c.dsn, 'items'))}")
        for h in theirs:
            print(f"  pg_chameleon {h.name}: "
                  f"{differences(source, rows_pg(h.dsn, CHAMELEON_SCHEMA + '.items'))}")
        a = median_rate(args.changes, ours)
        print(f"\ncdcsync      median {a:8,.0f} changes/s  (runs: "
              f"{', '.join(f'{args.changes / c.seconds:,.0f}' for c in ours)})")
        if theirs:
            b = median_rate(args.changes, theirs)
            print(f"pg_chameleon median {b:8,.0f} changes/s  (runs: "
                  f"{', '.join(f'{args.changes / h.seconds:,.0f}' for h in theirs)})")
            print(f"ratio cdcsync / pg_chameleon = {a / b:.2f}  [{load()}]")
    finally:
        for h in theirs:
            h.close()
        if theirs:
            drop_chameleon_account(server)
        for c in ours:
            c.close()
        drop_maria(server, db)
        tmp_dir.cleanup()


if __name__ == "__main__":
    main()
