"""The initial snapshot of an entity: read every endpoint, then reconcile by key.

Each endpoint's rows are staged in the state store chunk by chunk, with the
log position taken *before* the first read; an interrupted snapshot resumes
at the last staged key. When every endpoint is staged, the keys are
reconciled together (equal rows become the common baseline, missing rows are
inserts, differing rows are conflicts) and the captured positions become the
checkpoints the change stream starts from. A change that happened during the
read is then read again from the log: applying it twice leaves the same row,
so nothing is lost and nothing is applied twice in effect.

When one source holds every row and the others none, there is nothing to
match: sync/snapshot_direct.py takes the source's chunks through without
staging them.
"""

from __future__ import annotations

import time
from typing import Any

from conflict.canonical import (
    from_json_value,
    key_text,
    parse_json,
    row_from_json,
    row_hash,
    row_to_json,
)
from conflict.canonical import to_json_value as enc
from conflict.protocol import Edit, KeyState, Kind, on_snapshot
from sync.apply import apply_pending
from sync.capture import STREAM, typed
from sync.context import EntityContext, PipelineContext
from sync.snapshot_direct import DIRECT, Progress, direct_snapshot
from sync.summary import RunSummary


def needs_snapshot(ctx: PipelineContext, ent: EntityContext) -> bool:
    """An entity is snapshotted once per endpoint; its (endpoint, entity) row marks it done."""
    if ctx.store.snapshot_progress(ctx.pipeline, ent.name):
        return True  # one is under way
    return any(ctx.store.checkpoint(ctx.pipeline, ep, ent.name) is None for ep in ent.bindings)


def stream_start(ctx: PipelineContext, endpoint: str) -> dict[str, Any]:
    """Where ``endpoint``'s log is read from after a snapshot taken now.

    An endpoint already streamed for other entities keeps its one checkpoint:
    the new entity's changes since then are read again after its snapshot,
    which converges to the same rows (the log is complete and in order).
    """
    cp = ctx.store.checkpoint(ctx.pipeline, endpoint, STREAM)
    return dict(cp) if cp is not None else dict(ctx.endpoints[endpoint].position())


def stage_endpoint(ctx: PipelineContext, ent: EntityContext, endpoint: str,
                   progress: Progress | None = None) -> int:
    """Copy one endpoint's rows into the staging table; resumable. Returns rows staged."""
    store = ctx.store
    src = ctx.endpoints[endpoint]
    binding = ent.bindings[endpoint]
    prog = store.snapshot_progress(ctx.pipeline, ent.name).get(endpoint)
    if prog is not None and prog["status"] == "staged":
        return 0
    if prog is None:
        position = stream_start(ctx, endpoint)
        with store.transaction() as conn:
            store.put_snapshot_progress(conn, ctx.pipeline, ent.name, endpoint,
                                        status="reading", position=position, after_key=None,
                                        rows=0)
        after_key, total = None, 0
    else:
        after_key = row_from_json(prog["after_key"])
        total = int(prog["rows"])
    chunk_size = int(ctx.cfg.batch.snapshot_chunk)
    now = time.time()
    while True:
        chunk = src.snapshot(binding, after_key, chunk_size)
        rows = []
        for r in chunk.rows:
            row = typed(ent, r.row) or {}
            key = typed(ent, r.key) or {}
            rows.append(dict(pipeline=ctx.pipeline, entity=ent.name, key=key_text(key),
                             endpoint=endpoint, row=row_to_json(row),
                             row_version=enc(r.row_version), committed_at=now))
        quarantine = None
        if ent.cfg.quality.suite is not None:  # data-quality gate (sync/quality)
            from sync.quality.hook import screen_snapshot

            quarantine = screen_snapshot(ctx, ent, endpoint, rows)
        total += len(rows)
        after_key = dict(chunk.last_key) if chunk.last_key is not None else after_key
        with store.transaction() as conn:
            store.stage_rows(conn, rows)
            if quarantine is not None:  # failing rows: staged, but left out of reconcile
                quarantine(conn)
            store.put_snapshot_progress(
                conn, ctx.pipeline, ent.name, endpoint,
                status="staged" if chunk.done else "reading",
                position=prog["position"] if prog else position,
                after_key=row_to_json(after_key), rows=total)
        if progress is not None:
            progress(endpoint, len(rows))
        if chunk.done:
            return total
        ctx.stop_point()


