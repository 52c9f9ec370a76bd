"""The initial snapshot of an entity: read every endpoint, then reconcile by key.

Each endpoint's rows are staged in the state store chunk by chunk, with the
log position taken *before* the first read; an interrupted snapshot resumes
at the last staged key. An interrupted reconcile starts over, and leaves a
key it finds decided since the snapshot began as it was decided: its staged
rows are older than our writes since. When every endpoint is staged, the keys are
reconciled together (equal rows become the common baseline, missing rows are
inserts, differing rows are conflicts) and the captured positions become the
checkpoints the change stream starts from. A change that happened during the
read is then read again from the log: applying it twice leaves the same row,
so nothing is lost and nothing is applied twice in effect.

On a table of two chunks or more whose endpoints take writers side by side
(servers, not SQLite files) and with no quality gate, a batch run's worker
processes (sync/parallel.py) stage the endpoints side by side, a chunk of
each per round (a worker reads the endpoint's current data, as a resumed
snapshot does: the stream from the position taken before brings what
changed), then reconcile the staged keys, each worker a key range of every
batch.

When one source holds every row and the others none, there is nothing to
match: sync/snapshot_direct.py takes the source's chunks through without
staging them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
from conflict.protocol import (
    ConflictRecord,
    Edit,
    KeyState,
    Kind,
    Position,
    is_behind,
    on_snapshot,
)
from sync import snapshot_floor
from sync.apply import apply_pending
from sync.capture import STREAM, typed
from sync.context import EntityContext, PipelineContext
from sync.parallel import BatchWorkers
from sync.snapshot_direct import DIRECT, Progress, direct_snapshot, large_table
from sync.summary import RunSummary


def needs_snapshot(ctx: PipelineContext, ent: EntityContext) -> bool:
    """An entity is snapshotted once per endpoint; its (endpoint, entity) row marks it done."""
    if ctx.store.snapshot_progress(ctx.pipeline, ent.name):
        return True  # one is under way
    return any(ctx.store.checkpoint(ctx.pipeline, ep, ent.name) is None for ep in ent.bindings)


def stream_start(ctx: PipelineContext, endpoint: str, *, read: bool = True) -> dict[str, Any]:
    """Where ``endpoint``'s log is read from after a snapshot taken now.

    An endpoint already streamed for other entities keeps its one checkpoint: the
    new entity's changes since then are read again after its snapshot, which already
    holds them; the position its reads stand at, kept beside the checkpoint, has the
    stream drop them (sync/snapshot_floor.py).
    ``read=False``: the entity is only written to there (a one-way target), whose
    log is not read: no position (a PostgreSQL endpoint has no slot to take one from).
    """
    if not read:
        return {}
    cp = ctx.store.checkpoint(ctx.pipeline, endpoint, STREAM)
    if cp is None:
        return dict(ctx.endpoints[endpoint].position())
    return snapshot_floor.from_stream(ctx.endpoints[endpoint], cp)  # where its reads stand


def stage_endpoint(ctx: PipelineContext, ent: EntityContext, endpoint: str,
                   progress: Progress | None = None, chunks: int | None = None) -> int:
    """Copy one endpoint's rows into the staging table, ``chunks`` chunks of them at most
    (None: all); resumable. Returns how many rows this call staged."""
    store = ctx.store
    src = ctx.endpoints[endpoint]
    binding = ent.bindings[endpoint]
    prog = store.snapshot_progress(ctx.pipeline, ent.name).get(endpoint)
    if prog is not None and prog["status"] == "staged":
        return 0
    if prog is None:
        position = stream_start(ctx, endpoint, read=endpoint in ent.sources)
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
    staged = 0
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
        staged += len(rows)
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
            return staged
        if chunks is not None:
            chunks -= 1
            if chunks <= 0:
                return staged
        ctx.stop_point()


def reconcile(ctx: PipelineContext, ent: EntityContext, summary: RunSummary,
              workers: BatchWorkers | None = None) -> None:
    """Decide every staged key across its endpoints, apply, and start the streams.

    ``workers`` (ready): each batch of keys is split into key ranges, one per worker,
    each decided, saved and applied by its worker (:func:`reconcile_range`)."""
    store = ctx.store
    size = int(ctx.cfg.batch.size)
    # A key whose state was saved before this snapshot began and that a source no
    # longer holds was deleted there without its log saying so (a resync after the
    # log was lost). A state saved since (a reconcile resumed after a crash) may be
    # newer than the staged read: no delete is inferred for it.
    began = store.snapshot_started(ctx.pipeline, ent.name)
    after: str | None = None
    while True:
        if workers is not None and workers.takes_ranges():
            keys = store.staged_keys(ctx.pipeline, ent.name, after, size)
            if not keys:
                break
            bounds = split(keys, len(workers.workers))
            workers.reconcile_ranges(ent.name, after, bounds, began, summary)
            after = bounds[-1]
        else:
            staged = store.staged(ctx.pipeline, ent.name, after, size)
            if not staged:
                break
            reconcile_rows(ctx, ent, staged, began, summary)
            after = staged[-1]["key"]
        ctx.stop_point()
    start_streams(ctx, ent)


def split(keys: list[str], parts: int) -> list[str]:
    """The last key of each of up to ``parts`` ranges of about as many of ``keys``
    (in order, each range ending at its bound)."""
    step = -(-len(keys) // parts)  # ceil: the last range is the shortest
    return [keys[min(len(keys), (i + 1) * step) - 1] for i in range(parts)
            if i * step < len(keys)]


def reconcile_range(ctx: PipelineContext, entity: str, after: str | None, until: str,
                    began: float | None, summary: RunSummary) -> None:
    """A batch worker's part of a reconcile (sync/parallel.py ``reconcile_ranges``): the
    staged keys after ``after`` up to ``until``, decided, saved and applied."""
    ent = ctx.entities[entity]
    staged = ctx.store.staged(ctx.pipeline, entity, after, 0, until=until)
    if staged:
        reconcile_rows(ctx, ent, staged, began, summary)


def reconcile_rows(ctx: PipelineContext, ent: EntityContext, staged: list[dict[str, Any]],
                   began: float | None, summary: RunSummary) -> None:
    """Decide the keys of ``staged`` (their staged rows, every endpoint's), save their
    states and conflicts, then apply what they left due."""
    store = ctx.store
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for r in staged:
        by_key.setdefault(r["key"], {})[r["endpoint"]] = r
    if ent.cfg.quality.suite is not None:  # data-quality gate (sync/quality)
        from sync.quality.hook import hold_snapshot_keys

        hold_snapshot_keys(ctx, ent, by_key, summary)  # quarantined keys wait
    states = store.load(ctx.pipeline, ent.name, by_key)
    held = snapshot_floor.floors(store.snapshot_progress(ctx.pipeline, ent.name))
    saved = store.saved_at(ctx.pipeline, ent.name, by_key) if began is not None else {}
    reads: dict[str, dict[str, Read]] = {}
    for k, rows in by_key.items():
        if began is not None and saved.get(k, began - 1) >= began:
            # Decided by this snapshot already, by a run or worker that died before
            # the reconcile ended: its staged rows are older than what it knows (our
            # applies since), not news. Its applies still due are made below.
            continue
        # by staged JSON text: endpoints alike (the usual) share one parse and hash
        contents: dict[str, tuple[dict[str, Any], str]] = {}
        found = reads[k] = {}
        for ep, staged_row in rows.items():
            text = staged_row["row"]
            if text not in contents:
                parsed = row_from_json(parse_json(text)) or {}
                contents[text] = (parsed, row_hash(parsed))
            found[ep] = (*contents[text], from_json_value(staged_row["row_version"]),
                         float(staged_row["committed_at"]), False)
    with_commit_times(ctx, ent, reads)
    records: list[tuple[str, ConflictRecord]] = []
    for k, found in reads.items():
        # (saved before the snapshot began: an absence is news)
        records += [(k, rec) for rec in decide_key(ent, states[k], found, summary,
                                                  gone=k in saved, when=began or 0.0,
                                                  held=held)]
    summary.snapshot_rows += len(staged)
    save_and_apply(ctx, ent, states, records, summary)


#: a key's row as a snapshot read it at an endpoint: content, its row hash, row
#: version, when it was read or (last) when it was committed, and whether it is that
Read = tuple[dict[str, Any], str, Any, float, bool]


def with_commit_times(ctx: PipelineContext, ent: EntityContext,
                      reads: dict[str, dict[str, Read]]) -> None:
    """Give the reads of each key whose rows differ between its sources the commit
    times of those rows, where every one of those sources recorded its row's
    (PostgreSQL with ``track_commit_timestamp``: ``commit_times`` of its endpoint).

    The first sync of two databases that already hold the same records, differently,
    then decides each such record by its last writer, as the policies take it, rather
    than by endpoint name. Only differing keys are looked up (one query per endpoint
    and batch): rows alike at every endpoint are decided without a time.
    """
    tellers: dict[str, Callable[[list[int]], dict[int, float]] | None] = {
        ep: getattr(ctx.endpoints[ep], "commit_times", None) for ep in ent.sources}
    differing: dict[str, dict[str, Read]] = {}
    for k, found in reads.items():
        mine = {ep: r for ep, r in found.items() if ep in ent.sources}
        if len(mine) > 1 and len({r[1] for r in mine.values()}) > 1 \
                and all(tellers[ep] is not None for ep in mine):
            differing[k] = mine
    wanted: dict[str, set[int]] = {}
    for mine in differing.values():
        for ep, r in mine.items():
            if isinstance(r[2], int):
                wanted.setdefault(ep, set()).add(r[2])
    times: dict[str, dict[int, float]] = {}
    for ep, versions in wanted.items():
        tell = tellers[ep]
        assert tell is not None
        times[ep] = tell(sorted(versions))
    for k, mine in differing.items():
        at = {ep: times.get(ep, {}).get(r[2]) for ep, r in mine.items()}
        if all(t is not None for t in at.values()):
            for ep, r in mine.items():
                reads[k][ep] = (r[0], r[1], r[2], float(at[ep] or 0.0), True)


def decide_key(ent: EntityContext, st: KeyState, found: Mapping[str, Read],
               summary: RunSummary, *, gone: bool = False,
               when: float = 0.0, held: Mapping[str, Position] | None = None
               ) -> list[ConflictRecord]:
    """:func:`on_snapshot` of one key read at ``found``'s endpoints (absent at the
    entity's others); returns its conflicts. ``gone``: an absence is news (the key's
    state was saved before the snapshot began, at ``when``). ``held``: where the
    snapshot's reads stand in streams read from before them (sync/snapshot_floor.py)."""
    reads: dict[str, Edit | None] = {}
    hashes: dict[str, str] = {}
    for ep in ent.bindings:
        r = found.get(ep)
        edit = None
        if r is not None:
            content, hashes[ep], version, at, timed = r
            if st.key is None:
                st.key = {c: content[c] for c in ent.cfg.key}
            edit = Edit(endpoint=ep, content=content, position=None, committed_at=at,
                        row_version=version, commit_known=timed)
        # (restored from an older copy: only where it is written to, two ways; a one-way
        # source is what its targets follow)
        restored = ep in ent.sinks and ep in st.endpoints and is_behind(st.endpoints[ep])
        if ep in ent.sources and not restored:
            reads[ep] = edit
            if edit is not None:
                summary.at(ent.name, ep, "*").read += 1
        else:  # a target only, or restored: what it holds is known, but it is no edit
            e = st.at(ep)
            e.hash = hashes[ep] if edit else ""
            e.row_version = edit.row_version if edit else None
    absent = [ep for ep, r in reads.items() if r is None] if gone else []
    records = []
    for out in on_snapshot(st, reads, entity=ent.name, key=st.key or {}, sinks=ent.sinks,
                           resolve=ent.resolve, gone=absent, when=when, hashes=hashes):
        if out.conflict is not None:
            records.append(out.conflict)
            src = out.conflict.case.incoming.endpoint
            if out.kind is Kind.PARKED:
                summary.at(ent.name, src, "*").parked += 1
            else:
                summary.at(ent.name, src, "*").resolved += 1
    if held:
        snapshot_floor.hold(st, held)
    return records


