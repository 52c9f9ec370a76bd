"""The daemon's reader hands the states it saved to its own appliers (in-process broker):
an applier takes them instead of loading them again, each once, and only where every
message stays in the process (sync/daemon/runtime.py hand_over/take)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from sync.daemon.broker import make_broker
from sync.daemon.runtime import Runtime
from sync.daemon.worker import _apply_keys, handle
from tests.daemon.helpers import decide_as_a_reader
from tests.ops.conftest import sql


@pytest.fixture
def rt(cfg: Any, ctx: Any) -> Iterator[Runtime]:
    """A daemon process's runtime on the ops pipeline, row 1 edited at a (``ctx``)."""
    runtime = Runtime(cfg, StubBroker(), handle)
    yield runtime
    runtime.close()


def _read_and_decide(rt: Runtime) -> tuple[list[str], Any]:
    keys, decided = decide_as_a_reader(rt.ctx(), "a")
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


def test_nothing_is_handed_over_through_a_shared_broker(cfg: Any, ctx: Any) -> None:
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


def test_a_state_an_applier_recorded_on_after_its_save_is_never_taken(
        rt: Runtime) -> None:
    """The reader saved a key, an applier then recorded a result on it, and only then
    the reader hands its (now stale) state over, or handed it over just before: either
    way no applier takes it. A state saved after the record is taken."""
    from conflict.protocol import KeyState

    st = KeyState()
    with rt.saving():  # handed over after the record
        rt.recorded("items", ["k"], at=10.0)
        rt.hand_over("items", {"k": st}, saved_at=5.0)
    assert rt.take("items", ["k"]) == ({}, {})
    rt.hand_over("items", {"k": st}, saved_at=5.0)  # handed over before the record
    rt.recorded("items", ["k"], at=10.0)
    assert rt.take("items", ["k"]) == ({}, {})
    with rt.saving():
        rt.recorded("items", ["k"], at=10.0)
        rt.hand_over("items", {"k": st}, saved_at=20.0)  # saved after the record
    assert rt.take("items", ["k"]) == ({"k": st}, {"k": 20.0})
    assert rt._recorded == {}  # kept only while a reader is saving


def test_a_clock_stepped_back_does_not_make_a_stale_hand_over_look_fresh(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader saves and hands over, the wall clock steps back an hour (NTP), then an
    applier records on the key: the record still counts as after the save."""
    import time

    from conflict.protocol import KeyState
    from sync.state.store import new_stamp

    st = KeyState()
    saved_at = new_stamp()
    rt.hand_over("items", {"k": st}, saved_at=saved_at)
    monkeypatch.setattr(time, "time", lambda: saved_at - 3600.0)
    rt.recorded("items", ["k"])
    assert rt.take("items", ["k"]) == ({}, {})


def test_the_hand_over_fills_up_to_its_cap_and_replaces_what_waits(rt: Runtime) -> None:
    """Past the cap (one batch of states) keys not waiting are left out, as many as do
    not fit, rather than the whole batch; a key already waiting gets its newer state."""
    from conflict.protocol import KeyState

    rt._hand_cap = 3
    old, new = KeyState(), KeyState()
    rt.hand_over("items", {"a": old, "b": KeyState()}, saved_at=1.0)
    rt.hand_over("items", {"a": new, "c": KeyState(), "d": KeyState()}, saved_at=2.0)
    states, stamps = rt.take("items", ["a", "b", "c", "d"])
    assert sorted(states) == ["a", "b", "c"]  # "d" did not fit: its applier loads it
    assert states["a"] is new and stamps["a"] == 2.0
