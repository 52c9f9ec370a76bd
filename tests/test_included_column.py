"""A column taken into an entity by an edit of the pipeline file (out of ``exclude:``).

Until 2026-12-07 only the rows edited since got its values; the others kept what
each endpoint held, for good, and nothing said so. A run now stops and names the
resync that copies them (sync/columns.py). Through the real CLI, at SQLite files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipelines import sqlite_pair, sqlite_run
from tests.test_cli_quickstart import cdcsync, rows, run_json

ROWS = "SELECT id, v, phone FROM t ORDER BY id"


@pytest.mark.parametrize("direction", ["one-way", "two-way"])
def test_a_column_taken_into_an_entity_stops_the_run_until_a_resync_copies_it(
        tmp_path: Path, direction: str) -> None:
    a, b, p = sqlite_pair(tmp_path, "included", "t",
                          ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, phone TEXT)"])
    full = p.read_text()
    if direction == "one-way":
        full = full.replace("    key: [id]\n", "    key: [id]\n    direction: one-way\n"
                                                "    source: a\n")
    else:  # the endpoint that holds the column's values wins where they differ
        full = full.replace("    key: [id]\n", "    key: [id]\n    conflict: {policy: priority,"
                                                " priority: [a]}\n")
    p.write_text(full.replace("    key: [id]\n", "    key: [id]\n    exclude: [phone]\n"))
    sqlite_run(a, "INSERT INTO t VALUES (1, 'one', 'a1'), (2, 'two', 'a2')")
    cdcsync("setup", str(p))
    run_json(p)
    assert rows(b, ROWS) == [(1, "one", None), (2, "two", None)]

    p.write_text(full)  # phone is synchronised from now on
    sqlite_run(a, "UPDATE t SET v = 'ONE' WHERE id = 1")
    stopped = cdcsync("run", str(p), expect=1)
    assert "entity 't' synchronises phone now, which its tables held before it did" \
        in stopped.stderr, stopped.stderr
    assert "`cdcsync resync PIPELINE t`" in stopped.stderr and "Traceback" not in stopped.stderr
    assert rows(b, ROWS) == [(1, "one", None), (2, "two", None)]  # nothing read
    cdcsync("run", str(p), expect=1)  # until the resync

    cdcsync("resync", str(p), "t")
    run_json(p)
    want = [(1, "ONE", "a1"), (2, "two", "a2")]
    assert rows(a, ROWS) == want
    assert rows(b, ROWS) == want
    assert run_json(p)["totals"]["applied"] == 0
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]


def test_a_column_left_out_or_added_to_the_tables_does_not_stop_the_run(tmp_path: Path) -> None:
    a, b, p = sqlite_pair(tmp_path, "included", "t",
                          ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, phone TEXT)"])
    sqlite_run(a, "INSERT INTO t VALUES (1, 'one', 'a1')")
    cdcsync("setup", str(p))
    run_json(p)
    p.write_text(p.read_text().replace("    key: [id]\n", "    key: [id]\n    exclude: [phone]\n"))
    sqlite_run(a, "UPDATE t SET v = 'ONE', phone = 'x' WHERE id = 1")
    run_json(p)
    assert rows(b, ROWS) == [(1, "ONE", "a1")]  # phone left alone now
    for db in (a, b):  # a column new to the tables is no column taken in
        sqlite_run(db, "ALTER TABLE t ADD COLUMN qty INTEGER")
    cdcsync("setup", str(p))
    sqlite_run(a, "UPDATE t SET qty = 5 WHERE id = 1")
    run_json(p)
    assert rows(b, "SELECT id, v, phone, qty FROM t") == [(1, "ONE", "a1", 5)]


def test_two_processes_record_an_entity_s_columns_side_by_side(pg_dsn: str) -> None:
    """Two daemons starting side by side each recorded the columns of an entity new to
    the state store: one of the two inserts failed on PostgreSQL's primary key, and that
    daemon exited 1 (seen in CI, 2026-12-07). The record is an upsert."""
    import threading
    from collections.abc import Iterator
    from contextlib import contextmanager
    from typing import Any

    import sqlalchemy as sa

    from sync.columns import check_columns
    from sync.state import open_store
    from sync.state.schema import entity_columns

    store = open_store(pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    both_read = threading.Barrier(2)
    real = store.transaction

    @contextmanager
    def after_both_read(**kw: Any) -> Iterator[Any]:
        both_read.wait(5)  # each has read that nothing is recorded
        with real(**kw) as conn:
            yield conn

    store.transaction = after_both_read  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def record() -> None:
        try:
            check_columns(store, "p", "t", ["id", "v"], ["id", "v"], snapshot_due=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == []
        with store.engine.connect() as conn:
            got = conn.execute(sa.select(entity_columns.c.columns)).scalars().all()
        assert got == [{"synced": ["id", "v"], "tables": ["id", "v"]}]
    finally:
        store.close()
