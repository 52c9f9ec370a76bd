from __future__ import annotations

import time
from pathlib import Path

from sync.state import open_store
from sync.state.leases import Lease, holder_id


def test_one_holder_at_a_time_and_takeover_after_expiry(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    a = Lease(store, "read:p:crm", holder_id(), ttl=0.3)
    b = Lease(store, "read:p:crm", holder_id(), ttl=0.3)
    assert a.acquire()
    assert not b.acquire()
    assert a.acquire()  # renewing keeps it
    assert a.holder_now() == a.holder
    time.sleep(0.4)  # a died: it stopped renewing
    assert a.holder_now() is None
    assert b.acquire()
    assert not a.acquire()
    b.release()
    assert a.acquire()


def test_leases_are_per_name(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    assert Lease(store, "x", "h1").acquire()
    assert Lease(store, "y", "h2").acquire()
    assert not Lease(store, "x", "h2").acquire()