def save_and_apply(ctx: PipelineContext, ent: EntityContext, states: Mapping[str, KeyState],
                   records: list[tuple[str, ConflictRecord]], summary: RunSummary) -> None:
    """Save reconciled states with their conflicts, then make the applies they left due
    (the outbox is saved before any apply: a run that dies between replays it)."""
    from conflict.store import ConflictStore

    store = ctx.store
    with store.transaction() as conn:
        saved_at = store.save(conn, ctx.pipeline, ent.name, states)
        ConflictStore.record_all(conn, ctx.pipeline, records, ctx.run_id)
    apply_pending(ctx, ent, states, summary, saved_at=saved_at)


def start_streams(ctx: PipelineContext, ent: EntityContext) -> None:
    """Mark the entity's snapshot done: its streams start where it began."""
    store = ctx.store
    progress = store.snapshot_progress(ctx.pipeline, ent.name)
    with store.transaction() as conn:
        for ep, prog in progress.items():
            # The (endpoint, entity) row marks the snapshot done; the stream of an
            # endpoint read for the first time starts where the snapshot began.
            position = snapshot_floor.stream_position(prog["position"])
            store.put_checkpoint(conn, ctx.pipeline, ep, ent.name, position)
            if ep in ent.sources and store.checkpoint(ctx.pipeline, ep, STREAM) is None:
                store.put_checkpoint(conn, ctx.pipeline, ep, STREAM, position)
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
        positions = {ep: stream_start(ctx, ep, read=ep in ent.sources) for ep in ent.bindings}
        with store.transaction() as conn:
            for ep, position in positions.items():
                store.put_snapshot_progress(conn, ctx.pipeline, ent.name, ep, status="reading",
                                            position=position, after_key=None, rows=0)
    if (not prog or any(p["status"] == DIRECT for p in prog.values())) \
            and direct_snapshot(ctx, ent, summary, progress):
        start_streams(ctx, ent)
        return
    from sync.snapshot_merged import MERGED, merged_snapshot

    if (not prog or any(p["status"] == MERGED for p in prog.values())) \
            and merged_snapshot(ctx, ent, summary, progress):
        start_streams(ctx, ent)
        return
    workers = BatchWorkers.for_run(ctx) if _parallel(ctx, ent) else None
    try:
        stage_all(ctx, ent, progress, workers)
        reconcile(ctx, ent, summary, workers)
    finally:
        if workers is not None:
            summary.worker_batches += workers.used
            workers.stop()


