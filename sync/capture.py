"""Turning a batch of changes read from one source into decided versions.

One batch is one transaction in the state store: the key states it touched,
their outbox rows, the conflicts it raised and the source checkpoint it
reached are written together, before anything is applied. The applies then
run from the outbox, and the source's log is released (``confirm``) only
after they are durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conflict.canonical import coerce_row, key_text
from conflict.protocol import Edit, KeyState, Kind, on_change
from sync.apply import apply_pending
from sync.change import Change, ChangeBatch
from sync.context import EntityContext, PipelineContext
from sync.summary import RunSummary


def typed(ent: EntityContext, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A row in the entity's logical types, so that every endpoint's copy compares alike."""
    if row is None:
        return None
    return coerce_row(row, ent.types)


def edit_of(ent: EntityContext, ch: Change) -> Edit:
    return Edit(
        endpoint=ch.source,
        content=typed(ent, ch.content),
        position=tuple(ch.position),
        committed_at=ch.committed_at,
        row_version=ch.row_version,
        before=typed(ent, ch.before),
    )


def process_batch(
    ctx: PipelineContext,
    ent: EntityContext,
    source: str,
    batch: ChangeBatch,
    summary: RunSummary,
) -> None:
    """Decide, persist, apply and confirm one batch read from ``source``."""
    from conflict.store import ConflictStore

    keyed: list[tuple[str, dict[str, Any], Change]] = []
    for ch in batch.changes:
        key = typed(ent, ch.key) or {}
        keyed.append((key_text(key), key, ch))
    states = ctx.store.load(ctx.pipeline, ent.name, (k for k, _, _ in keyed))
    touched: dict[str, KeyState] = {}
    records = []
    parked_updates = []
    for k, key, ch in keyed:
        st = states[k]
        if st.key is None:
            st.key = key
        out = on_change(st, edit_of(ent, ch), entity=ent.name, key=key, sinks=ent.sinks,
                        resolve=ent.resolve)
        touched[k] = st
        stats = summary.at(ent.name, source, "*")
        stats.read += 1
        if out.kind is Kind.DUPLICATE:
            stats.duplicates += 1
        elif out.kind is Kind.ECHO:
            stats.echoes += 1
        elif out.kind is Kind.RESOLVED:
            stats.resolved += 1
        elif out.kind is Kind.PARKED:
            if out.conflict is not None:
                stats.parked += 1
            elif st.parked is not None:
                parked_updates.append(st.parked)
        if out.conflict is not None:
            records.append((k, out.conflict))
    with ctx.store.transaction() as conn:
        ctx.store.save(conn, ctx.pipeline, ent.name, touched)
        for k, rec in records:
            ConflictStore.record(conn, ctx.pipeline, k, rec, ctx.run_id)
        for parked in parked_updates:
            ConflictStore.update_parked(conn, parked)
        if batch.checkpoint is not None:
            ctx.store.put_checkpoint(conn, ctx.pipeline, source, ent.name, batch.checkpoint)
    apply_pending(ctx, ent, touched, summary)
    if batch.checkpoint is not None:
        ctx.endpoints[source].confirm(batch.checkpoint)


def catch_up(ctx: PipelineContext, ent: EntityContext, summary: RunSummary,
             *, max_rounds: int = 10_000) -> None:
    """Read every source of ``ent`` from its checkpoint until none has more to say.

    Sources take turns, one batch each, so that edits from both sides of a
    bidirectional entity meet in the order they were read.
    """
    active = list(ent.sources)
    size = int(ctx.cfg.batch.size)
    rounds = 0
    while active and rounds < max_rounds:
        rounds += 1
        still: list[str] = []
        for source in active:
            cp = ctx.store.checkpoint(ctx.pipeline, source, ent.name)
            batch = ctx.endpoints[source].changes([ent.bindings[source]], cp, size)
            if batch.changes or batch.checkpoint != cp:
                process_batch(ctx, ent, source, batch, summary)
            if batch.more:
                still.append(source)
        active = still
