"""Optional OpenTelemetry tracing: spans for read, validate, resolve and apply.

Everything here is a no-op unless both hold:

* ``opentelemetry-api`` is installed (``pip install 'cdcsync[tracing]'``), and
* tracing is asked for: ``CDCSYNC_TRACING=1``, or an OTLP endpoint in the
  environment (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and ``CDCSYNC_TRACING`` not ``0``;
  or :func:`configure` ``(enabled=True)``.

The module never imports OpenTelemetry before tracing is enabled, so a
pipeline without it pays one boolean test per span.

Spans go to the tracer provider given to :func:`configure`, else to the
global one. When that is still OpenTelemetry's default (nothing configured
it, e.g. no ``opentelemetry-instrument``) and ``opentelemetry-sdk`` plus the
OTLP exporter are installed, :func:`enabled` sets up a provider exporting
over OTLP as the ``OTEL_*`` variables say.

The W3C trace context crosses the task queue inside the message:
``message["trace"] = inject()`` where the batch is read, and
``with extract(message["trace"]):`` around the apply in the worker, so the
apply span is a child of the read span.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("cdcsync.tracing")

#: The span names of the engine's stages.
READ, VALIDATE, RESOLVE, APPLY = "cdcsync.read", "cdcsync.validate", "cdcsync.resolve", \
    "cdcsync.apply"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_OTLP_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_lock = threading.Lock()
_enabled: bool | None = None  # None: not decided yet (read the environment on first use)
_forced: bool | None = None  # configure(enabled=...)
_provider: Any = None  # configure(provider=...)
_tracer: Any = None


def wanted() -> bool:
    """Whether the environment (or :func:`configure`) asks for tracing."""
    if _forced is not None:
        return _forced
    flag = os.environ.get("CDCSYNC_TRACING", "").strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    return any(os.environ.get(v) for v in _OTLP_VARS)


def enabled() -> bool:
    """Whether spans are recorded: asked for and OpenTelemetry importable (decided once)."""
    return _decide()


def _decide() -> bool:
    global _enabled, _tracer
    if _enabled is not None:
        return _enabled
    with _lock:
        if _enabled is None:
            on = False
            if wanted():
                try:
                    from opentelemetry import trace
                except ImportError:
                    log.warning("tracing asked for but opentelemetry-api is not installed "
                                "(pip install 'cdcsync[tracing]'); spans are off")
                else:
                    provider = _provider if _provider is not None else _global_provider(trace)
                    _tracer = provider.get_tracer("cdcsync")
                    on = True
            _enabled = on
    return _enabled


def configure(*, enabled: bool | None = None, provider: Any = None) -> bool:
    """Override the environment: force tracing on or off, and/or use ``provider``.

    ``enabled=None`` goes back to the environment's say. Returns whether
    spans are now recorded. Meant for the daemon's start-up and for tests.
    """
    global _enabled, _forced, _provider, _tracer
    with _lock:
        _forced, _provider, _tracer, _enabled = enabled, provider, None, None
    return _decide()


def _global_provider(trace: Any) -> Any:
    provider = trace.get_tracer_provider()
    if type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return provider  # an SDK provider set by the application or opentelemetry-instrument
    if not any(os.environ.get(v) for v in _OTLP_VARS):
        return provider
    grpc = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() == "grpc"
    exporter = "opentelemetry-exporter-otlp-proto-" + ("grpc" if grpc else "http")
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if grpc:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("an OTLP endpoint is set but opentelemetry-sdk or %s is not installed; "
                    "spans are created but not exported", exporter)
        return provider
    service = os.environ.get("OTEL_SERVICE_NAME", "cdcsync")
    sdk = TracerProvider(resource=Resource.create({"service.name": service}))
    sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(sdk)
    return trace.get_tracer_provider()


def _attr(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named ``name`` around the block, child of the current one; ``None`` when off.

    Attributes whose value is ``None`` are left out; values other than
    bool/int/float/str are recorded as text. An exception escaping the block
    is recorded on the span and marks it as an error.
    """
    if not enabled():
        yield None
        return
    attrs = {k: _attr(v) for k, v in attributes.items() if v is not None}
    with _tracer.start_as_current_span(name, attributes=attrs) as sp:
        yield sp


def inject() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``...), to carry in a message."""
    if not enabled():
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def extract(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Make the trace context of ``carrier`` (from :func:`inject`) current inside the block.

    Spans opened in the block become children of the span that injected it,
    across threads and processes. An empty or missing carrier changes nothing.
    """
    if not carrier or not enabled():
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)


def current_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span (hex), for log lines; empty when off."""
    if not enabled():
        return {}
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
