"""A PostgreSQL endpoint the pipeline only writes to has no slot: nothing would read it,
and an unread slot holds the whole cluster's WAL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from config.loader import load_pipeline
from sync.engine import run_pipeline
from sync.setup import setup_pipeline, teardown_pipeline
from tests.connectors.postgres.helpers import pipeline_of, query, sql


def _config(tmp: Path, a: str, b: str, direction: str) -> Path:
    path = tmp / "pipeline.yaml"
    source = "\n    source: a" if direction == "one-way" else ""
    path.write_text(f"""
pipeline: {pipeline_of(a)}
state: {{url: "sqlite:///{tmp}/state.db"}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  items:
    key: [id]
    direction: {direction}{source}
    endpoints:
      a: {{table: items}}
      b: {{table: items}}
""")
    return path


def _capture(dsn: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The slots and publications of the database."""
    return (query(dsn, "SELECT slot_name FROM pg_replication_slots"
                       " WHERE database = current_database()"),
            query(dsn, "SELECT pubname FROM pg_publication"))


def test_a_one_way_target_has_no_slot_and_loses_one_an_earlier_setup_made(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        sql(dsn, "CREATE TABLE items (id int PRIMARY KEY, v text)")
    sql(a, "INSERT INTO items VALUES (1, 'x'), (2, 'y')")
    both = load_pipeline(_config(tmp_path, a, b, "bidirectional"))
    setup_pipeline(both)
    assert all(len(found) == 1 for dsn in (a, b) for found in _capture(dsn))
    one_way = load_pipeline(_config(tmp_path, a, b, "one-way"))
    try:
        done = setup_pipeline(one_way)
        dropped = [line for line in done if line.startswith("b: dropped")]
        assert len(dropped) == 2 and all("only writes to" in line for line in dropped), done
        assert _capture(b) == ([], [])
        assert all(len(found) == 1 for found in _capture(a))  # the source keeps its own
        summary = run_pipeline(one_way).to_json()
        assert summary["errors"] == [] and summary["totals"]["applied"] == 2, summary
        sql(a, "UPDATE items SET v = 'z' WHERE id = 2")
        assert run_pipeline(one_way).to_json()["totals"]["applied"] == 1
        assert query(b, "SELECT id, v FROM items ORDER BY id") == [(1, "x"), (2, "z")]
        again = setup_pipeline(one_way)  # idempotent: nothing made at b, nothing dropped
        assert not any(line.startswith("b: dropped") for line in again), again
        assert _capture(b) == ([], [])
    finally:
        teardown_pipeline(one_way, force=True)
    assert _capture(a) == ([], [])
