"""The sink: one transaction per batch, compare-and-set on xmin, replays, retriable errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.base import ApplyOp, ApplyStatus, RetriableError, RowRejected, SchemaError
from connectors.postgres import PostgresEndpoint
from tests.connectors.postgres.helpers import binding, endpoint, query, sql

A, S, P = ApplyStatus.ALREADY, ApplyStatus.SKIPPED, ApplyStatus.APPLIED


def _row(i: int, name: str = "n", amount: object = 1, note: object = None) -> dict[str, object]:
    return {"id": i, "name": name, "amount": amount, "note": note}


def _xmin(dsn: str, i: int) -> int | None:
    rows = query(dsn, "SELECT xmin::text::bigint FROM t WHERE id = %s", (i,))
    return int(rows[0][0]) if rows else None


def _table(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, "SELECT id, name, amount, note FROM t ORDER BY id")


def test_insert_update_delete_with_compare_and_set(ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    res = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a", "1.5"), None, "v1"),
                       ApplyOp({"id": 2}, _row(2, "b"), None, "v1")])
    assert [r.status for r in res] == [P, P]
    assert [r.key_text for r in res] == ['{"id":1}', '{"id":2}']
    x1 = _xmin(table_t, 1)
    assert res[0].row_version == x1 == res[1].row_version  # one transaction for the batch
    res = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a2", "2.25"), x1, "v2"),
                       ApplyOp({"id": 2}, None, x1, "v2")])
    assert [r.status for r in res] == [P, P]
    assert res[0].row_version == _xmin(table_t, 1) != x1
    assert res[1].row_version is None
    assert _table(table_t) == [(1, "a2", Decimal("2.25"), None)]


def test_a_moved_row_is_skipped_with_its_current_version(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    (r,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "svc"), None, "v1")])
    sql(table_t, "UPDATE t SET name = 'user' WHERE id = 1", "INSERT INTO t VALUES (2, 'u', 1)")
    user = _xmin(table_t, 1)
    res = ep.apply(b, [
        ApplyOp({"id": 1}, _row(1, "svc2"), r.row_version, "v2"),  # user edit in between
        ApplyOp({"id": 2}, _row(2, "svc"), None, "v2"),  # inserted on both sides
        ApplyOp({"id": 1}, None, r.row_version, "v3"),  # a delete of the moved row
    ])
    assert [(x.status, x.row_version) for x in res] == [
        (S, user), (S, _xmin(table_t, 2)), (S, user)]
    assert _table(table_t) == [(1, "user", Decimal("1.00"), None), (2, "u", Decimal("1.00"),
                                                                    None)]


def test_a_row_written_in_a_subtransaction_is_the_transactions_version(
        ep: PostgresEndpoint, table_t: str) -> None:
    """pgoutput gives a change its transaction's xid; a row written inside a SAVEPOINT
    has its subtransaction's. The compare-and-set takes the one for the other (same
    commit timestamp, a later xid), and still skips a user's later write."""
    import psycopg

    b = binding()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 1)")
    with psycopg.connect(table_t) as conn:
        (top,) = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone() or ()
        conn.execute("SAVEPOINT s")
        conn.execute("UPDATE t SET name = 'a2' WHERE id IN (1, 2)")
        conn.execute("RELEASE SAVEPOINT s")
    assert _xmin(table_t, 1) != top  # the subtransaction's xid
    sql(table_t, "UPDATE t SET name = 'user' WHERE id = 2")  # a later user edit of 2
    later = _xmin(table_t, 2)
    res = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "svc"), top, "v2"),
                       ApplyOp({"id": 2}, _row(2, "svc"), top, "v2")])
    assert [(x.status, x.row_version) for x in res] == [(P, _xmin(table_t, 1)), (S, later)]
    assert _table(table_t) == [(1, "svc", Decimal("1.00"), None),
                               (2, "user", Decimal("1.00"), None)]


def test_an_update_of_a_row_deleted_meanwhile_is_skipped(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    (r,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1), None, "v1")])
    sql(table_t, "DELETE FROM t WHERE id = 1")
    (res,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "x"), r.row_version, "v2")])
    assert (res.status, res.row_version) == (S, None)
    assert _table(table_t) == []


