"""Rows a target refuses (a CHECK, a unique index other than the key, a value too long)
no longer stop a pipeline: the batch is split until the refused rows are alone, the
others are written, and each refused row waits in the dead-letter queue, its apply
kept in the outbox, until an operator requeues or drops its letter. Before, the whole
batch failed, and every later run failed on it again: one bad row held up the rest
for good. Through the real CLI, against the real servers.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from tests.connectors.mysql.helpers import run
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json


def letters(p: Path) -> list[dict[str, Any]]:
    return json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)  # type: ignore[no-any-return]


def one_way(tmp: Path, target: str) -> Path:
    p = tmp / "p.yaml"
    p.write_text(f"""
pipeline: rejected
state: {{url: sqlite:///state.db}}
endpoints:
  a: {{kind: sqlite, path: a.db}}
  t: {target}
entities:
  x:
    key: [id]
    direction: one-way
    source: a
    endpoints: {{a: x, t: x}}
""")
    return p


def write_a(tmp: Path, *statements: str) -> None:
    with sqlite3.connect(tmp / "a.db") as c:
        for s in statements:
            c.execute(s)
    c.close()


def pg_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT id, amount::int, email FROM x ORDER BY id").fetchall()


def test_postgres_refused_rows_wait_as_dead_letters_and_the_rest_flows(
        tmp_path: Path, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE x (id int PRIMARY KEY, amount numeric CHECK (amount >= 0),"
                  " email text UNIQUE)")
    write_a(tmp_path, "CREATE TABLE x (id INTEGER PRIMARY KEY, amount NUMERIC, email TEXT)",
            "INSERT INTO x VALUES (1, 5, 'one@x'), (2, -1, 'two@x'), (3, 7, 'three@x'),"
            " (4, 1, 'one@x')")
    p = one_way(tmp_path, f'{{kind: postgres, dsn: "{pg_dsn}"}}')
    cdcsync("setup", str(p))

    # The first snapshot: rows 2 (the CHECK) and 4 (the unique email) are refused.
    out = run_json(p, expect=3)
    assert out["status"] == "attention" and out["errors"] == []
    assert out["totals"]["applied"] == 2 and out["totals"]["rejected"] == 2
    assert out["dead_letters"] == 2
    assert pg_rows(pg_dsn) == [(1, 5, "one@x"), (3, 7, "three@x")]
    by_key = {tuple(x["keys"]): x for x in letters(tmp_path / "p.yaml")}
    assert set(by_key) == {('{"id":2}',), ('{"id":4}',)}
    assert "x_amount_check" in by_key[('{"id":2}',)]["error"]
    assert "x_email_key" in by_key[('{"id":4}',)]["error"]
    assert all(x["target"] == "t" for x in by_key.values())
    status = cdcsync("status", str(p), expect=3)  # something waits for an operator
    assert "dead letters (applies refused for good): 2" in status.stdout, status.stdout

    # Read from the log: a good row flows, a bad one gets a letter of its own run.
    write_a(tmp_path, "INSERT INTO x VALUES (5, 2, 'five@x')",
            "INSERT INTO x VALUES (6, -6, 'six@x')")
    out = run_json(p, expect=3)
    assert (out["totals"]["applied"], out["totals"]["rejected"], out["dead_letters"]) == \
        (1, 1, 3)
    assert [r[0] for r in pg_rows(pg_dsn)] == [1, 3, 5]

    # Nothing is tried again by itself: the next run applies nothing and refuses nothing.
    out = run_json(p, expect=3)
    assert (out["totals"]["applied"], out["totals"]["rejected"]) == (0, 0)

    # Fixed at the source: the new version waits behind the letter (no newer edit of a
    # key overtakes a refused one), and goes once the letter is requeued.
    write_a(tmp_path, "UPDATE x SET amount = 2 WHERE id = 2")
    out = run_json(p, expect=3)
    assert out["totals"]["read"] == 1 and out["totals"]["applied"] == 0
    assert 2 not in [r[0] for r in pg_rows(pg_dsn)]
    cdcsync("dlq", "requeue", str(p), str(by_key[('{"id":2}',)]["id"]))
    out = run_json(p, expect=3)
    assert out["totals"]["applied"] == 1 and out["dead_letters"] == 2
    assert (2, 2, "two@x") in pg_rows(pg_dsn)

    # Dropped: given up at that target, not retried; verify tells the drift.
    for x in letters(p):
        cdcsync("dlq", "drop", str(p), str(x["id"]), "--reason", "test")
    out = run_json(p)
    assert out["status"] == "ok" and out["totals"]["applied"] == 0
    [drift] = json.loads(cdcsync("verify", str(p), "--json", expect=1).stdout)
    assert drift["rows"] == {"a": 6, "t": 4}, drift  # keys 4 and 6 are missing at t


def test_mariadb_refused_rows_do_not_stop_the_batch(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE x (id INT PRIMARY KEY, amount INT, email VARCHAR(8) UNIQUE)")
    write_a(tmp_path, "CREATE TABLE x (id INTEGER PRIMARY KEY, amount NUMERIC, email TEXT)")
    p = one_way(tmp_path, f"{{kind: mysql, host: \"{mp['host']}\", port: {mp['port']}, "
                          f"user: \"{mp['user']}\", password: \"{mp['password']}\", "
                          f"database: \"{mp['database']}\"}}")
    cdcsync("setup", str(p))
    assert run_json(p)["totals"]["applied"] == 0
    write_a(tmp_path, "INSERT INTO x VALUES (1, 1, 'a@x'), (2, 2, 'far-too-long@x'),"
            " (3, 3, 'a@x'), (4, 4, 'b@x')")
    # A duplicate in the unique email index is the row's fault, not contention: the run
    # neither loops on it nor fails.
    out = run_json(p, expect=3)
    assert (out["totals"]["applied"], out["totals"]["rejected"]) == (2, 2), out
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM x ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, 4]
    by_key = {tuple(x["keys"]): x["error"] for x in letters(p)}
    assert "1406" in by_key[('{"id":2}',)] and "Data too long" in by_key[('{"id":2}',)]
    assert "1062" in by_key[('{"id":3}',)]
    # The operator widens the column and requeues: the row arrives.
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE x MODIFY email VARCHAR(40)")
    [too_long] = [x for x in letters(p) if x["keys"] == ['{"id":2}']]
    cdcsync("dlq", "requeue", str(p), str(too_long["id"]))
    assert run_json(p, expect=3)["totals"]["applied"] == 1
    with conn.cursor() as cur:
        cur.execute("SELECT id, email FROM x ORDER BY id")
        assert cur.fetchall() == ((1, "a@x"), (2, "far-too-long@x"), (4, "b@x"))
    conn.close()


def test_a_sqlite_value_its_column_type_cannot_read_stops_with_the_way_out(
        tmp_path: Path) -> None:
    """SQLite keeps any value in any column ('n/a' in an INTEGER column). Such a row
    stops the run with a message naming the table, column and key and what to do, and
    no traceback. The fix at the source then went no further: the fix's own log row
    held the bad value as its old values, which stopped every later run; and in the
    log, the unreadable change itself stopped every run until a resync."""
    write_a(tmp_path, "CREATE TABLE x (id INTEGER PRIMARY KEY, amount INTEGER, email TEXT)",
            "INSERT INTO x VALUES (1, 5, 'one@x'), (2, 'n/a', 'two@x')")
    with sqlite3.connect(tmp_path / "t.db") as c:
        c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, amount INTEGER, email TEXT)")
    c.close()
    p = one_way(tmp_path, "{kind: sqlite, path: t.db}")
    cdcsync("setup", str(p))

    res = cdcsync("run", str(p), expect=1)  # the snapshot
    assert "column 'amount'" in res.stderr and "'n/a'" in res.stderr, res.stderr
    assert "{'id': 2}" in res.stderr and "fix the value at the source" in res.stderr
    assert "Traceback" not in res.stderr
    write_a(tmp_path, "UPDATE x SET amount = 2 WHERE id = 2")  # the fix
    # The snapshot, then the fix's log row (old values unreadable): read, not a stop.
    assert run_json(p)["status"] == "ok"
    assert run_json(p)["totals"]["read"] == 0
    cdcsync("verify", str(p))

    # The same in the log: the run stops at it (nothing after it is lost: row 4 waits
    # behind it), and the fix at the source is all it takes: the fix's change
    # supersedes the unreadable one (an update or a delete). Until 2026-12-06 it took
    # a `cdcsync resync --reset-stream` of the whole entity.
    write_a(tmp_path, "INSERT INTO x VALUES (3, 'n/a', 'three@x')",
            "INSERT INTO x VALUES (4, 4, 'four@x')", "INSERT INTO x VALUES (5, 'x', 'five@x')")
    res = cdcsync("run", str(p), expect=1)
    assert "column 'amount'" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert "fix the value at the source (update or delete the row)" in res.stderr, res.stderr
    assert "resync" not in res.stderr
    write_a(tmp_path, "UPDATE x SET amount = 3 WHERE id = 3")
    res = cdcsync("run", str(p), expect=1)  # row 5 now
    assert "{'id': 5}" in res.stderr, res.stderr
    write_a(tmp_path, "DELETE FROM x WHERE id = 5")
    assert run_json(p)["status"] == "ok"  # rows 3 and 4 arrive, 5 came and went
    assert run_json(p)["totals"]["read"] == 0
    cdcsync("verify", str(p))
    with sqlite3.connect(tmp_path / "t.db") as c:
        assert c.execute("SELECT id, amount FROM x ORDER BY id").fetchall() == [
            (1, 5), (2, 2), (3, 3), (4, 4)]
    c.close()


def test_a_row_a_targets_trigger_refuses_waits_as_a_dead_letter_at_each_engine(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    """A target's validation trigger (PL/pgSQL ``RAISE EXCEPTION``, MariaDB ``SIGNAL
    SQLSTATE '45000'``, SQLite ``RAISE(ABORT)``) refusing one row stopped every run at
    PostgreSQL and MariaDB: the errors were not taken for the row's. Now the row waits
    as a dead letter with the trigger's message, and the rest is written."""
    write_a(tmp_path, "CREATE TABLE x (id INTEGER PRIMARY KEY, amount INTEGER)")
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE x (id int PRIMARY KEY, amount int)")
        c.execute("CREATE FUNCTION nonneg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                  " IF new.amount < 0 THEN RAISE EXCEPTION 'amount % below zero', new.amount;"
                  " END IF; RETURN new; END $$")
        c.execute("CREATE TRIGGER nonneg BEFORE INSERT OR UPDATE ON x FOR EACH ROW"
                  " EXECUTE FUNCTION nonneg()")
    run(mariadb_params, "CREATE TABLE x (id INT PRIMARY KEY, amount INT)",
        "CREATE TRIGGER nonneg BEFORE INSERT ON x FOR EACH ROW BEGIN IF new.amount < 0"
        " THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'amount below zero'; END IF; END")
    with sqlite3.connect(tmp_path / "t.db") as c:
        c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, amount INTEGER)")
        c.execute("CREATE TRIGGER nonneg BEFORE INSERT ON x WHEN new.amount < 0"
                  " BEGIN SELECT RAISE(ABORT, 'amount below zero'); END")
    c.close()
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"a": "{kind: sqlite, path: a.db}", "p": pg_endpoint(pg_dsn),
                        "m": mariadb_endpoint(mariadb_params),
                        "s": "{kind: sqlite, path: t.db}"},
                       "x", {"a": "x", "p": "x", "m": "x", "s": "x"},
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    try:
        run_json(p)
        write_a(tmp_path, "INSERT INTO x VALUES (1, 1), (2, -5), (3, 3)")
        out = run_json(p, expect=3)
        assert (out["totals"]["applied"], out["totals"]["rejected"]) == (6, 3), out
        by_target = {d["target"]: d for d in letters(p)}
        assert sorted(by_target) == ["m", "p", "s"], by_target
        assert all(d["keys"] == ['{"id":2}'] and "below zero" in d["error"]
                   for d in by_target.values()), by_target
        with psycopg.connect(pg_dsn) as c:
            assert c.execute("SELECT id FROM x ORDER BY id").fetchall() == [(1,), (3,)]
        # The source's fix; the key's later changes wait behind its letters (in order)
        # until they are requeued: then the fixed row arrives everywhere.
        write_a(tmp_path, "UPDATE x SET amount = 2 WHERE id = 2")
        run_json(p, expect=3)
        cdcsync("dlq", "requeue", str(p), *(str(d["id"]) for d in by_target.values()))
        assert run_json(p)["status"] == "ok"
        assert cdcsync("verify", str(p)).returncode == 0
    finally:
        cdcsync("teardown", str(p), "--force")


