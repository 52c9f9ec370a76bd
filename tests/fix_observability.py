"""Fixtures for tests of logs and traces: both are process-wide, so each test puts them back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root handlers and levels as they were before the test."""
    root, own = logging.getLogger(), logging.getLogger("cdcsync")
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


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on, with OpenTelemetry's in-memory exporter: the finished spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sync import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.configure(enabled=True, provider=provider)
    yield exporter
    provider.shutdown()
    tracing.configure(enabled=None, provider=None)
