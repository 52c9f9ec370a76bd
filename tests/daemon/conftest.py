from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.helpers import STARTED


@pytest.fixture(autouse=True)
def reap_daemons() -> Iterator[None]:
    """A failed test must not leave a daemon running (and syncing) behind it."""
    yield
    while STARTED:
        d = STARTED.pop()
        if d.proc.poll() is None:
            d.kill()
