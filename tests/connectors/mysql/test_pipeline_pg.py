"""MariaDB -> PostgreSQL through the engine, as ``cdcsync run`` does it.

DDL in the middle of the stream, the reader's connection killed from another
session in the middle of a run, a run that dies in the middle of the stream,
every type MariaDB -> PostgreSQL -> MariaDB, and a checkpoint the binlog no
longer holds (the message, then ``cdcsync resync``). The MariaDB server is
never restarted: other sessions share it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from config import load_pipeline
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from tests.connectors.mysql.helpers import query, run, unique_server_id, user_conn
from tests.connectors.mysql.test_e2e import cdcsync
from tests.connectors.mysql.test_types import FULL_ROW, NULL_ROW, ZERO_ROW
from tests.connectors.mysql.test_types import TABLE as TYPES_TABLE


def maria_yaml(name: str, p: dict[str, Any]) -> str:
    return (f"  {name}:\n    kind: mysql\n    host: {p['host']}\n    port: {p['port']}\n"
            f"    user: {p['user']}\n    password: \"{p['password']}\"\n"
            f"    database: {p['database']}\n    server_id: {unique_server_id()}\n")


def one_way(tmp: Path, name: str, source: str, target: str, endpoints: str, table: str, *,
            batch: int = 10000, extra: str = "", workers: int | None = None) -> Path:
    """A one-way pipeline ``source`` -> ``target``, set up (target tables created).
    ``workers``: its batch.workers, started after one batch (parallel_from)."""
    path = tmp / f"{name}.yaml"
    more = "" if workers is None else f", workers: {workers}, parallel_from: {batch}"
    path.write_text(f"""
pipeline: {name}
state: {{url: "sqlite:///{tmp / name}.db"}}
batch: {{size: {batch}{more}}}
endpoints:
{endpoints}
entities:
  {table}:
    key: [id]
    direction: one-way
    source: {source}
    endpoints: {{{source}: {table}, {target}: {table}}}
{extra}
""")
    setup_pipeline(load_pipeline(path))
    return path


def teardown(path: Path) -> None:
    cdcsync("teardown", str(path), "--yes", "--force", expect=None)


def pg_rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def our_binlog_threads(params: dict[str, Any]) -> list[int]:
    """Server thread ids of the binlog dump connections THIS process holds (matched by
    the client's local TCP port), so that other sessions' readers are never touched."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    threads = []
    for tid, host in query(params, "SELECT ID, HOST FROM information_schema.PROCESSLIST"
                                   " WHERE COMMAND LIKE 'Binlog Dump%%'"):
        if host and ":" in host and int(host.rsplit(":", 1)[1]) in ports:
            threads.append(int(tid))
    return threads


ITEMS = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT)"


def write_mixed(params: dict[str, Any], rng: random.Random, n: int, first: int) -> int:
    """``n`` single-row transactions (inserts, counter increments, deletes); their count
    in changes: every statement changes exactly one row."""
    live: list[int] = []
    nxt = first
    with user_conn(params) as conn, conn.cursor() as cur:
        for _ in range(n):
            r = rng.random()
            if r < 0.4 or len(live) < 3:
                cur.execute("INSERT INTO items VALUES (%s, %s, 0)", (nxt, f"n{nxt}"))
                live.append(nxt)
                nxt += 1
            elif r < 0.85:
                cur.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (rng.choice(live),))
            else:
                k = live.pop(rng.randrange(len(live)))
                cur.execute("DELETE FROM items WHERE id = %s", (k,))
    return n


def same_items(params: dict[str, Any], dsn: str) -> None:
    assert pg_rows(dsn, "SELECT id, name, qty FROM items ORDER BY id") == query(
        params, "SELECT id, name, qty FROM items ORDER BY id")


# --- DDL mid-stream --------------------------------------------------------------------------


def snapshot_with_add(tmp: Path, prefix: str, params: dict[str, Any], dsn: str) -> Path:
    """MariaDB's ``items`` (1 'a', 2 'b') one way to PostgreSQL with ``schema_changes:
    add``, set up and snapshotted: the pipeline file."""
    run(params, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))",
        "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    p = one_way(tmp, f"{prefix}_{params['database'][-8:]}", "maria", "pg",
                maria_yaml("maria", params) + f"  pg: {{kind: postgres, dsn: '{dsn}'}}",
                "items", extra="    schema_changes: add")
    try:
        run_pipeline(load_pipeline(p))
    except BaseException:
        teardown(p)
        raise
    return p


