"""PostgreSQL end to end through the engine: PG<->PG and PG<->SQLite, concurrent edits,
crashes, interrupted snapshots, and the fixed point (docs: sync/engine.py)."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from config.loader import load_pipeline
from connectors.postgres import PostgresSink, PostgresSource
from connectors.registry import open_endpoint
from sync.context import bindings_for, open_pipeline
from sync.engine import run_pipeline
from sync.summary import RunSummary
from sync.verify import verify
from tests.connectors.postgres.helpers import pipeline_of, query, sql
from tests.ops.conftest import cdcsync
from tests.staging import count_staged

CUSTOMERS = ("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text,"
             " balance numeric(10,2), seen timestamptz, tags jsonb)")
SQLITE_CUSTOMERS = ("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " email TEXT, balance DECIMAL(10,2), seen TIMESTAMP, tags JSON)")


@dataclass
class Pipeline:
    path: Path
    cfg: Any
    a: str  # the PostgreSQL endpoint's dsn
    b: str  # the other endpoint: a dsn, or a SQLite file path

    def run(self) -> RunSummary:
        return run_pipeline(self.cfg)

    def drift(self) -> list[Any]:
        with open_pipeline(self.cfg) as ctx:
            return [d for d in verify(ctx) if not d.in_sync]


def _write(tmp: Path, name: str, b_endpoint: str, a: str, chunk: int = 1000,
           policy: str = "field_merge") -> Path:
    path = tmp / "pipeline.yaml"
    path.write_text(f"""
