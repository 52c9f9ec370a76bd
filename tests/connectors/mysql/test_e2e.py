"""MariaDB <-> SQLite (and <-> PostgreSQL) through the real CLI, as a subprocess."""

from __future__ import annotations

import decimal
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import query, run, unique_server_id

MARIA_TABLE = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100),"
    " balance DECIMAL(10,2), seen DATETIME(6), prefs JSON)"
)


def cdcsync(*args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cdcsync")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sync.cli"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)
    if expect is not None:
        assert res.returncode == expect, (res.returncode, res.stdout, res.stderr)
    return res


def run_json(pipeline: Path, expect: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cdcsync("run", str(pipeline), "--json", expect=expect).stdout)
    return out


def lite(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


def pipeline_file(tmp: Path, maria: dict[str, Any], other: str) -> Path:
    p = tmp / "pipeline.yaml"
    # A pipeline name of its own: PostgreSQL names its cluster-wide replication origin
    # after it, and concurrent runs on one server must not share it.
    p.write_text(f"""
pipeline: e2e_{maria['database'][-8:]}
state:
  url: sqlite:///{tmp / 'state.db'}
endpoints:
  maria:
    kind: mysql
    host: {maria['host']}
    port: {maria['port']}
    user: {maria['user']}
    password: {maria['password']}
    database: {maria['database']}
    server_id: {unique_server_id()}
{other}
entities:
  customers:
    key: [id]
    direction: bidirectional
    endpoints:
      maria: {{table: customers}}
      other: {{table: customers}}
    conflict:
      policy: field_merge
      fallback: manual
""")
    return p


def test_mariadb_sqlite_bidirectional_converges_and_reaches_a_fixed_point(
    tmp_path: Path, mariadb_params: dict[str, Any]
) -> None:
    db = tmp_path / "other.db"
    lite(db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT,"
             " balance DECIMAL(10,2), seen DATETIME, prefs JSON)")
    run(mariadb_params, MARIA_TABLE,
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@x', 10.50, '2024-01-01 10:00:00.123456',"
        " '{\"b\": 1, \"a\": [1, 2]}'), (2, 'Bob', 'bob@x', 0, NULL, NULL),"
        " (3, 'Cy', 'cy@x', 3.10, NULL, '{}')")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO customers VALUES (1, 'Ada', 'ada@x', '10.5',"
                  " '2024-01-01 10:00:00.123456+00:00', '{\"a\":[1,2],\"b\":1}')")
        c.execute("INSERT INTO customers VALUES (2, 'Bob', 'bob@x', 0, NULL, NULL)")
        c.execute("INSERT INTO customers VALUES (4, 'Di', 'di@x', 4, NULL, NULL)")
    c.close()
    p = pipeline_file(tmp_path, mariadb_params, f"  other:\n    kind: sqlite\n    path: {db}\n")
    cdcsync("setup", str(p))

    first = run_json(p)
    assert first["status"] == "ok"
    assert query(mariadb_params, "SELECT name FROM customers WHERE id = 4") == [("Di",)]
    assert lite(db, "SELECT name FROM customers WHERE id = 3") == [("Cy",)]
    cdcsync("verify", str(p))

    # Edits on both sides, including different columns of one row on each side.
    run(mariadb_params, "UPDATE customers SET name = 'Ada L' WHERE id = 1",
        "INSERT INTO customers VALUES (5, 'Eve', 'eve@x', 5.55, '2024-02-02 02:02:02', NULL)",
        "DELETE FROM customers WHERE id = 2",
        "UPDATE customers SET name = 'Di M' WHERE id = 4")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE customers SET email = 'cy@y' WHERE id = 3")
        c.execute("UPDATE customers SET email = 'di@y' WHERE id = 4")
    c.close()
    second = run_json(p)
    assert second["status"] == "ok"
    assert query(mariadb_params, "SELECT id, name, email FROM customers ORDER BY id") == [
        (1, "Ada L", "ada@x"), (3, "Cy", "cy@y"), (4, "Di M", "di@y"), (5, "Eve", "eve@x")]
    assert lite(db, "SELECT id, name, email FROM customers ORDER BY id") == [
        (1, "Ada L", "ada@x"), (3, "Cy", "cy@y"), (4, "Di M", "di@y"), (5, "Eve", "eve@x")]
    assert query(mariadb_params, "SELECT balance FROM customers WHERE id = 5") == [
        (decimal.Decimal("5.55"),)]
    cdcsync("verify", str(p))

    # Fixed point: nothing applied by the next run, nothing read by the one after.
    third = run_json(p)
    assert third["totals"]["applied"] == 0, third
    fourth = run_json(p)
    assert fourth["totals"]["applied"] == 0 and fourth["totals"]["read"] == 0, fourth


def test_mariadb_postgres_bidirectional_converges_and_reaches_a_fixed_point(
    tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn: str
) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        pg.execute("CREATE TABLE customers (id INT PRIMARY KEY, name TEXT, email TEXT,"
                   " balance NUMERIC(10,2), seen TIMESTAMP, prefs JSONB)")
        pg.execute("INSERT INTO customers VALUES (7, 'Pg', 'pg@x', 1.10, '2024-03-03 03:03:03.5',"
                   " '{\"k\": [true, null]}')")
    run(mariadb_params, MARIA_TABLE,
        "INSERT INTO customers VALUES (1, 'Ma', 'ma@x', 2.20, '2024-01-01 00:00:00.000001',"
        " '{\"z\": 1.5, \"a\": \"\u00e9\"}')")
    p = pipeline_file(tmp_path, mariadb_params,
                      f"  other:\n    kind: postgres\n    dsn: '{pg_dsn}'\n")
    try:
        cdcsync("setup", str(p))
        assert run_json(p)["status"] == "ok"
        cdcsync("verify", str(p))
        assert query(mariadb_params, "SELECT name, balance FROM customers WHERE id = 7") == [
            ("Pg", decimal.Decimal("1.10"))]

        # Concurrent edits of different columns of one row, and one-sided edits.
        run(mariadb_params, "UPDATE customers SET balance = 3.30 WHERE id = 1",
            "UPDATE customers SET email = 'pg@maria' WHERE id = 7")
        with psycopg.connect(pg_dsn, autocommit=True) as pg:
            pg.execute("UPDATE customers SET name = 'Pg2' WHERE id = 7")
            pg.execute("INSERT INTO customers VALUES (8, 'New', NULL, NULL, NULL, NULL)")
        assert run_json(p)["status"] == "ok"
        cdcsync("verify", str(p))
        assert query(mariadb_params, "SELECT id, name, email FROM customers ORDER BY id") == [
            (1, "Ma", "ma@x"), (7, "Pg2", "pg@maria"), (8, "New", None)]
        with psycopg.connect(pg_dsn) as pg:
            assert pg.execute("SELECT balance FROM customers WHERE id = 1").fetchall() == [
                (decimal.Decimal("3.30"),)]

        # The same column edited on both sides: parked for a steward, then decided.
        run(mariadb_params, "UPDATE customers SET email = 'from maria' WHERE id = 8")
        with psycopg.connect(pg_dsn, autocommit=True) as pg:
            pg.execute("UPDATE customers SET email = 'from pg' WHERE id = 8")
        parked = run_json(p, expect=3)
        assert parked["totals"]["parked"] == 1 and parked["open_conflicts"] == 1
        open_ = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
        assert len(open_) == 1
        cid = str(open_[0].get("conflict_id") or open_[0].get("id"))
        cdcsync("conflicts", "resolve", str(p), cid, "--pick", "maria")
        assert run_json(p)["status"] == "ok"
        cdcsync("verify", str(p))
        with psycopg.connect(pg_dsn) as pg:
            assert pg.execute("SELECT email FROM customers WHERE id = 8").fetchall() == [
                ("from maria",)]

        # Fixed point: nothing applied by the next run, nothing read by the one after.
        third = run_json(p)
        assert third["totals"]["applied"] == 0, third
        fourth = run_json(p)
        assert fourth["totals"]["applied"] == 0 and fourth["totals"]["read"] == 0, fourth
    finally:  # the replication origin is cluster-wide: never leave it behind
        cdcsync("teardown", str(p), "--yes", "--force", expect=None)


def test_a_row_inserted_and_deleted_at_mariadb_before_our_insert(
    tmp_path: Path, mariadb_params: dict[str, Any]
) -> None:
    """ABA on absence at MariaDB: its user inserts and deletes key 9 (unread) while
    SQLite inserts it; our insert at MariaDB finds no row. The sink places the
    insert in the binlog, so the insert and delete read afterwards are known to
    come before it (tests/connectors/postgres/test_pg_e2e.py has PostgreSQL's)."""
    db = tmp_path / "other.db"
    lite(db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT,"
             " balance DECIMAL(10,2), seen DATETIME, prefs JSON)")
    run(mariadb_params, MARIA_TABLE, "INSERT INTO customers (id, name) VALUES (1, 'one')")
    p = tmp_path / "pipeline.yaml"
    m = mariadb_params
    p.write_text(f"""
pipeline: aba_{m['database'][-8:]}
state: {{url: "sqlite:///{tmp_path / 'state.db'}"}}
endpoints:
  other: {{kind: sqlite, path: "{db}"}}
  maria: {{kind: mysql, host: {m['host']}, port: {m['port']}, user: {m['user']},
          password: {m['password']}, database: {m['database']},
          server_id: {unique_server_id()}}}
entities:
  customers:
    key: [id]
    endpoints: {{other: {{table: customers}}, maria: {{table: customers}}}}
    conflict: {{policy: last_writer_wins}}
""")
    cdcsync("setup", str(p))
    run_json(p)
    lite(db, "INSERT INTO customers (id, name) VALUES (9, 'from sqlite')")
    run(mariadb_params, "INSERT INTO customers (id, name) VALUES (9, 'from maria')",
        "DELETE FROM customers WHERE id = 9")
    run_json(p)
    # concurrent: one side wins at both ends (last writer wins, on binlog timestamps
    # of whole seconds: either may be "later")
    ids = query(mariadb_params, "SELECT id FROM customers ORDER BY id")
    assert ids == lite(db, "SELECT id FROM customers ORDER BY id")
    assert ids in ([(1,)], [(1,), (9,)])
    cdcsync("verify", str(p))
    assert run_json(p)["totals"]["applied"] == 0