def test_a_replay_of_our_own_write_is_already_applied(ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    (first,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a"), None, "v1")])
    ops = [ApplyOp({"id": 1}, _row(1, "b"), first.row_version, "v2")]
    (applied,) = ep.apply(b, ops)
    assert applied.status is P
    # The engine crashed before it recorded the result, and applies the same op again.
    (again,) = ep.apply(b, ops)
    assert (again.status, again.row_version) == (A, applied.row_version)
    # The same replay after a restart of the service (a new session, maybe another origin).
    ep.close()
    other = endpoint(table_t)
    try:
        (later,) = other.apply(b, ops)
        assert (later.status, later.row_version) == (A, applied.row_version)
        # A replay of an insert, and of a delete whose row is gone.
        (ins,) = other.apply(b, [ApplyOp({"id": 1}, _row(1, "b"), None, "v2")])
        assert ins.status is A
        other.apply(b, [ApplyOp({"id": 1}, None, applied.row_version, "v3")])
        (gone,) = other.apply(b, [ApplyOp({"id": 1}, None, applied.row_version, "v3")])
        assert (gone.status, gone.row_version) == (A, None)
    finally:
        other.close()


def test_new_rows_are_copied_in_directly_unless_a_key_is_taken(
        ep: PostgresEndpoint, table_t: str) -> None:
    """A batch of inserts where the service knows of no row (a first snapshot) goes
    straight into the table; a key taken meanwhile has the batch compared row by row."""
    b = binding()
    res = ep.apply(b, [ApplyOp({"id": i}, _row(i, f"n{i}"), None, "v1") for i in (1, 2, 3)])
    assert [r.status for r in res] == [P, P, P]
    assert {r.row_version for r in res} == {_xmin(table_t, i) for i in (1, 2, 3)}
    assert ep.sink._temps == set()  # no temporary table was needed
    sql(table_t, "INSERT INTO t VALUES (5, 'user', 1)")
    user = _xmin(table_t, 5)
    ops = [ApplyOp({"id": i}, _row(i, f"n{i}"), None, "v1") for i in (4, 5, 6)]
    res = ep.apply(b, ops)
    assert [(r.status, r.row_version) for r in res] == [
        (P, _xmin(table_t, 4)), (S, user), (P, _xmin(table_t, 6))]
    assert _table(table_t)[3:] == [(4, "n4", Decimal("1.00"), None),
                                   (5, "user", Decimal("1.00"), None),
                                   (6, "n6", Decimal("1.00"), None)]
    again = ep.apply(b, [ApplyOp({"id": i}, _row(i, f"n{i}"), None, "v1") for i in (1, 2)])
    assert [(r.status, r.row_version) for r in again] == [
        (A, res_ := _xmin(table_t, 1)), (A, res_)]  # a replay of the first batch


def test_new_rows_a_trigger_keeps_out_are_not_reported_applied(
        ep: PostgresEndpoint, table_t: str) -> None:
    """COPY, like INSERT, runs the table's triggers: a row a BEFORE trigger drops is not
    there, and the direct path must not report it written. The compared way tells: it
    refuses the row (it was SKIPPED, a user's edit on its way that never came, and the
    apply stayed due for ever: tests/test_ignored_writes.py), the batch rolled back."""
    sql(table_t, "CREATE FUNCTION no_two() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$ BEGIN IF NEW.id = 2 THEN RETURN NULL; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER no_two BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION no_two()")
    with pytest.raises(RowRejected, match=r'the insert of key \{"id":2\} was taken without'):
        ep.apply(binding(), [ApplyOp({"id": i}, _row(i), None, "v1") for i in (1, 2, 3)])
    assert _table(table_t) == []
    res = ep.apply(binding(), [ApplyOp({"id": i}, _row(i), None, "v1") for i in (1, 3)])
    assert [(r.status, r.row_version) for r in res] == [
        (P, _xmin(table_t, 1)), (P, _xmin(table_t, 3))]



@pytest.mark.parametrize("rule, refused", [
    ("ON INSERT TO t DO ALSO INSERT INTO log VALUES (NEW.id)", True),
    ("ON UPDATE TO t DO ALSO INSERT INTO log VALUES (NEW.id)", True),
    ("ON DELETE TO t DO INSTEAD UPDATE t SET note = 'gone' WHERE id = OLD.id", True),
    ("ON DELETE TO t DO ALSO INSERT INTO log VALUES (OLD.id)", False),
])
def test_a_table_with_rules_the_sink_cannot_write_through_is_refused(
        ep: PostgresEndpoint, table_t: str, rule: str, refused: bool) -> None:
    """INSERT ... ON CONFLICT is refused on a table with INSERT or UPDATE rules, and
    COPY would pass by them: a batch of new rows would go in where no later batch
    can. The sink refuses such a table before it writes anything, naming the rule."""
    sql(table_t, "CREATE TABLE log (id int)", f"CREATE RULE r AS {rule}")
    ops = [ApplyOp({"id": i}, _row(i), None, "v1") for i in (1, 2)]
    if refused:
        with pytest.raises(SchemaError, match=r"table public\.t has rewrite rules .*: r \(ON"):
            ep.apply(binding(), ops)
        assert _table(table_t) == []
    else:
        assert [r.status for r in ep.apply(binding(), ops)] == [P, P]
        res = ep.apply(binding(), [ApplyOp({"id": 1}, None, _xmin(table_t, 1), "v2")])
        assert [r.status for r in res] == [P]
        assert query(table_t, "SELECT id FROM log") == [(1,)]
    assert len(ep.read(binding(), [{"id": 2}])) == (0 if refused else 1)  # reads are fine

def test_an_earlier_write_of_ours_whose_result_was_lost_is_stale(
        ep: PostgresEndpoint, table_t: str) -> None:
    """A worker wrote v2 and died before recording it; the reader meanwhile
    decided v3, whose apply still expects the row version from before v2."""
    b = binding()
    (first,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a"), None, "v1")])
    (lost,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "b"), first.row_version, "v2")])
    assert lost.status is P
    (res,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "c"), first.row_version, "v3")])
    # Not SKIPPED: no user edit is on its way; the row version to expect is ours.
    assert (res.status, res.row_version) == (ApplyStatus.STALE, lost.row_version)
    assert _table(table_t)[0][1] == "b"  # nothing was written by the stale op
    (again,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "c"), res.row_version, "v3")])
    assert again.status is P and _table(table_t)[0][1] == "c"
    # Once a user has written the row, the same situation is a plain skip.
    sql(table_t, "UPDATE t SET name = 'user' WHERE id = 1")
    (user,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "d"), again.row_version, "v4")])
    assert (user.status, user.row_version) == (S, _xmin(table_t, 1))


