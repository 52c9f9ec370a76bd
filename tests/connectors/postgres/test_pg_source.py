"""The SQL-interface source: decoding, commit order, echo suppression, checkpoints."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.base import ApplyOp, ConnectorError, SchemaError
from connectors.postgres import PostgresEndpoint, SchemaChanged, Truncated
from sync.change import Op
from tests.connectors.postgres.helpers import binding, endpoint, query, slot_confirmed, sql


def _ops(batch: object) -> list[tuple[str, object]]:
    return [(c.op.value, dict(c.key)) for c in batch.changes]  # type: ignore[attr-defined]


def test_inserts_updates_deletes_in_commit_order(ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    start = ep.position()
    sql(table_t,
        "INSERT INTO t VALUES (1, 'a', 1.5, NULL), (2, 'b', 2, 'x')",
        "UPDATE t SET name = 'aa' WHERE id = 1",
        "DELETE FROM t WHERE id = 2")
    batch = ep.changes([b], start, 100)
    assert _ops(batch) == [("insert", {"id": 1}), ("insert", {"id": 2}),
                           ("update", {"id": 1}), ("delete", {"id": 2})]
    ins, _, upd, dele = batch.changes
    assert ins.after == {"id": 1, "name": "a", "amount": Decimal("1.50"), "note": None}
    assert ins.before is None and ins.source == "a"
    assert upd.before == {"id": 1, "name": "a", "amount": Decimal("1.50"), "note": None}
    assert upd.after is not None and upd.after["name"] == "aa"
    assert dele.after is None and dele.before is not None and dele.before["note"] == "x"
    # Positions grow in commit order; the row version is the writing transaction's xid.
    positions = [c.position for c in batch.changes]
    assert positions == sorted(positions) and positions[0][0] == positions[1][0]
    xmin = query(table_t, "SELECT xmin::text::bigint FROM t WHERE id = 1")[0][0]
    assert upd.row_version == xmin and upd.txid == str(xmin)
    assert dele.row_version is None
    assert ins.committed_at <= upd.committed_at <= dele.committed_at
    assert batch.more is False and batch.events == []


def test_update_of_the_key_is_a_delete_and_an_insert(ep: PostgresEndpoint, table_t: str) -> None:
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    start = ep.position()
    sql(table_t, "UPDATE t SET id = 7 WHERE id = 1")
    batch = ep.changes([binding()], start, 100)
    assert _ops(batch) == [("delete", {"id": 1}), ("insert", {"id": 7})]
    assert batch.changes[0].before == {"id": 1, "name": "a", "amount": Decimal("1.00"),
                                       "note": None}
    assert batch.changes[1].after == {"id": 7, "name": "a", "amount": Decimal("1.00"),
                                      "note": None}


def test_several_tables_in_one_transaction_keep_commit_order(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE p (id int PRIMARY KEY)", "CREATE TABLE q (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    try:
        bp, bq = binding("p"), binding("q")
        ep.setup([bp, bq], ep.pipeline)
        start = ep.position()
        sql(pg_dsn, "BEGIN; INSERT INTO p VALUES (1); INSERT INTO q VALUES (1);"
                    " INSERT INTO p VALUES (2); COMMIT",
            "INSERT INTO q VALUES (2)")
        batch = ep.changes([bp, bq], start, 100)
        assert [(c.entity, c.key["id"]) for c in batch.changes] == [
            ("p", 1), ("q", 1), ("p", 2), ("q", 2)]
        assert [c.position[1] for c in batch.changes] == [0, 1, 2, 0]
        # One entity alone sees only its table, at the same positions.
        only_q = ep.changes([bq], start, 100)
        assert [(c.entity, c.position) for c in only_q.changes] == [
            (c.entity, c.position) for c in batch.changes if c.entity == "q"]
    finally:
        ep.close()


def test_own_writes_are_skipped_by_origin_not_by_content(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    start = ep.position()
    res = ep.apply(b, [ApplyOp({"id": 1}, {"id": 1, "name": "svc", "amount": 1, "note": None},
                               None, "tok1")])
    assert res[0].status.value == "applied"
    batch = ep.changes([b], start, 100)
    assert batch.changes == []  # the sink's transaction carries the pipeline's origin
    # A user edit that writes exactly what the service wrote is still a user edit.
    sql(table_t, "UPDATE t SET name = 'svc' WHERE id = 1")
    batch = ep.changes([b], batch.checkpoint, 100)
    assert _ops(batch) == [("update", {"id": 1})]
    assert batch.changes[0].after == batch.changes[0].before


def test_another_origin_is_a_user_edit(ep: PostgresEndpoint, table_t: str) -> None:
    start = ep.position()
    sql(table_t, "SELECT pg_replication_origin_create('someone_else_' || current_database())")
    sql(table_t, "SELECT pg_replication_origin_session_setup('someone_else_'"
                 " || current_database()); INSERT INTO t VALUES (5, 'x', 1, NULL)")
    assert _ops(ep.changes([binding()], start, 100)) == [("insert", {"id": 5})]


def test_the_slot_moves_only_on_confirm_and_an_idle_slot_moves_to_the_wal_end(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    before = slot_confirmed(table_t, ep.names.slot)
    batch = ep.changes([b], start, 100)
    assert len(batch.changes) == 1
    again = ep.changes([b], start, 100)  # nothing confirmed: the same changes again
    assert _ops(again) == _ops(batch)
    assert slot_confirmed(table_t, ep.names.slot) == before
    ep.confirm(batch.checkpoint)
    assert slot_confirmed(table_t, ep.names.slot) == batch.checkpoint["lsn"]
    # Activity elsewhere in the cluster moves the WAL; an idle slot follows it.
    sql(table_t, "CREATE TABLE other (id int)", "INSERT INTO other VALUES (1)")
    from connectors.postgres.pgoutput import parse_lsn
    wal_end = parse_lsn(query(table_t, "SELECT pg_current_wal_flush_lsn()::text")[0][0])
    idle = ep.changes([b], batch.checkpoint, 100)
    assert idle.changes == [] and idle.more is False
    assert idle.checkpoint["lsn"] >= wal_end > batch.checkpoint["lsn"]
    ep.confirm(idle.checkpoint)
    assert slot_confirmed(table_t, ep.names.slot) == idle.checkpoint["lsn"]
    # Re-reading from the confirmed checkpoint returns nothing twice.
    assert ep.changes([b], idle.checkpoint, 100).changes == []


def test_batches_end_at_transaction_boundaries_and_resume(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    cp = ep.position()
    for i in range(10):
        sql(table_t, f"INSERT INTO t VALUES ({i}, 'n', 1, NULL)")
    seen: list[int] = []
    rounds = 0
    while True:
        batch = ep.changes([b], cp, 3)
        seen += [c.key["id"] for c in batch.changes]
        rounds += 1
        cp = batch.checkpoint
        ep.confirm(cp)
        if not batch.more:
            break
    assert seen == list(range(10))
    assert rounds >= 4


def test_a_transaction_larger_than_a_batch_is_split_and_resumed(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    cp = ep.position()
    sql(table_t, "INSERT INTO t SELECT g, 'n', 1, NULL FROM generate_series(1, 25) g",
        "INSERT INTO t VALUES (100, 'after', 1, NULL)")
    seen: list[int] = []
    sizes = []
    while True:
        batch = ep.changes([b], cp, 4)
        seen += [c.key["id"] for c in batch.changes]
        sizes.append(len(batch.changes))
        cp = batch.checkpoint
        if batch.more:
            assert "tx" in cp or len(batch.changes) >= 4
        ep.confirm(cp)
        if not batch.more:
            break
    assert seen == [*range(1, 26), 100]  # nothing lost, nothing twice
    assert max(sizes) <= 8  # at most twice the batch size in memory


def test_a_checkpoint_behind_the_slot_is_an_error(ep: PostgresEndpoint, table_t: str) -> None:
    old = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    batch = ep.changes([binding()], old, 10)
    ep.confirm(batch.checkpoint)
    with pytest.raises(ConnectorError, match="past this pipeline's checkpoint"):
        ep.changes([binding()], old, 10)


def test_unchanged_toast_values_are_taken_from_the_old_row(
        ep: PostgresEndpoint, table_t: str) -> None:
    # Random text does not compress: it is stored out of line (TOAST).
    sql(table_t, "INSERT INTO t SELECT 1, 'a', 1, string_agg(md5(g::text), '')"
                 " FROM generate_series(1, 2000) g")
    big = query(table_t, "SELECT note FROM t WHERE id = 1")[0][0]
    start = ep.position()
    sql(table_t, "UPDATE t SET name = 'b' WHERE id = 1")
    (ch,) = ep.changes([binding()], start, 10).changes
    assert ch.after is not None and ch.after["note"] == big and ch.after["name"] == "b"


def test_unchanged_toast_without_full_identity_is_left_out(
        ep: PostgresEndpoint, table_t: str) -> None:
    sql(table_t, "ALTER TABLE t REPLICA IDENTITY DEFAULT",
        "INSERT INTO t SELECT 1, 'a', 1, string_agg(md5(g::text), '')"
        " FROM generate_series(1, 2000) g")
    start = ep.position()
    sql(table_t, "UPDATE t SET name = 'b' WHERE id = 1")
    (ch,) = ep.changes([binding()], start, 10).changes
    assert ch.after == {"id": 1, "name": "b", "amount": Decimal("1.00")}  # no placeholder


def test_truncate_is_an_event(ep: PostgresEndpoint, table_t: str) -> None:
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    start = ep.position()
    sql(table_t, "TRUNCATE t", "INSERT INTO t VALUES (2, 'b', 1, NULL)")
    batch = ep.changes([binding()], start, 10)
    assert _ops(batch) == [("insert", {"id": 2})]
    (ev,) = batch.events
    assert isinstance(ev, Truncated)
    assert (ev.entity, ev.endpoint, ev.table) == ("t", "a", "t")
    assert ev.position < batch.changes[0].position


def test_a_column_added_mid_stream_is_an_event_and_decoded(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)",
        "ALTER TABLE t ADD COLUMN extra int",
        "INSERT INTO t VALUES (2, 'b', 1, NULL, 42)")
    batch = ep.changes([b], start, 10)
    assert batch.changes[0].after is not None and "extra" not in batch.changes[0].after
    assert batch.changes[1].after is not None and batch.changes[1].after["extra"] == 42
    (ev,) = batch.events
    assert isinstance(ev, SchemaChanged)
    assert [c.name for c in ev.added] == ["extra"] and ev.added[0].logical == "int"
    assert ev.added[0].native == "integer"
    assert ev.dropped == () and ev.columns[-1] == "extra"
    assert batch.changes[0].position < ev.position <= batch.changes[1].position
    # The schema is read again: the new column is in it.
    assert "extra" in ep.schema(b).names


def test_a_dropped_column_is_reported(ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)",
        "ALTER TABLE t DROP COLUMN note",
        "INSERT INTO t VALUES (2, 'b', 1)")
    batch = ep.changes([b], start, 10)
    assert [c.after for c in batch.changes][1] == {"id": 2, "name": "b",
                                                   "amount": Decimal("1.00")}
    assert [e.dropped for e in batch.events if isinstance(e, SchemaChanged)] == [("note",)]


def test_a_table_renamed_while_reading_stops_the_reader_by_name(
        ep: PostgresEndpoint, table_t: str) -> None:
    """pgoutput names a renamed table by its new name: its changes were passed over as
    another table's, silently (a daemon reading across the rename lost them)."""
    b = binding()
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    assert len(ep.changes([b], start, 10).changes) == 1  # the reader knows t now
    sql(table_t, "ALTER TABLE t RENAME TO t_new", "INSERT INTO t_new VALUES (2, 'b', 1, NULL)")
    with pytest.raises(SchemaError, match=r"public\.t of entity t was renamed to public\.t_new"):
        ep.changes([b], start, 10)
    # Configured by its new name, the changes from before the rename (the old name
    # in the log) are the same table's.
    renamed = endpoint(table_t)
    try:
        got = renamed.changes([binding("t_new", entity="t")], start, 10)
        assert [c.key["id"] for c in got.changes] == [1, 2]
    finally:
        renamed.close()


