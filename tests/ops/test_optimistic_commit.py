"""Deciding and recording outside the state lock loses nothing to a concurrent writer.

The daemon's reader decides a batch, and a worker records apply results, before
taking the state lock (sync/capture.py decide_and_commit, sync/apply.py
record_results); under the lock each writes only if none of its key states was
saved meanwhile. These tests make another writer save in that window (from the
hook that encodes the states, which runs just before the lock is taken) and
check that its save survives and the work is done again on top of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conflict.vector import VersionVector
from sync.apply import apply_pending, apply_to_target, pending_by_target, record_results
from sync.capture import STREAM, decide_and_commit
from sync.context import PipelineContext
from sync.engine import run_pipeline
from sync.summary import RunSummary
from sync.verify import verify
from tests.ops.conftest import before_the_lock, sql

KEY = '{"id":1}'


def _decide_next(ctx: PipelineContext, summary: RunSummary) -> Any:
    ent = ctx.entities["items"]
    after = ctx.store.checkpoint(ctx.pipeline, "a", STREAM)
    batch = ctx.endpoints["a"].changes([ent.bindings["a"]], after, 100)
    assert len(batch.changes) == 1
    return decide_and_commit(ctx, "a", batch.changes, batch.checkpoint, summary)


def _loads_once_armed(monkeypatch: pytest.MonkeyPatch, ctx: PipelineContext,
                      armed: list[bool]) -> tuple[list[str], Any]:
    """The keys whose states are loaded from the store once ``armed`` holds anything
    (filled as they are), and the store's own ``load`` to put back."""
    real_load, loaded = ctx.store.load, []

    def load(pipeline: str, entity: str, wanted: Any, **kw: Any) -> Any:
        wanted = list(wanted)
        if armed:
            loaded.extend(wanted)
        return real_load(pipeline, entity, wanted, **kw)

    monkeypatch.setattr(ctx.store, "load", load)
    return loaded, real_load