def reconcile(ctx: PipelineContext, ent: EntityContext, summary: RunSummary) -> None:
    """Decide every staged key across its endpoints, apply, and start the streams."""
    from conflict.store import ConflictStore

    store = ctx.store
    size = int(ctx.cfg.batch.size)
    # A key whose state was saved before this snapshot began and that a source no
    # longer holds was deleted there without its log saying so (a resync after the
    # log was lost). A state saved since (a reconcile resumed after a crash) may be
    # newer than the staged read: no delete is inferred for it.
    began = store.snapshot_started(ctx.pipeline, ent.name)
    after: str | None = None
    while True:
        staged = store.staged(ctx.pipeline, ent.name, after, size)
        if not staged:
            break
        by_key: dict[str, dict[str, dict[str, Any]]] = {}
        for r in staged:
            by_key.setdefault(r["key"], {})[r["endpoint"]] = r
        if ent.cfg.quality.suite is not None:  # data-quality gate (sync/quality)
            from sync.quality.hook import hold_snapshot_keys

            hold_snapshot_keys(ctx, ent, by_key, summary)  # quarantined keys wait
        states = store.load(ctx.pipeline, ent.name, by_key)
        saved = store.saved_at(ctx.pipeline, ent.name, by_key) if began is not None else {}
        records = []
        for k, rows in by_key.items():
            st: KeyState = states[k]
            reads: dict[str, Edit | None] = {}
            # by staged JSON text: endpoints alike (the usual) share one parse and hash
            contents: dict[str, tuple[dict[str, Any] | None, str]] = {}
            hashes: dict[str, str] = {}
            for ep in ent.bindings:
                staged_row = rows.get(ep)
                content = None
                if staged_row is not None:
                    text = staged_row["row"]
                    if text not in contents:
                        parsed = row_from_json(parse_json(text))
                        contents[text] = (parsed, row_hash(parsed))
                    content, hashes[ep] = contents[text]
                if content is not None and st.key is None:
                    st.key = {c: content[c] for c in ent.cfg.key}
                edit = None if staged_row is None else Edit(
                    endpoint=ep, content=content, position=None,
                    committed_at=float(staged_row["committed_at"]),
                    row_version=from_json_value(staged_row["row_version"]))
                if ep in ent.sources:
                    reads[ep] = edit
                else:  # a target only: what it holds is known, but it is no edit
                    e = st.at(ep)
                    e.hash = hashes[ep] if edit else ""
                    e.row_version = edit.row_version if edit else None
            for ep, read in reads.items():
                if read is not None:
                    summary.at(ent.name, ep, "*").read += 1
            older = began is not None and k in saved and saved[k] < began
            gone = [ep for ep, r in reads.items() if r is None] if older else []
            for out in on_snapshot(st, reads, entity=ent.name, key=st.key or {},
                                   sinks=ent.sinks, resolve=ent.resolve, gone=gone,
                                   when=began or 0.0, hashes=hashes):
                if out.conflict is not None:
                    records.append((k, out.conflict))
                    src = out.conflict.case.incoming.endpoint
                    if out.kind is Kind.PARKED:
                        summary.at(ent.name, src, "*").parked += 1
                    else:
                        summary.at(ent.name, src, "*").resolved += 1
        summary.snapshot_rows += len(staged)
        with store.transaction() as conn:
            saved_at = store.save(conn, ctx.pipeline, ent.name, states)
            for k, rec in records:
                ConflictStore.record(conn, ctx.pipeline, k, rec, ctx.run_id)
        apply_pending(ctx, ent, states, summary, saved_at=saved_at)
        after = staged[-1]["key"]
        ctx.stop_point()
    start_streams(ctx, ent)


def start_streams(ctx: PipelineContext, ent: EntityContext) -> None:
    """Mark the entity's snapshot done: its streams start where it began."""
    store = ctx.store
    progress = store.snapshot_progress(ctx.pipeline, ent.name)
    with store.transaction() as conn:
        for ep, prog in progress.items():
            # The (endpoint, entity) row marks the snapshot done; the stream of an
            # endpoint read for the first time starts where the snapshot began.
            store.put_checkpoint(conn, ctx.pipeline, ep, ent.name, prog["position"] or {})
            if ep in ent.sources and store.checkpoint(ctx.pipeline, ep, STREAM) is None:
                store.put_checkpoint(conn, ctx.pipeline, ep, STREAM, prog["position"] or {})
        store.finish_snapshot(conn, ctx.pipeline, ent.name)


def snapshot_entity(ctx: PipelineContext, ent: EntityContext, summary: RunSummary,
                    progress: Progress | None = None) -> None:
    """Snapshot ``ent``: straight through when one source holds every row and the
    entity has no state yet (sync/snapshot_direct.py, which also resumes its own
    interrupted snapshots), staged and reconciled otherwise."""
    store = ctx.store
    prog = store.snapshot_progress(ctx.pipeline, ent.name)
    if not prog:
        # Every endpoint's stream start is taken before anything is read, and kept as
        # the progress a resumed snapshot starts from.
        positions = {ep: stream_start(ctx, ep) for ep in ent.bindings}
        with store.transaction() as conn:
            for ep, position in positions.items():
                store.put_snapshot_progress(conn, ctx.pipeline, ent.name, ep, status="reading",
                                            position=position, after_key=None, rows=0)
    if (not prog or any(p["status"] == DIRECT for p in prog.values())) \
            and direct_snapshot(ctx, ent, summary, progress):
        start_streams(ctx, ent)
        return
    for ep in ent.bindings:
        stage_endpoint(ctx, ent, ep, progress)
    reconcile(ctx, ent, summary)