pipeline: {name}
state: {{url: "sqlite:///{tmp}/state.db"}}
batch: {{size: 50, snapshot_chunk: {chunk}}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {b_endpoint}
entities:
  customers:
    key: [id]
    endpoints:
      a: {{table: customers}}
      b: {{table: customers}}
    conflict: {{policy: {policy}, fallback: last_writer_wins}}
""")
    return path


def _setup(cfg: Any) -> None:
    for name, settings in cfg.endpoints.items():
        ep = open_endpoint(name, settings, pipeline=cfg.pipeline)
        try:
            ep.setup([bindings_for(cfg, "customers")[name]], cfg.pipeline)
        finally:
            ep.close()


def _teardown(cfg: Any) -> None:
    for name, settings in cfg.endpoints.items():
        ep = open_endpoint(name, settings, pipeline=cfg.pipeline)
        try:
            ep.teardown([bindings_for(cfg, "customers")[name]], cfg.pipeline)
        finally:
            ep.close()


@pytest.fixture
def pg_pg(tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> Iterator[Pipeline]:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, CUSTOMERS)
    path = _write(tmp_path, pipeline_of(a), f'{{kind: postgres, dsn: "{b}"}}', a)
    cfg = load_pipeline(path)
    _setup(cfg)
    yield Pipeline(path, cfg, a, b)
    _teardown(cfg)


@pytest.fixture
def pg_sqlite(tmp_path: Path, pg_dsn: str) -> Iterator[Pipeline]:
    sql(pg_dsn, CUSTOMERS)
    db = tmp_path / "b.db"
    conn = sqlite3.connect(db)
    conn.execute(SQLITE_CUSTOMERS)
    conn.commit()
    conn.close()
    path = _write(tmp_path, pipeline_of(pg_dsn), f'{{kind: sqlite, path: "{db}"}}', pg_dsn)
    cfg = load_pipeline(path)
    _setup(cfg)
    yield Pipeline(path, cfg, pg_dsn, str(db))
    _teardown(cfg)


def _b_sql(p: Pipeline, *statements: str) -> None:
    if p.b.startswith("postgresql://"):
        sql(p.b, *statements)
        return
    conn = sqlite3.connect(p.b, isolation_level=None)
    try:
        for s in statements:
            conn.execute(s)
    finally:
        conn.close()


def _b_rows(p: Pipeline) -> list[tuple[Any, ...]]:
    q = "SELECT id, name, email FROM customers ORDER BY id"
    if p.b.startswith("postgresql://"):
        return query(p.b, q)
    conn = sqlite3.connect(p.b)
    try:
        return conn.execute(q).fetchall()
    finally:
        conn.close()


def _applied(s: RunSummary) -> int:
    return int(s.to_json()["totals"]["applied"])


def _read(s: RunSummary) -> int:
    return int(s.to_json()["totals"]["read"])


def _assert_fixed_point(p: Pipeline) -> None:
    """With no user edits, the next run applies nothing and the one after reads nothing."""
    quiet = p.run()
    assert _applied(quiet) == 0, quiet.to_json()
    silent = p.run()
    assert _read(silent) == 0 and _applied(silent) == 0, silent.to_json()
    assert p.drift() == []


def _bidirectional_scenario(p: Pipeline) -> None:
    sql(p.a, "INSERT INTO customers VALUES (1, 'Ann', 'ann@a', 10.5, '2024-01-01 10:00+00',"
             " '{\"vip\": true}'), (2, 'Bob', 'bob@a', 20, NULL, NULL)")
    _b_sql(p, "INSERT INTO customers (id, name, email, balance) VALUES (3, 'Cy', 'cy@b', 30)")
    first = p.run()
    assert first.errors == [] and p.drift() == []
    _assert_fixed_point(p)
    # Concurrent edits: different fields of one row on each side, a delete against
    # an update, an insert on one side, an update of the key.
    sql(p.a, "UPDATE customers SET email = 'ann@new' WHERE id = 1",
        "UPDATE customers SET name = 'Bobby' WHERE id = 2",
        "INSERT INTO customers VALUES (4, 'Dee', NULL, 1, NULL, '[1, 2]')",
        "UPDATE customers SET id = 30 WHERE id = 3")
    _b_sql(p, "UPDATE customers SET balance = 99 WHERE id = 1",
           "DELETE FROM customers WHERE id = 2")
    second = p.run()
    assert second.errors == [], second.to_json()
    assert p.drift() == []
    rows = query(p.a, "SELECT id, email, balance FROM customers ORDER BY id")
    assert rows[0][:2] == (1, "ann@new") and float(rows[0][2]) == 99.0  # merged field by field
    assert [r[0] for r in rows] == [i for i, *_ in _b_rows(p)]
    assert 30 in [r[0] for r in rows] and 3 not in [r[0] for r in rows]
    _assert_fixed_point(p)


def test_pg_to_pg_bidirectional_converges_and_reaches_the_fixed_point(pg_pg: Pipeline) -> None:
    _bidirectional_scenario(pg_pg)


def test_pg_to_sqlite_bidirectional_converges_and_reaches_the_fixed_point(
        pg_sqlite: Pipeline) -> None:
    _bidirectional_scenario(pg_sqlite)


def test_an_edit_equal_to_the_service_write_is_still_synced(pg_pg: Pipeline) -> None:
    p = pg_pg
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'Ann')")
    p.run()
    # B changes the name; the service writes it to A; a user of A writes the same
    # value again, then B changes it back: A's edit is an edit, not an echo.
    sql(p.b, "UPDATE customers SET name = 'Anne' WHERE id = 1")
    p.run()
    sql(p.a, "UPDATE customers SET name = 'Anne' WHERE id = 1")
    s = p.run()
    assert _read(s) == 1 and s.to_json()["totals"]["echoes"] == 0
    assert p.drift() == []
    _assert_fixed_point(p)


def test_an_edit_made_in_a_subtransaction_does_not_block_later_applies(
        pg_pg: Pipeline) -> None:
    """A row written inside a SAVEPOINT (an ORM's nested transaction, a PL/pgSQL
    EXCEPTION block) has the subtransaction's xid as xmin, not the transaction's xid
    that pgoutput sends. With commit timestamps on, the sink knows it for the
    version it expects; before, it took the row for a user edit on its way and
    skipped every later write of that key there for good."""
    p = pg_pg
    assert query(p.a, "SHOW track_commit_timestamp") == [("on",)]
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'Ann'), (2, 'Bob')")
    p.run()
    with psycopg.connect(p.a) as conn:  # one transaction, its edits in savepoints
        conn.execute("UPDATE customers SET email = 'bob@a' WHERE id = 2")
        conn.execute("SAVEPOINT s1")
        conn.execute("UPDATE customers SET name = 'Anne' WHERE id = 1")
        conn.execute("RELEASE SAVEPOINT s1")
        conn.execute("SAVEPOINT s2")
        conn.execute("UPDATE customers SET name = 'Bobby' WHERE id = 2")
        conn.execute("RELEASE SAVEPOINT s2")
    p.run()
    assert p.drift() == []
    # Now B edits both rows: A must take the edits, not wait for edits that never come.
    sql(p.b, "UPDATE customers SET email = 'ann@b' WHERE id = 1", "DELETE FROM customers"
             " WHERE id = 2")
    s = p.run()
    assert s.errors == [] and s.to_json()["totals"]["skipped"] == 0, s.to_json()
    assert query(p.a, "SELECT id, name, email FROM customers ORDER BY id") == [
        (1, "Anne", "ann@b")]
    assert p.drift() == []
    _assert_fixed_point(p)


def test_a_crash_between_apply_and_its_record_loses_nothing(
        pg_pg: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    p = pg_pg
    sql(p.a, "INSERT INTO customers (id, name) SELECT g, 'n' || g FROM generate_series(1, 5) g")
    p.run()
    sql(p.a, "UPDATE customers SET name = 'changed' WHERE id <= 3", "DELETE FROM customers"
             " WHERE id = 5")
    real = PostgresSink.apply

    def apply_then_crash(self: PostgresSink, binding: Any, ops: Any) -> Any:
        real(self, binding, ops)  # committed at the target...
        raise KeyboardInterrupt("crash")  # ...and the service dies before recording it

    monkeypatch.setattr(PostgresSink, "apply", apply_then_crash)
    with pytest.raises(KeyboardInterrupt):
        p.run()
    monkeypatch.setattr(PostgresSink, "apply", real)
    assert query(p.b, "SELECT count(*) FROM customers WHERE name = 'changed'") == [(3,)]
    after = p.run()
    assert after.errors == []
    assert after.to_json()["totals"]["skipped"] == 0  # the replay was recognised as ours
    assert p.drift() == []
    _assert_fixed_point(p)


def test_a_crash_before_confirming_the_slot_rereads_without_reapplying(
        pg_pg: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    p = pg_pg
    p.run()
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'x'), (2, 'y')")
    real = PostgresSource.confirm

    def crash(self: PostgresSource, checkpoint: Any) -> None:
        raise KeyboardInterrupt("crash before confirm")

    monkeypatch.setattr(PostgresSource, "confirm", crash)
    with pytest.raises(KeyboardInterrupt):
        p.run()
    monkeypatch.setattr(PostgresSource, "confirm", real)
    assert query(p.b, "SELECT id FROM customers ORDER BY id") == [(1,), (2,)]
    again = p.run()
    assert _applied(again) == 0, again.to_json()
    assert p.drift() == []
    _assert_fixed_point(p)


def test_an_interrupted_snapshot_resumes(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, CUSTOMERS)
    sql(a, "INSERT INTO customers (id, name) SELECT g, 'n' || g FROM generate_series(1, 25) g")
    path = _write(tmp_path, pipeline_of(a), f'{{kind: postgres, dsn: "{b}"}}', a, chunk=10)
    cfg = load_pipeline(path)
    _setup(cfg)
    p = Pipeline(path, cfg, a, b)
    try:
        real = PostgresSource.snapshot
        calls: list[int] = []

        def interrupted(self: PostgresSource, binding: Any, after_key: Any, limit: int) -> Any:
            calls.append(1)
            # 1, 2: is a or b empty? 3: a's first chunk (applied and saved); 4: its second
            if len(calls) == 4:
                raise KeyboardInterrupt("interrupted during the snapshot")
            return real(self, binding, after_key, limit)

        monkeypatch.setattr(PostgresSource, "snapshot", interrupted)
        with pytest.raises(KeyboardInterrupt):
            p.run()
        # Rows change while the snapshot is interrupted: they are read again from the log.
        sql(a, "UPDATE customers SET name = 'late' WHERE id IN (3, 20)",
            "INSERT INTO customers (id, name) VALUES (26, 'new')")
        resumed = p.run()
        assert resumed.errors == []
        assert query(b, "SELECT count(*), count(*) FILTER (WHERE name = 'late')"
                        " FROM customers") == [(26, 2)]
        assert p.drift() == []
        _assert_fixed_point(p)
    finally:
        _teardown(cfg)


def test_a_direct_snapshot_dying_after_an_apply_reads_that_chunk_again(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty b is snapshotted without staging (sync/snapshot_direct.py). A run
    killed after a chunk was applied at b but before its states were saved
    resumes at that chunk: it is read and applied again, our rows at b are known
    as ours (not written again unless the row changed at a meanwhile), and an
    edit made at a meanwhile arrives from the log as well."""
    from sync.state.store import StateStore

    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, CUSTOMERS)
    sql(a, "INSERT INTO customers (id, name, tags) SELECT g, 'n' || g, jsonb_build_object('g', g)"
           " FROM generate_series(1, 25) g")
    path = _write(tmp_path, pipeline_of(a), f'{{kind: postgres, dsn: "{b}"}}', a, chunk=10)
    cfg = load_pipeline(path)
    _setup(cfg)
    p = Pipeline(path, cfg, a, b)
    try:
        real_save = StateStore.save
        saves: list[int] = []

        def dying(conn: Any, pipeline: str, entity: str, states: Any, **kw: Any) -> float:
            saves.append(len(states))
            if len(saves) == 2:  # one per chunk, after its applies: chunk 2's
                raise KeyboardInterrupt("killed between apply and save")
            return real_save(conn, pipeline, entity, states, **kw)

        monkeypatch.setattr(StateStore, "save", staticmethod(dying))
        staged = count_staged(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            p.run()
        assert query(b, "SELECT count(*) FROM customers") == [(20,)]
        b_versions = query(b, "SELECT id, xmin::text FROM customers ORDER BY id")
        monkeypatch.setattr(StateStore, "save", staticmethod(real_save))
        sql(a, "UPDATE customers SET name = 'late' WHERE id IN (3, 15)")
        resumed = p.run()
        assert resumed.errors == []
        assert staged == []  # neither run staged a row
        assert resumed.snapshot_rows == 15  # 11..25: chunk 2 again
        assert query(b, "SELECT count(*), count(*) FILTER (WHERE name = 'late')"
                        " FROM customers") == [(25, 2)]
        # Rows the dead run wrote were not written again (only the two edited).
        after = dict(query(b, "SELECT id, xmin::text FROM customers WHERE id <= 20"))
        assert sorted(i for i, x in b_versions if after[i] != x) == [3, 15]
        assert p.drift() == []
        _assert_fixed_point(p)
    finally:
        _teardown(cfg)


def _pipeline_with(tmp: Path, a: str, b: str, extra: str, *, set_up: bool = True) -> Any:
    path = tmp / "pipeline.yaml"
    path.write_text(f"""
pipeline: {pipeline_of(a)}
state: {{url: "sqlite:///{tmp}/state.db"}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  customers:
    key: [id]
    endpoints:
      a: {{table: customers}}
      b: {{table: customers}}
{extra}
""")
    cfg = load_pipeline(path)
    if set_up:
        _setup(cfg)
    return cfg


def _capture(dsn: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The slots and publications of the database."""
    return (query(dsn, "SELECT slot_name FROM pg_replication_slots"
                       " WHERE database = current_database()"),
            query(dsn, "SELECT pubname FROM pg_publication"))


def test_a_one_way_target_has_no_slot_and_loses_one_an_earlier_setup_made(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """Nothing reads a one-way target's log, and an unread slot holds the whole
    cluster's WAL: setup made one there until 2026-12-06."""
    from sync.setup import setup_pipeline, teardown_pipeline

    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, "CREATE TABLE customers (id int PRIMARY KEY, name text)")
    sql(a, "INSERT INTO customers VALUES (1, 'x'), (2, 'y')")
    setup_pipeline(_pipeline_with(tmp_path, a, b, "", set_up=False))  # bidirectional
    assert all(len(found) == 1 for dsn in (a, b) for found in _capture(dsn))
    one_way = _pipeline_with(tmp_path, a, b, "    direction: one-way\n    source: a",
                             set_up=False)
    try:
        done = setup_pipeline(one_way)
        dropped = [line for line in done if line.startswith("b: dropped")]
        assert len(dropped) == 2 and all("only writes to" in line for line in dropped), done
        assert _capture(b) == ([], [])
        assert all(len(found) == 1 for found in _capture(a))  # the source keeps its own
        summary = run_pipeline(one_way).to_json()
        assert summary["errors"] == [] and summary["totals"]["applied"] == 2, summary
        sql(a, "UPDATE customers SET name = 'z' WHERE id = 2")
        assert run_pipeline(one_way).to_json()["totals"]["applied"] == 1
        assert query(b, "SELECT id, name FROM customers ORDER BY id") == [(1, "x"), (2, "z")]
        again = setup_pipeline(one_way)  # idempotent: nothing made at b, nothing dropped
        assert not any(line.startswith("b: dropped") for line in again), again
        assert _capture(b) == ([], [])
    finally:
        teardown_pipeline(one_way, force=True)
    assert _capture(a) == ([], [])


def _published(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT tablename FROM pg_publication_tables ORDER BY 1")


def _identity(dsn: str, table: str) -> str:
    return str(query(dsn, f"SELECT relreplident FROM pg_class WHERE relname = '{table}'")[0][0])


def test_a_table_only_written_to_is_not_published_where_another_is_read(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """b is read for customers and only written to for orders: orders stays out of
    b's publication (each of our writes there would be decoded and sent, then
    dropped) and keeps its replica identity; an earlier setup's entry is removed."""
    from sync.setup import setup_pipeline, teardown_pipeline

    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, "CREATE TABLE customers (id int PRIMARY KEY, name text)",
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2))")
    sql(a, "INSERT INTO orders VALUES (1, 9.99)", "INSERT INTO customers VALUES (1, 'x')")
    orders = "  orders:\n    key: [id]\n    endpoints: {a: {table: orders}, b: {table: orders}}\n"
    both = _pipeline_with(tmp_path, a, b, orders, set_up=False)
    setup_pipeline(both)
    assert _published(b) == [("customers",), ("orders",)]
    one_way = _pipeline_with(tmp_path, a, b, orders + "    direction: one-way\n    source: a\n",
                             set_up=False)
    try:
        done = setup_pipeline(one_way)
        assert any(line.startswith("b: removed public.orders from publication")
                   for line in done), done
        assert _published(b) == [("customers",)]
        assert _published(a) == [("customers",), ("orders",)]
        sql(b, "ALTER TABLE orders REPLICA IDENTITY DEFAULT")  # as it was before anything
        again = setup_pipeline(one_way)
        assert not any("orders" in line for line in again if line.startswith("b:")), again
        assert _identity(b, "orders") == "d" and _identity(b, "customers") == "f"
        summary = run_pipeline(one_way).to_json()
        assert summary["errors"] == [] and summary["totals"]["applied"] == 2, summary
        sql(a, "UPDATE orders SET total = 10 WHERE id = 1")
        sql(b, "UPDATE customers SET name = 'from b' WHERE id = 1")
        assert run_pipeline(one_way).to_json()["totals"]["applied"] == 2
        assert query(b, "SELECT total FROM orders") == [(Decimal("10.00"),)]
        assert query(a, "SELECT name FROM customers") == [("from b",)]
    finally:
        teardown_pipeline(one_way, force=True)
    assert _capture(a) == _capture(b) == ([], [])


def test_a_truncate_is_propagated_by_policy(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, CUSTOMERS)
    cfg = _pipeline_with(tmp_path, a, b, "    truncate: propagate")
    p = Pipeline(tmp_path, cfg, a, b)
    try:
        sql(a, "INSERT INTO customers (id, name) SELECT g, 'n' FROM generate_series(1, 5) g")
        p.run()
        assert query(b, "SELECT count(*) FROM customers") == [(5,)]
        sql(a, "TRUNCATE customers", "INSERT INTO customers (id, name) VALUES (9, 'after')")
        s = p.run()
        assert s.errors == []
        assert query(b, "SELECT id FROM customers") == [(9,)]
        assert p.drift() == []
        _assert_fixed_point(p)
    finally:
        _teardown(cfg)


def test_a_column_added_mid_stream_is_added_at_the_sink_by_policy(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, CUSTOMERS)
    cfg = _pipeline_with(tmp_path, a, b, "    schema_changes: add")
    p = Pipeline(tmp_path, cfg, a, b)
    try:
        sql(a, "INSERT INTO customers (id, name) VALUES (1, 'Ann')")
        p.run()
        sql(a, "INSERT INTO customers (id, name) VALUES (2, 'Bob')",
            "ALTER TABLE customers ADD COLUMN vip numeric(4,1)",
            "INSERT INTO customers (id, name, vip) VALUES (3, 'Cy', 2.5)")
        s = p.run()
        assert s.errors == []
        assert query(b, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE"
                        " attrelid = 'customers'::regclass AND attname = 'vip'") == [
            ("numeric(4,1)",)]
        assert query(b, "SELECT id, vip FROM customers ORDER BY id")[1:] == [
            (2, None), (3, Decimal("2.5"))]
        _assert_fixed_point(p)
    finally:
        _teardown(cfg)


# Random text does not compress: 64 kB of it is stored out of line (TOAST), and an
# update that leaves it alone sends it as "unchanged" ('u'), not as its value.
BIG = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 2000) g)"


