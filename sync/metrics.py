"""Prometheus metrics of cdcsync, in one registry of its own.

The metric objects are module-level so any stage can count into them; they
live in :data:`REGISTRY`, not in prometheus_client's global default, so that
what ``/metrics`` serves (sync/http.py) is cdcsync's and nothing a library
registered, and so that importing cdcsync twice in a test never collides.

Label conventions: ``pipeline`` is the pipeline's name, ``endpoint`` an
endpoint name from the pipeline file (the *source* for what is read, the
*target* for what is applied), ``entity`` an entity name.

Counters are declared without their ``_total`` suffix, which
prometheus_client adds on exposition: the exposed names are the ones listed
in docs/observability.md (``cdcsync_changes_read_total``, ...).

The helpers below exist to make call sites one line; the metric objects may
also be used directly (``CHANGES_READ.labels(p, ep, ent).inc(n)``).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

if TYPE_CHECKING:
    from sync.summary import RunSummary

#: cdcsync's own registry: what ``/metrics`` serves.
REGISTRY = CollectorRegistry(auto_describe=True)
# process_resident_memory_bytes, process_cpu_seconds_total, open fds: the daemon's own cost.
ProcessCollector(registry=REGISTRY)

Stage = Literal["read", "validate", "resolve", "apply"]
STAGES: tuple[Stage, ...] = ("read", "validate", "resolve", "apply")

#: 1 ms .. 10 s: a micro-batch stage (validate, resolve, apply) or one read.
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: 1 ms .. 30 s: from the source's commit to the change applied at a target.
COMMIT_TO_APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                           1.0, 2.5, 5.0, 10.0, 30.0)

_FLOW = ("pipeline", "endpoint", "entity")

CHANGES_READ = Counter(
    "cdcsync_changes_read", "Changes (and snapshot rows) read from a source endpoint.",
    _FLOW, registry=REGISTRY)
CHANGES_APPLIED = Counter(
    "cdcsync_changes_applied", "Changes written at a target endpoint.",
    _FLOW, registry=REGISTRY)
APPLIES_SKIPPED = Counter(
    "cdcsync_applies_skipped",
    "Applies refused by compare-and-set at a target endpoint (a user edit is on its way).",
    _FLOW, registry=REGISTRY)
ECHOES_DROPPED = Counter(
    "cdcsync_echoes_dropped", "The service's own writes read back from a source and dropped.",
    _FLOW, registry=REGISTRY)
CONFLICTS = Counter(
    "cdcsync_conflicts",
    "Concurrent edits, by outcome: resolved by policy or parked for a steward.",
    ("pipeline", "entity", "outcome"), registry=REGISTRY)
QUARANTINED = Counter(
    "cdcsync_quarantined", "Changes stopped by the data-quality gate.",
    ("pipeline", "entity"), registry=REGISTRY)
LAG_SECONDS = Gauge(
    "cdcsync_lag_seconds", "Now minus the commit time of the last change read from a source.",
    _FLOW, registry=REGISTRY)
LAG_BYTES = Gauge(
    "cdcsync_lag_bytes", "Log a source retains for cdcsync (e.g. PostgreSQL slot WAL), in bytes.",
    ("pipeline", "endpoint"), registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "cdcsync_batch_seconds", "Time one micro-batch spends in a stage.",
    ("pipeline", "stage"), buckets=BATCH_BUCKETS, registry=REGISTRY)
COMMIT_TO_APPLY = Histogram(
    "cdcsync_commit_to_apply_seconds",
    "From the source's commit to the change applied at a target.",
    ("pipeline", "entity"), buckets=COMMIT_TO_APPLY_BUCKETS, registry=REGISTRY)
DLQ_DEPTH = Gauge(
    "cdcsync_dlq_depth", "Messages in the dead-letter queue.", ("pipeline",), registry=REGISTRY)
OUTBOX_DEPTH = Gauge(
    "cdcsync_outbox_depth", "Pending applies in the outbox.", ("pipeline",), registry=REGISTRY)
RETRIES = Counter(
    "cdcsync_retries", "Retries of a retriable error against an endpoint.",
    ("pipeline", "endpoint"), registry=REGISTRY)
BREAKER_STATE = Gauge(
    "cdcsync_breaker_state", "Circuit breaker of a target endpoint: 0 closed, 1 open, 2 half-open.",
    ("pipeline", "endpoint"), registry=REGISTRY)
READER_LEASE = Gauge(
    "cdcsync_reader_lease", "1 while this process holds the lease to read a source endpoint.",
    ("pipeline", "endpoint"), registry=REGISTRY)
SOURCE_BLOCKED = Gauge(
    "cdcsync_source_blocked", "1 while this process's reader of a source waits for a row"
    " it cannot read to be fixed at the source.", ("pipeline", "endpoint"), registry=REGISTRY)


class BreakerState(enum.IntEnum):
    """The values of ``cdcsync_breaker_state``."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


