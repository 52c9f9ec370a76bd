"""Fixtures of the observability tests: a pipeline label of their own (restoring logging
and tracing, and the in-memory span exporter, are in tests/fix_observability.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def pipeline() -> str:
    """A pipeline label no other test uses: the metrics are module-level and only grow."""
    return f"obs-{uuid.uuid4().hex[:8]}"