@pytest.mark.parametrize("fixture", ["pg_pg", "pg_sqlite"])
def test_an_unchanged_toast_value_is_never_overwritten(
        fixture: str, request: pytest.FixtureRequest) -> None:
    p: Pipeline = request.getfixturevalue(fixture)
    sql(p.a, f"INSERT INTO customers (id, name, email) VALUES (1, 'Ann', {BIG})")
    assert p.run().errors == []
    (big,) = query(p.a, "SELECT email FROM customers WHERE id = 1")[0]
    assert len(big) == 64_000
    assert query(p.a, "SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class"
                      " WHERE relname = 'customers'") == [(True,)]  # stored out of line
    sql(p.a, "UPDATE customers SET name = 'Anne' WHERE id = 1")  # email: unchanged TOAST
    s = p.run()
    assert s.errors == [] and _read(s) == 1 and _applied(s) == 1, s.to_json()
    assert _b_rows(p) == [(1, "Anne", big)]
    # And back: an edit at the other side leaves the big value alone at A too.
    _b_sql(p, "UPDATE customers SET balance = 7 WHERE id = 1")
    assert p.run().errors == []
    assert query(p.a, "SELECT name, email = %s, balance FROM customers", (big,)) == [
        ("Anne", True, Decimal("7.00"))]
    assert p.drift() == []
    _assert_fixed_point(p)