def test_a_batch_decided_while_a_worker_recorded_a_result_keeps_the_result(
        ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = RunSummary(pipeline=ctx.pipeline)

    def worker_records() -> None:  # what on_applied leaves: an identity to expect back
        with ctx.store.transaction(lock="cdcsync-state:ops") as conn:
            st = ctx.store.load(ctx.pipeline, "items", [KEY], conn=conn)[KEY]
            st.at("b").pending.append("echo-of-an-earlier-write")
            ctx.store.save(conn, ctx.pipeline, "items", {KEY: st})

    before_the_lock(monkeypatch, ctx, worker_records)
    decided = _decide_next(ctx, summary)
    stored = ctx.store.load(ctx.pipeline, "items", [KEY])[KEY]
    assert stored.at("b").pending == ["echo-of-an-earlier-write"]  # not overwritten
    assert stored.content == {"id": 1, "name": "two"} == decided.states["items"][KEY].content
    assert stored.outbox == {"b"}
    assert summary.total("read") == 1  # counted once, by the decide that was committed


def test_a_result_recorded_while_the_reader_decided_a_newer_version_keeps_that_version(
        pipeline: Path, cfg: Any, ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pipeline.parent
    summary = RunSummary(pipeline=cfg.pipeline)
    ent = ctx.entities["items"]
    decided = _decide_next(ctx, summary)
    states = decided.states["items"]
    results = apply_to_target(ctx, ent, "b", pending_by_target(states)["b"], states)
    assert sql(root / "b.db", "SELECT name FROM items") == [("two",)]

    newer: list[VersionVector] = []

    def reader_decides() -> None:
        sql(root / "a.db", "UPDATE items SET name = 'three' WHERE id = 1")
        newer.append(_decide_next(ctx, RunSummary(pipeline=cfg.pipeline))
                     .states["items"][KEY].vector)

    before_the_lock(monkeypatch, ctx, reader_decides)
    record_results(ctx, ent, results, summary, mine=states, saved_at=decided.saved_at)
    stored = ctx.store.load(ctx.pipeline, "items", [KEY])[KEY]
    assert stored.content == {"id": 1, "name": "three"}  # the newer version stands
    assert stored.vector == newer[0] != results[0][1].vector
    assert stored.outbox == {"b"}  # and its apply is still due
    assert stored.at("b").known == results[0][1].vector  # b holds the older one
    apply_pending(ctx, ent, {KEY: stored}, summary)
    assert sql(root / "b.db", "SELECT name FROM items") == [("three",)]
    assert all(d.in_sync for d in verify(ctx))
    assert run_pipeline(cfg).total("applied") == 0


def test_only_the_keys_saved_meanwhile_are_recorded_on_again(
        pipeline: Path, cfg: Any, ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two keys applied; the reader saves a newer version of one of them before the
    results are recorded: that one is reloaded and recorded on as it is now, the other
    is recorded on as the worker holds it (not loaded again), each result counted once."""
    root = pipeline.parent
    ent = ctx.entities["items"]
    sql(root / "a.db", "INSERT INTO items VALUES (2, 'x')")
    after = ctx.store.checkpoint(ctx.pipeline, "a", STREAM)
    batch = ctx.endpoints["a"].changes([ent.bindings["a"]], after, 100)
    assert len(batch.changes) == 2
    decided = decide_and_commit(ctx, "a", batch.changes, batch.checkpoint,
                                RunSummary(pipeline=cfg.pipeline))
    states = decided.states["items"]
    results = apply_to_target(ctx, ent, "b", pending_by_target(states)["b"], states)
    assert sorted(sql(root / "b.db", "SELECT id, name FROM items")) == [(1, "two"), (2, "x")]

    armed: list[bool] = []

    def reader_decides() -> None:
        sql(root / "a.db", "UPDATE items SET name = 'three' WHERE id = 1")
        _decide_next(ctx, RunSummary(pipeline=cfg.pipeline))
        armed.append(True)  # the loads from here on are the worker's

    before_the_lock(monkeypatch, ctx, reader_decides)
    loaded, real_load = _loads_once_armed(monkeypatch, ctx, armed)
    summary = RunSummary(pipeline=cfg.pipeline)
    assert record_results(ctx, ent, results, summary, mine=states,
                          saved_at=decided.saved_at) == []
    assert loaded == [KEY]  # only the key the reader saved meanwhile
    # counted once each: key 2 as applied; key 1's write was of a version superseded
    # since (its newer one is still due), as when every key was recorded on again
    assert summary.total("applied") == 1
    assert summary.at("items", "a", "b").seconds == pytest.approx(sum(r[3] for r in results))
    monkeypatch.setattr(ctx.store, "load", real_load)
    one, two = (ctx.store.load(ctx.pipeline, "items", [k])[k] for k in (KEY, '{"id":2}'))
    assert one.content == {"id": 1, "name": "three"} and one.outbox == {"b"}
    assert two.outbox == set() and two.at("b").hash == two.content_hash
    apply_pending(ctx, ent, {KEY: one}, summary)
    assert all(d.in_sync for d in verify(ctx))
    assert run_pipeline(cfg).total("applied") == 0


def test_only_the_changes_of_keys_saved_meanwhile_are_decided_again(
        pipeline: Path, cfg: Any, ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of two keys; a worker records on one of them while the reader decides:
    that key's change is decided again on its state as saved, the other's decision
    stands (its state is not loaded again), and each change is counted once."""
    root = pipeline.parent
    sql(root / "a.db", "INSERT INTO items VALUES (2, 'x')")

    def worker_records() -> None:
        with ctx.store.transaction(lock="cdcsync-state:ops") as conn:
            st = ctx.store.load(ctx.pipeline, "items", [KEY], conn=conn)[KEY]
            st.at("b").pending.append("echo-of-an-earlier-write")
            ctx.store.save(conn, ctx.pipeline, "items", {KEY: st})
        armed.append(True)  # the loads from here on are the reader's, under the lock

    armed: list[bool] = []
    before_the_lock(monkeypatch, ctx, worker_records)
    loaded, real_load = _loads_once_armed(monkeypatch, ctx, armed)
    summary = RunSummary(pipeline=ctx.pipeline)
    ent = ctx.entities["items"]
    after = ctx.store.checkpoint(ctx.pipeline, "a", STREAM)
    batch = ctx.endpoints["a"].changes([ent.bindings["a"]], after, 100)
    assert len(batch.changes) == 2
    decided = decide_and_commit(ctx, "a", batch.changes, batch.checkpoint, summary)
    assert loaded == [KEY]
    monkeypatch.setattr(ctx.store, "load", real_load)
    one, two = (ctx.store.load(ctx.pipeline, "items", [k])[k] for k in (KEY, '{"id":2}'))
    assert one.at("b").pending == ["echo-of-an-earlier-write"]  # the worker's record stands
    assert one.content == {"id": 1, "name": "two"} == decided.states["items"][KEY].content
    assert two.content == {"id": 2, "name": "x"} and two.outbox == {"b"}
    assert decided.states["items"][KEY].at("b").pending == ["echo-of-an-earlier-write"]
    assert summary.total("read") == 2
    assert ctx.store.checkpoint(ctx.pipeline, "a", STREAM) == batch.checkpoint
