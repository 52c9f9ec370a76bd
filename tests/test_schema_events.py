"""Schema changes and truncates read from PostgreSQL's log, handled by the entity's policy."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from config import load_pipeline
from connectors.base import SchemaError
from connectors.registry import open_endpoint
from sync.context import bindings_for
from sync.engine import run_pipeline


def q(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else []


def pipeline(tmp: Path, a: str, b: str, *, schema: str = "stop", truncate: str = "ignore",
             both: bool = False) -> Any:
    """The pipeline a -> b of table ``t`` (``both``: both ways), set up."""
    p = tmp / "p.yaml"
    p.write_text(f"""
pipeline: ev{random.randrange(10**6)}
state: {{url: "sqlite:///{tmp}/state.db"}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  t:
    key: [id]
    {"" if both else "direction: one-way"}
    {"" if both else "source: a"}
    endpoints: {{a: t, b: t}}
    schema_changes: {schema}
    truncate: {truncate}
""")
    cfg = load_pipeline(p)
    for name, settings in cfg.endpoints.items():
        ep = open_endpoint(name, settings, pipeline=cfg.pipeline)
        try:
            ep.setup([bindings_for(cfg, "t")[name]], cfg.pipeline)
        finally:
            ep.close()
    return cfg


@pytest.fixture
def two(pg_dsn_factory: Callable[[], str]) -> tuple[str, str]:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        q(dsn, "CREATE TABLE t (id int PRIMARY KEY, name text)")
    q(a, "INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    return a, b


def test_added_column_is_added_at_the_target(tmp_path: Path, two: tuple[str, str]) -> None:
    a, b = two
    cfg = pipeline(tmp_path, a, b, schema="add")
    run_pipeline(cfg)
    q(a, "ALTER TABLE t ADD COLUMN score numeric(6,2)")
    q(a, "INSERT INTO t VALUES (3, 'three', 7.50)")
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT id, name, score FROM t ORDER BY id") == [
        (1, "one", None), (2, "two", None), (3, "three", 7.5)]


@pytest.mark.parametrize("both", [False, True])
def test_a_column_added_with_a_default_holds_it_at_the_target_too(
        tmp_path: Path, two: tuple[str, str], caplog: pytest.LogCaptureFixture,
        both: bool) -> None:
    """PostgreSQL's fast default fills the rows already there and logs nothing. The
    target's column is added with the value those rows hold (the source's
    ``attmissingval``) as its default, so its rows hold it too; until 2026-12-07 they
    held NULL until a resync. Both ways, the next run has nothing to apply."""
    a, b = two
    cfg = pipeline(tmp_path, a, b, schema="add", both=both)
    run_pipeline(cfg)
    q(a, "ALTER TABLE t ADD COLUMN score int DEFAULT 5")
    q(a, "ALTER TABLE t ADD COLUMN tag text DEFAULT 'it''s new'")
    q(a, "ALTER TABLE t ADD COLUMN note text")
    q(a, "INSERT INTO t VALUES (3, 'three', 7, 'x', 'n')")
    run_pipeline(load_pipeline(cfg.path))
    want = [(1, 5, "it's new", None), (2, 5, "it's new", None), (3, 7, "x", "n")]
    for dsn in (a, b):
        assert q(dsn, "SELECT id, score, tag, note FROM t ORDER BY id") == want
    assert not [r for r in caplog.records if "until each is edited" in r.getMessage()]
    again = run_pipeline(load_pipeline(cfg.path))
    assert again.total("applied") == again.total("resolved") == again.total("parked") == 0
    # the target's column has the default: a row made there without the column holds it
    assert q(b, "INSERT INTO t (id, name) VALUES (4, 'four') RETURNING score") == [(5,)]
    if both:
        run_pipeline(load_pipeline(cfg.path))
        assert q(a, "SELECT id, score, tag FROM t WHERE id = 4") == [(4, 5, "it's new")]


def test_a_column_added_with_a_volatile_default_warns_of_the_rows_it_filled(
        tmp_path: Path, two: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """A volatile default makes PostgreSQL write every row, logging nothing, and keep no
    value for them: at the target they hold NULL. The run says so and names the resync
    that brings them over."""
    a, b = two
    cfg = pipeline(tmp_path, a, b, schema="add")
    run_pipeline(cfg)
    q(a, "ALTER TABLE t ADD COLUMN score int DEFAULT (5 + 0 * random())::int")
    q(a, "INSERT INTO t VALUES (3, 'three', 7)")
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT id, score FROM t ORDER BY id") == [(1, None), (2, None), (3, 7)]
    said = [r.getMessage() for r in caplog.records if "gained score" in r.getMessage()]
    assert said and f"cdcsync resync {cfg.pipeline} t" in said[0] and "NULL at b" in said[0]
    from sync.setup import resync

    resync(load_pipeline(cfg.path), ["t"])
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT id, score FROM t ORDER BY id") == [(1, 5), (2, 5), (3, 7)]


def test_the_resync_after_a_column_added_with_a_default_keeps_the_values_both_ways(
        tmp_path: Path, two: tuple[str, str]) -> None:
    """Both ways, the resync read b's rows (NULL in the new column) as edits concurrent
    with a's (its default), and the policy kept b's NULL: a's values were overwritten."""
    a, b = two
    cfg = pipeline(tmp_path, a, b, schema="add", both=True)
    run_pipeline(cfg)
    q(a, "ALTER TABLE t ADD COLUMN score int DEFAULT (5 + 0 * random())::int")
    q(a, "INSERT INTO t VALUES (3, 'three', 7)")
    run_pipeline(load_pipeline(cfg.path))
    from sync.setup import resync

    resync(load_pipeline(cfg.path), ["t"])
    summary = run_pipeline(load_pipeline(cfg.path))
    want = [(1, 5), (2, 5), (3, 7)]
    assert q(a, "SELECT id, score FROM t ORDER BY id") == want
    assert q(b, "SELECT id, score FROM t ORDER BY id") == want
    assert summary.total("resolved") == summary.total("parked") == 0


