"""Snapshots consistent with the binlog position, chunked and resumable."""

from __future__ import annotations

from typing import Any

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
