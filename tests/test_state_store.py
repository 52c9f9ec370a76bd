"""The state store: Alembic migrations applied on open, and one transaction per batch with
set-based writes, never a round trip per row (issue 2, item 4). PostgreSQL as the store:
tests/test_state_store_postgres.py."""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from config import load_pipeline
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from sync.state import open_store

MIGRATIONS = Path(__file__).resolve().parent.parent / "sync" / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def revisions(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        got = {r[0] for r in c.execute("SELECT version_num FROM alembic_version")}
    c.close()
    return got


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        got = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    c.close()
    return got


def test_a_new_store_is_created_at_the_newest_revision(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "state.db"
    store = open_store(f"sqlite:///{db}")
    store.close()
    heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    assert revisions(db) == heads
    assert {"checkpoints", "key_states", "outbox", "conflicts", "runs", "audit",
            "quarantine", "leases", "marks"} <= tables(db)


def test_the_migrations_make_the_schema_the_code_declares(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import sync.quality.store  # noqa: F401  (declares the quarantine table)
    from sync.state import schema

    db = tmp_path / "state.db"
    open_store(f"sqlite:///{db}").close()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    engine.dispose()
    assert diff == []


def test_an_older_store_is_upgraded_on_open_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite:///{db}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")  # the first release's schema
    engine.dispose()
    assert revisions(db) == {"0001"} and "quarantine" not in tables(db)
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO checkpoints (pipeline, endpoint, entity, checkpoint, updated_at) "
                  "VALUES ('p', 'crm', '*', '{\"seq\": 7}', 1.0)")
    c.close()

    store = open_store(url)
    try:
        assert store.checkpoint("p", "crm", "*") == {"seq": 7}
    finally:
        store.close()
    assert "0001" not in revisions(db) and "quarantine" in tables(db)


# --- batching ------------------------------------------------------------------------------


def one_batch_of(tmp_path: Path, n: int) -> collections.Counter[str]:
    """The state store's traffic for a run that reads ``n`` inserts in one batch."""
    for db in ("a.db", "b.db"):
        with sqlite3.connect(tmp_path / db) as c:
            c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        c.close()
    p = tmp_path / "p.yaml"
    p.write_text("pipeline: batching\nstate: {url: sqlite:///state.db}\n"
                 "endpoints:\n  a: {kind: sqlite, path: a.db}\n  b: {kind: sqlite, path: b.db}\n"
                 "entities:\n  items: {key: [id], endpoints: {a: items, b: items}}\n")
    cfg = load_pipeline(p)
    list(setup_pipeline(cfg, "setup"))
    run_pipeline(cfg)  # the (empty) snapshot
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(n)])
    c.close()

    counts: collections.Counter[str] = collections.Counter()

    def executed(_c: Any, _cur: Any, _sql: str, params: Any, _ctx: Any, many: bool) -> None:
        counts["statements"] += 1
        counts["rows"] += len(params) if many else 1

    def committed(_c: Any) -> None:
        counts["commits"] += 1

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", executed)
    sa.event.listen(sa.engine.Engine, "commit", committed)
    try:
        summary = run_pipeline(cfg)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", executed)
        sa.event.remove(sa.engine.Engine, "commit", committed)
    assert summary.total("applied") == n
    with sqlite3.connect(tmp_path / "b.db") as c:
        assert c.execute("SELECT count(*) FROM items").fetchone() == (n,)
    c.close()
    return counts


def test_a_batch_costs_the_same_statements_and_transactions_whatever_its_size(
    tmp_path: Path,
) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = one_batch_of(tmp_path / "small", 50)
    large = one_batch_of(tmp_path / "large", 2000)
    # Same transactions; statements grow only by the 500-key chunks of IN lists (four
    # per chunk: the load, the stamp check, the outbox delete, the marks' clearing).
    assert large["commits"] == small["commits"]
    assert large["statements"] <= small["statements"] + 4 * (2000 // 500 - 1), (small, large)
    assert large["statements"] < 100
    # The rows themselves travel in executemany calls, each key state written once (a
    # batch run applies before it saves: sync/capture.py sync_batch), with one mark
    # per key before the applies (b is also read: _mark_read_targets).
    assert 2 * 2000 <= large["rows"] < 3 * 2000, large
