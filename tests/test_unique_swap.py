"""Rows that exchange or hand on the values of a unique column in one source transaction.

The source goes through a third value (``2 -> tmp``, ``3 -> b``, ``2 -> c``),
or frees a value before another row takes it (``DELETE 1``, ``4 -> a``); a
batch holds each key's last row only, written in an order of the sink's
(upserts by column set, deletes apart), so a write can find its value still held
by a row that a later statement of the batch changes. A target whose constraint
checks row by row refused those rows (dead letters), and a requeue failed the
same way, for ever. At a PostgreSQL target whose constraint is ``DEFERRABLE``
the sink now defers it to the batch's commit, where the rows are consistent
again; where it is not, the dead letter says so. Through the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

SWAP = ("BEGIN", "UPDATE s SET v = 40 WHERE id = 4",  # (key 4 first in the batch)
        "DELETE FROM s WHERE id = 1", "UPDATE s SET slot = 'a' WHERE id = 4",
        "UPDATE s SET slot = 'tmp' WHERE id = 2", "UPDATE s SET slot = 'b' WHERE id = 3",
        "UPDATE s SET slot = 'c' WHERE id = 2", "COMMIT")


def test_a_swap_of_unique_values_arrives_where_the_constraint_is_deferrable(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    src, dst = pg_dsn_factory(), pg_dsn_factory()
    pg(src, "CREATE TABLE s (id int PRIMARY KEY, slot text NOT NULL UNIQUE, v int)",
       "INSERT INTO s VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, 'q', 4)")
    pg(dst, "CREATE TABLE d (id int PRIMARY KEY, slot text NOT NULL UNIQUE DEFERRABLE, v int)",
       "CREATE TABLE n (id int PRIMARY KEY, slot text NOT NULL UNIQUE, v int)")
    p = write_pipeline(tmp_path, pipeline_of(src),
                       {"a": pg_endpoint(src), "d": pg_endpoint(dst), "n": pg_endpoint(dst)},
                       "s", {"a": "s", "d": "d", "n": "n"},
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    try:
        assert run_json(p)["totals"]["applied"] == 8
        pg(src, *SWAP)
        run_json(p, expect=3)  # the dead letters at n wait
        want = [(2, "c", 2), (3, "b", 3), (4, "a", 40)]
        assert pg(dst, "SELECT * FROM d ORDER BY id") == want
        assert pg(dst, "SELECT * FROM n ORDER BY id") != want
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert [d["target"] for d in letters] == ["n"], letters
        assert "make it DEFERRABLE" in letters[0]["error"], letters[0]["error"]
        # What the letter says to do, then a requeue: the swap arrives there too.
        pg(dst, "ALTER TABLE n DROP CONSTRAINT n_slot_key,"
                " ADD CONSTRAINT n_slot_key UNIQUE (slot) DEFERRABLE")
        cdcsync("dlq", "requeue", str(p), str(letters[0]["id"]))
        run_json(p)
        assert pg(dst, "SELECT * FROM n ORDER BY id") == want
        # Later changes go on, and a genuine duplicate is still refused at commit.
        pg(dst, "INSERT INTO d VALUES (9, 'z', 0)")  # (a row of d's own)
        pg(src, "UPDATE s SET slot = 'z', v = 10 WHERE id = 3")
        run_json(p, expect=3)
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert [(d["target"], d["keys"]) for d in letters] == [("d", ['{"id":3}'])], letters
        assert "make it DEFERRABLE" not in letters[0]["error"]  # (it is)
        assert pg(dst, "SELECT slot, v FROM d WHERE id = 3") == [("b", 3)]
        assert pg(dst, "SELECT slot, v FROM n WHERE id = 3") == [("z", 10)]
    finally:
        cdcsync("teardown", str(p), "--force")
