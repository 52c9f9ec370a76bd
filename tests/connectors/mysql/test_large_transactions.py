"""A MariaDB transaction too large for one batch.

The reader held a transaction whole, decoded, until its commit, and handed it out
in one batch: 300k updated rows took 2 GB, and one of a few million rows more than
the machine had, every run again (it was read again from the same place). Its rows
are now kept as binlog bytes and decoded as they are handed out, and a transaction
that alone gives more than ``SPLIT_FROM`` (and twice the batch size) changes goes
out over several batches, the checkpoint resuming inside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.mysql import source as source_module
from connectors.mysql.source import MysqlSource
from connectors.mysql.tablemap import TableMap
from tests.connectors.mysql.helpers import binding, run, settings, source_over
from tests.pipelines import mariadb_to_pg
from tests.test_cli_quickstart import cdcsync, run_json

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))"


@pytest.fixture
def source(mariadb_params: dict[str, Any]) -> Iterator[MysqlSource]:
    with source_over(mariadb_params, "t-large", TABLE) as src:
        yield src


def test_a_large_transaction_goes_out_in_parts_and_resumes_inside_it(
        source: MysqlSource, mariadb_params: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "SPLIT_FROM", 3)
    mp = mariadb_params
    start = source.log_end()
    run(mp, "INSERT INTO items (id) VALUES (1)",
        "INSERT INTO items (id) SELECT seq + 10 FROM seq_1_to_10",  # one transaction, 10 rows
        "INSERT INTO items (id) VALUES (2)")
    parts: list[Any] = []
    cp = start
    while True:
        batch = source.changes([binding()], cp, 2)
        parts.append(batch)
        cp = batch.checkpoint
        if not batch.more:
            break
    keys = [[c.key["id"] for c in b.changes] for b in parts]
    # split once the transaction alone gave max(2 x 2, 3) changes in a batch
    assert keys == [[1, 11, 12, 13, 14], [15, 16, 17, 18], [19, 20], [2]], keys
    inside = parts[0].checkpoint
    assert inside["index"] == 4 and inside["tx"] == parts[0].changes[1].txid
    positions = [c.position for b in parts for c in b.changes]
    assert positions == sorted(positions) and len(set(positions)) == 12
    # A process that dies after the first part starts again inside the transaction.
    again = MysqlSource("maria", settings(mp), pipeline="t-large")
    try:
        rest: list[Any] = []
        cp = inside
        while True:
            batch = again.changes([binding()], cp, 2)
            rest += batch.changes
            cp = batch.checkpoint
            if not batch.more:
                break
    finally:
        again.close()
    assert [c.key["id"] for c in rest] == [15, 16, 17, 18, 19, 20, 2]
    assert [c.position for c in rest] == positions[5:]


def test_each_part_decodes_only_its_own_events(
        source: MysqlSource, mariadb_params: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part used to decode every event of the parts before it again: a 300k-row
    UPDATE in 15 parts decoded 2.4M row images (95 s against 43 s for the run)."""
    monkeypatch.setattr(source_module, "SPLIT_FROM", 3)
    decoded: list[int] = []
    decode = TableMap.decode

    def counted(tm: TableMap, kind: int, buf: bytes, off: int, end: int) -> Any:
        images = decode(tm, kind, buf, off, end)
        decoded.append(len(images))
        return images

    monkeypatch.setattr(TableMap, "decode", counted)
    start = source.log_end()
    run(mariadb_params, "START TRANSACTION",
        *(f"INSERT INTO items (id) VALUES ({i})" for i in range(1, 13)), "COMMIT")
    cp, keys, parts = start, [], 0
    while True:
        batch = source.changes([binding()], cp, 2)
        keys += [c.key["id"] for c in batch.changes]
        parts += 1
        cp = batch.checkpoint
        if not batch.more:
            break
    assert keys == list(range(1, 13)) and parts >= 3
    # One rows event per INSERT, each decoded once, but the one a part stops before
    # (decoded to see that the part is full), which the next part decodes again
    assert decoded == [1] * len(decoded) and len(decoded) == 12 + parts - 1, decoded


def test_a_transaction_of_many_rows_through_the_cli(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    n = 2 * source_module.SPLIT_FROM + 5000
    run(mp, TABLE, f"INSERT INTO items SELECT seq, CONCAT('n', seq) FROM seq_1_to_{n}")
    p = mariadb_to_pg(tmp_path, mp, pg_dsn)
    cdcsync("setup", str(p))
    run_json(p)
    run(mp, "UPDATE items SET name = CONCAT(name, '+')", "DELETE FROM items WHERE id % 7 = 0")
    assert run_json(p)["totals"]["read"] == n + n // 7
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*), min(name) FROM items").fetchone() == (
            n - n // 7, "n1+")
    assert run_json(p)["totals"]["read"] == 0