def test_add_drop_rename_column_mid_stream_reach_postgres(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    p = snapshot_with_add(tmp_path, "ddl", mariadb_params, pg_dsn)
    try:
        run(mariadb_params,
            "INSERT INTO items VALUES (3, 'c')",                     # before the ALTER
            "ALTER TABLE items ADD COLUMN qty INT",
            "INSERT INTO items VALUES (4, 'd', 40)",
            "UPDATE items SET qty = 10 WHERE id = 1",
            "ALTER TABLE items RENAME COLUMN qty TO amount",
            "INSERT INTO items VALUES (5, 'e', 50)",
            "ALTER TABLE items DROP COLUMN name",
            "INSERT INTO items VALUES (6, 60)",
            "UPDATE items SET amount = 11 WHERE id = 1")
        summary = run_pipeline(load_pipeline(p))
        assert summary.status == "ok", summary.to_json()
        # Added columns are added at PostgreSQL, a renamed one arrives as a new one and
        # the old one keeps the values written before; a dropped one is kept there. Each
        # row was decoded with the columns it was written with (3: before the ADD, 5:
        # between the RENAME and the DROP). Row 1 changed twice in the batch: only its
        # last version (after the DROP) is applied, so its qty=10 was never written.
        assert pg_rows(pg_dsn, "SELECT id, name, amount FROM items ORDER BY id") == [
            (1, "a", 11), (2, "b", None), (3, "c", None), (4, "d", None), (5, "e", 50),
            (6, None, 60)]
        assert pg_rows(pg_dsn, "SELECT id, qty FROM items WHERE id > 1 ORDER BY id") == [
            (2, None), (3, None), (4, 40), (5, None), (6, None)]
        again = run_pipeline(load_pipeline(p))
        assert again.total("read") == 0 and again.total("applied") == 0
    finally:
        teardown(p)


def test_columns_added_with_defaults_hold_them_at_postgres_too(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str,
    caplog: pytest.LogCaptureFixture
) -> None:
    """``ADD COLUMN ... DEFAULT`` fills MariaDB's rows and logs none of them: the column
    is added at PostgreSQL with the value those rows hold as its default, where the
    default tells one (not ``current_timestamp()``: the run warns for that one)."""
    import datetime

    p = snapshot_with_add(tmp_path, "dflt", mariadb_params, pg_dsn)
    try:
        run(mariadb_params,
            "ALTER TABLE items ADD COLUMN qty DECIMAL(6,2) DEFAULT 5.5,"
            " ADD COLUMN tag VARCHAR(20) DEFAULT 'it''s \\\\ new',"
            " ADD COLUMN flag TINYINT(1) DEFAULT 1, ADD COLUMN day DATE DEFAULT '2024-02-29',"
            " ADD COLUMN at DATETIME DEFAULT current_timestamp(), ADD COLUMN note TEXT",
            "INSERT INTO items VALUES (3, 'c', 1.25, 'x', 0, '2025-01-01', NULL, 'n')")
        summary = run_pipeline(load_pipeline(p))
        assert summary.status == "ok", summary.to_json()
        got = pg_rows(pg_dsn, "SELECT id, qty::text, tag, flag, day, at, note FROM items"
                              " ORDER BY id")
        old = ("5.50", "it's \\ new", True, datetime.date(2024, 2, 29), None, None)
        assert got == [(1, *old), (2, *old), (3, "1.25", "x", False,
                                               datetime.date(2025, 1, 1), None, "n")], got
        # current_timestamp() filled the rows with the ALTER's time, which no one knows
        said = [r.getMessage() for r in caplog.records if "gained at," in r.getMessage()]
        assert len(said) == 1 and "resync" in said[0], said
        again = run_pipeline(load_pipeline(p))
        assert again.total("read") == 0 and again.total("applied") == 0
    finally:
        teardown(p)


# --- a killed connection and a crash, mid-stream -------------------------------------------


def test_reader_connection_killed_mid_run_applies_each_change_once(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    run(mariadb_params, ITEMS)
    name = f"kill_{mariadb_params['database'][-8:]}"
    p = one_way(tmp_path, name, "maria", "pg",
                maria_yaml("maria", mariadb_params) + f"  pg: {{kind: postgres, dsn: '{pg_dsn}'}}",
                "items", batch=7)
    try:
        run_pipeline(load_pipeline(p))  # the (empty) snapshot; the stream starts here
        rng = random.Random(7)
        written = write_mixed(mariadb_params, rng, 60, 1)
        killed: list[int] = []

        def kill_the_reader(label: str, n: int) -> None:
            """After a batch: KILL the reader's connection from another session (the
            server had probably sent it everything already: those bytes are still read)
            and write more, which only a new connection can read."""
            nonlocal written
            if label != "read maria" or len(killed) == 3:
                return
            fresh = [t for t in our_binlog_threads(mariadb_params) if t not in killed]
            for tid in fresh:
                run(mariadb_params, f"KILL {tid}")
            killed.extend(fresh)
            if fresh:
                written += write_mixed(mariadb_params, rng, 20, 1000 * len(killed))

        summary = run_pipeline(load_pipeline(p), progress=kill_the_reader)
        assert len(killed) == 3  # and each time the reader came back with a new connection
        assert summary.status == "ok"
        assert summary.total("read") == written  # nothing read twice, nothing lost
        assert summary.total("duplicates") == 0
        same_items(mariadb_params, pg_dsn)
        again = run_pipeline(load_pipeline(p))
        assert again.total("read") == 0 and again.total("applied") == 0
    finally:
        teardown(p)


def test_run_dying_mid_stream_resumes_without_duplicates(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    run(mariadb_params, ITEMS)
    name = f"crash_{mariadb_params['database'][-8:]}"
    p = one_way(tmp_path, name, "maria", "pg",
                maria_yaml("maria", mariadb_params) + f"  pg: {{kind: postgres, dsn: '{pg_dsn}'}}",
                "items", batch=10)
    try:
        run_pipeline(load_pipeline(p))
        written = write_mixed(mariadb_params, random.Random(11), 80, 1)
        read: list[int] = []

        class Crash(Exception):
            pass

        def die_after_two_batches(label: str, n: int) -> None:
            read.append(n)
            if len(read) == 2:
                raise Crash

        with pytest.raises(Crash):
            run_pipeline(load_pipeline(p), progress=die_after_two_batches)
        assert sum(read) == 20  # two batches were decided, applied and checkpointed
        rest = run_pipeline(load_pipeline(p))  # a new run: new connections, new reader
        assert rest.status == "ok"
        assert rest.total("read") == written - 20
        assert rest.total("duplicates") == 0
        same_items(mariadb_params, pg_dsn)
    finally:
        teardown(p)


def test_a_backlog_applied_by_worker_processes_arrives_once(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    """A batch run's worker processes (sync/parallel.py) on a MariaDB backlog: each
    change read once, none applied twice, the ends identical, then the fixed point."""
    run(mariadb_params, ITEMS)
    name = f"workers_{mariadb_params['database'][-8:]}"
    p = one_way(tmp_path, name, "maria", "pg",
                maria_yaml("maria", mariadb_params) + f"  pg: {{kind: postgres, dsn: '{pg_dsn}'}}",
                "items", batch=40, workers=2)
    try:
        run_pipeline(load_pipeline(p))  # the (empty) snapshot; the stream starts here
        written = write_mixed(mariadb_params, random.Random(5), 800, 1)
        waited: list[bool] = []

        def let_them_start(label: str, n: int) -> None:
            """Once the run started its workers, give them time to be ready (the run
            goes on alone meanwhile, and this backlog is short)."""
            if multiprocessing.active_children() and not waited:
                time.sleep(4)
                waited.append(True)

        summary = run_pipeline(load_pipeline(p), progress=let_them_start)
        assert summary.status == "ok" and summary.worker_batches > 0, summary.to_json()
        assert summary.total("read") == written and summary.total("duplicates") == 0
        same_items(mariadb_params, pg_dsn)
        again = run_pipeline(load_pipeline(p))
        assert again.total("read") == 0 and again.total("applied") == 0
    finally:
        teardown(p)


# --- types there and back ---------------------------------------------------------------------


def test_every_type_round_trips_mariadb_postgres_mariadb(
    tmp_path: Path, mariadb_params_factory: Callable[[], dict[str, Any]], pg_dsn: str
) -> None:
    a, b = mariadb_params_factory(), mariadb_params_factory()
    run(a, TYPES_TABLE, FULL_ROW, NULL_ROW)
    run(b, TYPES_TABLE)  # the far end has the same table, so values compare exactly
    # Zero dates (read as NULL; written back as the zero date into a NOT NULL column).
    run(a, ZERO_ROW)
    pg = f"  pg: {{kind: postgres, dsn: '{pg_dsn}'}}\n"
    there = one_way(tmp_path, f"ty1_{a['database'][-8:]}", "maria", "pg",
                    maria_yaml("maria", a) + pg, "typ")
    back = one_way(tmp_path, f"ty2_{a['database'][-8:]}", "pg", "maria2",
                   pg + maria_yaml("maria2", b), "typ")
    try:
        for p in (there, back):  # snapshots
            assert run_pipeline(load_pipeline(p)).status == "ok"
        # ... and the same through the logs: changes of every column after the snapshots.
        run(a, "DELETE FROM typ WHERE id = 1", FULL_ROW,
            FULL_ROW.replace("VALUES (1, ", "VALUES (4, "),
            "UPDATE typ SET txt = 'changed' WHERE id = 2")
        for p in (there, back):
            assert run_pipeline(load_pipeline(p)).status == "ok"
        select = "SELECT * FROM typ ORDER BY id"
        sent, back_again = query(a, select), query(b, select)
        assert [r[0] for r in back_again] == [1, 2, 3, 4]
        js, zdt = 7, 25  # column indexes in TYPES_TABLE
        for x, y in zip(sent, back_again, strict=True):
            # JSON comes back as the same document; its text is PostgreSQL's jsonb's.
            assert (x[js] is None) == (y[js] is None)
            if x[js] is not None:
                assert json.loads(y[js]) == json.loads(x[js])
            if x[0] == 3:  # a zero date in a nullable column is read as NULL: the lossy case
                assert (x[zdt], y[zdt]) == ("0000-00-00 00:00:00", None)
                x, y = x[:zdt] + x[zdt + 1:], y[:zdt] + y[zdt + 1:]
            assert x[:js] + x[js + 1:] == y[:js] + y[js + 1:]
        # In a NOT NULL column the zero date went through PostgreSQL as NULL and came back.
        assert query(b, "SELECT CAST(zd AS CHAR) FROM typ WHERE id = 3") == [("0000-00-00",)]
        for p in (there, back):  # the fixed point: nothing applied, nothing read
            again = run_pipeline(load_pipeline(p))
            assert again.total("applied") == 0, again.to_json()
        for p in (there, back):
            again = run_pipeline(load_pipeline(p))
            assert again.total("read") == 0 and again.total("applied") == 0, again.to_json()
    finally:
        teardown(there)
        teardown(back)


# --- a purged binlog --------------------------------------------------------------------------


def lose_the_log(path: Path) -> str:
    """Point the pipeline's MariaDB checkpoint at a GTID state the server never had: it
    refuses it with error 1236, exactly as a checkpoint whose binlog was purged
    (purging for real would break the other sessions sharing this server)."""
    from sync.state.store import open_store

    cfg = load_pipeline(path)
    store = open_store(cfg.state.url)
    try:
        cp = store.checkpoint(cfg.pipeline, "maria", "*")
        assert cp is not None
        with store.transaction() as conn:
            store.put_checkpoint(conn, cfg.pipeline, "maria", "*", {**cp, "gtid": "0-4242-1"})
    finally:
        store.close()
    return str(cfg.pipeline)


def purge_pipeline(tmp: Path, params: dict[str, Any], pg_dsn: str) -> Path:
    run(params, ITEMS, "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2)")
    return one_way(tmp, f"purge_{params['database'][-8:]}", "maria", "pg",
                   maria_yaml("maria", params) + f"  pg: {{kind: postgres, dsn: '{pg_dsn}'}}",
                   "items")


def test_purged_binlog_says_what_to_run_and_resync_recovers(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    p = purge_pipeline(tmp_path, mariadb_params, pg_dsn)
    try:
        cdcsync("run", str(p))
        run(mariadb_params, "UPDATE items SET qty = 20 WHERE id = 2",
            "INSERT INTO items VALUES (3, 'c', 3)")
        pipeline = lose_the_log(p)
        failed = cdcsync("run", str(p), expect=1)
        assert "no longer holds" in failed.stderr and "0-4242-1" in failed.stderr
        told = failed.stderr.split("`cdcsync resync ")[1].split("`")[0]
        assert told == f"{pipeline} items --reset-stream", failed.stderr
        # Do what it says (with the pipeline file for PIPELINE).
        cdcsync("resync", *told.replace(pipeline, str(p)).split())
        cdcsync("run", str(p))
        same_items(mariadb_params, pg_dsn)
        cdcsync("verify", str(p))
        run(mariadb_params, "UPDATE items SET name = 'c2' WHERE id = 3",
            "DELETE FROM items WHERE id = 1")
        cdcsync("run", str(p))  # and the stream goes on from the new snapshot
        same_items(mariadb_params, pg_dsn)
    finally:
        teardown(p)


def test_resync_after_a_purged_binlog_recovers_a_lost_delete(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    p = purge_pipeline(tmp_path, mariadb_params, pg_dsn)
    try:
        cdcsync("run", str(p))
        run(mariadb_params, "DELETE FROM items WHERE id = 1")
        lose_the_log(p)
        cdcsync("run", str(p), expect=1)
        cdcsync("resync", str(p), "items", "--reset-stream")
        cdcsync("run", str(p))
        same_items(mariadb_params, pg_dsn)
    finally:
        teardown(p)
