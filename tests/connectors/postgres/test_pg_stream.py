"""The streaming reader of the daemon: same changes as the SQL reader, feedback, restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from connectors.base import ApplyOp, ConnectorError, SchemaError
from connectors.postgres import PostgresEndpoint
from sync.change import ChangeBatch, Checkpoint
from tests.connectors.postgres.helpers import binding, endpoint, query, slot_confirmed, sql


@pytest.fixture
def streamed(table_t: str) -> Iterator[PostgresEndpoint]:
    e = endpoint(table_t)
    e.setup([binding()], e.pipeline)
    e.use_streaming(wait=0.5)
    yield e
    e.close()


def _read_all(ep: PostgresEndpoint, after: Checkpoint, want: int,
              limit: int = 100) -> tuple[list[ChangeBatch], Checkpoint]:
    """Read until ``want`` changes arrived (the stream may deliver them in pieces)."""
    batches: list[ChangeBatch] = []
    cp = after
    for _ in range(200):
        batch = ep.changes([binding()], cp, limit)
        batches.append(batch)
        assert batch.checkpoint is not None
        cp = batch.checkpoint
        if sum(len(b.changes) for b in batches) >= want:
            break
    return batches, cp


def _eventually(check: Callable[[], bool]) -> bool:
    """Poll a condition the server reaches asynchronously (not a timing assertion)."""
    for _ in range(300):
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_streaming_reads_what_the_sql_interface_reads(table_t: str) -> None:
    sql_ep = endpoint(table_t)
    sql_ep.setup([binding()], sql_ep.pipeline)
    start = sql_ep.position()
    sql(table_t,
        "INSERT INTO t VALUES (1, 'a', 1.5, NULL), (2, 'b', 2, 'x')",
        "UPDATE t SET name = 'aa' WHERE id = 1",
        "UPDATE t SET id = 3 WHERE id = 2",
        "DELETE FROM t WHERE id = 1")
    expected = sql_ep.changes([binding()], start, 100).changes
    sql_ep.close()
    ep = endpoint(table_t)
    ep.use_streaming(wait=0.5)
    try:
        batches, _ = _read_all(ep, start, len(expected))
        got = [c for b in batches for c in b.changes]
        assert got == expected and len(got) == 6
    finally:
        ep.close()


def test_own_writes_are_not_streamed(streamed: PostgresEndpoint, table_t: str) -> None:
    ep = streamed
    start = ep.position()
    ep.apply(binding(), [ApplyOp({"id": 1}, {"id": 1, "name": "svc"}, None, "v1")])
    sql(table_t, "INSERT INTO t VALUES (2, 'user', 1, NULL)")
    batches, _ = _read_all(ep, start, 1)
    assert [c.key for b in batches for c in b.changes] == [{"id": 2}]


def test_confirm_is_sent_as_feedback_and_moves_the_slot(
        streamed: PostgresEndpoint, table_t: str) -> None:
    ep = streamed
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    _batches, cp = _read_all(ep, start, 1)
    before = slot_confirmed(table_t, ep.names.slot)
    assert before < cp["lsn"]
    # Reading is not confirming: the server keeps the changes until told.
    ep.changes([binding()], cp, 10)
    assert slot_confirmed(table_t, ep.names.slot) == before
    ep.confirm(cp)
    assert _eventually(lambda: slot_confirmed(table_t, ep.names.slot) >= cp["lsn"])
    # The stream holds the slot: a batch run cannot read it meanwhile.
    other = endpoint(table_t)
    try:
        with pytest.raises(ConnectorError, match="is being streamed by process"):
            other.changes([binding()], cp, 10)
    finally:
        other.close()


def test_an_idle_stream_moves_its_checkpoint_to_the_wal_end(
        streamed: PostgresEndpoint, table_t: str) -> None:
    ep = streamed
    cp = ep.position()
    first = ep.changes([binding()], cp, 10)
    assert first.changes == []
    sql(table_t, "CREATE TABLE other (id int)", "INSERT INTO other SELECT generate_series(1, 100)")
    moved = None
    for _ in range(40):  # keepalives come when the server has sent WAL we did not ack
        batch = ep.changes([binding()], cp, 10)
        assert batch.changes == []
        assert batch.checkpoint is not None
        cp = batch.checkpoint
        if cp["lsn"] > first.checkpoint["lsn"]:  # type: ignore[index]
            moved = cp
            break
    assert moved is not None
    ep.confirm(moved)
    assert _eventually(lambda: slot_confirmed(table_t, ep.names.slot) >= moved["lsn"])


def test_a_big_transaction_is_split_and_resumed_after_a_crash(table_t: str) -> None:
    ep = endpoint(table_t)
    ep.setup([binding()], ep.pipeline)
    start = ep.position()
    sql(table_t, "INSERT INTO t SELECT g, 'n', 1, NULL FROM generate_series(1, 30) g",
        "INSERT INTO t VALUES (100, 'after', 1, NULL)")
    ep.use_streaming(wait=0.5)
    seen: list[int] = []
    batch = ep.changes([binding()], start, 5)
    while not batch.changes:
        batch = ep.changes([binding()], batch.checkpoint, 5)
    seen += [c.key["id"] for c in batch.changes]
    cp = batch.checkpoint
    assert cp is not None and "tx" in cp and len(batch.changes) == 10
    ep.close()  # the daemon dies here; the batch was applied and its checkpoint stored
    again = endpoint(table_t)
    again.use_streaming(wait=0.5)
    try:
        batches, _ = _read_all(again, cp, 31 - len(seen), limit=5)
        seen += [c.key["id"] for b in batches for c in b.changes]
        assert seen == [*range(1, 31), 100]
    finally:
        again.close()


def test_a_stream_restarts_from_an_earlier_checkpoint(
        streamed: PostgresEndpoint, table_t: str) -> None:
    ep = streamed
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)", "INSERT INTO t VALUES (2, 'a', 1, NULL)")
    batches, _cp = _read_all(ep, start, 2)
    assert [c.key["id"] for b in batches for c in b.changes] == [1, 2]
    # The batch failed downstream: the engine asks again from where it stood.
    again, _ = _read_all(ep, start, 2)
    assert [c.key["id"] for b in again for c in b.changes] == [1, 2]
    assert query(table_t, "SELECT count(*) FROM pg_stat_activity WHERE backend_type ="
                          " 'walsender' AND datname = current_database()")[0][0] == 1


def test_a_stream_on_a_descriptor_past_1023_reads(table_t: str) -> None:
    """A daemon with many connections: the replication connection gets a descriptor
    ``select()`` cannot watch; the stream still waits on it and reads."""
    from tests.highfds import FD_SETSIZE, descriptors_past_select

    with descriptors_past_select():
        ep = endpoint(table_t)
        try:
            ep.setup([binding()], ep.pipeline)
            ep.use_streaming(wait=0.5)
            start = ep.position()
            sql(table_t, "INSERT INTO t VALUES (1, 'a', 1.5, NULL)")
            batches, _ = _read_all(ep, start, 1)
            assert [c.key for b in batches for c in b.changes] == [{"id": 1}]
            conn = ep.stream._conn if ep.stream is not None else None
            assert conn is not None and conn.pgconn.socket >= FD_SETSIZE
        finally:
            ep.close()


def test_a_table_published_no_more_stops_the_stream(
        streamed: PostgresEndpoint, table_t: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropped and created again while the daemon streams: the new table is in no
    publication and none of its changes would ever arrive (tests/test_unpublished_table.py
    for batch runs); the stream looks again every PUBLICATION_CHECK seconds."""
    from connectors.postgres import stream

    ep = streamed
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    _, cp = _read_all(ep, start, 1)
    monkeypatch.setattr(stream, "PUBLICATION_CHECK", 0.0)
    sql(table_t, "DROP TABLE t", "CREATE TABLE t (id int PRIMARY KEY, name text,"
                 " amount numeric(10,2), note text)", "INSERT INTO t VALUES (2, 'b', 1, NULL)")
    with pytest.raises(SchemaError, match=r"table public\.t of entity t is not in publication"):
        ep.changes([binding()], cp, 100)