@pytest.mark.parametrize("fixture", ["pg_pg", "pg_sqlite"])
def test_user_edits_landing_during_a_run_are_never_overwritten(
        fixture: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Edits at the target between the service's read and its apply (the run is under
    way): compare-and-set skips those rows, B's log brings the edits as concurrent
    ones, and both sides end equal with both edits merged field by field."""
    import sync.apply

    p: Pipeline = request.getfixturevalue(fixture)
    sql(p.a, "INSERT INTO customers (id, name, email) SELECT g, 'n' || g, 'e' || g"
             " FROM generate_series(1, 20) g")
    assert p.run().errors == []
    _assert_fixed_point(p)
    sql(p.a, "UPDATE customers SET name = 'from a' WHERE id <= 10")
    real = sync.apply.apply_to_target
    edited: list[str] = []

    def edit_then_apply(ctx: Any, ent: Any, target: str, items: Any, states: Any,
                        **kw: Any) -> Any:
        if target == "b" and not edited:
            edited.append(target)  # a user of B, while the service is about to write
            _b_sql(p, "UPDATE customers SET email = 'from b' WHERE id <= 5",
                   "UPDATE customers SET balance = 3 WHERE id IN (6, 7)")
        return real(ctx, ent, target, items, states, **kw)

    monkeypatch.setattr(sync.apply, "apply_to_target", edit_then_apply)
    first = p.run()
    monkeypatch.setattr(sync.apply, "apply_to_target", real)
    assert edited and first.errors == []
    assert first.to_json()["totals"]["skipped"] == 7, first.to_json()  # rows 1-7 had moved
    # The same run read B's edits back (sources take turns) and merged them.
    assert p.drift() == []
    rows = query(p.a, "SELECT id, name, email, balance FROM customers WHERE id <= 10"
                      " ORDER BY id")
    assert [r[:3] for r in rows[:5]] == [(i, "from a", "from b") for i in range(1, 6)]
    assert [(r[1], r[3]) for r in rows[5:7]] == [("from a", Decimal("3.00"))] * 2
    assert all(r[1] == "from a" for r in rows)
    _assert_fixed_point(p)


def _edit_at_random(dsn: str, seed: int, stop: threading.Event, done: list[int]) -> None:
    """A user of one side: upserts, updates and deletes of keys 1-150, one at a time."""
    rnd = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            k, roll = rnd.randint(1, 150), rnd.random()
            if roll < 0.5:
                conn.execute("INSERT INTO customers (id, name, balance) VALUES (%s, %s, %s)"
                             " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                             " balance = EXCLUDED.balance",
                             (k, f"s{seed}-{done[0]}", rnd.randint(0, 10**6) / 100))
            elif roll < 0.85:
                conn.execute("UPDATE customers SET email = %s WHERE id = %s",
                             (f"e{seed}-{done[0]}", k))
            else:
                conn.execute("DELETE FROM customers WHERE id = %s", (k,))
            done[0] += 1
            time.sleep(0.003)


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_killed_at_random_moments_under_edits_on_both_sides_lose_nothing(
        pg_pg: Pipeline, workers: int) -> None:
    """``cdcsync run`` killed with -9 at random moments (between a batch's applies and
    its save among them) while users insert, update and delete on both sides: the
    runs after it converge, and the next ones apply nothing. With ``workers: 2`` the
    runs' backlogs go to worker processes (sync/parallel.py), which die with the run."""
    p = pg_pg
    p.path.write_text(p.path.read_text().replace(
        "batch: {size: 50,", f"batch: {{size: 50, workers: {workers}, parallel_from: 1,"))
    p.cfg = load_pipeline(p.path)
    sql(p.a, "INSERT INTO customers (id, name, balance) SELECT g, 'n' || g, g"
             " FROM generate_series(1, 100) g")
    assert p.run().errors == []
    stop = threading.Event()
    counts = [[0], [0]]
    users = [threading.Thread(target=_edit_at_random, args=(dsn, i, stop, counts[i]))
             for i, dsn in enumerate((p.a, p.b))]
    for u in users:
        u.start()
    rnd = random.Random(20261204)
    killed = 0
    try:
        for _ in range(12):
            if killed == 4:
                break
            exe = Path(sys.executable).with_name("cdcsync")
            proc = subprocess.Popen([str(exe), "run", str(p.path)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0.8, 2.5))
            children = _children(proc.pid)
            if proc.poll() is None:
                proc.kill()
                killed += 1
            proc.wait()
            deadline = time.monotonic() + 5
            while any(_alive(c) for c in children) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(_alive(c) for c in children), "a worker outlived its run"
            # The run lock of a killed run expires (RUN_LOCK_TTL); here at once.
            with open_pipeline(p.cfg) as ctx, ctx.store.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE leases SET expires_at = 0")
    finally:
        stop.set()
        for u in users:
            u.join()
    assert killed >= 2, killed  # runs died mid-way
    assert min(c[0] for c in counts) > 100  # both sides were edited throughout
    for _ in range(5):  # catch up with what the users did
        res = cdcsync("run", str(p.path), expect=None)
        assert res.returncode in (0, 3), res.stderr
        if _read(p.run()) == 0:
            break
    verified = cdcsync("verify", str(p.path), expect=None)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    _assert_fixed_point(p)