def ungated_servers(ctx: PipelineContext, ent: EntityContext) -> bool:
    """Has ``ent`` no quality gate (its snapshot hold works on staged rows, in the run's
    process) and only endpoints that take writers side by side (servers, not SQLite
    files)? The snapshots that use worker processes or merge by key ask."""
    return ent.cfg.quality.suite is None and all(
        getattr(ctx.endpoints[ep], "parallel_apply", False) for ep in ent.bindings)


def _parallel(ctx: PipelineContext, ent: EntityContext) -> bool:
    """May a batch run's worker processes stage and reconcile ``ent``? Where
    :func:`ungated_servers`, and not for a table under two chunks at every endpoint
    (the workers' start, about a second of both cores, would cost more)."""
    return ungated_servers(ctx, ent) and any(
        large_table(ctx.endpoints[ep], b, int(ctx.cfg.batch.snapshot_chunk))
        for ep, b in ent.bindings.items())


def stage_all(ctx: PipelineContext, ent: EntityContext, progress: Progress | None,
              workers: BatchWorkers | None) -> None:
    """Stage every endpoint of ``ent``. With ``workers`` (started here): chunk by chunk
    in this process until they are ready, then each endpoint by a worker of its own, a
    chunk per round, side by side."""
    if workers is None:
        for ep in ent.bindings:
            stage_endpoint(ctx, ent, ep, progress)
        return
    workers.start()

    def rows() -> dict[str, tuple[int, bool]]:  # by endpoint: rows staged so far, all?
        prog = ctx.store.snapshot_progress(ctx.pipeline, ent.name)
        return {ep: (int(p["rows"]), p["status"] == "staged") if (p := prog.get(ep))
                else (0, False) for ep in ent.bindings}

    before = rows()
    while pending := [ep for ep, (_, done) in before.items() if not done]:
        if workers.takes_ranges():
            workers.stage_chunks(ent.name, pending[:len(workers.workers)])
            now = rows()
            if progress is not None:
                for ep in pending:
                    if now[ep][0] > before[ep][0]:
                        progress(ep, now[ep][0] - before[ep][0])
            before = now
        else:
            stage_endpoint(ctx, ent, pending[0], progress, chunks=1)
            before = rows()
        ctx.stop_point()
