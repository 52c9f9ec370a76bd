"""The SQLite endpoint against real database files: capture, tagging, CAS, types."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conflict.canonical import canonical_row, key_text, row_hash, rows_equal
from connectors.base import (
    ApplyOp,
    ApplyStatus,
    Binding,
    ConnectorError,
    Endpoint,
    RetriableError,
    SchemaError,
)
from connectors.sqlite import SqliteEndpoint, open_endpoint
from sync.change import Op

CUSTOMERS = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
    "balance DECIMAL(10,2), local_note TEXT DEFAULT 'keep')"
)
CUST = Binding("customer", "crm", "customers", ("id",), exclude=frozenset({"local_note"}))


def make_db(path: Path, *ddl: str) -> Path:
    conn = sqlite3.connect(path)
    for stmt in ddl:
        conn.execute(stmt)
    conn.commit()
    conn.close()
    return path


class User:
    """Somebody else's connection to the same file: their writes are user edits."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def __call__(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "crm.db", CUSTOMERS)


@pytest.fixture
def ep(db: Path) -> Iterator[SqliteEndpoint]:
    endpoint = SqliteEndpoint("crm", db)
    endpoint.setup([CUST], "p")
    yield endpoint
    endpoint.close()


@pytest.fixture
def user(db: Path) -> Iterator[User]:
    u = User(db)
    yield u
    u.conn.close()