def test_equal_content_written_by_a_user_is_not_a_replay(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    (first,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a"), None, "v1")])
    sql(table_t, "UPDATE t SET name = 'b' WHERE id = 1")
    (res,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "b"), first.row_version, "v2")])
    assert (res.status, res.row_version) == (S, _xmin(table_t, 1))


def test_a_partial_row_leaves_the_missing_columns_alone(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    (r,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a", 1, "keep me"), None, "v1")])
    (r2,) = ep.apply(b, [ApplyOp({"id": 1}, {"id": 1, "name": "b"}, r.row_version, "v2")])
    assert r2.status is P
    assert _table(table_t) == [(1, "b", Decimal("1.00"), "keep me")]


def test_a_batch_is_one_transaction(ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    with pytest.raises(Exception, match="numeric field overflow"):
        ep.apply(b, [ApplyOp({"id": 1}, _row(1), None, "v1"),
                     ApplyOp({"id": 2}, _row(2, amount="1e20"), None, "v1")])
    assert _table(table_t) == []
    (r,) = ep.apply(b, [ApplyOp({"id": 1}, _row(1), None, "v1")])  # the session is usable
    assert r.status is P


def test_the_same_key_twice_in_a_batch_is_applied_in_order(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    res = ep.apply(b, [ApplyOp({"id": 1}, _row(1, "a"), None, "v1"),
                       ApplyOp({"id": 1}, _row(1, "b"), None, "v2")])
    assert [r.status for r in res] == [P, S]
    assert _table(table_t) == [(1, "a", Decimal("1.00"), None)]


def test_unknown_columns_are_a_schema_error(ep: PostgresEndpoint) -> None:
    with pytest.raises(SchemaError, match=r"has no column bogus"):
        ep.apply(binding(), [ApplyOp({"id": 1}, {"id": 1, "bogus": 1}, None, "v1")])


def test_composite_keys_and_mapped_columns(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE c (region text, num int, label text, PRIMARY KEY (region, num))")
    ep = endpoint(pg_dsn)
    b = binding("c", key=("region", "no"), columns={"no": "num", "title": "label"})
    try:
        ep.setup([b], ep.pipeline)
        res = ep.apply(b, [ApplyOp({"region": "eu", "no": 1}, {"region": "eu", "no": 1,
                                                               "title": "x"}, None, "v1"),
                           ApplyOp({"region": "us", "no": 1}, {"region": "us", "no": 1,
                                                               "title": "y"}, None, "v1")])
        assert [r.status for r in res] == [P, P]
        got = ep.read(b, [{"region": "eu", "no": 1}, {"region": "us", "no": 1},
                          {"region": "eu", "no": 9}])
        assert sorted(got) == ['{"no":1,"region":"eu"}', '{"no":1,"region":"us"}']
        row, version = got['{"no":1,"region":"eu"}']
        assert row == {"region": "eu", "no": 1, "title": "x"} and version == res[0].row_version
        (upd,) = ep.apply(b, [ApplyOp({"region": "eu", "no": 1},
                                      {"region": "eu", "no": 1, "title": "z"}, version, "v2")])
        assert upd.status is P
        assert query(pg_dsn, "SELECT label FROM c ORDER BY region") == [("z",), ("y",)]
    finally:
        ep.close()


def test_a_lost_connection_is_retriable_and_the_next_apply_reconnects(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    ep.apply(b, [ApplyOp({"id": 1}, _row(1), None, "v1")])
    pid = ep.sink.connection().info.backend_pid
    sql(table_t, f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(RetriableError):
        ep.apply(b, [ApplyOp({"id": 2}, _row(2), None, "v1")])
    (r,) = ep.apply(b, [ApplyOp({"id": 2}, _row(2), None, "v1")])
    assert r.status is P
    assert [x[0] for x in _table(table_t)] == [1, 2]


def test_a_deadlock_is_retriable(ep: PostgresEndpoint, table_t: str) -> None:
    import threading

    import psycopg

    b = binding()
    ep.apply(b, [ApplyOp({"id": 1}, _row(1), None, "v1"), ApplyOp({"id": 2}, _row(2), None,
                                                                  "v1")])
    x = _xmin(table_t, 1)
    user = psycopg.connect(table_t)
    try:
        user.execute("SET deadlock_timeout = '60s'")  # so the sink's session detects it
        user.execute("UPDATE t SET name = 'u' WHERE id = 2")  # holds row 2
        errors: list[BaseException] = []

        def apply() -> None:
            try:  # locks row 1, then waits for row 2
                ep.apply(b, [ApplyOp({"id": 1}, _row(1, "s"), x, "v2"),
                             ApplyOp({"id": 2}, _row(2, "s"), x, "v2")])
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=apply)
        worker.start()
        while not query(table_t, "SELECT 1 FROM pg_locks WHERE NOT granted"):
            threading.Event().wait(0.02)
        user.execute("UPDATE t SET name = 'u' WHERE id = 1")  # the sink's session dies
        user.commit()
        worker.join()
        assert len(errors) == 1 and isinstance(errors[0], RetriableError)
        assert "deadlock" in str(errors[0])
    finally:
        user.close()


def test_truncate_and_added_columns_for_the_schema_policies(
        ep: PostgresEndpoint, table_t: str) -> None:
    from connectors.base import Column

    b = binding()
    start = ep.position()
    ep.apply(b, [ApplyOp({"id": 1}, _row(1), None, "v1")])
    done = ep.add_columns(b, [Column("extra", "decimal", "DECIMAL(8,3)"),
                              Column("name", "text", "TEXT")])
    assert done == ["added column extra to public.t"]
    assert ep.add_columns(b, [Column("extra", "decimal", "DECIMAL(8,3)")]) == []
    (r,) = ep.apply(b, [ApplyOp({"id": 2}, {**_row(2), "extra": "1.5"}, None, "v1")])
    assert r.status is P
    assert query(table_t, "SELECT extra FROM t WHERE id = 2") == [(Decimal("1.500"),)]
    ep.truncate(b)
    assert _table(table_t) == []
    # Both were the service's own writes: the source does not read them back. (That
    # the table has a new column is said whoever wrote to it first: the engine's
    # schema policy is idempotent.)
    batch = ep.changes([b], start, 10)
    assert batch.changes == []
    assert [type(e).__name__ for e in batch.events] == ["SchemaChanged"]


def test_json_documents_are_written_as_they_are(pg_dsn: str) -> None:
    """jsonb takes the quick writer (connect.py dump_jsonb); json keeps json.dumps's text.
    A NaN is refused as before, not stored as the null a quick writer makes of it."""
    import json

    sql(pg_dsn, "CREATE TABLE j (id int PRIMARY KEY, doc jsonb, raw json)")
    ep = endpoint(pg_dsn)
    b = binding("j")
    docs = [{"é": "ü\u2028", "big": 2**70, "f": 1e16, "neg": -0.0, "n": None},
            [1, 2.5, {"nested": [True, False, None]}], "a string", 7]
    try:
        ep.setup([b], ep.pipeline)
        res = ep.apply(b, [ApplyOp({"id": i}, {"id": i, "doc": d, "raw": d}, None, "v1")
                           for i, d in enumerate(docs)])
        assert [r.status for r in res] == [P] * len(docs)
        got = query(pg_dsn, "SELECT doc::text, raw::text FROM j ORDER BY id")
        assert [json.loads(doc) for doc, _ in got] == docs
        assert [raw for _, raw in got] == [json.dumps(d) for d in docs]
        with pytest.raises(Exception, match="json"):
            ep.apply(b, [ApplyOp({"id": 9}, {"id": 9, "doc": {"x": float("nan")}, "raw": None},
                                 None, "v1")])
        assert query(pg_dsn, "SELECT count(*) FROM j WHERE id = 9") == [(0,)]
    finally:
        ep.close()


@pytest.mark.parametrize(("ddl", "value", "message"), [
    ("integer", 2**40, "1099511627776 is out of range for integer"),
    ("integer", -(2**31) - 1, "out of range for integer"),
    ("smallint", 40000, "40000 is out of range for smallint"),
    ("bigint", 2**63, "out of range for bigint"),
    ("integer[]", [1, 2**33], "8589934592 is out of range for integer"),
    ("real", 1e39, "out of range for real"),
])
def test_a_number_the_column_cannot_hold_is_refused_not_wrapped(
        pg_dsn: str, ddl: str, value: object, message: str) -> None:
    """psycopg's binary dumpers wrap an int too big for int2/int4 (2**40 arrived as 0,
    40000 as -25536) and write a float too big for real as infinity: silently other
    data than the source's. The sink refuses the row (RowRejected: dead-lettered by
    the engine) and writes the values that fit."""
    sql(pg_dsn, f"CREATE TABLE n (id int PRIMARY KEY, v {ddl})")
    ep = endpoint(pg_dsn)
    b = binding("n")
    fits = [7] if ddl.endswith("[]") else 7
    try:
        ep.setup([b], ep.pipeline)
        with pytest.raises(RowRejected, match=message):
            ep.apply(b, [ApplyOp({"id": 1}, {"id": 1, "v": fits}, None, "v1"),
                         ApplyOp({"id": 2}, {"id": 2, "v": value}, None, "v1")])
        assert [r.status for r in ep.apply(b, [ApplyOp({"id": 1}, {"id": 1, "v": fits},
                                                        None, "v1")])] == [P]
        assert query(pg_dsn, "SELECT id FROM n") == [(1,)]
    finally:
        ep.close()
