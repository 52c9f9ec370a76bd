"""Conditional batched applies against the real local MariaDB."""

from __future__ import annotations

import decimal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conflict.canonical import key_text, row_hash
from connectors.base import ApplyOp, ApplyStatus, Binding, RetriableError, RowRejected
from connectors.mysql.endpoint import MysqlEndpoint, open_endpoint
from tests.connectors.mysql.helpers import binding, drain, query, run, settings, user_conn

TABLE = (
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2),"
    " note TEXT)"
)


@pytest.fixture(params=["skip_replication", "marker"])
def endpoint(request: pytest.FixtureRequest, mariadb_params: dict[str, Any]
             ) -> Iterator[MysqlEndpoint]:
    """Both echo mechanisms: MariaDB's flag, and MySQL's marker table (run on MariaDB)."""
    run(mariadb_params, TABLE)
    ep = MysqlEndpoint("maria", settings(mariadb_params), pipeline="t-sink", echo=request.param)
    ep.setup([binding()], "t-sink")
    yield ep
    ep.close()


def op(key: int, row: dict[str, Any] | None, expected: Any = None) -> ApplyOp:
    return ApplyOp(key={"id": key}, row=row, expected=expected, token="tok")


def row(i: int, name: str, price: str = "1.00", note: str | None = None) -> dict[str, Any]:
    return {"id": i, "name": name, "price": decimal.Decimal(price), "note": note}


def test_insert_update_delete_in_one_batch(endpoint: MysqlEndpoint,
                                           mariadb_params: dict[str, Any]) -> None:
    b = binding()
    res = endpoint.apply(b, [op(1, row(1, "a")), op(2, row(2, "b"))])
    assert [r.status for r in res] == [ApplyStatus.APPLIED] * 2
    v1, v2 = res[0].row_version, res[1].row_version
    res = endpoint.apply(b, [op(1, row(1, "a2", "2.5"), v1), op(2, None, v2)])
    assert [r.status for r in res] == [ApplyStatus.APPLIED] * 2
    assert res[1].row_version is None
    assert query(mariadb_params, "SELECT id, name, price FROM items") == [
        (1, "a2", decimal.Decimal("2.50"))]
    # The version reported after the write is the one a later read finds.
    read = endpoint.read(b, [{"id": 1}])
    assert read[key_text({"id": 1})][1] == res[0].row_version


def test_compare_and_set_skips_rows_that_moved(endpoint: MysqlEndpoint,
                                               mariadb_params: dict[str, Any]) -> None:
    b = binding()
    v1 = endpoint.apply(b, [op(1, row(1, "a"))])[0].row_version
    endpoint.apply(b, [op(2, row(2, "b"))])
    run(mariadb_params, "UPDATE items SET name = 'user edit' WHERE id = 1")
    res = endpoint.apply(b, [op(1, row(1, "ours"), v1),  # moved: skip
                             # another version, but the row holds our write: stale
                             op(2, row(2, "b2"), "not-the-version"),
                             op(3, row(3, "c"), None)])  # absent as expected: insert
    assert [r.status for r in res] == [ApplyStatus.SKIPPED, ApplyStatus.STALE,
                                       ApplyStatus.APPLIED]
    assert res[0].row_version == row_hash(row(1, "user edit"))
    assert res[1].row_version == row_hash(row(2, "b"))
    assert query(mariadb_params, "SELECT name FROM items ORDER BY id") == [
        ("user edit",), ("b",), ("c",)]


def test_insert_where_a_row_exists_is_skipped_unless_identical(
        endpoint: MysqlEndpoint, mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "INSERT INTO items VALUES (1, 'theirs', 1, NULL), (2, 'same', 1, NULL)")
    res = endpoint.apply(binding(), [op(1, row(1, "ours")), op(2, row(2, "same"))])
    assert [r.status for r in res] == [ApplyStatus.SKIPPED, ApplyStatus.ALREADY]
    assert query(mariadb_params, "SELECT name FROM items WHERE id = 1") == [("theirs",)]