def objects(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return {(t, n) for t, n in conn.execute("SELECT type, name FROM sqlite_master")}
    finally:
        conn.close()


def op(key: int, row: dict[str, Any] | None, expected: Any, token: str) -> ApplyOp:
    return ApplyOp({"id": key}, row, expected, token)


# --- setup / teardown ----------------------------------------------------------------------


def test_is_an_endpoint(ep: SqliteEndpoint) -> None:
    assert isinstance(ep, Endpoint)


def test_setup_is_idempotent_and_teardown_removes_everything(db: Path, user: User) -> None:
    before = objects(db)
    with SqliteEndpoint("crm", db) as ep:
        first = ep.setup([CUST], "p")
        assert "created _cdcsync_log" in first
        assert "created capture triggers on customers (5 columns)" in first
        made = objects(db) - before
        again = ep.setup([CUST], "p")
        assert all("already present" in line for line in again), again
        assert objects(db) - before == made
        assert {n for t, n in made if t == "trigger"} == {
            "_cdcsync_customers_ins", "_cdcsync_customers_upd",
            "_cdcsync_customers_updk", "_cdcsync_customers_del"}
        user("INSERT INTO customers (id, name) VALUES (1, 'a')")
        lines = ep.teardown([CUST], "p")
        assert "dropped 4 capture triggers on customers" in lines
        assert "dropped _cdcsync_log" in lines
    # sqlite_sequence is SQLite's own and cannot be dropped; it is left empty.
    assert objects(db) - before <= {("table", "sqlite_sequence")}
    assert user("SELECT count(*) FROM sqlite_sequence") == [(0,)]
    user("UPDATE customers SET name = 'b' WHERE id = 1")  # user writes still work
    assert user("SELECT id, name FROM customers") == [(1, "b")]


def test_teardown_keeps_the_log_while_another_table_is_captured(tmp_path: Path) -> None:
    db = make_db(tmp_path / "x.db", CUSTOMERS, "CREATE TABLE items (sku TEXT PRIMARY KEY, n INT)")
    items = Binding("item", "crm", "items", ("sku",))
    with SqliteEndpoint("crm", db) as ep:
        ep.setup([CUST], "p")
        ep.setup([items], "q")  # another pipeline's table
        lines = ep.teardown([CUST], "p")
        assert any("kept the change log" in line for line in lines)
        u = User(db)
        u("INSERT INTO items VALUES ('a', 1)")
        u("INSERT INTO customers (id, name) VALUES (1, 'x')")
        batch = ep.changes([items], None, 10)
        assert [c.key for c in batch.changes] == [{"sku": "a"}]
        u.conn.close()


def test_setup_errors_name_the_table_and_the_file(tmp_path: Path) -> None:
    db = make_db(tmp_path / "e.db", "CREATE TABLE nokey (id INT, name TEXT)")
    with SqliteEndpoint("crm", db) as ep:
        with pytest.raises(SchemaError, match=r"'customers' does not exist in .*e\.db"):
            ep.setup([CUST], "p")
        with pytest.raises(SchemaError, match=r"no PRIMARY KEY or UNIQUE index.*\(id\)"):
            ep.setup([Binding("n", "crm", "nokey", ("id",))], "p")
        with pytest.raises(SchemaError, match=r"no column\(s\) 'full_name'"):
            ep.setup([Binding("n", "crm", "nokey", ("id",), columns={"name": "full_name"})], "p")
    assert ("table", "_cdcsync_log") not in objects(db)  # a failed setup leaves nothing


def test_a_unique_index_is_enough_for_the_key(tmp_path: Path) -> None:
    db = make_db(tmp_path / "u.db", "CREATE TABLE t (code TEXT NOT NULL, v INT)",
                 "CREATE UNIQUE INDEX t_code ON t (code)")
    b = Binding("t", "x", "t", ("code",))
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        res = ep.apply(b, [ApplyOp({"code": "a"}, {"code": "a", "v": 1}, None, "t1")])
        assert res[0].status is ApplyStatus.APPLIED
        assert ep.read(b, [{"code": "a"}])[key_text({"code": "a"})][0] == {"code": "a", "v": 1}


def test_missing_file_and_open_endpoint(tmp_path: Path, db: Path) -> None:
    with pytest.raises(ConnectorError, match="does not exist"):
        SqliteEndpoint("x", tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()
    ep = open_endpoint("crm", SimpleNamespace(path=str(db), kind="sqlite"), pipeline="p")
    try:
        assert ep.name == "crm"
        assert ep.path == db
        assert ep.schema(CUST).key == ("id",)
    finally:
        ep.close()


def test_not_set_up_is_a_clear_error(db: Path) -> None:
    with SqliteEndpoint("crm", db) as ep:
        with pytest.raises(SchemaError, match="not set up"):
            ep.apply(CUST, [op(1, {"id": 1, "name": "a"}, None, "t")])
        with pytest.raises(SchemaError, match="not set up"):
            ep.changes([CUST], None, 10)
        with pytest.raises(SchemaError, match="not set up"):
            ep.position()
        assert "not set up" in ep.status()["warnings"][0]


def test_plain_reads_need_no_setup(db: Path, user: User) -> None:
    """``cdcsync verify`` compares tables even where capture was torn down."""
    user("INSERT INTO customers (id, name) VALUES (1, 'Ann')")
    with SqliteEndpoint("crm", db) as ep:
        (row,) = ep.snapshot(CUST, None, 10).rows
        assert (row.row, row.row_version) == ({"id": 1, "name": "Ann", "email": None,
                                               "balance": None}, None)
        assert ep.read(CUST, [{"id": 1}])[key_text({"id": 1})][1] is None
        ep.setup([CUST], "p")
        ep.apply(CUST, [op(1, {"id": 1, "name": "Bob"}, None, "t")])
        ep.teardown([CUST], "p")
        assert ep.snapshot(CUST, None, 10).rows[0].row["name"] == "Bob"


# --- capture ------------------------------------------------------------------------------


def test_user_writes_are_captured_with_before_and_after(ep: SqliteEndpoint, user: User) -> None:
    start = ep.position()
    t0 = time.time()
    user("INSERT INTO customers (id, name, email, balance) VALUES (1, 'Ann', 'a@x', '10.50')")
    user("UPDATE customers SET email = 'ann@x' WHERE id = 1")
    user("UPDATE customers SET id = 2 WHERE id = 1")  # a key change
    user("DELETE FROM customers WHERE id = 2")
    user("UPDATE customers SET local_note = 'n' WHERE id = 99")  # touches nothing
    batch = ep.changes([CUST], start, 100)
    got = [(c.op, c.key, c.before, c.after) for c in batch.changes]
    ann = {"id": 1, "name": "Ann", "email": "a@x", "balance": Decimal("10.5")}
    ann2 = {**ann, "email": "ann@x"}
    assert got == [
        (Op.INSERT, {"id": 1}, None, ann),
        (Op.UPDATE, {"id": 1}, ann, ann2),
        (Op.DELETE, {"id": 1}, ann2, None),
        (Op.INSERT, {"id": 2}, None, {**ann2, "id": 2}),
        (Op.DELETE, {"id": 2}, {**ann2, "id": 2}, None),
    ]
    seqs = [c.position[0] for c in batch.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert all(c.row_version == c.position[0] for c in batch.changes)
    assert all(c.source == "crm" and c.entity == "customer" for c in batch.changes)
    assert all(t0 - 1 <= c.committed_at <= time.time() + 1 for c in batch.changes)
    assert batch.checkpoint is not None and batch.checkpoint["seq"] == seqs[-1]
    assert not batch.more
    assert ep.changes([CUST], batch.checkpoint, 100).changes == []


def test_several_tables_are_read_in_commit_order(tmp_path: Path) -> None:
    db = make_db(tmp_path / "two.db", CUSTOMERS, "CREATE TABLE items (sku TEXT PRIMARY KEY, n INT)")
    items = Binding("item", "crm", "items", ("sku",))
    names = Binding("name", "crm", "customers", ("id",), only=frozenset({"name"}))
    with SqliteEndpoint("crm", db) as ep:
        ep.setup([CUST, items, names], "p")
        u = User(db)
        u("INSERT INTO items VALUES ('a', 1)")
        u("INSERT INTO customers (id, name) VALUES (1, 'x')")
        u("UPDATE items SET n = 2")
        got = [(c.entity, c.op, dict(c.key)) for c in ep.changes([items, CUST, names], None, 3)
               .changes]
        assert got == [("item", Op.INSERT, {"sku": "a"}),
                       ("customer", Op.INSERT, {"id": 1}), ("name", Op.INSERT, {"id": 1}),
                       ("item", Op.UPDATE, {"sku": "a"})]
        u.conn.close()


def test_changes_are_read_in_pages(ep: SqliteEndpoint, user: User) -> None:
    for i in range(7):
        user("INSERT INTO customers (id, name) VALUES (?, 'x')", i)
    seen: list[int] = []
    cp = None
    for _ in range(10):
        batch = ep.changes([CUST], cp, 3)
        seen += [c.key["id"] for c in batch.changes]
        cp = batch.checkpoint
        if not batch.more:
            break
    assert seen == list(range(7))
    assert cp == ep.position()


def test_service_writes_are_tagged_not_captured_but_bump_the_row_version(
    ep: SqliteEndpoint, user: User
) -> None:
    user("INSERT INTO customers (id, name) VALUES (1, 'Ann')")
    first = ep.changes([CUST], None, 10)
    v1 = first.changes[0].row_version
    res = ep.apply(CUST, [op(1, {"id": 1, "name": "Bob"}, v1, "tok-a"),
                          op(2, {"id": 2, "name": "Cy"}, None, "tok-b")])
    assert [r.status for r in res] == [ApplyStatus.APPLIED, ApplyStatus.APPLIED]
    assert res[0].row_version > v1
    batch = ep.changes([CUST], first.checkpoint, 10)
    assert batch.changes == []  # no echo, and no content filtering was needed
    assert batch.checkpoint == ep.position()  # the checkpoint moves past our own rows
    # Our two rows were logged (their seq is the row version) and deleted with our
    # transaction: no reader reads them, and a target nobody reads would keep them.
    assert user("SELECT count(*) FROM _cdcsync_log WHERE seq > ?", v1) == [(0,)]
    assert ep.position()["seq"] == v1 + 2 == res[1].row_version
    assert user("SELECT count(*) FROM _cdcsync_session") == [(0,)]
    snap = {r.key["id"]: r.row_version for r in ep.snapshot(CUST, None, 10).rows}
    assert snap == {1: res[0].row_version, 2: res[1].row_version}
    # A user edit equal to the service's write is still a user edit.
    user("UPDATE customers SET name = 'Bob' WHERE id = 1")
    again = ep.changes([CUST], batch.checkpoint, 10)
    assert [(c.op, c.after) for c in again.changes] == [
        (Op.UPDATE, {"id": 1, "name": "Bob", "email": None, "balance": None})]
    assert again.changes[0].row_version > res[0].row_version


# --- compare-and-set ----------------------------------------------------------------------


def test_stale_expected_version_is_skipped(ep: SqliteEndpoint, user: User) -> None:
    user("INSERT INTO customers (id, name) VALUES (1, 'Ann')")
    v1 = ep.changes([CUST], None, 10).changes[0].row_version
    user("UPDATE customers SET name = 'Ann B' WHERE id = 1")  # lands before our apply
    res = ep.apply(CUST, [op(1, {"id": 1, "name": "svc"}, v1, "t")])
    assert res[0].status is ApplyStatus.SKIPPED
    assert res[0].row_version == v1 + 1
    assert user("SELECT name FROM customers") == [("Ann B",)]
    deleted = ep.apply(CUST, [op(1, None, v1, "t2")])
    assert deleted[0].status is ApplyStatus.SKIPPED
    assert user("SELECT count(*) FROM customers") == [(1,)]


def test_a_replayed_apply_is_recognised_by_its_token(ep: SqliteEndpoint, user: User) -> None:
    ops = [op(1, {"id": 1, "name": "Ann"}, None, "v1"), op(2, None, None, "v2")]
    first = ep.apply(CUST, ops)
    assert [r.status for r in first] == [ApplyStatus.APPLIED, ApplyStatus.APPLIED]
    replay = ep.apply(CUST, ops)
    assert replay[0].status is ApplyStatus.ALREADY
    assert replay[0].row_version == first[0].row_version
    assert replay[1].status is ApplyStatus.APPLIED  # deleting an absent row twice is harmless
    user("UPDATE customers SET name = 'Ann U' WHERE id = 1")  # resets the token
    late = ep.apply(CUST, ops[:1])
    assert late[0].status is ApplyStatus.SKIPPED
    assert user("SELECT name FROM customers") == [("Ann U",)]


def test_an_earlier_write_of_ours_whose_result_was_lost_is_stale(
        ep: SqliteEndpoint, user: User) -> None:
    """A worker wrote v2 and died before recording it; v3's apply still expects
    the row version from before v2: STALE, with the version to expect now."""
    (first,) = ep.apply(CUST, [op(1, {"id": 1, "name": "a"}, None, "v1")])
    (lost,) = ep.apply(CUST, [op(1, {"id": 1, "name": "b"}, first.row_version, "v2")])
    assert lost.status is ApplyStatus.APPLIED
    (res,) = ep.apply(CUST, [op(1, {"id": 1, "name": "c"}, first.row_version, "v3")])
    assert (res.status, res.row_version) == (ApplyStatus.STALE, lost.row_version)
    assert user("SELECT name FROM customers") == [("b",)]
    (again,) = ep.apply(CUST, [op(1, {"id": 1, "name": "c"}, res.row_version, "v3")])
    assert again.status is ApplyStatus.APPLIED
    assert user("SELECT name FROM customers") == [("c",)]
    user("UPDATE customers SET name = 'user' WHERE id = 1")  # a user edit: a plain skip
    (skip,) = ep.apply(CUST, [op(1, {"id": 1, "name": "d"}, again.row_version, "v4")])
    assert skip.status is ApplyStatus.SKIPPED


def test_inserting_a_key_the_user_inserted_is_skipped(ep: SqliteEndpoint, user: User) -> None:
    user("INSERT INTO customers (id, name) VALUES (5, 'theirs')")
    res = ep.apply(CUST, [op(5, {"id": 5, "name": "ours"}, None, "t")])
    assert res[0].status is ApplyStatus.SKIPPED
    assert res[0].row_version == ep.changes([CUST], None, 10).changes[0].row_version
    assert user("SELECT name FROM customers WHERE id = 5") == [("theirs",)]


def test_rows_from_before_setup_are_applied_with_no_expected_version(db: Path, user: User) -> None:
    user("INSERT INTO customers (id, name) VALUES (1, 'old'), (2, 'old2')")
    with SqliteEndpoint("crm", db) as ep:
        ep.setup([CUST], "p")
        snap = ep.snapshot(CUST, None, 10)
        assert [r.row_version for r in snap.rows] == [None, None]
        res = ep.apply(CUST, [op(1, {"id": 1, "name": "new"}, None, "t"), op(2, None, None, "d")])
        assert [r.status for r in res] == [ApplyStatus.APPLIED] * 2
        assert all(isinstance(r.row_version, int) for r in res)
        assert user("SELECT id, name FROM customers") == [(1, "new")]


def test_one_key_twice_in_a_batch_is_checked_in_order(ep: SqliteEndpoint, user: User) -> None:
    res = ep.apply(CUST, [op(1, {"id": 1, "name": "a"}, None, "t1"),
                          op(2, {"id": 2, "name": "b"}, None, "t2"),
                          op(1, {"id": 1, "name": "c"}, None, "t3")])
    # The third op finds the row moved by the first, a write of ours: STALE, not
    # SKIPPED (no user edit is on its way), and nothing written.
    assert [r.status for r in res] == [ApplyStatus.APPLIED, ApplyStatus.APPLIED,
                                       ApplyStatus.STALE]
    assert res[2].row_version == res[0].row_version
    assert [r.key_text for r in res] == [key_text({"id": i}) for i in (1, 2, 1)]
    nxt = ep.apply(CUST, [op(1, {"id": 1, "name": "c"}, res[0].row_version, "t3"),
                          op(1, None, None, "t4")])
    assert [r.status for r in nxt] == [ApplyStatus.APPLIED, ApplyStatus.STALE]
    assert user("SELECT name FROM customers WHERE id = 1") == [("c",)]


def test_a_failed_apply_rolls_back_everything(ep: SqliteEndpoint, user: User) -> None:
    with pytest.raises(ConnectorError, match="NOT NULL"):
        ep.apply(CUST, [op(1, {"id": 1, "name": "ok"}, None, "a"),
                        op(2, {"id": 2, "name": None}, None, "b")])
    assert user("SELECT count(*) FROM customers") == [(0,)]
    assert user("SELECT count(*) FROM _cdcsync_session") == [(0,)]
    assert user("SELECT count(*) FROM _cdcsync_rowver") == [(0,)]
    assert ep.apply(CUST, [op(1, {"id": 1, "name": "ok"}, None, "a")])[0].status \
        is ApplyStatus.APPLIED  # and the endpoint still works


def test_a_locked_database_is_a_retriable_error(db: Path, user: User) -> None:
    with SqliteEndpoint("crm", db, busy_timeout=0.05) as ep:
        ep.setup([CUST], "p")
        user("BEGIN IMMEDIATE")
        try:
            with pytest.raises(RetriableError, match="locked"):
                ep.apply(CUST, [op(1, {"id": 1, "name": "a"}, None, "t")])
            assert ep.changes([CUST], None, 10).changes == []  # readers are not blocked
        finally:
            user("ROLLBACK")
        assert ep.apply(CUST, [op(1, {"id": 1, "name": "a"}, None, "t")])[0].status \
            is ApplyStatus.APPLIED


# --- values -------------------------------------------------------------------------------

TYPED = (
    "CREATE TABLE typed (id INTEGER PRIMARY KEY, i BIGINT, f REAL, d DECIMAL(10,2), "
    "t VARCHAR(40), b BOOLEAN, dt DATE, ts TIMESTAMP, tz TIMESTAMPTZ, tm TIME, j JSON, "
    "raw BLOB, u UUID, note TEXT)"
)
TYPED_B = Binding("typed", "x", "typed", ("id",))
TZ = dt.timezone(dt.timedelta(hours=2))
ROWS: list[dict[str, Any]] = [
    {"id": 1, "i": 2**62, "f": 0.1 + 0.2, "d": Decimal("1.50"), "t": "h\u00e9 \"q\" 'x'\n\t\x01",
     "b": True, "dt": dt.date(2024, 2, 29), "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
     "tz": dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=TZ),
     "tm": dt.time(13, 14, 15, 123456), "j": {"z": [1, {"y": 2.5, "x": None}], "a": "s"},
     "raw": b"\x00\xff\x10", "u": uuid.uuid4(), "note": None},
    {"id": 2, "i": -1, "f": -1e300, "d": Decimal("-12345678.9"), "t": "", "b": False,
     "dt": dt.date(1970, 1, 1), "ts": dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
     "tz": dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "tm": dt.time(0, 0),
     "j": [1, "two", {"b": 1, "a": [True, False]}], "raw": b"", "u": uuid.UUID(int=1),
     "note": "x"},
    {"id": 3, **{c: None for c in ("i", "f", "d", "t", "b", "dt", "ts", "tz", "tm", "j", "raw",
                                   "u", "note")}},
    {"id": 4, "j": "a json string", "d": Decimal("100.00"), "f": 3.0, "tm": dt.time(1, 2, 3)},
]


@pytest.fixture
def typed_ep(tmp_path: Path) -> Iterator[tuple[SqliteEndpoint, User]]:
    db = make_db(tmp_path / "typed.db", TYPED)
    ep = SqliteEndpoint("x", db)
    ep.setup([TYPED_B], "p")
    u = User(db)
    yield ep, u
    u.conn.close()
    ep.close()


def test_schema_maps_declared_types(typed_ep: tuple[SqliteEndpoint, User]) -> None:
    ep, _ = typed_ep
    schema = ep.schema(TYPED_B)
    assert {c.name: c.logical for c in schema.columns} == {
        "id": "int", "i": "int", "f": "float", "d": "decimal", "t": "text", "b": "bool",
        "dt": "date", "ts": "timestamp", "tz": "timestamptz", "tm": "time", "j": "json",
        "raw": "bytes", "u": "uuid", "note": "text"}
    assert schema.column("d") is not None and schema.column("d").native == "DECIMAL(10,2)"  # type: ignore[union-attr]
    assert schema.key == ("id",)


def test_every_logical_type_round_trips_canonically(
    typed_ep: tuple[SqliteEndpoint, User]
) -> None:
    ep, user = typed_ep
    res = ep.apply(TYPED_B, [ApplyOp({"id": r["id"]}, r, None, f"t{r['id']}") for r in ROWS])
    assert {r.status for r in res} == {ApplyStatus.APPLIED}
    expected = {r["id"]: r for r in ROWS}
    # through the snapshot
    snap = ep.snapshot(TYPED_B, None, 10).rows
    for s in snap:
        want = {**{c: None for c in ROWS[0]}, **expected[s.key["id"]]}
        assert canonical_row(s.row) == canonical_row(want), s.key
        assert row_hash(s.row) == row_hash(want)
    # through read()
    got = ep.read(TYPED_B, [{"id": r["id"]} for r in ROWS])
    for s in snap:
        assert rows_equal(got[key_text(s.key)][0], s.row)
    # through the change log: a user edit of another column carries our values along
    cp = ep.position()
    user("UPDATE typed SET note = 'edited'")
    changes = ep.changes([TYPED_B], cp, 10).changes
    assert len(changes) == len(ROWS)
    for ch in changes:
        want = {**{c: None for c in ROWS[0]}, **expected[ch.key["id"]]}
        assert canonical_row(ch.before) == canonical_row(want), ch.key
        assert canonical_row(ch.after) == canonical_row({**want, "note": "edited"}), ch.key
    # and the snapshot of the edited rows agrees with what the log said
    for s, ch in zip(ep.snapshot(TYPED_B, None, 10).rows, changes, strict=True):
        assert rows_equal(s.row, ch.after)


def test_user_written_values_read_alike_from_log_and_table(
    typed_ep: tuple[SqliteEndpoint, User]
) -> None:
    ep, user = typed_ep
    user("INSERT INTO typed VALUES (1, 7, 2.5, 1.25, 'x', 1, '2024-01-02', "
         "'2024-01-02 03:04:05', '2024-01-02T03:04:05+02:00', '10:11:12', "
         "'{\"b\":1,\"a\":[1,2]}', x'beef', '12345678-1234-5678-1234-567812345678', NULL)")
    user("INSERT INTO typed (id, f, d) VALUES (2, 10, '0.1')")  # affinity: REAL 10.0, REAL 0.1
    changes = {c.key["id"]: c.after for c in ep.changes([TYPED_B], None, 10).changes}
    for s in ep.snapshot(TYPED_B, None, 10).rows:
        assert changes[s.key["id"]] is not None
        assert canonical_row(changes[s.key["id"]]) == canonical_row(s.row)
    one = changes[1]
    assert one is not None
    assert one["tz"] == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC)
    assert one["j"] == {"a": [1, 2], "b": 1}
    assert one["raw"] == b"\xbe\xef"
    assert one["b"] is True
    assert changes[2] is not None and changes[2]["d"] == Decimal("0.1")


REALS = [0.1 + 0.2, 0.1, 1e300, -1e-300, 5e-324, 2.2250738585072014e-308,
         1.7976931348623157e308, 1.1862911068229023e232, -1.5141536343017553e234, 1e23,
         9007199254740993.0, 123456789.12345679, 3.0, -0.0, math.pi, math.inf, -math.inf]


def test_real_values_keep_every_bit(typed_ep: tuple[SqliteEndpoint, User]) -> None:
    ep, user = typed_ep
    for i, x in enumerate(REALS):
        user("INSERT INTO typed (id, f) VALUES (?, ?)", i, x)
    logged = {c.key["id"]: c.after["f"] for c in ep.changes([TYPED_B], None, 100).changes
              if c.after is not None}
    snap = {r.key["id"]: r.row["f"] for r in ep.snapshot(TYPED_B, None, 100).rows}
    for i, x in enumerate(REALS):
        # (-0.0 is stored by SQLite itself as 0.0, which is canonically the same value)
        assert logged[i] == x and snap[i] == x, (i, x, logged[i])
    # and as a key: the logged key text is what the sink computes
    db = ep.path.parent / "realkey.db"
    make_db(db, "CREATE TABLE r (k REAL PRIMARY KEY, v TEXT)")
    rb = Binding("r", "x", "r", ("k",))
    with SqliteEndpoint("x", db) as rep:
        rep.setup([rb], "p")
        u = User(db)
        u("INSERT INTO r VALUES (?, 'user')", 0.1 + 0.2)
        ver = rep.changes([rb], None, 10).changes[0].row_version
        res = rep.apply(rb, [ApplyOp({"k": 0.1 + 0.2}, {"k": 0.1 + 0.2, "v": "svc"}, ver, "t")])
        assert res[0].status is ApplyStatus.APPLIED
        assert u("SELECT k, v FROM r") == [(0.1 + 0.2, "svc")]
        u.conn.close()


PROPERTY_DDL = ("CREATE TABLE p (id INTEGER PRIMARY KEY, i INT, f REAL, d NUMERIC, t TEXT, "
                "raw BLOB, j JSON, edit INT)")
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({
    "i": st.none() | st.integers(-(2**63), 2**63 - 1),
    "f": st.none() | st.floats(allow_nan=False),
    # NUMERIC affinity keeps decimals as REAL: exact to 15 significant digits
    "d": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=3,
                                 min_value=-(10**11), max_value=10**11),
    "t": st.none() | st.text(st.characters(codec="utf-8")),
    "raw": st.none() | st.binary(max_size=20),
    "j": _json,
}), min_size=1, max_size=5))
def test_values_survive_the_table_and_the_log(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    """Whatever is written reads back canonically equal, from the table and from the log."""
    db = tmp_path / "prop.db"
    db.unlink(missing_ok=True)
    make_db(db, PROPERTY_DDL)
    b = Binding("p", "x", "p", ("id",), exclude=frozenset({"edit"}))
    full = [{"id": n, **r} for n, r in enumerate(rows)]
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        ep.apply(b, [ApplyOp({"id": r["id"]}, r, None, "t") for r in full])
        snap = [r.row for r in ep.snapshot(b, None, 100).rows]
        u = User(db)
        u("UPDATE p SET edit = 1")  # a user edit carries the written values into the log
        u.conn.close()
        logged = [c.before for c in ep.changes([b], None, 100).changes]
    for want, got_table, got_log in zip(full, snap, logged, strict=True):
        assert canonical_row(got_table) == canonical_row(want)
        assert canonical_row(got_log) == canonical_row(want)


@pytest.mark.parametrize(
    ("ddl", "keys"),
    [
        ("CREATE TABLE k (a TEXT, b INT, v TEXT, PRIMARY KEY (a, b))",
         [{"a": "x'y\"z", "b": 1}, {"a": "\u00e9\u4e2d\n", "b": -2}, {"a": "", "b": 0}]),
        ("CREATE TABLE k (a DECIMAL(10,2) PRIMARY KEY, v TEXT)",
         [{"a": Decimal("1.50")}, {"a": Decimal("100.00")}, {"a": Decimal("0.1")}]),
        ("CREATE TABLE k (a BLOB PRIMARY KEY, v TEXT)", [{"a": b"\x00\x01"}, {"a": b"\xff"}]),
        ("CREATE TABLE k (a UUID PRIMARY KEY, v TEXT)", [{"a": uuid.UUID(int=5)}]),
    ],
)
def test_keys_of_every_kind_match_between_log_and_sink(
    tmp_path: Path, ddl: str, keys: list[dict[str, Any]]
) -> None:
    db = make_db(tmp_path / "k.db", ddl)
    b = Binding("k", "x", "k", tuple(keys[0]))
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        first = ep.apply(b, [ApplyOp(k, {**k, "v": "one"}, None, "a") for k in keys])
        assert {r.status for r in first} == {ApplyStatus.APPLIED}
        assert all(isinstance(r.row_version, int) for r in first)
        # the row versions the sink reports are the ones it checks next time
        second = ep.apply(b, [ApplyOp(k, {**k, "v": "two"}, r.row_version, "b")
                              for k, r in zip(keys, first, strict=True)])
        assert {r.status for r in second} == {ApplyStatus.APPLIED}
        read = ep.read(b, keys)
        assert set(read) == {key_text(k) for k in keys}
        assert all(row["v"] == "two" for row, _ in read.values())
        snap = ep.snapshot(b, None, 100).rows
        assert {key_text(r.key): r.row_version for r in snap} == \
            {key_text(k): r.row_version for k, r in zip(keys, second, strict=True)}
        # a user edit comes back under the same key and version chain
        u = User(db)
        u("UPDATE k SET v = 'user'")
        changes = ep.changes([b], None, 100).changes
        assert {key_text(c.key) for c in changes} == {key_text(k) for k in keys}
        u.conn.close()
        third = ep.apply(b, [ApplyOp(k, None, r.row_version, "c")
                             for k, r in zip(keys, second, strict=True)])
        assert {r.status for r in third} == {ApplyStatus.SKIPPED}


@pytest.mark.parametrize(
    ("ddl", "table", "key", "col"),
    [
        ('CREATE TABLE "odd ""t"" x" ("the id" TEXT PRIMARY KEY, "va\'l""" INT)',
         'odd "t" x', "the id", "va'l\""),
        ("CREATE TABLE s (k ANY PRIMARY KEY, v INT) STRICT", "s", "k", "v"),
    ],
)
def test_quoted_names_and_strict_tables(
    tmp_path: Path, ddl: str, table: str, key: str, col: str
) -> None:
    db = make_db(tmp_path / "q.db", ddl)
    b = Binding("q", "x", table, (key,))
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        first = ep.apply(b, [ApplyOp({key: "1"}, {key: "1", col: 5}, None, "a")])
        second = ep.apply(b, [ApplyOp({key: "1"}, {key: "1", col: 6}, first[0].row_version, "b")])
        assert second[0].status is ApplyStatus.APPLIED  # the sink found its own row version
        assert isinstance(first[0].row_version, int)
        assert second[0].row_version > first[0].row_version
        u = User(db)
        quoted = [x.replace('"', '""') for x in (table, col)]
        u(f'UPDATE "{quoted[0]}" SET "{quoted[1]}" = 7')
        (ch,) = ep.changes([b], None, 10).changes
        assert (ch.key, ch.before, ch.after) == ({key: "1"}, {key: "1", col: 6}, {key: "1", col: 7})
        u.conn.close()
        done = ep.teardown([b], "p")
        assert {"dropped _cdcsync_meta", "dropped _cdcsync_replaced"} <= set(done)


def test_a_value_that_does_not_read_as_its_type_names_the_column(
    ep: SqliteEndpoint, user: User
) -> None:
    user("INSERT INTO customers (id, name, balance) VALUES (1, 'Ann', 'lots')")
    with pytest.raises(ConnectorError, match=r"log seq 1, column 'balance'.*lots"):
        ep.changes([CUST], None, 10)
    with pytest.raises(ConnectorError, match=r"column 'balance'.*lots"):
        ep.snapshot(CUST, None, 10)


def test_wide_tables_are_logged_in_chunks(tmp_path: Path) -> None:
    cols = [f"c{i}" for i in range(150)]
    db = make_db(tmp_path / "w.db",
                 f"CREATE TABLE w (id INTEGER PRIMARY KEY, {', '.join(c + ' INT' for c in cols)})")
    b = Binding("w", "x", "w", ("id",))
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        u = User(db)
        u("INSERT INTO w (id, c0, c149) VALUES (1, 0, 149)")
        (ch,) = ep.changes([b], None, 10).changes
        assert ch.after == {"id": 1, **{c: None for c in cols}, "c0": 0, "c149": 149}
        u.conn.close()


# --- bindings -----------------------------------------------------------------------------


def test_column_mapping_and_include_exclude(tmp_path: Path) -> None:
    db = make_db(tmp_path / "m.db", CUSTOMERS)
    b = Binding("customer", "crm", "customers", ("cid",),
                columns={"cid": "id", "full_name": "name"}, only=frozenset({"full_name", "email"}))
    with SqliteEndpoint("crm", db) as ep:
        ep.setup([b], "p")
        u = User(db)
        u("INSERT INTO customers (id, name, email, balance) VALUES (1, 'Ann', 'a@x', 5)")
        (ch,) = ep.changes([b], None, 10).changes
        assert ch.key == {"cid": 1}
        assert ch.after == {"cid": 1, "full_name": "Ann", "email": "a@x"}
        assert ep.snapshot(b, None, 10).rows[0].row == ch.after
        res = ep.apply(b, [ApplyOp({"cid": 1}, {"cid": 1, "full_name": "Bea", "email": "b@x",
                                                "balance": 99}, ch.row_version, "t")])
        assert res[0].status is ApplyStatus.APPLIED
        assert u("SELECT id, name, email, balance, local_note FROM customers") == \
            [(1, "Bea", "b@x", 5, "keep")]  # balance is not synced: never written
        assert ep.read(b, [{"cid": 1}])[key_text({"cid": 1})][0] == \
            {"cid": 1, "full_name": "Bea", "email": "b@x"}
        u.conn.close()


def test_unsynced_local_columns_are_kept(ep: SqliteEndpoint, user: User) -> None:
    user("INSERT INTO customers (id, name, local_note) VALUES (1, 'Ann', 'mine')")
    ver = ep.changes([CUST], None, 10).changes[0].row_version
    ep.apply(CUST, [op(1, {"id": 1, "name": "Bob", "local_note": "theirs"}, ver, "t"),
                    op(2, {"id": 2, "name": "New"}, None, "u")])
    assert user("SELECT id, name, local_note FROM customers ORDER BY id") == \
        [(1, "Bob", "mine"), (2, "New", "keep")]


# --- schema drift -------------------------------------------------------------------------


def test_a_schema_change_after_setup_is_reported(ep: SqliteEndpoint, user: User) -> None:
    user("INSERT INTO customers (id, name) VALUES (1, 'Ann')")
    assert len(ep.changes([CUST], None, 10).changes) == 1
    user("ALTER TABLE customers ADD COLUMN phone TEXT")
    with pytest.raises(SchemaError, match=r"changed since setup.*phone.*rerun `cdcsync setup`"):
        ep.changes([CUST], None, 10)
    with pytest.raises(SchemaError, match="rerun `cdcsync setup`"):
        ep.schema(CUST)
    lines = ep.setup([CUST], "p")
    # (the writes made between the ALTER and this setup lack phone: the resync is named)
    assert ("updated capture triggers on customers: its columns changed since setup, so"
            " writes to it since were captured without the new or renamed columns' values;"
            " `cdcsync resync PIPELINE ENTITY` copies them") in lines
    user("UPDATE customers SET phone = '555' WHERE id = 1")
    last = ep.changes([CUST], None, 10).changes[-1]
    assert last.after is not None and last.after["phone"] == "555"
    assert [c.name for c in ep.schema(CUST).columns][-1] == "phone"


def test_a_rebuilt_table_without_triggers_is_reported(ep: SqliteEndpoint, user: User) -> None:
    user("CREATE TABLE c2 AS SELECT * FROM customers")
    user("DROP TABLE customers")
    user(CUSTOMERS)
    with pytest.raises(SchemaError, match=r"trigger.*missing.*rerun `cdcsync setup`"):
        ep.changes([CUST], None, 10)
    assert ep.status()["warnings"]


def test_a_checkpoint_into_a_recreated_log_is_refused(ep: SqliteEndpoint, user: User) -> None:
    user("INSERT INTO customers (id, name) VALUES (1, 'Ann')")
    cp = ep.changes([CUST], None, 10).checkpoint
    ep.teardown([CUST], "p")
    ep.setup([CUST], "p")
    with pytest.raises(SchemaError, match="recreated"):
        ep.changes([CUST], cp, 10)


# --- snapshot and pruning -----------------------------------------------------------------


def test_snapshot_pages_resume_after_the_last_key(tmp_path: Path) -> None:
    db = make_db(tmp_path / "s.db", "CREATE TABLE s (a TEXT, b INT, v TEXT, PRIMARY KEY (a, b))")
    b = Binding("s", "x", "s", ("a", "b"))
    u = User(db)
    want = [(a, n) for a in ("x", "y", "z") for n in (3, 1, 2)]
    for a, n in want:
        u("INSERT INTO s VALUES (?, ?, 'v')", a, n)
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        u("UPDATE s SET v = 'w' WHERE a = 'y' AND b = 2")
        got: list[tuple[str, int]] = []
        after = None
        chunks = 0
        while True:
            chunk = ep.snapshot(b, after, 4)
            chunks += 1
            got += [(r.key["a"], r.key["b"]) for r in chunk.rows]
            after = chunk.last_key
            if chunk.done:
                break
        assert got == sorted(want)
        assert chunks == 3
        versions = {(r.key["a"], r.key["b"]): r.row_version
                    for r in ep.snapshot(b, {"a": "y", "b": 1}, 1).rows}
        assert list(versions) == [("y", 2)] and versions[("y", 2)] is not None
    u.conn.close()


def test_prune_drops_what_every_reader_is_past(ep: SqliteEndpoint, user: User) -> None:
    for i in range(5):
        user("INSERT INTO customers (id, name) VALUES (?, 'x')", i)
    ep.confirm({"seq": 5})  # a no-op: pruning is explicit
    assert user("SELECT count(*) FROM _cdcsync_log") == [(5,)]
    log = ep.position()["log"]
    assert ep.prune([{"seq": 4, "log": log}, {"seq": 2, "log": log}]) == 2
    assert ep.prune([{"seq": 5, "log": "an older log"}]) == 0
    assert [c.position[0] for c in ep.changes([CUST], {"seq": 2}, 10).changes] == [3, 4, 5]
    # A reader behind the prune lost changes 1 and 2: it says so rather than carry on.
    with pytest.raises(ConnectorError, match=r"changes of table 'customers' .* after this"
                       r" pipeline's checkpoint \(log seq 1\) were pruned .* \(up to seq 2\)"):
        ep.changes([CUST], {"seq": 1}, 10)
    assert ep.prune(5) == 3
    st = ep.status()
    assert (st["tables"], st["log_rows"], st["log_seq"]) == (["customers"], 0, 5)
    assert st["warnings"] == []
    assert ep.position()["seq"] == 5  # sequence numbers are never reused
    user("INSERT INTO customers (id, name) VALUES (9, 'x')")
    assert [c.position[0] for c in ep.changes([CUST], {"seq": 5}, 10).changes] == [6]
    # Of the named tables only: other pipelines may read the file's other tables.
    assert ep.prune(6, tables=["elsewhere"]) == 0
    assert ep.prune(6, tables=[]) == 0
    assert ep.prune(6, tables=["customers", "elsewhere"]) == 1


@pytest.mark.parametrize(("value", "message"), [
    (None, "NOT NULL constraint failed: t.n"),
    (-1, "CHECK constraint failed"),
    (2**70, "does not fit SQLite's 64-bit INTEGER: declare the column DECIMAL TEXT"),
])
def test_a_row_the_table_refuses_is_row_rejected(tmp_path: Path, value: Any,
                                                  message: str) -> None:
    """A constraint, or a value SQLite cannot store: RowRejected (the engine isolates the
    row and dead-letters it), the batch rolled back, and the endpoint usable after."""
    from connectors.base import RowRejected

    db = make_db(tmp_path / "t.db", "CREATE TABLE t (id INTEGER PRIMARY KEY,"
                                    " n INTEGER NOT NULL CHECK (n >= 0))")
    b = Binding("t", "x", "t", ("id",))
    good = ApplyOp({"id": 1}, {"id": 1, "n": 5}, None, "t1")
    with SqliteEndpoint("x", db) as ep:
        ep.setup([b], "p")
        with pytest.raises(RowRejected, match=message):
            ep.apply(b, [good, ApplyOp({"id": 2}, {"id": 2, "n": value}, None, "t1")])
        assert User(db)("SELECT id FROM t") == []
        assert [r.status for r in ep.apply(b, [good])] == [ApplyStatus.APPLIED]


def test_nan_is_kept_not_turned_into_null(typed_ep: tuple[SqliteEndpoint, User]) -> None:
    """Bound as a float, SQLite stores NaN as NULL: a PostgreSQL NaN arrived as NULL,
    silently. It is stored as the text 'NaN' and reads back as NaN."""
    ep, user = typed_ep
    nan = float("nan")
    res = ep.apply(TYPED_B, [ApplyOp({"id": 1}, {"id": 1, "f": nan}, None, "t")])
    assert res[0].status is ApplyStatus.APPLIED
    assert user("SELECT f, typeof(f) FROM typed WHERE id = 1") == [("NaN", "text")]
    row, version = ep.read(TYPED_B, [{"id": 1}])[key_text({"id": 1})]
    assert math.isnan(row["f"]) and version == res[0].row_version
    [snap] = ep.snapshot(TYPED_B, None, 10).rows
    assert math.isnan(snap.row["f"])
    user("UPDATE typed SET f = 'NaN' WHERE id = 1")  # as a user may write it
    [change] = [c for c in ep.changes([TYPED_B], None, 10).changes if c.after is not None]
    assert math.isnan(change.after["f"])