def test_changes_made_while_the_publication_was_gone(streamed: PostgresEndpoint,
                                                     table_t: str) -> None:
    """pgoutput cannot decode them even once the publication is back: said so (it was
    "the server ended the replication stream", retried for ever), and moving the slot
    to the log's end (``resync --reset-stream``) gets past them."""
    ep = streamed
    start = ep.position()
    sql(table_t, "INSERT INTO t VALUES (1, 'a', 1, NULL)")
    _, cp = _read_all(ep, start, 1)
    ep.confirm(cp)
    sql(table_t, f'DROP PUBLICATION "{ep.names.publication}"',
        "INSERT INTO t VALUES (2, 'b', 1, NULL)")
    ep.setup([binding()], ep.pipeline)
    sql(table_t, "INSERT INTO t VALUES (3, 'c', 1, NULL)")
    with pytest.raises(SchemaError, match="did not when changes still in the slot were made"):
        _read_all(ep, cp, 1)
    assert ep.reset_stream()[0].startswith(f"slot {ep.names.slot} moved to the log's current")
    end = ep.position()
    sql(table_t, "INSERT INTO t VALUES (4, 'd', 1, NULL)")
    batches, _ = _read_all(ep, end, 1)
    assert [c.key["id"] for b in batches for c in b.changes] == [4]