def test_replay_after_crash_is_already_applied(endpoint: MysqlEndpoint) -> None:
    b = binding()
    v1 = endpoint.apply(b, [op(1, row(1, "a"))])[0].row_version
    first = endpoint.apply(b, [op(1, row(1, "b"), v1), op(2, row(2, "x"))])
    # The engine crashed before recording this: it replays the same ops.
    again = endpoint.apply(b, [op(1, row(1, "b"), v1), op(2, row(2, "x")), op(3, None, "v")])
    assert [r.status for r in again] == [ApplyStatus.ALREADY] * 3
    assert [r.row_version for r in again[:2]] == [r.row_version for r in first]


def tok(key: int, r: dict[str, Any] | None, expected: Any, token: str) -> ApplyOp:
    return ApplyOp(key={"id": key}, row=r, expected=expected, token=token)


def test_an_earlier_write_of_ours_whose_result_was_lost_is_stale(
        endpoint: MysqlEndpoint, mariadb_params: dict[str, Any]) -> None:
    """A worker wrote v2 and died before recording it; the reader meanwhile
    decided v3, whose apply still expects the row version from before v2."""
    b = binding()
    (first,) = endpoint.apply(b, [tok(1, row(1, "a"), None, "v1")])
    (lost,) = endpoint.apply(b, [tok(1, row(1, "b"), first.row_version, "v2")])
    assert lost.status is ApplyStatus.APPLIED
    (res,) = endpoint.apply(b, [tok(1, row(1, "c"), first.row_version, "v3")])
    # Not SKIPPED: no user edit is on its way; the row version to expect is ours.
    assert (res.status, res.row_version) == (ApplyStatus.STALE, lost.row_version)
    assert query(mariadb_params, "SELECT name FROM items") == [("b",)]  # nothing written
    (again,) = endpoint.apply(b, [tok(1, row(1, "c"), res.row_version, "v3")])
    assert again.status is ApplyStatus.APPLIED
    assert query(mariadb_params, "SELECT name FROM items") == [("c",)]
    # Once a user has written the row, the same situation is a plain skip.
    run(mariadb_params, "UPDATE items SET name = 'user' WHERE id = 1")
    (user,) = endpoint.apply(b, [tok(1, row(1, "d"), again.row_version, "v4")])
    assert (user.status, user.row_version) == (ApplyStatus.SKIPPED, row_hash(row(1, "user")))
    assert query(mariadb_params, "SELECT name FROM items") == [("user",)]


def test_a_lost_delete_of_ours_is_stale_and_a_users_is_skipped(
        endpoint: MysqlEndpoint, mariadb_params: dict[str, Any]) -> None:
    b = binding()
    v1, w1 = (r.row_version for r in endpoint.apply(
        b, [tok(1, row(1, "a"), None, "v1"), tok(2, row(2, "a"), None, "v1")]))
    # Our delete of 1 whose result was lost; a user deletes 2.
    assert endpoint.apply(b, [tok(1, None, v1, "v2")])[0].status is ApplyStatus.APPLIED
    run(mariadb_params, "DELETE FROM items WHERE id = 2")
    res = endpoint.apply(b, [tok(1, row(1, "c"), v1, "v3"), tok(2, row(2, "c"), w1, "v3")])
    assert [(r.status, r.row_version) for r in res] == [(ApplyStatus.STALE, None),
                                                        (ApplyStatus.SKIPPED, None)]
    assert query(mariadb_params, "SELECT id FROM items") == []
    (again,) = endpoint.apply(b, [tok(1, row(1, "c"), None, "v3")])
    assert again.status is ApplyStatus.APPLIED
    # The other way: an insert whose result was lost, then a delete expecting absence...
    (ins,) = endpoint.apply(b, [tok(3, row(3, "x"), None, "v1")])
    (gone,) = endpoint.apply(b, [tok(3, None, None, "v2")])
    assert (gone.status, gone.row_version) == (ApplyStatus.STALE, ins.row_version)
    assert endpoint.apply(b, [tok(3, None, gone.row_version, "v2")])[0].status \
        is ApplyStatus.APPLIED
    assert query(mariadb_params, "SELECT id, name FROM items") == [(1, "c")]


