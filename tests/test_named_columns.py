"""A column that an entity's ``include:``, ``exclude:`` or ``conflict.columns`` names and
no endpoint's table has: setup and run stop, naming the entity, the name, each
endpoint's table and its columns, and the pipeline file (sync/context.py
``check_named_columns``).

Until 2026-12-07 only SQLite endpoints refused such a name: between PostgreSQL
databases, or PostgreSQL and MariaDB, ``include: [name, colour]`` (the column is
``color``) set up and ran, the target never got ``color``, and ``verify`` said in sync.
Through the real CLI.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tests.pipelines import (
    mariadb_endpoint,
    pg_endpoint,
    sqlite_endpoint,
    sqlite_run,
    write_pipeline,
)
from tests.test_cli_quickstart import cdcsync, run_json

DDL = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40), color VARCHAR(40))"
ROWS = "SELECT id, name, color FROM items ORDER BY id"


class End:
    """One endpoint of the test: its pipeline spec and a way to run SQL there."""

    def __init__(self, spec: str, run: Callable[[str], list[tuple[Any, ...]]]) -> None:
        self.spec, self.run = spec, run


def _pg(dsn: str) -> End:
    def run(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []
    return End(pg_endpoint(dsn), run)


def _mariadb(mp: Any) -> End:
    def run(sql: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(**mp, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()
    return End(mariadb_endpoint(mp), run)


def _sqlite(path: Path) -> End:
    def run(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as conn:
            return conn.execute(sql).fetchall()
    return End(sqlite_endpoint(str(path)), run)


@pytest.fixture(params=["postgres-postgres", "postgres-mariadb", "sqlite-sqlite"])
def ends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, End, End]:
    """(a pipeline name, endpoint a, endpoint b), each holding ``items``."""
    if request.param == "sqlite-sqlite":
        pair = ("named", _sqlite(tmp_path / "a.db"), _sqlite(tmp_path / "b.db"))
    else:
        from tests.connectors.postgres.helpers import pipeline_of

        dsn = request.getfixturevalue("pg_dsn_factory")()
        other = (_pg(request.getfixturevalue("pg_dsn_factory")())
                 if request.param == "postgres-postgres"
                 else _mariadb(request.getfixturevalue("mariadb_params")))
        pair = (pipeline_of(dsn), _pg(dsn), other)
    for end in pair[1:]:
        assert isinstance(end, End)
        end.run(DDL)
    return pair  # type: ignore[return-value]


def _pipeline(tmp: Path, ends: tuple[str, End, End], options: Sequence[str]) -> Path:
    name, a, b = ends
    return write_pipeline(tmp, name, {"a": a.spec, "b": b.spec}, "items",
                          {"a": "items", "b": "items"}, options=options)


def _refused(res: Any, p: Path, where: str, name: str) -> None:
    err = res.stderr
    assert "Traceback" not in err, err
    assert f"entity items: {where} names {name!r}, which no endpoint's table has" in err, err
    assert "endpoint a: table items has id, name, color" in err, err
    assert "endpoint b: table items has id, name, color" in err, err
    assert str(p) in err, err


def test_a_misspelt_include_column_stops_setup_and_run_at_every_endpoint_kind(
        tmp_path: Path, ends: tuple[str, End, End]) -> None:
    _name, a, b = ends
    a.run("INSERT INTO items VALUES (1, 'ann', 'red')")
    p = _pipeline(tmp_path, ends, ["include: [name, colour]"])
    _refused(cdcsync("setup", str(p), expect=1), p, "include", "colour")

    # Set up and run as it should be, then misspelt in the file: the run stops.
    good = p.read_text()
    p.write_text(good.replace("colour", "color"))
    cdcsync("setup", str(p))
    run_json(p)
    assert b.run(ROWS) == [(1, "ann", "red")]
    p.write_text(good)
    a.run("UPDATE items SET name = 'ANN', color = 'blue' WHERE id = 1")
    _refused(cdcsync("run", str(p), expect=1), p, "include", "colour")
    assert b.run(ROWS) == [(1, "ann", "red")]  # nothing read or applied
    _refused(cdcsync("verify", str(p), expect=None), p, "include", "colour")
    p.write_text(good.replace("colour", "color"))
    run_json(p)
    assert b.run(ROWS) == [(1, "ANN", "blue")]
    cdcsync("teardown", str(p), "--yes")


@pytest.mark.parametrize("options, where, name", [
    (["exclude: [colour]"], "exclude", "colour"),
    (["conflict: {policy: last_writer_wins, columns: {colr: {policy: priority,"
      " priority: [a]}}}"], "conflict.columns", "colr"),
])
def test_a_misspelt_exclude_or_conflict_column_stops_setup_between_postgres_databases(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], options: list[str], where: str,
        name: str) -> None:
    from tests.connectors.postgres.helpers import pipeline_of

    dsn = pg_dsn_factory()
    ends = (pipeline_of(dsn), _pg(dsn), _pg(pg_dsn_factory()))
    for end in ends[1:]:
        assert isinstance(end, End)
        end.run(DDL)
    p = _pipeline(tmp_path, ends, options)
    _refused(cdcsync("setup", str(p), expect=1), p, where, name)
    # nothing was set up: no slot, no publication
    assert ends[1].run("SELECT count(*) FROM pg_publication") == [(0,)]


def test_a_column_at_one_endpoint_only_or_renamed_is_no_error(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """A one-way target without an included column (the source has it), and an
    included name that is an entity column renamed at an endpoint (``columns:``), are
    no misspelling; the endpoint column's own name in ``include:`` is one, and says so."""
    from tests.connectors.postgres.helpers import pipeline_of

    dsn = pg_dsn_factory()
    a, b = _pg(dsn), _pg(pg_dsn_factory())
    a.run(DDL)
    a.run("INSERT INTO items VALUES (1, 'ann', 'red')")
    b.run("CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(40))")
    p = write_pipeline(tmp_path, pipeline_of(dsn), {"a": a.spec, "b": b.spec}, "items",
                       {"a": "items", "b": "items"},
                       options=["direction: one-way", "source: a", "include: [name]"])
    p.write_text(p.read_text().replace(
        'b: "items"', 'b: {table: items, columns: {name: label}}'))
    cdcsync("setup", str(p))
    run_json(p)
    assert b.run("SELECT id, label FROM items") == [(1, "ann")]

    wrong = p.read_text().replace("include: [name]", "include: [label]")
    p.write_text(wrong)
    res = cdcsync("run", str(p), expect=1)
    assert "entity items: include names 'label', which no endpoint's table has" in res.stderr
    assert "label at b is entity column name" in res.stderr, res.stderr
    assert "endpoint b: table items has id, name (its column label)" in res.stderr, res.stderr
    cdcsync("teardown", str(p), "--yes")


def test_a_sqlite_endpoint_is_refused_before_anything_is_set_up(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for db in (a, b):
        sqlite_run(db, DDL)
    p = write_pipeline(tmp_path, "named", {"a": sqlite_endpoint(str(a)),
                                           "b": sqlite_endpoint(str(b))},
                       "items", {"a": "items", "b": "items"}, options=["include: [colour]"])
    _refused(cdcsync("setup", str(p), expect=1), p, "include", "colour")
    with sqlite3.connect(a) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '_cdcsync%'"
                            ).fetchall() == []