def test_a_source_held_by_an_unreadable_value_leaves_the_other_sources_reading(
        tmp_path: Path) -> None:
    """The run stopped at the first source whose change it could not read: the other
    sources' changes waited too. They are read to their end now, and the run still
    fails, naming the row to fix."""
    for db in ("a", "c", "t", "u"):
        with sqlite3.connect(tmp_path / f"{db}.db") as c:
            c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, amount INTEGER)")
        c.close()
    p = tmp_path / "p.yaml"
    p.write_text("""
pipeline: held
state: {url: sqlite:///state.db}
batch: {size: 1000}
endpoints:
  a: {kind: sqlite, path: a.db}
  c: {kind: sqlite, path: c.db}
  t: {kind: sqlite, path: t.db}
  u: {kind: sqlite, path: u.db}
entities:
  x: {key: [id], direction: one-way, source: a, endpoints: {a: x, t: x}}
  y: {key: [id], direction: one-way, source: c, endpoints: {c: x, u: x}}
""")
    cdcsync("setup", str(p))
    run_json(p)
    write_a(tmp_path, "INSERT INTO x VALUES (0, 0)", "INSERT INTO x VALUES (1, 'n/a')",
            "INSERT INTO x VALUES (2, 2)")
    with sqlite3.connect(tmp_path / "c.db") as c:
        c.executemany("INSERT INTO x VALUES (?, ?)", [(i, i) for i in range(1, 2500)])
    c.close()
    res = cdcsync("run", str(p), expect=1)
    assert "{'id': 1}" in res.stderr and "fix the value at the source" in res.stderr
    with sqlite3.connect(tmp_path / "u.db") as c:  # c's source read on, past a batch
        assert c.execute("SELECT count(*) FROM x").fetchone()[0] == 2499
    c.close()
    with sqlite3.connect(tmp_path / "t.db") as c:  # and what a logged before the bad row
        assert c.execute("SELECT id, amount FROM x").fetchall() == [(0, 0)]
    c.close()
    write_a(tmp_path, "UPDATE x SET amount = 1 WHERE id = 1")
    assert run_json(p)["status"] == "ok"
    with sqlite3.connect(tmp_path / "t.db") as c:
        assert c.execute("SELECT id, amount FROM x ORDER BY id").fetchall() == [
            (0, 0), (1, 1), (2, 2)]
    c.close()
    cdcsync("verify", str(p))


