"""A batch run applies a batch first and saves its key states once (sync/capture.py sync_batch).

These tests act in the window between the applies and the save (from the hook
that encodes the states, which runs after the applies, just before the state
lock is taken): a run dying there, and another writer saving one of the
batch's keys there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.capture import STREAM, catch_up
from sync.context import PipelineContext
from sync.engine import run_pipeline
from sync.summary import RunSummary
from sync.verify import verify
from tests.ops.conftest import before_the_lock, sql

KEY = '{"id":1}'


def test_a_run_dying_before_the_save_reads_the_batch_again_and_finds_its_write(
        pipeline: Path, cfg: Any, ctx: PipelineContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    b = pipeline.parent / "b.db"
    before = ctx.store.checkpoint(ctx.pipeline, "a", STREAM)

    def die() -> None:
        raise KeyboardInterrupt("the run dies")

    before_the_lock(monkeypatch, ctx, die)
    with pytest.raises(KeyboardInterrupt):
        catch_up(ctx, RunSummary(pipeline=cfg.pipeline))
    assert sql(b, "SELECT name FROM items") == [("two",)]  # written...
    assert ctx.store.checkpoint(ctx.pipeline, "a", STREAM) == before  # ...nothing saved
    assert ctx.store.load(ctx.pipeline, "items", [KEY])[KEY].content == {"id": 1, "name": "one"}

    again = run_pipeline(cfg)  # reads the edit again; b's row is found to be ours
    assert again.errors == [] and again.total("read") == 1
    assert again.total("applied") == 0 and again.total("skipped") == 0, again.to_json()
    stored = ctx.store.load(ctx.pipeline, "items", [KEY])[KEY]
    assert stored.content == {"id": 1, "name": "two"} and stored.outbox == set()
    assert all(d.in_sync for d in verify(ctx))
    assert run_pipeline(cfg).total("read") == 0  # the fixed point


def _decide_next(ctx: PipelineContext, cfg: Any) -> Any:
    """What a daemon's reader does: decide the next batch of a and save it, outbox first."""
    from sync.capture import decide_and_commit

    ent = ctx.entities["items"]
    after = ctx.store.checkpoint(ctx.pipeline, "a", STREAM)
    batch = ctx.endpoints["a"].changes([ent.bindings["a"]], after, 100)
    return decide_and_commit(ctx, "a", batch.changes, batch.checkpoint,
                             RunSummary(pipeline=cfg.pipeline))


def test_a_newer_version_saved_meanwhile_stands_and_is_applied_over_our_write(
        pipeline: Path, cfg: Any, ctx: PipelineContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer (a steward's decision, a daemon's reader still running) saves a
    key of the batch between its applies and its save: the batch is decided again on
    that state, and the key's version is applied over our write."""
    a, b = pipeline.parent / "a.db", pipeline.parent / "b.db"
    newer: list[Any] = []

    def another_writer() -> None:  # decides a newer edit of the key and saves it
        sql(a, "UPDATE items SET name = 'three' WHERE id = 1")
        newer.append(_decide_next(ctx, cfg).states["items"][KEY].vector)

    before_the_lock(monkeypatch, ctx, another_writer)
    summary = RunSummary(pipeline=cfg.pipeline)
    catch_up(ctx, summary)
    assert newer, "the other writer did not run"
    stored = ctx.store.load(ctx.pipeline, "items", [KEY])[KEY]
    assert stored.content == {"id": 1, "name": "three"} and stored.vector == newer[0]
    assert stored.outbox == set()
    assert sql(b, "SELECT name FROM items") == [("three",)]
    # Our write ('two') was found to be ours, not a user edit's: nothing skipped.
    assert summary.total("skipped") == 0 and summary.total("applied") == 1, summary.to_json()
    assert all(d.in_sync for d in verify(ctx))
    assert run_pipeline(cfg).total("applied") == 0


def test_an_older_version_applied_over_our_write_meanwhile_is_overwritten(
        pipeline: Path, cfg: Any, ctx: PipelineContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon's reader decided 'two' (saved, pending at b) before the run read
    'three'; the run writes 'three' to b; a worker of that daemon, still applying
    'two', finds our write (STALE), learns its row version and writes 'two' over it.
    Our result must not be recorded as what b holds: b would keep 'two' for good."""
    from sync.apply import apply_pending

    a, b = pipeline.parent / "a.db", pipeline.parent / "b.db"
    _decide_next(ctx, cfg)  # 'two', pending at b, not applied
    sql(a, "UPDATE items SET name = 'three' WHERE id = 1")
    ent = ctx.entities["items"]

    def a_worker_applies_two() -> None:
        assert sql(b, "SELECT name FROM items") == [("three",)]  # ours, just written
        stale = ctx.store.load(ctx.pipeline, "items", [KEY])
        assert stale[KEY].content == {"id": 1, "name": "two"}
        apply_pending(ctx, ent, stale, RunSummary(pipeline=cfg.pipeline))
        assert sql(b, "SELECT name FROM items") == [("two",)]  # over ours

    before_the_lock(monkeypatch, ctx, a_worker_applies_two)
    catch_up(ctx, RunSummary(pipeline=cfg.pipeline))
    assert sql(b, "SELECT name FROM items") == [("three",)]
    stored = ctx.store.load(ctx.pipeline, "items", [KEY])[KEY]
    assert stored.content == {"id": 1, "name": "three"} and stored.outbox == set()
    assert all(d.in_sync for d in verify(ctx))
    assert run_pipeline(cfg).total("applied") == 0


def test_a_target_whose_own_writes_come_back_is_saved_before_it_is_applied(
        pipeline: Path, cfg: Any, ctx: PipelineContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``own_writes_tagged`` a batch run keeps the outbox first: a run dying
    there has applied nothing, and the next one replays the saved decision."""
    from connectors.sqlite import SqliteEndpoint

    monkeypatch.setattr(SqliteEndpoint, "own_writes_tagged", False)
    b = pipeline.parent / "b.db"

    def die() -> None:
        raise KeyboardInterrupt("the run dies")

    before_the_lock(monkeypatch, ctx, die)  # here: before the first save
    with pytest.raises(KeyboardInterrupt):
        catch_up(ctx, RunSummary(pipeline=cfg.pipeline))
    assert sql(b, "SELECT name FROM items") == [("one",)]  # nothing applied yet
    again = run_pipeline(cfg)
    assert again.total("applied") == 1 and sql(b, "SELECT name FROM items") == [("two",)]
    assert all(d.in_sync for d in verify(ctx))