def test_without_the_record_table_a_lost_write_is_skipped_with_one_warning(
        endpoint: MysqlEndpoint, mariadb_params: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    """A pipeline set up before the record table existed: as before, and told once."""
    run(mariadb_params, "DROP TABLE cdcsync_applied")
    endpoint.sink.close()  # a new session looks for the table again
    b = binding()
    with caplog.at_level("WARNING", logger="cdcsync.mysql.sink"):
        (first,) = endpoint.apply(b, [tok(1, row(1, "a"), None, "v1")])
        endpoint.apply(b, [tok(1, row(1, "b"), first.row_version, "v2")])
        (res,) = endpoint.apply(b, [tok(1, row(1, "c"), first.row_version, "v3")])
    assert (res.status, res.row_version) == (ApplyStatus.SKIPPED, row_hash(row(1, "b")))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "cdcsync setup" in warnings[0], warnings
    # Setup again creates it (and is idempotent); the next session records again.
    assert any("cdcsync_applied" in d for d in endpoint.setup([b], "t-sink"))
    endpoint.setup([b], "t-sink")
    endpoint.sink.close()
    (v4,) = endpoint.apply(b, [tok(1, row(1, "d"), res.row_version, "v4")])
    (stale,) = endpoint.apply(b, [tok(1, row(1, "e"), res.row_version, "v5")])
    assert (stale.status, stale.row_version) == (ApplyStatus.STALE, v4.row_version)
    assert any("cdcsync_applied" in d for d in endpoint.teardown([b], "t-sink"))
    assert query(mariadb_params, "SHOW TABLES LIKE 'cdcsync_applied'") == []


def test_the_sinks_writes_never_come_back_as_changes(endpoint: MysqlEndpoint,
                                                     mariadb_params: dict[str, Any]) -> None:
    b = binding()
    start = endpoint.source.log_end()
    v = endpoint.apply(b, [op(1, row(1, "ours")), op(2, row(2, "ours"))])
    endpoint.apply(b, [op(1, row(1, "ours again"), v[0].row_version),
                       op(2, None, v[1].row_version)])
    run(mariadb_params, "INSERT INTO items VALUES (3, 'user', 1, NULL)")
    # A user edit identical to the service's last write is still a user edit.
    run(mariadb_params, "UPDATE items SET name = 'ours again', note = 'n' WHERE id = 1",
        "UPDATE items SET note = NULL WHERE id = 1")
    changes, _, _ = drain(endpoint.source, [b], start)
    assert [(c.op.value, c.key["id"]) for c in changes] == [
        ("insert", 3), ("update", 1), ("update", 1)]


def test_read_returns_rows_and_versions_by_key(endpoint: MysqlEndpoint,
                                               mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "INSERT INTO items VALUES (1, 'a', 1.5, NULL), (2, 'b', 2, 'x')")
    got = endpoint.read(binding(), [{"id": 1}, {"id": 3}])
    assert list(got) == [key_text({"id": 1})]
    r, version = got[key_text({"id": 1})]
    assert r == row(1, "a", "1.5")
    assert version == row_hash(r)
    run(mariadb_params, "UPDATE items SET name = 'new' WHERE id = 1")
    assert endpoint.read(binding(), [{"id": 1}])[key_text({"id": 1})][0]["name"] == "new"


def test_partial_rows_are_read_back_for_their_version(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE stamped (id INT PRIMARY KEY, name VARCHAR(20),"
        " n INT NOT NULL DEFAULT 7, total INT AS (n * 2) STORED)")
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-partial")
    try:
        b = binding("stamped")
        res = ep.apply(b, [ApplyOp({"id": 1}, {"id": 1, "name": "x"}, None, "t")])
        now = ep.read(b, [{"id": 1}])[key_text({"id": 1})]
        assert now[0] == {"id": 1, "name": "x", "n": 7}  # generated: never synchronised
        assert res[0].row_version == now[1]
    finally:
        ep.close()


def test_composite_keys_and_quoted_identifiers(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE `we``ird` (`a b` INT, `k` VARCHAR(5), `v``x` INT,"
        " PRIMARY KEY (`a b`, `k`))")
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-quote")
    try:
        b = binding("we`ird", key=("a b", "k"))
        ops = [ApplyOp({"a b": 1, "k": "x"}, {"a b": 1, "k": "x", "v`x": 5}, None, "t"),
               ApplyOp({"a b": 1, "k": "y"}, {"a b": 1, "k": "y", "v`x": 6}, None, "t")]
        res = ep.apply(b, ops)
        assert [r.status for r in res] == [ApplyStatus.APPLIED] * 2
        res = ep.apply(b, [ApplyOp({"a b": 1, "k": "x"}, None, res[0].row_version, "t")])
        assert res[0].status is ApplyStatus.APPLIED
        assert query(mariadb_params, "SELECT `a b`, `k`, `v``x` FROM `we``ird`") == [
            (1, "y", 6)]
    finally:
        ep.close()


def test_lock_wait_timeout_is_retriable_and_leaves_nothing(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE, "INSERT INTO items VALUES (1, 'a', 1, NULL)")
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-lock")
    holder = user_conn(mariadb_params)
    try:
        with ep.sink._session().cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        holder.begin()
        with holder.cursor() as cur:
            cur.execute("SELECT * FROM items WHERE id = 1 FOR UPDATE")
        with pytest.raises(RetriableError):
            ep.apply(binding(), [op(2, row(2, "b")), op(1, row(1, "x"), "v")])
        holder.rollback()
        assert query(mariadb_params, "SELECT id FROM items") == [(1,)]
        # The same sink works again afterwards.
        assert ep.apply(binding(), [op(2, row(2, "b"))])[0].status is ApplyStatus.APPLIED
    finally:
        holder.close()
        ep.close()


def test_lost_connection_is_retriable_and_the_next_apply_reconnects(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-lost")
    try:
        assert ep.apply(binding(), [op(1, row(1, "a"))])[0].status is ApplyStatus.APPLIED
        run(mariadb_params, f"KILL {ep.sink._session().thread_id()}")
        with pytest.raises(RetriableError):
            ep.apply(binding(), [op(2, row(2, "b"))])
        assert ep.apply(binding(), [op(2, row(2, "b"))])[0].status is ApplyStatus.APPLIED
    finally:
        ep.close()


def test_deadlock_is_retriable(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE, "INSERT INTO items (id) VALUES " + ",".join(
        f"({i})" for i in range(1, 301)))
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-deadlock")
    other = user_conn(mariadb_params)
    errors: list[BaseException] = []
    try:
        v = ep.read(binding(), [{"id": 1}, {"id": 2}])
        # The other session changes many rows (InnoDB then prefers the lighter sink
        # transaction as the deadlock victim) and holds row 2.
        other.begin()
        with other.cursor() as cur:
            cur.execute("UPDATE items SET note = 'z' WHERE id >= 2")

        def sink_apply() -> None:
            try:  # locks row 1, then waits for row 2
                ep.apply(binding(), [op(1, row(1, "x"), v[key_text({"id": 1})][1]),
                                     op(2, row(2, "y"), v[key_text({"id": 2})][1])])
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        t = threading.Thread(target=sink_apply)
        t.start()
        t.join(1.0)
        with other.cursor() as cur:
            cur.execute("SELECT * FROM items WHERE id = 1 FOR UPDATE")  # closes the cycle
        other.rollback()
        t.join(30)
        assert len(errors) == 1 and isinstance(errors[0], RetriableError)
        assert "1213" in str(errors[0])
        assert query(mariadb_params, "SELECT name FROM items WHERE id IN (1, 2)") == [
            (None,), (None,)]
    finally:
        other.close()
        ep.close()


def test_one_way_target_table_is_created_from_a_postgres_schema(
        mariadb_params: dict[str, Any]) -> None:
    from connectors.base import Column, TableSchema

    source = TableSchema("people", (
        Column("id", "int", "integer", False), Column("name", "text", "character varying(40)"),
        Column("score", "decimal", "numeric(8,3)"), Column("at", "timestamptz", "timestamptz"),
        Column("doc", "json", "jsonb"), Column("secret", "text", "text"),
        Column("ok", "bool", "boolean")), ("id",))
    src_binding = Binding("people", "pg", "people", ("id",), exclude=frozenset({"secret"}))
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-create")
    try:
        b = binding("humans", entity="people", columns={"name": "full_name"})
        assert ep.create_table(b, source, src_binding, source_kind="postgres")
        assert ep.create_table(b, source, src_binding, source_kind="postgres") == []  # exists
        got = {c.name: (c.logical, c.native) for c in ep.schema(b).columns}
        assert got == {"id": ("int", "int(11)"), "full_name": ("text", "varchar(40)"),
                       "score": ("decimal", "decimal(8,3)"),
                       "at": ("timestamp", "datetime(6)"), "doc": ("json", "longtext"),
                       "ok": ("bool", "tinyint(1)")}
        assert ep.schema(b).key == ("id",)
    finally:
        ep.close()


def test_a_column_added_after_the_first_apply_is_written(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-added")
    try:
        assert ep.apply(binding(), [op(1, row(1, "a"))])[0].status is ApplyStatus.APPLIED
        run(mariadb_params, "ALTER TABLE items ADD COLUMN extra INT")
        res = ep.apply(binding(), [op(2, {**row(2, "b"), "extra": 5})])
        assert res[0].status is ApplyStatus.APPLIED
        assert query(mariadb_params, "SELECT extra FROM items WHERE id = 2") == [(5,)]
    finally:
        ep.close()


def test_setup_reports_every_problem_with_its_fix(mariadb_params: dict[str, Any]) -> None:
    from connectors.base import ConnectorError

    run(mariadb_params, "CREATE TABLE nokey (a INT)", TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-setup")
    try:
        assert ep.setup([binding()], "t-setup")[0].startswith("binlog: ROW")
        with pytest.raises(ConnectorError) as info:
            ep.setup([binding("nokey"), binding("missing")], "t-setup")
        text = str(info.value)
        assert "nokey has no primary key" in text and "missing does not exist" in text
    finally:
        ep.close()


def test_a_row_inserted_after_the_select_is_not_overwritten(
        mariadb_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """READ COMMITTED locks no absent key: a row inserted between the batch's select
    and its write makes the plain INSERT fail; the batch is retried and skips it."""
    run(mariadb_params, TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-race")
    select = ep.sink._select
    raced: list[bool] = []

    def select_then_a_user_inserts(*args: Any, **kwargs: Any) -> Any:
        found = select(*args, **kwargs)
        if not raced:  # once: between this select and the sink's write
            raced.append(True)
            run(mariadb_params, "INSERT INTO items VALUES (1, 'user', 1, NULL)")
        return found

    monkeypatch.setattr(ep.sink, "_select", select_then_a_user_inserts)
    try:
        with pytest.raises(RetriableError, match="inserted while"):
            ep.apply(binding(), [op(1, row(1, "ours")), op(2, row(2, "b"))])
        assert query(mariadb_params, "SELECT id, name FROM items") == [(1, "user")]
        res = ep.apply(binding(), [op(1, row(1, "ours")), op(2, row(2, "b"))])  # the retry
        assert [r.status for r in res] == [ApplyStatus.SKIPPED, ApplyStatus.APPLIED]
        assert query(mariadb_params, "SELECT id, name FROM items ORDER BY id") == [
            (1, "user"), (2, "b")]
    finally:
        ep.close()


def test_batches_of_disjoint_new_keys_in_one_gap_do_not_deadlock(
        mariadb_params: dict[str, Any]) -> None:
    """Two workers inserting different new keys between the same existing rows: under
    REPEATABLE READ their selects took the same gap lock and their inserts deadlocked."""
    run(mariadb_params, TABLE, "INSERT INTO items VALUES (1, 'a', 1, NULL), (100, 'z', 1, NULL)")
    eps = [open_endpoint("maria", settings(mariadb_params), pipeline=f"t-gap{i}")
           for i in range(2)]
    selected = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []
    try:
        for ep in eps:
            select = ep.sink._select

            def select_and_wait(*args: Any, _select: Any = select, **kwargs: Any) -> Any:
                found = _select(*args, **kwargs)
                selected.wait()  # both selects done before either inserts
                return found

            ep.sink._select = select_and_wait  # type: ignore[method-assign]

        def apply(ep: MysqlEndpoint, keys: range) -> None:
            try:
                ep.apply(binding(), [op(k, row(k, f"n{k}")) for k in keys])
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=apply, args=(eps[0], range(10, 20))),
                   threading.Thread(target=apply, args=(eps[1], range(20, 30)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert query(mariadb_params, "SELECT count(*) FROM items") == [(22,)]
    finally:
        for ep in eps:
            ep.close()


def test_old_deletes_of_ours_are_forgotten_and_the_rest_kept(
        endpoint: MysqlEndpoint, mariadb_params: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys we deleted would grow the record without bound on a table whose rows come
    and go: their rows go once older than the retention; written keys and recent
    deletes stay (a lost delete of ours is still told from a user's)."""
    from connectors.mysql import sink as sink_module

    b = binding()
    made = endpoint.apply(b, [tok(i, row(i, "a"), None, "v1") for i in range(1, 5)])
    endpoint.apply(b, [tok(i, None, made[i - 1].row_version, "v2") for i in (1, 2, 3)])
    # 1 and 2 were deleted long ago, 3 just now; 4 is a row we wrote long ago.
    digest = {i: applied_digest(i) for i in range(1, 6)}
    run(mariadb_params, "UPDATE cdcsync_applied SET `at` = NOW() - INTERVAL 8 DAY",
        ("UPDATE cdcsync_applied SET `at` = NOW() WHERE `key_digest` = %s", (digest[3],)))
    monkeypatch.setattr(sink_module, "PRUNE_EVERY", 1)
    endpoint.apply(b, [tok(5, row(5, "b"), None, "v1")])  # a batch; then the pruning
    kept = {bytes(d) for (d,) in query(
        mariadb_params, "SELECT `key_digest` FROM cdcsync_applied WHERE `tbl` <> ''")}
    assert kept == {digest[3], digest[4], digest[5]}
    # (the pipeline's own row, which says it uses the record, is never pruned)
    assert query(mariadb_params, "SELECT count(*) FROM cdcsync_applied WHERE `tbl` = ''"
                 ) == [(1,)]
    # The recent delete of 3 is still ours: an apply expecting its old row is STALE.
    (res,) = endpoint.apply(b, [tok(3, row(3, "c"), made[2].row_version, "v3")])
    assert res.status is ApplyStatus.STALE


def applied_digest(i: int) -> bytes:
    from connectors.mysql.applied import key_digest

    return key_digest(key_text({"id": i}))


def test_a_record_table_made_before_its_timestamps_works_and_setup_adds_them(
        endpoint: MysqlEndpoint, mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "ALTER TABLE cdcsync_applied DROP COLUMN `at`")
    endpoint.sink.close()  # a new session looks at the table again
    b = binding()
    (first,) = endpoint.apply(b, [tok(1, row(1, "a"), None, "v1")])
    endpoint.apply(b, [tok(1, row(1, "b"), first.row_version, "v2")])
    (res,) = endpoint.apply(b, [tok(1, row(1, "c"), first.row_version, "v3")])
    assert res.status is ApplyStatus.STALE  # still recorded, still told apart
    endpoint.setup([b], "t-sink")
    assert query(mariadb_params, "SELECT count(*) FROM information_schema.COLUMNS WHERE"
                                 " TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'cdcsync_applied'"
                                 " AND COLUMN_NAME = 'at'") == [(1,)]
    endpoint.sink.close()
    (again,) = endpoint.apply(b, [tok(1, row(1, "d"), res.row_version, "v4")])
    assert again.status is ApplyStatus.APPLIED
    assert query(mariadb_params, "SELECT count(*) FROM cdcsync_applied WHERE `at` >"
                                 " NOW() - INTERVAL 1 MINUTE AND `tbl` <> ''") == [(1,)]


@pytest.mark.parametrize("echo", ["skip_replication", "marker"])
def test_a_teardown_keeps_what_another_pipeline_writing_the_database_uses(
        echo: str, mariadb_params: dict[str, Any]) -> None:
    """Pipelines may share a database, each with its own tables: tearing one down
    must not take the record of its writes (and, on MySQL, the marker table) from the
    others, also from one set up that has not written yet."""
    run(mariadb_params, TABLE, TABLE.replace("items", "others"))
    mine, b_mine = MysqlEndpoint("maria", settings(mariadb_params), pipeline="p1",
                                 echo=echo), binding()
    theirs, b_theirs = MysqlEndpoint("maria", settings(mariadb_params), pipeline="p2",
                                     echo=echo), binding("others")
    try:
        mine.setup([b_mine], "p1")
        theirs.setup([b_theirs], "p2")
        mine.apply(b_mine, [op(1, row(1, "a"))])
        done = mine.teardown([b_mine], "p1")
        assert not any("dropped" in d for d in done), done
        assert query(mariadb_params, "SELECT DISTINCT writer FROM cdcsync_applied") == [
            ("p2/maria",)]
        # The other pipeline's record works: a write of its own whose result was
        # lost is told from a user's edit (STALE, not SKIPPED).
        (first,) = theirs.apply(b_theirs, [tok(1, row(1, "a"), None, "v1")])
        theirs.apply(b_theirs, [tok(1, row(1, "b"), first.row_version, "v2")])
        (res,) = theirs.apply(b_theirs, [tok(1, row(1, "c"), first.row_version, "v3")])
        assert res.status is ApplyStatus.STALE
        assert any("dropped table cdcsync_applied" in d
                   for d in theirs.teardown([b_theirs], "p2"))
        assert query(mariadb_params, "SHOW TABLES LIKE 'cdcsync%%'") == []
    finally:
        mine.close()
        theirs.close()


def test_a_value_the_column_cannot_hold_is_refused_on_a_lax_server(
        mariadb_params: dict[str, Any]) -> None:
    """A server whose sql_mode is not strict cuts a value too long for its column with a
    warning: the target would hold other data than the service recorded, with nobody
    told. The sink's sessions are strict whatever the server's default: the batch is
    refused as RowRejected (the engine isolates the row and dead-letters it)."""
    run(mariadb_params, TABLE)
    [(before,)] = query(mariadb_params, "SELECT @@GLOBAL.sql_mode")
    run(mariadb_params, "SET GLOBAL sql_mode = ''")
    try:
        ep = MysqlEndpoint("maria", settings(mariadb_params), pipeline="t-lax")
        ep.setup([binding()], "t-lax")
        try:
            with pytest.raises(RowRejected, match="Data too long for column 'name'"):
                ep.apply(binding(), [op(1, row(1, "x" * 60))])
            assert ep.apply(binding(), [op(2, row(2, "fits"))])[0].status is \
                ApplyStatus.APPLIED  # the session is usable after the refusal
        finally:
            ep.close()
    finally:
        run(mariadb_params, ("SET GLOBAL sql_mode = %s", (before,)))
    assert query(mariadb_params, "SELECT id, name FROM items") == [(2, "fits")]


def test_a_row_larger_than_the_servers_packet_is_refused_alone(
        mariadb_params: dict[str, Any]) -> None:
    """A row whose statement exceeds ``max_allowed_packet`` made the server drop the
    connection ("gone away"): retried as a lost connection, it failed every run and
    kept the batch's other rows out. It is refused with the reason; the rest is written."""
    run(mariadb_params, "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB)")
    (packet,), = query(mariadb_params, "SELECT @@GLOBAL.max_allowed_packet")
    assert packet <= 64 << 20, "this test sends a row of half the server's packet"
    big = bytes(range(256)) * ((packet // 2 + 65536) // 256)  # hex: more than the packet
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-packet")
    b = binding("blobs")
    ep.setup([b], "t-packet")
    try:
        with pytest.raises(RowRejected, match=r"max_allowed_packet .*\nkey \{\"id\":1\}"):
            ep.apply(b, [ApplyOp({"id": 2}, {"id": 2, "b": b"\x01"}, None, "t"),
                         ApplyOp({"id": 1}, {"id": 1, "b": big}, None, "t")])
        res = ep.apply(b, [ApplyOp({"id": 2}, {"id": 2, "b": b"\x01"}, None, "t")])
        assert res[0].status is ApplyStatus.APPLIED  # the session is still good
        assert query(mariadb_params, "SELECT id FROM blobs") == [(2,)]
    finally:
        ep.close()