def test_sqlite_text_that_is_not_utf8_is_named_and_its_fix_goes_through(
        tmp_path: Path, pg_dsn: str) -> None:
    """SQLite stores what it is given: text that is not UTF-8 (a C program's Latin-1)
    made sqlite3 fail the whole read, naming no row: the snapshot, and in the log
    every run for good, the fix included (its own log row came after the bad one).
    Now the row's column and key are named, and the fix goes through."""
    write_a(tmp_path, "CREATE TABLE x (id INTEGER PRIMARY KEY, amount INTEGER, email TEXT)",
            "INSERT INTO x VALUES (1, 1, 'one@x'), (2, 2, CAST(x'e9746531' AS TEXT))")
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE x (id int PRIMARY KEY, amount int, email text)")
    p = one_way(tmp_path, f'{{kind: postgres, dsn: "{pg_dsn}"}}')
    cdcsync("setup", str(p))
    try:
        res = cdcsync("run", str(p), expect=1)  # the snapshot
        assert "column 'email'" in res.stderr and "{'id': 2}" in res.stderr, res.stderr
        assert "b'\\xe9te1'" in res.stderr and "Traceback" not in res.stderr, res.stderr
        write_a(tmp_path, "UPDATE x SET email = 'été1' WHERE id = 2")
        assert run_json(p)["status"] == "ok"
        write_a(tmp_path, "INSERT INTO x VALUES (3, 3, CAST(x'ff' AS TEXT))",
                "INSERT INTO x VALUES (4, 4, 'four@x')")
        res = cdcsync("run", str(p), expect=1)  # the log
        assert "column 'email'" in res.stderr and "{'id': 3}" in res.stderr, res.stderr
        assert "fix the value at the source" in res.stderr and "Traceback" not in res.stderr
        write_a(tmp_path, "UPDATE x SET email = 'three@x' WHERE id = 3")
        assert run_json(p)["status"] == "ok"
        assert pg_rows(pg_dsn) == [(1, 1, "one@x"), (2, 2, "été1"), (3, 3, "three@x"),
                                   (4, 4, "four@x")]
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force")