def test_column_mapping_and_exclusion(table_t: str) -> None:
    ep = endpoint(table_t)
    b = binding(columns={"title": "name"}, exclude=frozenset({"note"}))
    try:
        ep.setup([b], ep.pipeline)
        start = ep.position()
        sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, 'secret')")
        (ch,) = ep.changes([b], start, 10).changes
        assert ch.after == {"id": 1, "title": "a", "amount": Decimal("1.00")}
        chunk = ep.snapshot(b, None, 10)
        assert chunk.rows[0].row == ch.after
    finally:
        ep.close()


def test_tables_only_written_to_do_not_hold_the_slot(pg_dsn: str) -> None:
    # q is published (setup does not know directions) but only ever a target here.
    sql(pg_dsn, "CREATE TABLE p (id int PRIMARY KEY)", "CREATE TABLE q (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    try:
        bp, bq = binding("p"), binding("q")
        ep.setup([bp, bq], ep.pipeline)
        start = ep.position()
        sql(pg_dsn, "INSERT INTO p VALUES (1)", "INSERT INTO q VALUES (1)")
        batch = ep.changes([bp], start, 10)
        assert [c.entity for c in batch.changes] == ["p"]
        ep.confirm(batch.checkpoint)
        assert slot_confirmed(pg_dsn, ep.names.slot) == batch.checkpoint["lsn"]
        assert batch.checkpoint["tables"] == ["public.p"]
    finally:
        ep.close()


def test_position_needs_the_slot(table_t: str) -> None:
    from connectors.base import SchemaError

    ep = endpoint(table_t)
    try:
        with pytest.raises(SchemaError, match="run `cdcsync setup` first"):
            ep.position()
    finally:
        ep.close()


def test_snapshot_is_chunked_by_key_and_carries_xmin(ep: PostgresEndpoint, table_t: str) -> None:
    sql(table_t, "INSERT INTO t SELECT g, 'n' || g, g, NULL FROM generate_series(1, 10) g",
        "UPDATE t SET name = 'changed' WHERE id = 4")
    b = binding()
    keys: list[int] = []
    after = None
    chunks = 0
    while True:
        chunk = ep.snapshot(b, after, 4)
        chunks += 1
        keys += [r.key["id"] for r in chunk.rows]
        after = chunk.last_key
        if chunk.done:
            break
    assert keys == list(range(1, 11)) and chunks == 3
    (row4,) = [r for r in ep.snapshot(b, {"id": 3}, 1).rows]
    assert row4.row["name"] == "changed"
    assert row4.row_version == query(table_t, "SELECT xmin::text::bigint FROM t WHERE id = 4")[0][0]


def test_snapshot_and_stream_agree_on_a_row_version(ep: PostgresEndpoint, table_t: str) -> None:
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    (ch,) = ep.changes([binding()], start, 10).changes
    (row,) = ep.snapshot(binding(), None, 10).rows
    assert ch.op is Op.INSERT and ch.row_version == row.row_version
    assert ch.after == row.row


def test_asking_again_from_an_earlier_checkpoint_reads_again(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    start = ep.position()
    for i in range(6):
        sql(table_t, f"INSERT INTO t VALUES ({i}, 'n', 1, NULL)")
    first = ep.changes([b], start, 2)
    assert first.more and [c.key["id"] for c in first.changes] == [0, 1]
    # The batch failed downstream: the engine asks from where it stood before it.
    again = ep.changes([b], start, 2)
    assert [c.key["id"] for c in again.changes] == [0, 1]
    nxt = ep.changes([b], again.checkpoint, 2)
    assert [c.key["id"] for c in nxt.changes] == [2, 3]


def test_the_snapshot_reads_exactly_what_precedes_the_stream(
        ep: PostgresEndpoint, table_t: str) -> None:
    b = binding()
    sql(table_t, "INSERT INTO t SELECT g, 'before', 1, NULL FROM generate_series(1, 6) g")
    start = ep.position()
    # Committed after the snapshot's position, before (or between) its chunks.
    sql(table_t, "UPDATE t SET name = 'after' WHERE id IN (2, 5)",
        "INSERT INTO t VALUES (7, 'after', 1, NULL)", "DELETE FROM t WHERE id = 6")
    rows = []
    after = None
    while True:
        chunk = ep.snapshot(b, after, 2)
        rows += chunk.rows
        after = chunk.last_key
        if chunk.done:
            break
    assert [(r.key["id"], r.row["name"]) for r in rows] == [
        (i, "before") for i in range(1, 7)]  # none of the later changes
    stream = ep.changes([b], start, 100)
    assert [(c.op.value, c.key["id"]) for c in stream.changes] == [
        ("update", 2), ("update", 5), ("insert", 7), ("delete", 6)]  # all of them, once
    # The export was a temporary slot: gone once the stream is read.
    assert query(table_t, "SELECT count(*) FROM pg_replication_slots"
                          " WHERE temporary AND database = current_database()") == [(0,)]


def test_snapshot_bounds_split_the_next_chunk_into_ranges_of_its_rows(
        ep: PostgresEndpoint, table_t: str) -> None:
    sql(table_t, "INSERT INTO t SELECT g * 3, 'n', 1, NULL FROM generate_series(1, 100) g")
    b = binding()
    assert ep.snapshot_bounds(b, None, 40, 2) == ([{"id": 60}, {"id": 120}], False)
    assert ep.snapshot_bounds(b, {"id": 120}, 40, 3) == (
        [{"id": 162}, {"id": 204}, {"id": 240}], False)  # ranges of 14, 14 and 12 rows
    # 10 rows left: the table's end, split as evenly
    assert ep.snapshot_bounds(b, {"id": 270}, 40, 2) == ([{"id": 285}, {"id": 300}], True)
    assert ep.snapshot_bounds(b, {"id": 294}, 40, 3) == ([{"id": 297}, {"id": 300}], True)
    assert ep.snapshot_bounds(b, {"id": 300}, 40, 2) == ([], True)
    # exactly a chunk left: the end is known only by reading past it
    assert ep.snapshot_bounds(b, {"id": 180}, 40, 2) == ([{"id": 240}, {"id": 300}], False)


def test_snapshot_ranges_read_what_a_chunk_reads_with_a_composite_key(table_t: str) -> None:
    sql(table_t, "CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b))",
        "INSERT INTO pairs SELECT g % 7, 'k' || g, g FROM generate_series(1, 200) g")
    e = endpoint(table_t)
    b = binding("pairs", key=("first", "b"), columns={"first": "a"})  # a key column renamed
    e.setup([b], e.pipeline)
    try:
        whole = e.snapshot(b, None, 1000).rows
        bounds, done = e.snapshot_bounds(b, None, 1000, 3)
        assert done and len(bounds) == 3
        lows = [None, *bounds[:-1]]
        ranges = [e.snapshot_range(b, lo, hi, None) for lo, hi in zip(lows, bounds, strict=True)]
        assert [len(r) for r in ranges] == [67, 67, 66]
        assert [r.row for part in ranges for r in part] == [r.row for r in whole]
        assert [r.row_version for part in ranges for r in part] == [r.row_version for r in whole]
        assert [part[-1].key for part in ranges] == bounds
        assert set(bounds[0]) == {"first", "b"}
    finally:
        e.close()


def test_snapshot_ranges_read_in_the_shared_snapshot_from_another_session(
        ep: PostgresEndpoint, table_t: str) -> None:
    """A run's worker processes read their ranges in the exported snapshot: what was
    committed after the snapshot's position is left to the stream, as for a chunk."""
    b = binding()
    sql(table_t, "INSERT INTO t SELECT g, 'before', 1, NULL FROM generate_series(1, 6) g")
    start = ep.position()
    name = ep.shared_snapshot()
    assert name is not None
    sql(table_t, "UPDATE t SET name = 'after' WHERE id = 5", "DELETE FROM t WHERE id = 6",
        "INSERT INTO t VALUES (4, 'no', 1, NULL) ON CONFLICT (id) DO NOTHING")
    assert ep.snapshot_bounds(b, {"id": 2}, 10, 2) == ([{"id": 4}, {"id": 6}], True)
    other = endpoint(table_t)  # another session, as a worker process opens
    try:
        shared = other.snapshot_range(b, {"id": 2}, {"id": 6}, name)
        current = other.snapshot_range(b, {"id": 2}, {"id": 6}, None)
    finally:
        other.close()
    assert [(r.key["id"], r.row["name"]) for r in shared] == [
        (3, "before"), (4, "before"), (5, "before"), (6, "before")]
    assert [(r.key["id"], r.row["name"]) for r in current] == [
        (3, "before"), (4, "before"), (5, "after")]
    stream = ep.changes([b], start, 100)
    assert [(c.op.value, c.key["id"]) for c in stream.changes] == [
        ("update", 5), ("delete", 6)]
    assert ep.shared_snapshot() is None  # released once the stream is read
