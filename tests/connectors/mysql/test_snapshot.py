"""Snapshots consistent with the binlog position, chunked and resumable."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.mysql.source import MysqlSource
from sync.change import Op
from tests.connectors.mysql.helpers import binding, drain, run, settings


def test_snapshot_stands_exactly_at_its_position(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE items (id INT PRIMARY KEY, v INT)",
        "INSERT INTO items VALUES " + ",".join(f"({i}, 0)" for i in range(1, 11)))
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-snap")
    try:
        cp = src.position()
        # Edits after the snapshot opened: in the stream, not in the snapshot.
        run(mariadb_params, "INSERT INTO items VALUES (11, 0)",
            "UPDATE items SET v = 1 WHERE id = 3", "DELETE FROM items WHERE id = 4")
        rows = []
        after = None
        while True:
            chunk = src.snapshot(binding(), after, 3)
            assert len(chunk.rows) <= 3
            rows.extend(chunk.rows)
            after = chunk.last_key
            if chunk.done:
                break
        assert [r.key["id"] for r in rows] == list(range(1, 11))
        assert all(r.row["v"] == 0 and r.row_version for r in rows)
        changes, _, _ = drain(src, [binding()], cp)
        assert [(c.op, c.key["id"]) for c in changes] == [
            (Op.INSERT, 11), (Op.UPDATE, 3), (Op.DELETE, 4)]
    finally:
        src.close()


def test_snapshot_resumes_after_a_key_in_a_new_process(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE pairs (a INT, b VARCHAR(5), v INT, PRIMARY KEY (a, b))",
        "INSERT INTO pairs VALUES (1,'x',1),(1,'y',2),(2,'a',3),(2,'b',4),(3,'a',5)")
    b = binding("pairs", key=("a", "b"))
    first = MysqlSource("maria", settings(mariadb_params), pipeline="t-resume")
    first.position()
    chunk = first.snapshot(b, None, 2)
    first.close()
    assert [r.key for r in chunk.rows] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}]
    assert chunk.last_key == {"a": 1, "b": "y"} and not chunk.done
    second = MysqlSource("maria", settings(mariadb_params), pipeline="t-resume")
    try:
        rest = second.snapshot(b, chunk.last_key, 10)  # no position(): opens its own snapshot
        assert [r.row["v"] for r in rest.rows] == [3, 4, 5]
        assert rest.done
        assert second.snapshot_checkpoint is not None
    finally:
        second.close()


def test_empty_table_snapshot_is_done_at_once(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE items (id INT PRIMARY KEY)")
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-empty")
    try:
        chunk = src.snapshot(binding(), None, 100)
        assert chunk.rows == [] and chunk.done and chunk.last_key is None
    finally:
        src.close()


def test_snapshot_bounds_split_the_next_chunk_into_ranges_of_its_rows(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE items (id INT PRIMARY KEY, v INT)",
        "INSERT INTO items SELECT seq * 3, 0 FROM seq_1_to_100")
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-bounds")
    b = binding()
    try:
        assert src.snapshot_bounds(b, None, 40, 2) == ([{"id": 60}, {"id": 120}], False)
        assert src.snapshot_bounds(b, {"id": 120}, 40, 3) == (
            [{"id": 162}, {"id": 204}, {"id": 240}], False)  # ranges of 14, 14 and 12 rows
        assert src.snapshot_bounds(b, {"id": 270}, 40, 2) == ([{"id": 285}, {"id": 300}], True)
        assert src.snapshot_bounds(b, {"id": 294}, 40, 3) == ([{"id": 297}, {"id": 300}], True)
        assert src.snapshot_bounds(b, {"id": 300}, 40, 2) == ([], True)
        # exactly a chunk left: the end is known only by reading past it
        assert src.snapshot_bounds(b, {"id": 180}, 40, 2) == ([{"id": 240}, {"id": 300}], False)
    finally:
        src.close()


def test_snapshot_ranges_read_what_a_chunk_reads_with_a_composite_key(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE pairs (a INT, b VARCHAR(8), v INT, PRIMARY KEY (a, b))",
        "INSERT INTO pairs SELECT seq % 7, CONCAT('k', seq), seq FROM seq_1_to_200")
    b = binding("pairs", key=("first", "b"), columns={"first": "a"})  # a key column renamed
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-ranges")
    try:
        whole = src.snapshot(b, None, 1000).rows
        bounds, done = src.snapshot_bounds(b, None, 1000, 3)
        assert done and len(bounds) == 3 and set(bounds[0]) == {"first", "b"}
        lows = [None, *bounds[:-1]]
        ranges = [src.snapshot_range(b, lo, hi, None) for lo, hi in zip(lows, bounds, strict=True)]
        assert [len(r) for r in ranges] == [67, 67, 66]
        assert [r.row for part in ranges for r in part] == [r.row for r in whole]
        assert [r.row_version for part in ranges for r in part] == [r.row_version for r in whole]
        assert [part[-1].key for part in ranges] == bounds
    finally:
        src.close()


def test_another_session_reads_its_ranges_in_a_snapshot_of_its_own(
        mariadb_params: dict[str, Any]) -> None:
    """A worker process's ranges are read in its own snapshot, opened at its first read:
    later than the run's position, so what changed in between is read again from the
    binlog (as for a snapshot resumed by a new process)."""
    run(mariadb_params, "CREATE TABLE items (id INT PRIMARY KEY, v INT)",
        "INSERT INTO items SELECT seq, 0 FROM seq_1_to_6")
    b = binding()
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-own")
    other = MysqlSource("maria", settings(mariadb_params), pipeline="t-own")
    try:
        cp = src.position()
        assert src.shared_snapshot() is None
        run(mariadb_params, "UPDATE items SET v = 1 WHERE id = 5", "DELETE FROM items WHERE id = 6")
        assert src.snapshot_bounds(b, {"id": 2}, 10, 2) == ([{"id": 4}, {"id": 6}], True)
        first = other.snapshot_range(b, {"id": 2}, {"id": 6}, None)
        run(mariadb_params, "UPDATE items SET v = 2 WHERE id = 3")  # after its snapshot
        again = other.snapshot_range(b, {"id": 2}, {"id": 6}, None)
        assert [(r.key["id"], r.row["v"]) for r in first] == [(3, 0), (4, 0), (5, 1)]
        assert again == first  # the same snapshot for the rest of its reads
        changes, _, _ = drain(src, [b], cp)
        assert [(c.op, c.key["id"]) for c in changes] == [
            (Op.UPDATE, 5), (Op.DELETE, 6), (Op.UPDATE, 3)]
    finally:
        src.close()
        other.close()


def test_rows_are_counted_up_to_a_bound(mariadb_params: dict[str, Any]) -> None:
    """Whether a snapshot is worth worker processes: counted, not InnoDB's estimate
    (TABLE_ROWS lags a bulk load)."""
    run(mariadb_params, "CREATE TABLE items (id INT PRIMARY KEY, v INT)",
        "INSERT INTO items VALUES " + ",".join(f"({i}, 0)" for i in range(1, 8)))
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-count")
    try:
        assert [src.rows_up_to(binding(), n) for n in (0, 5, 7, 100)] == [0, 5, 7, 7]
    finally:
        src.close()


def test_a_position_the_server_cannot_place_stops_instead_of_replaying_the_binlog(
        mariadb_params: dict[str, Any]) -> None:
    """``BINLOG_GTID_POS`` reads the snapshot's binlog file from its start and gives NULL
    past an event larger than ``max_allowed_packet`` (one written while the setting
    was higher). NULL was taken for "no GTID yet": the stream then started at the
    oldest binlog and replayed the retained history (this suite's own snapshot tests
    failed so, after such an event)."""
    from connectors.base import ConnectorError
    from tests.connectors.mysql.helpers import query

    (packet,), = query(mariadb_params, "SELECT @@GLOBAL.max_allowed_packet")
    run(mariadb_params, "FLUSH BINARY LOGS",  # (this test's big event in a file of its own)
        "CREATE TABLE items (id INT PRIMARY KEY, v INT, b LONGBLOB)",
        "INSERT INTO items VALUES (2, 0, NULL)", f"SET GLOBAL max_allowed_packet = {4 * packet}")
    try:
        run(mariadb_params,  # a new session: the new packet
            f"INSERT INTO items VALUES (1, 0, REPEAT('x', {packet + (1 << 20)}))")
    finally:
        run(mariadb_params, f"SET GLOBAL max_allowed_packet = {packet}")
    src = MysqlSource("maria", settings(mariadb_params), pipeline="t-gtidpos")
    try:
        with pytest.raises(ConnectorError, match=r"BINLOG_GTID_POS is NULL.*FLUSH BINARY LOGS"):
            src.position()
        run(mariadb_params, "FLUSH BINARY LOGS")  # what the message says
        cp = src.position()
        run(mariadb_params, "UPDATE items SET v = 1 WHERE id = 2")
        changes, _, _ = drain(src, [binding()], cp)
        assert [(c.op, c.key["id"]) for c in changes] == [(Op.UPDATE, 2)]  # nothing older
    finally:
        src.close()
        run(mariadb_params, "FLUSH BINARY LOGS")  # the big event never in the current file