def test_rows_refused_for_a_foreign_key_are_tried_again_at_the_end_of_the_run(
        tmp_path: Path, pg_dsn_factory: Any) -> None:
    """A first snapshot takes entities one after the other, in the configuration's
    order: orders listed before customers were all refused at the target for their
    foreign key. The run tries those once more at its end; only an order whose
    customer does not exist at all waits as a dead letter."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE c (id int PRIMARY KEY, name text)")
            c.execute("CREATE TABLE o (id int PRIMARY KEY, cid int REFERENCES c (id))")
    with psycopg.connect(a, autocommit=True) as c:
        c.execute("INSERT INTO c SELECT g, 'c' || g FROM generate_series(1, 30) g")
        c.execute("INSERT INTO o SELECT g, g FROM generate_series(1, 30) g")
        c.execute("ALTER TABLE o DROP CONSTRAINT o_cid_fkey")  # a's own data is not clean
        c.execute("INSERT INTO o VALUES (99, 1000)")
    p = tmp_path / "p.yaml"
    p.write_text(f"""
pipeline: {pipeline_of(a)}
state: {{url: sqlite:///state.db}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  orders: {{key: [id], direction: one-way, source: a, endpoints: {{a: o, b: o}}}}
  customers: {{key: [id], direction: one-way, source: a, endpoints: {{a: c, b: c}}}}
""")
    cdcsync("setup", str(p))
    try:
        res = cdcsync("run", "--json", str(p), expect=3)
        out = json.loads(res.stdout)
        assert "tries them again at its end" in res.stderr
        assert (out["totals"]["applied"], out["totals"]["rejected"]) == (60, 1), out
        with psycopg.connect(b) as c:
            assert c.execute("SELECT count(*) FROM o").fetchone() == (30,)
        [letter] = letters(p)
        assert letter["keys"] == ['{"id":99}'] and "o_cid_fkey" in letter["error"]
        with sqlite3.connect(tmp_path / "state.db") as c:
            assert c.execute("SELECT actor, action FROM audit").fetchall() == [
                ("cdcsync run (foreign key retry)", "dlq.requeue")]
        c.close()
        # The next run tries nothing by itself: the orphan waits for an operator.
        again = run_json(p, expect=3)
        assert (again["totals"]["applied"], again["totals"]["rejected"]) == (0, 0)
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_a_target_that_refuses_every_row_fails_the_run_instead(
        tmp_path: Path, pg_dsn: str) -> None:
    """A column the pipeline does not write, NOT NULL without a default: every row is
    refused. Rather than split every batch down to single rows and dead-letter the
    whole table, the run stops after SYSTEMATIC rows refused and none taken, naming
    the likely cause; nothing is lettered, and once the schema is fixed a run
    applies everything."""
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE x (id int PRIMARY KEY, amount numeric, email text,"
                  " region text NOT NULL)")
    write_a(tmp_path, "CREATE TABLE x (id INTEGER PRIMARY KEY, amount NUMERIC, email TEXT)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
            " INSERT INTO x SELECT i, i, 'e' || i FROM n")
    p = one_way(tmp_path, f'{{kind: postgres, dsn: "{pg_dsn}"}}')
    cdcsync("setup", str(p))
    res = cdcsync("run", str(p), expect=1)
    assert "refused 256 rows of x one by one and took none" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert letters(p) == []
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("ALTER TABLE x ALTER COLUMN region SET DEFAULT 'eu'")
    out = run_json(p)
    assert out["totals"]["applied"] == 400 and out["totals"]["rejected"] == 0, out


def test_numbers_and_characters_mariadb_cannot_hold_wait_as_dead_letters(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    """PostgreSQL's NaN and infinities (float and numeric) stopped every run at a
    MariaDB target with '[<class 'decimal.InvalidOperation'>]' or an SQL error on the
    bare word nan; an emoji for a 3-byte utf8 column is refused by the server too."""
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE x (id int PRIMARY KEY, d float8, r real, n numeric, t text)")
        c.execute("INSERT INTO x VALUES (1, 'NaN', 1, 1, 'a'), (2, 2, '-Infinity', 2, 'b'),"
                  " (3, 3, 3, 'NaN', 'c'), (4, 4, 4, 'Infinity', 'd'), (5, 5, 5, 5, '😀'),"
                  " (6, 6.5, 6.5, 6.5, 'fine')")
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE x (id INT PRIMARY KEY, d DOUBLE, r FLOAT, n DECIMAL(20,5),"
                    " t VARCHAR(20) CHARACTER SET utf8mb3)")
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"a": pg_endpoint(pg_dsn), "m": mariadb_endpoint(mp)}, "x",
                       {"a": "x", "m": "x"})
    cdcsync("setup", str(p))
    try:
        out = run_json(p, expect=3)
        assert out["errors"] == [] and out["totals"]["rejected"] == 5, out
        with conn.cursor() as cur:
            cur.execute("SELECT id, d, r, n, t FROM x")
            assert [tuple(map(str, r)) for r in cur.fetchall()] == [
                ("6", "6.5", "6.5", "6.50000", "fine")]
        got = letters(p)
        assert {k for x in got for k in x["keys"]} == {
            json.dumps({"id": i}, separators=(",", ":")) for i in range(1, 6)}
        shown = cdcsync("dlq", "show", str(p), str(got[0]["id"])).stdout
        assert "holds" in shown or "Incorrect string value" in shown, shown
        with psycopg.connect(pg_dsn, autocommit=True) as c:  # fixed at the source
            c.execute("UPDATE x SET d = 1, r = 2, n = 3, t = 'ok' WHERE id < 6")
        run_json(p, expect=3)  # the newer versions wait behind the letters ...
        cdcsync("dlq", "requeue", str(p), *(str(x["id"]) for x in got))
        out = run_json(p)  # ... which apply them when requeued
        assert out["errors"] == [] and out["totals"]["rejected"] == 0, out
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM x WHERE t = 'ok'")
            assert cur.fetchone() == (5,)
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
        conn.close()
