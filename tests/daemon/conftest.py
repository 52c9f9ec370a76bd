from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.helpers import STARTED, PrivateRedis


@pytest.fixture(autouse=True)
def reap_daemons() -> Iterator[None]:
    """A failed test must not leave a daemon running (and syncing) behind it."""
    yield
    while STARTED:
        d = STARTED.pop()
        if d.proc.poll() is None:
            d.kill()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis server of the test's own (tests.daemon.helpers.PrivateRedis)."""
    r = PrivateRedis(tmp_path)
    yield r
    r.stop()
