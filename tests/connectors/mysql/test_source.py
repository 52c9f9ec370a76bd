"""Binlog capture against the real local MariaDB."""

from __future__ import annotations

import decimal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.mysql.gtid import covers, parse_state
from connectors.mysql.session import close_quietly
from connectors.mysql.source import MysqlSource
from sync.change import Op
from tests.connectors.mysql.helpers import binding, drain, run, settings


def at_or_after(cp: Any, mark: Any) -> bool:
    """``cp`` is at or past ``mark`` (other sessions may write to the shared server
    meanwhile, so exact equality of positions would be a race)."""
    return covers(parse_state(cp["gtid"]), parse_state(mark["gtid"]))


def next_ours(reader: Any) -> Any:
    """The next transaction with rows of ours (other sessions share the server)."""
    while True:
        tx = reader.next()
        assert tx is not None
        if tx.rows:
            return tx


def ids(tx: Any) -> list[int]:
    return [r.after["id"] for r in tx.rows if r.after]


TABLE = (
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2),"
    " note TEXT)"
)


def first_ids(source: MysqlSource, start: Any) -> tuple[list[int], Any]:
    """The ids of the first changes read after ``start`` (reads that find nothing are
    skipped: other sessions may still be writing to the shared server), and the
    checkpoint after them."""
    cp = start
    for _ in range(50):
        batch = source.changes([binding()], cp, 100)
        cp = batch.checkpoint
        if batch.changes:
            return [c.key["id"] for c in batch.changes], cp
    return [], cp


@pytest.fixture
def source(mariadb_params: dict[str, Any]) -> Iterator[MysqlSource]:
    run(mariadb_params, TABLE)
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-source")
    yield src
    src.close()


