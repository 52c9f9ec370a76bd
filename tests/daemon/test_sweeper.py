"""The sweeper re-sends outbox keys whose message was lost (sync/daemon/sweeper.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from conflict.protocol import KeyState, ParkedConflict
from sync.daemon.sweeper import sweep
from sync.state import open_store


def _runtime(tmp: Path, saved: dict[str, float]) -> SimpleNamespace:
    """A runtime whose store holds one pending key per entry of ``saved`` (key -> the
    time its state was saved), each with an apply due at target ``b``."""
    store = open_store(f"sqlite:///{tmp}/state.db")
    for key, at in saved.items():
        with store.transaction() as conn:
            store.save(conn, "p", "items", {key: KeyState(key={"id": key}, outbox={"b"})},
                       stamp=at)
    sends: list[list[str]] = []

    def send(entity: str, keys: list[str], *, remember: bool = False) -> None:
        assert remember  # the sweeper's sends are remembered, unlike the reader's
        sends.append(keys)
        for k in keys:
            rt.sent[(entity, k)] = time.time()

    rt = SimpleNamespace(ctx=lambda: SimpleNamespace(store=store), pipeline="p", sent={},
                         _lock=threading.Lock(), swept=False, send=send, sends=sends)
    return rt


def test_the_first_sweep_sends_every_pending_key_then_only_the_ones_long_unsent(
        tmp_path: Path) -> None:
    now = time.time()
    rt = _runtime(tmp_path, {"old": now - 100, "fresh": now})
    assert sweep(rt) == 2  # a process starting: everything pending goes at once
    assert rt.sends == [["fresh", "old"]]
    assert sweep(rt) == 0  # both were just sent
    # Their messages are lost, and 100 s pass for the sends: only the key whose
    # state is as old is read and sent again; the fresh one's save was a send.
    rt.sent = {k: at - 100 for k, at in rt.sent.items()}
    assert sweep(rt) == 1
    assert rt.sends[-1] == ["old"]
    assert list(rt.sent) == [("items", "old")]  # sends that old are forgotten


def test_keys_with_a_dead_letter_or_a_parked_conflict_are_not_sent(tmp_path: Path) -> None:
    from sync import dlq

    now = time.time()
    rt = _runtime(tmp_path, {"dead": now - 100, "live": now - 100})
    store = rt.ctx().store
    with store.transaction() as conn:
        dlq.record(conn, "p", "items", "b", ["dead"], "refused", 3)
        store.save(conn, "p", "items", {"parked": KeyState(
            key={"id": "parked"}, outbox={"b"}, parked=ParkedConflict("c1", {}, None))},
            stamp=now - 100)
    assert sweep(rt) == 1
    assert rt.sends == [["live"]]
