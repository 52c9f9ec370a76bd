"""A write that reached its target while the record of its result was lost.

A daemon worker applies a decided version, then records the result in the
state store. When the worker dies in between and the reader meanwhile decides
a newer version of the key, the newer apply still expects the row version
from before the lost write. The sink sees a row that holds a write of ours,
unchanged since, and says STALE: the apply is made again against the row
version it reports, instead of being dropped as if a user edit were on its way
(which left the target behind for good: SQLite, like PostgreSQL, never shows
the service its own writes again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.base import ApplyStatus
from sync.apply import apply_pending, apply_to_target, pending_by_target
from sync.capture import STREAM, decide_and_commit
from sync.context import PipelineContext, open_pipeline
from sync.engine import run_pipeline
from sync.summary import RunSummary
from sync.verify import verify
from tests.ops.conftest import sql


def _read_and_decide(ctx: PipelineContext, summary: RunSummary) -> dict[str, Any]:
    """What the daemon's reader does with a's log: decide and commit the next batch."""
    ent = ctx.entities["items"]
    after = ctx.store.checkpoint(ctx.pipeline, "a", STREAM)
    batch = ctx.endpoints["a"].changes([ent.bindings["a"]], after, 100)
    assert len(batch.changes) == 1
    decided = decide_and_commit(ctx, "a", batch.changes, batch.checkpoint, summary)
    return decided.states["items"]


def test_a_result_lost_with_a_worker_does_not_strand_the_target(
        pipeline: Path, cfg: Any) -> None:
    root = pipeline.parent
    run_pipeline(cfg)  # the snapshot: b gets row 1
    summary = RunSummary(pipeline=cfg.pipeline)
    with open_pipeline(cfg) as ctx:
        ent = ctx.entities["items"]
        sql(root / "a.db", "UPDATE items SET name = 'two' WHERE id = 1")
        states = _read_and_decide(ctx, summary)
        # A worker writes 'two' at b and dies before it records the result.
        (lost,) = apply_to_target(ctx, ent, "b", pending_by_target(states)["b"], states)
        assert lost[2].status is ApplyStatus.APPLIED
        assert sql(root / "b.db", "SELECT name FROM items") == [("two",)]

        sql(root / "a.db", "UPDATE items SET name = 'three' WHERE id = 1")
        states = _read_and_decide(ctx, summary)
        apply_pending(ctx, ent, states, summary)  # the next worker
        assert sql(root / "b.db", "SELECT name FROM items") == [("three",)]
        assert ctx.store.outbox_keys(ctx.pipeline, "items") == []
        assert all(d.in_sync for d in verify(ctx))
    # And it rests there: the next run applies nothing anywhere.
    assert run_pipeline(cfg).total("applied") == 0