def test_insert_update_delete_are_captured_in_commit_order(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    run(mariadb_params,
        "INSERT INTO items VALUES (1, 'a', 1.50, 'x')",
        "INSERT INTO items VALUES (2, 'b', 2.00, NULL)",
        "UPDATE items SET name = 'a2' WHERE id = 1",
        "DELETE FROM items WHERE id = 2")
    written = source.log_end()
    changes, cp, _ = drain(source, [binding()], start)
    assert [(c.op, c.key) for c in changes] == [
        (Op.INSERT, {"id": 1}), (Op.INSERT, {"id": 2}), (Op.UPDATE, {"id": 1}),
        (Op.DELETE, {"id": 2}),
    ]
    ins, _, upd, dele = changes
    assert ins.after == {"id": 1, "name": "a", "price": decimal.Decimal("1.50"), "note": "x"}
    assert upd.before is not None and upd.before["name"] == "a"
    assert upd.after is not None and upd.after["name"] == "a2"
    assert dele.after is None and dele.before is not None and dele.before["note"] is None
    assert dele.row_version is None and ins.row_version is not None
    positions = [c.position for c in changes]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert all(c.source == "maria" and c.txid and c.committed_at > 0 for c in changes)
    assert cp is not None and at_or_after(cp, written)
    # Nothing new: the next read returns nothing.
    again, cp2, _ = drain(source, [binding()], cp)
    assert again == [] and at_or_after(cp2, cp)


def test_multi_row_transaction_is_one_unit_and_never_split(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    run(mariadb_params, "INSERT INTO items (id) VALUES (1),(2),(3),(4),(5)",
        "INSERT INTO items (id) VALUES (6)")
    first = source.changes([binding()], start, 2)
    assert [c.key["id"] for c in first.changes] == [1, 2, 3, 4, 5]  # the whole transaction
    assert first.more is True
    assert len({c.txid for c in first.changes}) == 1
    second = source.changes([binding()], first.checkpoint, 2)
    assert [c.key["id"] for c in second.changes] == [6]
    assert second.more is False


def test_other_tables_and_unsynced_columns_are_left_out(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    run(mariadb_params, "CREATE TABLE other (id INT PRIMARY KEY)")
    start = source.log_end()
    run(mariadb_params,
        "INSERT INTO other VALUES (1)",
        "INSERT INTO items VALUES (1, 'a', 1, 'n')",
        "UPDATE items SET note = 'changed' WHERE id = 1",  # only an excluded column moves
        "UPDATE items SET name = 'b' WHERE id = 1")
    b = binding(exclude=frozenset({"note"}))
    changes, _, _ = drain(source, [b], start)
    assert [c.op for c in changes] == [Op.INSERT, Op.UPDATE]
    assert changes[0].after == {"id": 1, "name": "a", "price": decimal.Decimal("1.00")}
    assert changes[1].after is not None and changes[1].after["name"] == "b"


def test_primary_key_update_is_a_delete_and_an_insert(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    run(mariadb_params, "INSERT INTO items VALUES (1, 'a', 1, NULL)")
    start = source.log_end()
    run(mariadb_params, "UPDATE items SET id = 10 WHERE id = 1")
    changes, _, _ = drain(source, [binding()], start)
    assert [(c.op, c.key) for c in changes] == [(Op.DELETE, {"id": 1}), (Op.INSERT, {"id": 10})]


def test_column_mapping_gives_entity_names(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    b = binding(entity="product", columns={"title": "name"})
    start = source.log_end()
    run(mariadb_params, "INSERT INTO items VALUES (7, 'lamp', 3, NULL)")
    changes, _, _ = drain(source, [b], start)
    assert changes[0].entity == "product"
    assert changes[0].after == {"id": 7, "title": "lamp", "price": 3, "note": None}


def test_row_version_is_the_hash_the_snapshot_sees(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    run(mariadb_params, "INSERT INTO items VALUES (1, 'a', 1.5, 'é')")
    changes, _, _ = drain(source, [binding()], start)
    source.position()
    chunk = source.snapshot(binding(), None, 10)
    assert [r.row_version for r in chunk.rows] == [changes[0].row_version]


def test_no_checkpoint_starts_at_the_current_end(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    run(mariadb_params, "INSERT INTO items (id) VALUES (1)")
    written = source.log_end()
    batch = source.changes([binding()], None, 100)
    assert batch.changes == [] and at_or_after(batch.checkpoint, written)
    assert drain(source, [binding()], batch.checkpoint)[0] == []


def test_purged_or_unknown_position_tells_the_user_to_resync(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    run(mariadb_params, "INSERT INTO items (id) VALUES (1)")
    # A GTID state the server never had: the server refuses it with error 1236,
    # exactly as for a checkpoint whose binlog was purged.
    gone = {"gtid": "0-4242-1", "file": "mysql-bin.000001", "pos": 4}
    with pytest.raises(ConnectorError) as info:
        source.changes([binding()], gone, 100)
    message = str(info.value)
    assert "cdcsync resync t-source items" in message
    assert "0-4242-1" in message


def test_connection_killed_between_batches_resumes_without_duplicates(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    for i in range(1, 7):
        run(mariadb_params, f"INSERT INTO items (id) VALUES ({i})")
    first = source.changes([binding()], start, 2)
    assert [c.key["id"] for c in first.changes] == [1, 2]
    reader = source._binlog()
    run(mariadb_params, f"KILL {reader._conn.thread_id()}")
    for i in range(7, 9):
        run(mariadb_params, f"INSERT INTO items (id) VALUES ({i})")
    rest, _, _ = drain(source, [binding()], first.checkpoint)
    assert [c.key["id"] for c in rest] == [3, 4, 5, 6, 7, 8]
    assert reader.reconnects >= 1


def test_connection_dropped_inside_a_transaction_drops_the_half_read_one(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    run(mariadb_params, "INSERT INTO items (id) VALUES (1)")
    run(mariadb_params, "INSERT INTO items (id, note) VALUES " + ",".join(
        f"({i}, REPEAT('x', 1000))" for i in range(2, 2002)))  # ~2 MB: many row events
    run(mariadb_params, "INSERT INTO items (id) VALUES (3000)")
    reader = source._binlog()
    reader.wanted = frozenset({(source.database, "items")})
    reader.start(start["gtid"])
    assert ids(next_ours(reader)) == [1]
    # Cut the socket in the middle of the big transaction's row events.
    real_read = reader._packet
    seen = {"n": 0}

    def cut_after_three() -> bytes:
        data = real_read()
        seen["n"] += 1
        if seen["n"] == 3:
            reader._conn._sock.shutdown(socket.SHUT_RDWR)
        return data

    reader._packet = cut_after_three  # type: ignore[method-assign]
    assert ids(next_ours(reader)) == list(range(2, 2002))
    assert ids(next_ours(reader)) == [3000]
    assert reader.reconnects == 1


def test_restart_from_checkpoint_in_a_new_process_reads_each_change_once(
    mariadb_params: dict[str, Any]
) -> None:
    run(mariadb_params, TABLE)
    s = settings(mariadb_params)
    first = MysqlSource("maria", s, pipeline="t-restart")
    start = first.log_end()
    for i in range(1, 5):
        run(mariadb_params, f"INSERT INTO items (id) VALUES ({i})")
    batch = first.changes([binding()], start, 2)
    first.close()  # the process "dies" after the batch
    for i in range(5, 7):
        run(mariadb_params, f"INSERT INTO items (id) VALUES ({i})")
    second = MysqlSource("maria", s, pipeline="t-restart")
    try:
        rest, _, _ = drain(second, [binding()], batch.checkpoint)
    finally:
        second.close()
    assert [c.key["id"] for c in batch.changes] + [c.key["id"] for c in rest] == list(
        range(1, 7))


def test_server_id_is_stable_per_pipeline_and_endpoint(mariadb_params: dict[str, Any]) -> None:
    a = MysqlSource("maria", settings(mariadb_params, server_id=None), pipeline="p1")
    b = MysqlSource("maria", settings(mariadb_params, server_id=None), pipeline="p1")
    c = MysqlSource("other", settings(mariadb_params, server_id=None), pipeline="p1")
    d = MysqlSource("maria", settings(mariadb_params, server_id=4711), pipeline="p1")
    assert a.server_id == b.server_id != c.server_id
    assert d.server_id == 4711
    assert a.server_id != 1  # never the server's own id


def test_reading_across_a_binlog_rotation(source: MysqlSource,
                                          mariadb_params: dict[str, Any]) -> None:
    start = source.log_end()
    run(mariadb_params, "INSERT INTO items (id) VALUES (1)", "FLUSH BINARY LOGS",
        "INSERT INTO items (id) VALUES (2)")
    changes, cp, _ = drain(source, [binding()], start)
    assert [c.key["id"] for c in changes] == [1, 2]
    assert changes[0].position < changes[1].position
    assert cp is not None and cp["file"] != start["file"]
    # A rotation with nothing after it: the read still ends at the log's end.
    run(mariadb_params, "FLUSH BINARY LOGS")
    again, cp2, _ = drain(source, [binding()], cp)
    assert again == [] and cp2 is not None and at_or_after(cp2, cp)


def test_an_idle_server_answers_with_a_heartbeat(source: MysqlSource) -> None:
    from connectors.mysql.binlog import BinlogReader

    reader = BinlogReader(source.settings, server_id=source.server_id + 1,
                          describe=lambda d, t: None, heartbeat=0.2)
    try:
        reader.start(source.log_end()["gtid"])
        # Other sessions may be writing to the shared server: their transactions come
        # first (with no rows of ours); once it is idle, a heartbeat ends the read.
        for _ in range(100_000):
            tx = reader.next(stop=None)
            if tx is None:
                break
            assert tx.rows == []
        assert tx is None
    finally:
        reader.close()


def test_streaming_returns_a_transaction_as_soon_as_it_arrives(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    source.use_streaming(wait=20.0)
    later = threading.Timer(0.3, run, (mariadb_params, "INSERT INTO items (id) VALUES (1)"))
    t0 = time.monotonic()
    later.start()
    try:
        batch = source.changes([binding()], start, 100)
    finally:
        later.join()
    assert [c.key["id"] for c in batch.changes] == [1]
    assert time.monotonic() - t0 < 10  # not at the end of the 20 s wait
    assert at_or_after(batch.checkpoint, start)


def test_streaming_sees_transactions_already_received_without_waiting(
    mariadb_params: dict[str, Any]
) -> None:
    """Two small transactions arrive in one read from the socket: the second, kept in
    the reader's buffer, is handed out at once, not when the next packet arrives (a
    heartbeat, made rare here)."""
    run(mariadb_params, TABLE)
    source = MysqlSource("maria", settings(mariadb_params), pipeline="t-buffered",
                         heartbeat=60.0)
    start = source.log_end()
    source.use_streaming(wait=0.5)
    assert source.changes([binding()], start, 100).changes == []  # connected, idle
    run(mariadb_params, "INSERT INTO items (id) VALUES (1)", "INSERT INTO items (id) VALUES (2)")
    time.sleep(0.3)  # both are on the socket before the next read
    first = source.changes([binding()], start, 1)
    assert [c.key["id"] for c in first.changes] == [1] and first.more
    source.use_streaming(wait=20.0)
    t0 = time.monotonic()
    try:
        second = source.changes([binding()], first.checkpoint, 100)
    finally:
        source.close()
    assert [c.key["id"] for c in second.changes] == [2]
    assert time.monotonic() - t0 < 10


def test_streaming_while_idle_waits_and_asks_the_server_nothing(
    source: MysqlSource, mariadb_params: dict[str, Any]
) -> None:
    start = source.log_end()
    run(mariadb_params, "INSERT INTO items (id) VALUES (1)")
    source.use_streaming(wait=0.2)
    got, cp = first_ids(source, start)
    assert got == [1]
    close_quietly(source._control)  # the connection queries would go through
    source._control = None
    t0 = time.monotonic()
    for _ in range(3):
        batch = source.changes([binding()], cp, 100)
        assert batch.changes == [] and at_or_after(batch.checkpoint, cp)
        cp = batch.checkpoint
    assert time.monotonic() - t0 >= 0.5  # it waited on the stream ...
    assert source._control is None  # ... and asked the server nothing
    # Batch reading (the default) still reads up to the end of the log as it is.
    source.use_streaming(False)
    run(mariadb_params, "INSERT INTO items (id) VALUES (2)")
    rest, _, _ = drain(source, [binding()], cp)
    assert [c.key["id"] for c in rest] == [2]


def test_a_silent_binlog_connection_is_reported_not_waited_on(source: MysqlSource) -> None:
    """A server gone without closing the connection sends nothing, not even the
    heartbeats an idle one sends: past the read timeout a streaming read reconnects,
    then reports the source unreachable, rather than waiting for ever. (Heartbeats
    are made rarer than the timeout here to stand for that silence.)"""
    from connectors.base import RetriableError
    from connectors.mysql.binlog import BinlogReader

    reader = BinlogReader(source.settings, server_id=source.server_id + 2,
                          describe=lambda d, t: None, heartbeat=600.0, read_timeout=1.0,
                          max_reconnects=1)
    try:
        reader.start(source.log_end()["gtid"])
        t0 = time.monotonic()
        with pytest.raises(RetriableError, match="nothing from the server in 1 s"):
            while time.monotonic() - t0 < 30:
                tx = reader.next(until=time.monotonic() + 0.2)
                assert tx is None or tx.rows == []  # other sessions' transactions only
        assert reader.reconnects == 1
        assert time.monotonic() - t0 < 15
    finally:
        reader.close()


def test_streaming_on_a_descriptor_past_1023_reads(mariadb_params: dict[str, Any]) -> None:
    """A process with many connections: the binlog connection gets a descriptor that
    ``select()`` cannot watch; the stream still waits on it and reads."""
    from tests.highfds import FD_SETSIZE, descriptors_past_select

    run(mariadb_params, TABLE)
    with descriptors_past_select():
        source = MysqlSource("maria", settings(mariadb_params), pipeline="t-highfd")
        try:
            start = source.log_end()
            source.use_streaming(wait=0.5)
            assert source.changes([binding()], start, 100).changes == []  # connected, idle
            run(mariadb_params, "INSERT INTO items (id) VALUES (1)")
            assert first_ids(source, start)[0] == [1]
            wire = source._binlog()._wire
            assert wire is not None and wire.sock.fileno() >= FD_SETSIZE
        finally:
            source.close()
