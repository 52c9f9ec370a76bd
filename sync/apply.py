"""Applying pending versions to their targets, and recording what happened.

The outbox rows of a key are its pending applies. They are written before
this runs (in the batch transaction that decided them), so a crash at any
point here is repaired by replaying the outbox: compare-and-set makes a
second write of a moved row a skip, and the version token makes a second
write of our own row a no-op.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from conflict.protocol import ApplyJob, KeyState, jobs, on_applied, on_skipped
from connectors.base import ApplyOp, ApplyStatus, RetriableError
from sync.context import EntityContext, PipelineContext
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.apply")
T = TypeVar("T")

RETRIES = 5


def with_retries(what: str, fn: Callable[[], T], *, tries: int = RETRIES,
                 base_delay: float = 0.2) -> T:
    """Run ``fn``, retrying :class:`RetriableError` with exponential backoff and jitter."""
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except RetriableError as exc:
            if attempt == tries:
                raise
            delay = base_delay * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, tries - 1,
                        delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def apply_pending(
    ctx: PipelineContext,
    ent: EntityContext,
    states: Mapping[str, KeyState],
    summary: RunSummary,
) -> None:
    """Apply every pending job of ``states`` and persist the results in one transaction."""
    by_target: dict[str, list[tuple[str, ApplyJob]]] = {}
    for k, st in states.items():
        for job in jobs(st):
            by_target.setdefault(job.target, []).append((k, job))
    if not by_target:
        return
    size = int(ctx.cfg.batch.size)
    for target, items in sorted(by_target.items()):
        sink = ctx.endpoints[target]
        binding = ent.bindings[target]
        for i in range(0, len(items), size):
            part = items[i : i + size]
            ops = [_op(states[k], job) for k, job in part]
            t0 = time.perf_counter()
            results = with_retries(
                f"apply to {target}",
                lambda sink=sink, binding=binding, ops=ops: sink.apply(binding, ops),  # type: ignore[misc]
            )
            elapsed = time.perf_counter() - t0
            for (k, job), res in zip(part, results, strict=True):
                st = states[k]
                origin = st.origin or "?"
                stats = summary.at(ent.name, origin, target)
                stats.seconds += elapsed / len(part)
                if res.status is ApplyStatus.SKIPPED:
                    on_skipped(st, job)
                    stats.skipped += 1
                else:
                    if on_applied(st, job, res.row_version, res.identity) and \
                            res.status is ApplyStatus.APPLIED:
                        stats.applied += 1
    with ctx.store.transaction() as conn:
        ctx.store.save(conn, ctx.pipeline, ent.name, states)


def _op(st: KeyState, job: ApplyJob) -> ApplyOp:
    if st.key is None:  # a state always learns its key when it is first read
        raise AssertionError("key state without a key")
    row: dict[str, Any] | None = None if job.content is None else dict(job.content)
    return ApplyOp(key=st.key, row=row, expected=job.expected, token=job.token)


def replay_outbox(ctx: PipelineContext, ent: EntityContext, summary: RunSummary) -> int:
    """Finish the applies a previous run decided but may not have completed."""
    keys = ctx.store.outbox_keys(ctx.pipeline, ent.name)
    size = int(ctx.cfg.batch.size)
    for i in range(0, len(keys), size):
        states = ctx.store.load(ctx.pipeline, ent.name, keys[i : i + size])
        apply_pending(ctx, ent, states, summary)
    return len(keys)