def test_a_row_inserted_and_deleted_at_a_target_before_our_insert_is_not_lost(
        pg_pg: Pipeline) -> None:
    """ABA on absence: b's user inserts and deletes key 1 (unread yet) while a inserts
    it; our insert at b finds no row and passes compare-and-set (no row version
    survives a delete in PostgreSQL), so b's insert and delete, read afterwards, come
    before our write in b's log and must not be taken for what b holds now."""
    p = pg_pg
    sql(p.a, "INSERT INTO customers (id, name) VALUES (2, 'two')")
    assert p.run().errors == []
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'from a')")
    sql(p.b, "INSERT INTO customers (id, name) VALUES (1, 'from b')",
        "DELETE FROM customers WHERE id = 1")
    assert p.run().errors == []
    # a's insert and b's insert-then-delete were concurrent: the entity's policy (last
    # writer wins here) keeps b's later delete, at both ends.
    rows = "SELECT id, name FROM customers ORDER BY id"
    assert query(p.a, rows) == query(p.b, rows) == [(2, "two")]
    assert p.drift() == []
    _assert_fixed_point(p)


class Died(Exception):
    """A process killed at a chosen point (tests that stage a crash)."""


def _die(*_a: Any, **_k: Any) -> None:
    raise Died


def _die_between_applies_and_save(p: Pipeline, source: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch run reads ``source``'s log, applies the batch and dies before saving it
    (sync/capture.py save_once): its writes stand, no state knows of them."""
    from sync import capture
    from sync.capture import read_batch, save_once

    with open_pipeline(p.cfg) as ctx:
        batch, _ = read_batch(ctx, source, 100)
        monkeypatch.setattr(capture, "commit", _die)
        with pytest.raises(Died):
            save_once(ctx, source, batch.changes, RunSummary(pipeline=ctx.pipeline),
                      batch.checkpoint)
        monkeypatch.undo()


@pytest.mark.parametrize("after", ["run", "die-again", "daemon"])
def test_a_batch_dying_after_its_applies_leaves_marks_the_next_run_checks(
        pg_pg: Pipeline, monkeypatch: pytest.MonkeyPatch, after: str) -> None:
    """A batch run applies a batch before it saves it (sync/capture.py save_once). Here
    it dies between the two, after inserting b's new row 1 at a, where a's user had
    inserted and deleted row 1 just before (unread). The next run reads both logs
    afresh and decides otherwise (a's later delete wins), so it never writes row 1 at
    a again, and a's delete, read after our lost insert, would pass for what a holds.
    The mark written before the applies makes it check a first; so does a daemon
    started instead, and a run after one that died too before its check."""
    from sync import engine

    p = pg_pg
    sql(p.a, "INSERT INTO customers (id, name) VALUES (2, 'two')")
    assert p.run().errors == []
    sql(p.b, "INSERT INTO customers (id, name) VALUES (1, 'from b')")
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'from a')",
        "DELETE FROM customers WHERE id = 1")
    _die_between_applies_and_save(p, "b", monkeypatch)
    assert query(p.a, "SELECT name FROM customers WHERE id = 1") == [("from b",)]  # lost
    if after == "die-again":
        # The next run dies too, after its catch-up saved row 1 (a's delete wins) and
        # before it checked a: the mark must outlive that save for the run after.
        monkeypatch.setattr(engine, "check_marks", _die)
        with pytest.raises(Died):
            p.run()
        monkeypatch.undo()
        with open_pipeline(p.cfg) as ctx, ctx.store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE leases SET expires_at = 0")  # its run lock
        assert query(p.a, "SELECT name FROM customers WHERE id = 1") == [("from b",)]
    rows = "SELECT id, name FROM customers ORDER BY id"
    if after == "daemon":
        from tests.daemon.helpers import Daemon, wait_for

        p.path.write_text(p.path.read_text() + "daemon: {metrics_port: 0, poll_ms: 5}\n")
        d = Daemon(p.path)
        d.wait_ready()
        assert "died mid-batch" in d.output()
        wait_for(lambda: query(p.a, rows) == query(p.b, rows) == [(2, "two")],
                 what="row 1 gone at both ends")
        assert d.terminate()[0] == 0
        p.cfg = load_pipeline(p.path)
        with open_pipeline(p.cfg) as ctx:  # checked before the readers started
            assert not ctx.store.any_marks(ctx.pipeline)
    assert p.run().errors == []
    with open_pipeline(p.cfg) as ctx:
        assert not ctx.store.any_marks(ctx.pipeline)  # checked once, then gone
    # a's delete came last: row 1 is gone at both ends.
    assert query(p.a, rows) == query(p.b, rows) == [(2, "two")]
    assert p.drift() == []
    _assert_fixed_point(p)


def test_a_run_after_a_dead_batch_keeps_off_its_targets_until_caught_up(
        pg_pg: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch run inserts a's new row 1 at b and dies before saving; b's user deletes
    it. The next run reads a's insert again and decides it again: written at once, it
    would find no row at b (PostgreSQL keeps no version of a deleted row) and bring
    row 1 back there until b's delete was read. The dead run's mark keeps that run
    off row 1 at b until it has caught up: it reads b's delete first (a conflict,
    decided by policy), then checks b."""
    p = pg_pg
    sql(p.a, "INSERT INTO customers (id, name) VALUES (2, 'two')")
    assert p.run().errors == []
    sql(p.b, "CREATE TABLE inserted (id int)",
        "CREATE FUNCTION note_insert() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO inserted VALUES (NEW.id); RETURN NULL; END $$",
        "CREATE TRIGGER note_insert AFTER INSERT ON customers FOR EACH ROW"
        " EXECUTE FUNCTION note_insert()")
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'from a')")
    _die_between_applies_and_save(p, "a", monkeypatch)
    assert query(p.b, "SELECT name FROM customers WHERE id = 1") == [("from a",)]
    sql(p.b, "DELETE FROM customers WHERE id = 1")
    assert p.run().errors == []
    rows = "SELECT id, name FROM customers ORDER BY id"
    assert query(p.a, rows) == query(p.b, rows) == [(2, "two")]  # b's delete came last
    assert query(p.b, "SELECT id FROM inserted WHERE id = 1") == [(1,)]  # not brought back
    assert p.drift() == []
    _assert_fixed_point(p)


def test_an_insert_into_a_row_known_absent_is_placed_in_the_log(pg_pg: Pipeline) -> None:
    p = pg_pg
    sql(p.a, "INSERT INTO customers (id, name) VALUES (1, 'one')")
    assert p.run().errors == []
    lsn = query(p.b, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")[0][0]
    with open_pipeline(p.cfg) as ctx:
        st = ctx.store.load(ctx.pipeline, "customers", ['{"id":1}'])['{"id":1}']
    at = st.at("b").wrote_at
    assert at is not None and at[0] <= lsn  # (one cluster: a and b share the WAL)
    assert st.at("a").wrote_at is None  # read there, never written
    sql(p.b, "UPDATE customers SET name = 'uno' WHERE id = 1")
    assert p.run().errors == []  # b's later edit is read as usual, and ends the window
    with open_pipeline(p.cfg) as ctx:
        st = ctx.store.load(ctx.pipeline, "customers", ['{"id":1}'])['{"id":1}']
    assert st.at("b").wrote_at is None and st.content is not None
    assert st.content["name"] == "uno"
