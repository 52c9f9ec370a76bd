"""Fixtures of the observability tests: a pipeline label of their own, and logging/tracing
state put back after each test (both are process-wide)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def pipeline() -> str:
    """A pipeline label no other test uses: the metrics are module-level and only grow."""
    return f"obs-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    own = logging.getLogger("cdcsync")
    handlers, level, own_level = list(root.handlers), root.level, own.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    own.setLevel(own_level)


@pytest.fixture
def restore_tracing() -> Iterator[None]:
    from sync import tracing

    yield
    tracing.configure(enabled=None, provider=None)