def test_added_column_stops_the_run_without_losing_the_change(
        tmp_path: Path, two: tuple[str, str]) -> None:
    a, b = two
    cfg = pipeline(tmp_path, a, b, schema="stop")
    run_pipeline(cfg)
    q(a, "ALTER TABLE t ADD COLUMN score int")
    q(a, "INSERT INTO t VALUES (3, 'three', 7)")
    with pytest.raises(SchemaError, match=r"gained columns score.*schema_changes: stop"):
        run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT count(*) FROM t WHERE id = 3") == [(0,)]
    # The user adds the column at the target and switches the policy: the row arrives.
    q(b, "ALTER TABLE t ADD COLUMN score int")
    text = cfg.path.read_text().replace("schema_changes: stop", "schema_changes: add")
    cfg.path.write_text(text)
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT id, name, score FROM t WHERE id = 3") == [(3, "three", 7)]


def test_added_column_ignored(tmp_path: Path, two: tuple[str, str]) -> None:
    a, b = two
    cfg = pipeline(tmp_path, a, b, schema="ignore")
    run_pipeline(cfg)
    q(a, "ALTER TABLE t ADD COLUMN secret text")
    q(a, "INSERT INTO t VALUES (3, 'three', 'hush')")
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT id, name FROM t ORDER BY id") == [(1, "one"), (2, "two"), (3, "three")]
    assert q(b, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't' "
                "AND column_name = 'secret'") == [(0,)]


@pytest.mark.parametrize(("mode", "left"), [("propagate", 0), ("ignore", 2)])
def test_truncate_by_policy(tmp_path: Path, two: tuple[str, str], mode: str, left: int) -> None:
    a, b = two
    cfg = pipeline(tmp_path, a, b, truncate=mode)
    run_pipeline(cfg)
    assert q(b, "SELECT count(*) FROM t") == [(2,)]
    q(a, "TRUNCATE t")
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT count(*) FROM t") == [(left,)]


def test_a_column_dropped_at_one_endpoint_stops_the_run_instead_of_coming_back(
        tmp_path: Path, two: tuple[str, str]) -> None:
    """With ``schema_changes: add``, the run took b's dropped column for one a had
    gained and added it back at b (its warning said a "gained" it)."""
    a, b = two
    for dsn in two:
        q(dsn, "ALTER TABLE t ADD COLUMN note text")
    q(a, "UPDATE t SET note = 'n' || id")
    cfg = pipeline(tmp_path, a, b, schema="add", both=True)
    run_pipeline(cfg)
    q(b, "ALTER TABLE t DROP COLUMN note")
    q(a, "UPDATE t SET name = 'ONE', note = 'N1' WHERE id = 1")
    with pytest.raises(SchemaError, match=r"table t at b has no column note, which entity"
                       r" t synchronises and its rows held: dropped at b\? .*"
                       r" \(`exclude: \[note\]`\)"):
        run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT column_name FROM information_schema.columns WHERE table_name = 't'"
             " ORDER BY ordinal_position") == [("id",), ("name",)]
    cfg.path.write_text(cfg.path.read_text().replace("schema_changes: add",
                                                     "schema_changes: add\n    exclude: [note]"))
    run_pipeline(load_pipeline(cfg.path))
    assert q(b, "SELECT * FROM t ORDER BY id") == [(1, "ONE"), (2, "two")]
    assert q(a, "SELECT * FROM t ORDER BY id") == [(1, "ONE", "N1"), (2, "two", "n2")]
