"""One batch sync of a pipeline: what ``cdcsync run`` does.

First, columns a source gained are added at the targets (by the entities' schema
policy, sync/events.py). Then, for every entity, in order:

1. replay the outbox (applies a previous run decided but may not have finished);
2. the initial snapshot, where an endpoint has no checkpoint yet (resumable);
3. catch up every source from its checkpoint until none has more to read.

API for callers and tests: ``run_pipeline(cfg) -> RunSummary`` with ``cfg`` a
loaded ``config.PipelineConfig``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from connectors.base import ConnectorError
from sync import dlq
from sync.apply import check_marks, replay_outbox, retry_references
from sync.capture import STREAM, catch_up, prune_log, source_entities
from sync.context import PipelineContext, open_pipeline
from sync.events import align_schemas
from sync.runlock import RunLock
from sync.signals import Interrupted
from sync.snapshot import needs_snapshot, snapshot_entity
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.engine")


def run_pipeline(
    cfg: Any,
    *,
    entities: list[str] | None = None,
    progress: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Run one batch sync of ``cfg`` and return what it did.

    ``progress(label, n)`` is told of every snapshot chunk (``snapshot EP``, rows) and
    every batch read from a source log (``read EP``, changes): the CLI's progress bars.

    Raises whatever the connectors raise after retries; the run is recorded
    as failed in the run history, and nothing is lost: the next run resumes
    from the last durable batch. Raises :class:`sync.runlock.RunLocked` (and
    does nothing) while another run of the pipeline holds its run lock.

    ``stop`` set (SIGTERM/SIGINT) ends the run at its next durable point (a snapshot
    chunk or a batch saved) with :class:`sync.signals.Interrupted`; the run is
    recorded as interrupted and the next one resumes from that point.
    """
    summary = RunSummary(pipeline=cfg.pipeline)
    snapshotted = reading = None
    if progress is not None:  # labels for the progress bars: "snapshot crm", "read billing"
        def snapshotted(endpoint: str, rows: int) -> None:
            progress(f"snapshot {endpoint}", rows)

        def reading(endpoint: str, changes: int) -> None:
            progress(f"read {endpoint}", changes)
    opened = False
    try:
        with open_pipeline(cfg) as ctx, RunLock(ctx.store, ctx.pipeline):
            opened = True
            ctx.run_id = ctx.store.start_run(ctx.pipeline, "run")
            ctx.stop = stop
            try:
                chosen = [e for n, e in ctx.entities.items() if not entities or n in entities]
                align_schemas(ctx)  # (before any apply: a snapshot's, or a dead run's due)
                marks = {e.name: replay_outbox(ctx, e, summary) for e in chosen}  # a dead run's
                for ent in chosen:
                    if needs_snapshot(ctx, ent):
                        ctx.stop_point()
                        snapshot_entity(ctx, ent, summary, snapshotted)
                ctx.stop_point()
                catch_up(ctx, summary, progress=reading)
                for ent in chosen:
                    check_marks(ctx, ent, marks[ent.name], summary)
                retry_references(ctx, summary, summary.started_at)
                _prune(ctx)
            except BaseException as exc:
                summary.errors.append(f"{type(exc).__name__}: {exc}")
                summary.interrupted = isinstance(exc, Interrupted | KeyboardInterrupt)
                _finish(ctx, summary)
                raise
            _finish(ctx, summary)
    except ConnectorError as exc:
        if not opened:
            _record_unopened(cfg, exc)
        raise
    return summary


def _record_unopened(cfg: Any, exc: ConnectorError) -> None:
    """Put a run that stopped before it began (a table that drifted, a key changed, a
    server still out of reach after the retries) in the run history: else
    ``cdcsync status`` showed the last run that began, ok, however many failed since.
    Nothing is said if the state store itself cannot be opened (that is the error)."""
    from sync.state import open_store

    try:
        store = open_store(cfg.state.url)
    except Exception:  # the run's own error is the one to show
        return
    try:
        summary = RunSummary(pipeline=cfg.pipeline)
        summary.errors.append(f"{type(exc).__name__}: {exc}")
        summary.finished_at = time.time()
        store.finish_run(store.start_run(cfg.pipeline, "run"), summary.status, summary.to_json())
    except Exception:
        log.debug("could not record the failed run", exc_info=True)
    finally:
        store.close()


def _prune(ctx: PipelineContext) -> None:
    """Let each endpoint this pipeline reads drop its log up to the pipeline's checkpoint
    there, for the tables it reads (see :func:`sync.capture.prune_log`)."""
    for name in ctx.endpoints:
        cp = ctx.store.checkpoint(ctx.pipeline, name, STREAM)
        if cp is not None and source_entities(ctx, name):
            prune_log(ctx, name, cp)


def _finish(ctx: PipelineContext, summary: RunSummary) -> None:
    summary.finished_at = time.time()
    summary.open_conflicts = ctx.conflicts.count(ctx.pipeline, "open")
    summary.dead_letters = dlq.depth(ctx.store, ctx.pipeline)
    suites = [n for n, e in ctx.entities.items() if e.cfg.quality.suite is not None]
    if suites:  # quarantined rows waiting for a steward, whether this run touched them or not
        from sync.quality.store import QuarantineStore

        qs = QuarantineStore(ctx.store.engine)
        for name in suites:
            summary.quality_at(name).open = qs.count_open(ctx.pipeline, name)
    if ctx.run_id is not None:
        ctx.store.finish_run(ctx.run_id, summary.status, summary.to_json())