# --- one-line helpers -------------------------------------------------------------------


@contextmanager
def observe_stage(pipeline: str, stage: Stage, **attributes: Any) -> Iterator[None]:
    """Time the block into ``cdcsync_batch_seconds{pipeline, stage}``.

    It also opens the tracing span ``cdcsync.<stage>`` (sync/tracing.py) with
    ``pipeline`` and ``attributes`` on it; that is a no-op unless tracing is
    enabled, so one ``with`` covers both. The time is recorded even when the
    block raises.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    from sync.tracing import span

    t0 = time.perf_counter()
    try:
        with span(f"cdcsync.{stage}", pipeline=pipeline, **attributes):
            yield
    finally:
        BATCH_SECONDS.labels(pipeline, stage).observe(time.perf_counter() - t0)


# (pipeline, endpoint) -> entities whose lag this process reported, for forget_source().
_lagging: dict[tuple[str, str], set[str]] = {}
_lagging_lock = threading.Lock()


def observe_read(pipeline: str, endpoint: str, entity: str, count: int,
                 last_committed_at: float | None = None, *, now: float | None = None) -> None:
    """Count ``count`` changes read from source ``endpoint``; set its lag if a commit time is given.

    ``last_committed_at`` is the commit time (seconds since the epoch, as in
    :class:`sync.change.Change`) of the last change read.
    """
    if count:
        CHANGES_READ.labels(pipeline, endpoint, entity).inc(count)
    if last_committed_at is not None:
        set_lag(pipeline, endpoint, entity, last_committed_at, now=now)


def set_lag(pipeline: str, endpoint: str, entity: str, last_committed_at: float | None,
            *, now: float | None = None) -> None:
    """Set ``cdcsync_lag_seconds``: now minus ``last_committed_at``, or 0 for ``None``.

    Pass ``None`` when the source had nothing more to read: an idle source is
    caught up, however old its last change is.
    """
    lag = 0.0
    if last_committed_at is not None:
        lag = max(0.0, (time.time() if now is None else now) - last_committed_at)
    LAG_SECONDS.labels(pipeline, endpoint, entity).set(lag)
    with _lagging_lock:
        _lagging.setdefault((pipeline, endpoint), set()).add(entity)


def observe_applied(pipeline: str, endpoint: str, entity: str,
                    committed_at: Iterable[float] = (), *, count: int | None = None,
                    now: float | None = None) -> None:
    """Count changes applied at target ``endpoint`` and observe their commit-to-apply latency.

    ``committed_at`` holds the source commit time of each applied change; the
    count is its length unless ``count`` is given (e.g. when times are unknown).
    """
    n = observe_commit_to_apply(pipeline, entity, committed_at, now=now)
    n = n if count is None else count
    if n:
        CHANGES_APPLIED.labels(pipeline, endpoint, entity).inc(n)


def observe_commit_to_apply(pipeline: str, entity: str, committed_at: Iterable[float],
                            *, now: float | None = None) -> int:
    """Observe ``now - t`` for every source commit time ``t``; return how many."""
    at = time.time() if now is None else now
    hist = COMMIT_TO_APPLY.labels(pipeline, entity)
    n = 0
    for ts in committed_at:
        hist.observe(max(0.0, at - ts))
        n += 1
    return n


def record_conflict(pipeline: str, entity: str, outcome: Literal["resolved", "parked"],
                    count: int = 1) -> None:
    if outcome not in ("resolved", "parked"):
        raise ValueError(f"unknown conflict outcome {outcome!r}")
    if count:
        CONFLICTS.labels(pipeline, entity, outcome).inc(count)


def set_breaker(pipeline: str, endpoint: str, state: BreakerState | int | str) -> None:
    """Set ``cdcsync_breaker_state``; ``state`` may be a name: closed, open, half-open."""
    if isinstance(state, str):
        state = BreakerState[state.upper().replace("-", "_")]
    BREAKER_STATE.labels(pipeline, endpoint).set(int(BreakerState(state)))


def set_lease(pipeline: str, endpoint: str, held: bool) -> None:
    """Record whether this process holds ``endpoint``'s reader lease.

    Losing it also drops the lag series this process reported for that
    source (:func:`forget_source`): the new holder reports them now.
    """
    READER_LEASE.labels(pipeline, endpoint).set(1 if held else 0)
    if not held:
        forget_source(pipeline, endpoint)


def forget_source(pipeline: str, endpoint: str) -> None:
    """Remove the lag series of a source this process no longer reads."""
    with _lagging_lock:
        entities = _lagging.pop((pipeline, endpoint), set())
    for entity in entities:
        with suppress(KeyError):
            LAG_SECONDS.remove(pipeline, endpoint, entity)
    with suppress(KeyError):
        LAG_BYTES.remove(pipeline, endpoint)
    with suppress(KeyError):
        SOURCE_BLOCKED.remove(pipeline, endpoint)


class SummaryExporter:
    """Turns the running counts of a :class:`sync.summary.RunSummary` into counter increments.

    The engine's stages (sync/capture.py, sync/apply.py) already count what
    they do into a ``RunSummary``; a daemon that keeps one summary per worker
    calls :meth:`export` after each batch and the counters grow by what
    changed since the previous call. Mapping: ``read`` and ``echoes`` (at
    ``(entity, source, "*")``) count at the source endpoint; ``applied`` and
    ``skipped`` count at the target; ``resolved``/``parked`` are conflicts;
    the quality gate's ``quarantined`` counts per entity. Thread-safe.
    """

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self._seen: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def export(self, summary: RunSummary) -> None:
        p = self.pipeline
        with self._lock:
            for (entity, source, target), d in list(summary.directions.items()):
                self._bump(("read", entity, source, target), d.read,
                           CHANGES_READ, p, source, entity)
                self._bump(("echoes", entity, source, target), d.echoes,
                           ECHOES_DROPPED, p, source, entity)
                self._bump(("resolved", entity, source, target), d.resolved,
                           CONFLICTS, p, entity, "resolved")
                self._bump(("parked", entity, source, target), d.parked,
                           CONFLICTS, p, entity, "parked")
                if target != "*":
                    self._bump(("applied", entity, source, target), d.applied,
                               CHANGES_APPLIED, p, target, entity)
                    self._bump(("skipped", entity, source, target), d.skipped,
                               APPLIES_SKIPPED, p, target, entity)
            for entity, q in list(summary.quality.items()):
                self._bump(("quarantined", entity), q.quarantined, QUARANTINED, p, entity)

    def _bump(self, key: tuple[str, ...], value: int, metric: Counter, *labels: str) -> None:
        delta = int(value) - self._seen.get(key, 0)
        if delta > 0:
            metric.labels(*labels).inc(delta)
        self._seen[key] = int(value)
