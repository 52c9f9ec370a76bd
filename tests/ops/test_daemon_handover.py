"""The daemon's reader hands the states it saved to its own appliers (in-process broker):
an applier takes them instead of loading them again, each once, and only where every
message stays in the process (sync/daemon/runtime.py hand_over/take)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from config import load_pipeline
from sync.capture import STREAM, decide_and_commit, source_entities
from sync.daemon.broker import make_broker
from sync.daemon.runtime import Runtime
from sync.daemon.worker import _apply_keys, handle
from sync.engine import run_pipeline
from sync.events import expand
from sync.summary import RunSummary
from tests.ops.conftest import PIPELINE, setup, sql


@pytest.fixture
def cfg(tmp_path: Path) -> Any:
    """The ops pipeline (SQLite a <-> b) after its snapshot, row 1 then edited at a."""
    for name in ("a", "b"):
        sql(tmp_path / f"{name}.db",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    sql(tmp_path / "a.db", "INSERT INTO items VALUES (1, 'one')")
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE)
    setup(path)
    loaded = load_pipeline(path)
    run_pipeline(loaded)
    sql(tmp_path / "a.db", "UPDATE items SET name = 'two' WHERE id = 1")
    return loaded


@pytest.fixture
def rt(cfg: Any) -> Iterator[Runtime]:
    runtime = Runtime(cfg, StubBroker(), handle)
    yield runtime
    runtime.close()


def _read_and_decide(rt: Runtime) -> tuple[list[str], Any]:
    """What a reader does: read a's log, decide and commit the batch with its outbox."""
    ctx = rt.ctx()
    bindings = [e.bindings["a"] for e in source_entities(ctx, "a")]
    batch = ctx.endpoints["a"].changes(
        bindings, ctx.store.checkpoint(ctx.pipeline, "a", STREAM), 100)
    decided = decide_and_commit(ctx, "a", expand(ctx, "a", batch), batch.checkpoint,
                                RunSummary(pipeline=ctx.pipeline))
    keys = [k for k, st in decided.states["items"].items() if st.outbox]
    assert len(keys) == 1
    return keys, decided


def test_an_applier_takes_the_handed_states_instead_of_loading_them(
        rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys, decided = _read_and_decide(rt)
    rt.hand_over("items", {k: decided.states["items"][k] for k in keys}, decided.saved_at)
    ctx = rt.ctx()
    real_load = ctx.store.load
    loaded: list[str] = []

    def load(pipeline: str, entity: str, wanted: Any, **kw: Any) -> Any:
        wanted = list(wanted)
        loaded.extend(wanted)
        return real_load(pipeline, entity, wanted, **kw)

    monkeypatch.setattr(ctx.store, "load", load)
    assert _apply_keys(rt, "items", keys, {}) == []
    assert loaded == []  # taken as the reader saved them
    assert sql(tmp_path / "b.db", "SELECT name FROM items WHERE id = 1") == [("two",)]
    assert ctx.store.outbox_keys(ctx.pipeline, "items") == []
    assert rt.take("items", keys) == ({}, {})  # each is taken once
    assert _apply_keys(rt, "items", keys, {}) == []  # a second message loads them
    assert loaded == keys


def test_a_save_after_the_hand_over_is_noticed(rt: Runtime, tmp_path: Path) -> None:
    """Someone saves the key after the reader handed it over (here: the applier of an
    earlier message, which loaded it): the applier taking the handed state finds its
    target already holds the version (ALREADY or a compare-and-set skip), and records
    on the state as saved now, never over it."""
    keys, decided = _read_and_decide(rt)
    handed = {k: decided.states["items"][k] for k in keys}
    assert _apply_keys(rt, "items", keys, {}) == []  # loaded: applied and saved
    rt.hand_over("items", handed, decided.saved_at)  # now stale
    assert _apply_keys(rt, "items", keys, {}) == []
    ctx = rt.ctx()
    assert ctx.store.outbox_keys(ctx.pipeline, "items") == []
    assert sql(tmp_path / "b.db", "SELECT name FROM items WHERE id = 1") == [("two",)]
    st = ctx.store.load(ctx.pipeline, "items", keys)[keys[0]]
    assert st.outbox == set() and st.at("b").hash == st.content_hash


def test_nothing_is_handed_over_through_a_shared_broker(cfg: Any) -> None:
    """With Redis, another process's worker may take the message: the state stays in
    the store, where it loads it."""
    runtime = Runtime(cfg, make_broker("redis://127.0.0.1:6379/15"), handle)
    try:
        keys, decided = _read_and_decide(runtime)
        runtime.hand_over("items", {k: decided.states["items"][k] for k in keys},
                          decided.saved_at)
        assert runtime.take("items", keys) == ({}, {})
    finally:
        runtime.close()
