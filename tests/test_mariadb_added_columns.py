"""A column added at a MariaDB endpoint's table holds no edit of any row.

MariaDB rows have no row version the service could compare: the sink compares
their content (docs/mysql.md). A column added there (at a one-way target, for
the target's own use; or at both ends of a bidirectional entity) gave every
row one more column, so every row's content "moved": each later update or
delete of a row written before was skipped as if a user edit were on its way,
and none ever came. The target kept those rows as they were, for good.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import query, run
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def maria(mp: dict[str, Any], *sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` at MariaDB; the last statement's rows."""
    run(mp, *sql[:-1])
    return query(mp, sql[-1])


def pg_to_maria(tmp: Path, a: str, mp: dict[str, Any], *options: str) -> Path:
    return write_pipeline(tmp, pipeline_of(a), {"a": pg_endpoint(a), "m": mariadb_endpoint(mp)},
                          "c", {"a": "c", "m": "c"}, options=options)


def test_a_column_added_at_a_one_way_mariadb_target_leaves_its_rows_writable(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a, mp = pg_dsn_factory(), mariadb_params
    pg(a, "CREATE TABLE c (id int PRIMARY KEY, vc text)",
       "INSERT INTO c VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    p = pg_to_maria(tmp_path, a, mp, "direction: one-way", "source: a")
    cdcsync("setup", str(p))
    try:
        assert run_json(p)["totals"]["applied"] == 3
        # the target's own columns: one without a default, one with
        maria(mp, "ALTER TABLE c ADD COLUMN note text",
              "ALTER TABLE c ADD COLUMN flag int NOT NULL DEFAULT 7")
        pg(a, "UPDATE c SET vc = 'uno' WHERE id = 1", "DELETE FROM c WHERE id = 2")
        run = run_json(p)
        assert run["errors"] == [] and run["totals"]["applied"] == 2, run
        assert maria(mp, "SELECT id, vc, note, flag FROM c ORDER BY id") == [
            (1, "uno", None, 7), (3, "three", None, 7)]
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
    finally:
        cdcsync("teardown", str(p), "--yes", "--force", expect=None)


def test_a_column_added_at_both_ends_leaves_the_rows_writable_both_ways(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a, mp = pg_dsn_factory(), mariadb_params
    pg(a, "CREATE TABLE c (id int PRIMARY KEY, vc text)",
       "INSERT INTO c VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    maria(mp, "CREATE TABLE c (id int PRIMARY KEY, vc text)")
    p = pg_to_maria(tmp_path, a, mp, "schema_changes: add")
    cdcsync("setup", str(p))
    try:
        assert run_json(p)["totals"]["applied"] == 3
        pg(a, "ALTER TABLE c ADD COLUMN extra int")
        maria(mp, "ALTER TABLE c ADD COLUMN extra int")
        pg(a, "UPDATE c SET vc = 'uno' WHERE id = 1", "DELETE FROM c WHERE id = 2")
        maria(mp, "UPDATE c SET vc = 'tres' WHERE id = 3")
        run = run_json(p)
        assert run["errors"] == [], run
        assert maria(mp, "SELECT id, vc, extra FROM c ORDER BY id") == [
            (1, "uno", None), (3, "tres", None)]
        assert pg(a, "SELECT id, vc, extra FROM c ORDER BY id") == [
            (1, "uno", None), (3, "tres", None)]
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--yes", "--force", expect=None)


def test_only_columns_at_the_end_holding_what_the_alter_gave_them_are_set_aside() -> None:
    from conflict.canonical import row_hash
    from sync.unedited import holds_known

    known = row_hash({"id": 1, "vc": "a"})
    told = {"note": None, "flag": 7}

    def defaults(columns: object) -> dict[str, object]:
        return told

    assert holds_known({"id": 1, "vc": "a"}, known, ["id"], defaults)
    assert holds_known({"id": 1, "vc": "a", "note": None, "flag": 7}, known, ["id"], defaults)
    # an edit: the value, or a NULL where the column's default filled the rows
    assert not holds_known({"id": 1, "vc": "b", "note": None}, known, ["id"], defaults)
    assert not holds_known({"id": 1, "vc": "a", "flag": None}, known, ["id"], defaults)
    assert not holds_known({"id": 1, "vc": "a", "flag": 8}, known, ["id"], defaults)
    # a column whose default is not known, or one that is not at the end
    assert not holds_known({"id": 1, "vc": "a", "other": None}, known, ["id"], defaults)
    assert not holds_known({"id": 1, "note": None, "vc": "a"}, known, ["id"], defaults)
