"""``verify`` merges the endpoints by key as it reads them where the key is integers.

It held the reference's key hashes in memory (369 MB for 500k rows): a table of
tens of millions of rows would exhaust the machine. Integer keys are now
matched as read, a chunk at a time; other keys (ordered by each server's
collation) are still compared against the reference held. Both ways must find
exactly the drift the data has, which these tests make at random against
PostgreSQL and SQLite, chunks smaller than the tables.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from config.loader import load_pipeline
from sync.context import open_pipeline
from sync.verify import EntityDrift, _held, verify
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_wide_dates import pg


def _drift(p: Path) -> tuple[EntityDrift, EntityDrift]:
    """What ``verify`` reports, and the same entity compared against the reference held."""
    cfg = load_pipeline(p)
    with open_pipeline(cfg) as ctx:
        (found,) = verify(ctx)
        held = EntityDrift(found.entity, found.reference)
        ent = ctx.entities[found.entity]
        _held(ctx, ent, held, [ep for ep in ent.bindings if ep != found.reference], None)
    return found, held


def _expected(ref: dict[object, str], other: dict[object, str], text: Callable[[object], str]
              ) -> tuple[set[str], set[str], set[str]]:
    return ({text(k) for k in ref if k not in other}, {text(k) for k in other if k not in ref},
            {text(k) for k in ref if k in other and ref[k] != other[k]})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_integer_keys_are_merged_as_read_and_find_the_drift_the_data_has(
        tmp_path: Path, pg_dsn: str, seed: int) -> None:
    """A PostgreSQL reference, a PostgreSQL and two SQLite endpoints, each missing some
    of its rows, holding some of its own and some with other content; one of them
    empty. Chunks of 7 rows, so rounds end inside the tables."""
    rnd = random.Random(seed)
    ref = {(a, b): f"v{a}.{b}" for a in range(40) for b in range(3) if rnd.random() < 0.8}
    tables: dict[str, dict[tuple[int, int], str]] = {}
    for name in ("p2", "s1", "s2"):
        rows = {k: (v if rnd.random() < 0.8 else v + "!") for k, v in ref.items()
                if rnd.random() < 0.9}
        rows.update({(rnd.randrange(-5, 45), rnd.randrange(3)): "own" for _ in range(6)})
        tables[name] = rows
    tables["s2"] = {}
    ddl = "CREATE TABLE {} (a bigint, b int, v text, PRIMARY KEY (a, b))"
    pg(pg_dsn, ddl.format("p1"), ddl.format("p2"))
    for name, rows in (("p1", ref), ("p2", tables["p2"])):
        if rows:
            pg(pg_dsn, f"INSERT INTO {name} VALUES "
               + ", ".join(f"({a}, {b}, '{v}')" for (a, b), v in rows.items()))
    for name in ("s1", "s2"):
        with sqlite3.connect(tmp_path / f"{name}.db") as db:
            db.execute("CREATE TABLE t (a INTEGER, b INTEGER, v TEXT, PRIMARY KEY (a, b))")
            db.executemany("INSERT INTO t VALUES (?, ?, ?)",
                           [(a, b, v) for (a, b), v in tables[name].items()])
        db.close()
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"p1": pg_endpoint(pg_dsn), "p2": pg_endpoint(pg_dsn),
                        "s1": sqlite_endpoint("s1.db"), "s2": sqlite_endpoint("s2.db")},
                       "t", {"p1": "p1", "p2": "p2", "s1": "t", "s2": "t"}, key=("a", "b"))
    p.write_text(p.read_text() + "batch: {snapshot_chunk: 7}\n")
    found, held = _drift(p)
    assert found.reference == "p1" and found.method == "merged" and held.method == "held"
    assert found.rows == held.rows == {"p1": len(ref), **{n: len(t) for n, t in tables.items()}}

    def text(k: object) -> str:
        a, b = k  # type: ignore[misc]
        return f'{{"a":{a},"b":{b}}}'

    for name, rows in tables.items():
        missing, extra, differing = _expected(ref, rows, text)
        for d in (found, held):
            assert (set(d.missing[name]), set(d.extra[name]), set(d.differing[name])) == (
                missing, extra, differing), (d.method, name)
        assert len(found.missing[name]) == len(missing)  # each once
    assert not found.in_sync and found.missing["s2"]


def test_text_keys_in_a_collations_order_are_compared_with_the_reference_held(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """An ICU collation orders ``a`` before ``B`` (Python, ``B`` first): such keys are
    not merged, and the drift is still found exactly."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, 'CREATE TABLE t (k text COLLATE "und-x-icu" PRIMARY KEY, v int)',
       "INSERT INTO t VALUES ('a', 1), ('B', 2), ('c', 3), ('D', 4)")
    pg(b, "CREATE TABLE t (k text PRIMARY KEY, v int)",
       "INSERT INTO t VALUES ('a', 1), ('B', 20), ('D', 4), ('e', 5)")
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "t", {"a": "t", "b": "t"}, key=("k",))
    found, _ = _drift(p)
    assert found.method == "held"
    assert (found.missing["b"], found.extra["b"], found.differing["b"]) == (
        ['{"k":"c"}'], ['{"k":"e"}'], ['{"k":"B"}'])


def test_a_column_one_endpoint_lacks_is_not_compared(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """A column dropped at the source stays at the targets (they keep their data): every
    row was reported differing, for ever. Endpoints are compared on the columns both
    have, the others listed as not compared; rows that differ there still do."""
    a, b = pg_dsn_factory(), pg_dsn_factory()
    pg(a, "CREATE TABLE t (id int PRIMARY KEY, v int)",
       "INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)")
    pg(b, "CREATE TABLE t (id int PRIMARY KEY, v int, note text)",
       "INSERT INTO t VALUES (1, 1, 'kept'), (2, 20, NULL), (4, 4, 'x')")
    with sqlite3.connect(tmp_path / "s.db") as db:  # the same columns as the reference
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(1, 1), (2, 2), (3, 30)])
    db.close()
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b),
                                                  "s": sqlite_endpoint("s.db")},
                       "t", {"a": "t", "b": "t", "s": "t"},
                       options=["direction: one-way", "source: a"])
    found, _ = _drift(p)
    assert found.uncompared == {"b": ["note"], "s": []}
    assert (found.missing, found.extra, found.differing) == (
        {"b": ['{"id":3}'], "s": []}, {"b": ['{"id":4}'], "s": []},
        {"b": ['{"id":2}'], "s": ['{"id":3}']})
    assert found.rows == {"a": 3, "b": 3, "s": 3}
