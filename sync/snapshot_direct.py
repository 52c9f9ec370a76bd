"""The initial snapshot of one source into endpoints that hold nothing yet.

The general snapshot (sync/snapshot.py) stages every endpoint's rows in the
state store, reads them back and reconciles them by key: the price of
matching rows across endpoints. When only one endpoint holds rows (a source)
and the entity has no key states yet, there is nothing to match: every row
is an insert at every other endpoint. This path then takes each chunk of the
source straight through the protocol (``on_snapshot`` with the others read
as absent, exactly what the staged path would decide; one key of a chunk
decided, the others made like it: ``snapshot_like``), applies it, and saves
the states with their apply results and the source's progress past the chunk
in one transaction: each key's state is written once, with no outbox rows
for the applies that succeeded (what is left due goes to the outbox as ever).

Equivalence with the staged path: every endpoint's log position is taken
before anything is read, and the others are read as empty (in the same
exported snapshot where the endpoint has one) after it; a row written there
later is a change of their streams, as it would be for the staged path that
read them empty.

Crash safety without saving a chunk's states before its applies: nothing
else knows these keys (no state, no outbox, no message), and the progress
marks the snapshot as direct before the first apply. A run dying between a
chunk's applies and their save leaves the progress before that chunk; the
next run reads the chunk again and applies it again, and every sink reports
a row that still holds our own write as ours (ALREADY, or STALE when the
source row changed since: applied again against the row version it
reports), never as a user's edit. The outbox of earlier chunks (applies
still due) is replayed first.

On a table of more than ``batch.parallel_from`` rows whose targets take
writers side by side (servers, not SQLite files), a batch run's worker
processes decide and apply the chunks (sync/parallel.py), and the run saves
the progress once every part of a chunk is saved. A source that reads key
ranges (connectors/base.py ``RangeSnapshots``: PostgreSQL, MariaDB) has the
workers read the chunks themselves: the run finds where a chunk's key ranges
end (from the key's index alone) and each worker reads, decides, applies and
saves its range, so the rows are never built in the run's process nor
pickled through a pipe (about a fifth of the CPU a row cost). A range is read
in the same snapshot as the run's chunks where the source shares it
(PostgreSQL's exported snapshot), else in a snapshot of the worker's own,
later than the run's (a MariaDB consistent snapshot is its session's own), as
a resumed snapshot reads current data: what changed since the position is
read again from the log. The ranges of a chunk are bounded on both sides, so
a row is read in one of them at most, and what the bounds' read missed is in
the stream. Any other source has the run read each chunk and send its rows,
reading the next chunk meanwhile.

Not taken with a data-quality suite on the entity: the gate's snapshot hold
works on staged rows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from conflict.canonical import key_text, row_from_json, row_to_json
from conflict.protocol import Edit, KeyState, on_snapshot, snapshot_like
from connectors.base import RangeSnapshots
from sync.apply import apply_unsaved, replay_outbox
from sync.capture import hashed_versions, known_hash, state_lock, typed
from sync.change import SnapshotChunk
from sync.context import EntityContext, PipelineContext
from sync.parallel import BatchWorkers
from sync.snapshot_floor import floors, hold
from sync.summary import RunSummary

Progress = Callable[[str, int], None]  # (endpoint, rows read) after each chunk
#: the source's snapshot status while a direct snapshot runs (the others stay "reading")
DIRECT = "direct"


def sole_holder(ctx: PipelineContext, ent: EntityContext) -> str | None:
    """The one source holding rows when every other endpoint holds none, if so."""
    holding = [ep for ep, b in ent.bindings.items()
               if ctx.endpoints[ep].snapshot(b, None, 1).rows]
    if len(holding) == 1 and holding[0] in ent.sources:
        return holding[0]
    return None


def direct_snapshot(ctx: PipelineContext, ent: EntityContext, summary: RunSummary,
                    progress: Progress | None = None) -> bool:
    """Snapshot ``ent`` without staging if it qualifies; False: use the staged path.

    A fresh snapshot qualifies when its progress is as the caller recorded it
    (each endpoint's stream start, nothing read), the entity has no key state,
    no data-quality suite, and one source holds every row; a direct snapshot
    that was interrupted resumes after its source's last saved key.
    """
    store = ctx.store
    prog = store.snapshot_progress(ctx.pipeline, ent.name)
    source = next((ep for ep, p in prog.items() if p["status"] == DIRECT), None)
    if source is not None:
        # Applies of saved chunks still due; the chunk a dead run was applying is read again.
        replay_outbox(ctx, ent, summary)
        after = row_from_json(prog[source]["after_key"])
        total = int(prog[source]["rows"])
    else:
        if any(p["status"] != "reading" or p["after_key"] is not None for p in prog.values()):
            return False  # a staged snapshot under way
        if ent.cfg.quality.suite is not None or store.count_keys(ctx.pipeline, ent.name):
            return False
        source = sole_holder(ctx, ent)
        if source is None:
            return False
        after, total = None, 0
    src, binding, position = ctx.endpoints[source], ent.bindings[source], prog[source]["position"]
    others = [ep for ep in ent.bindings if ep != source]
    chunk_size = int(ctx.cfg.batch.snapshot_chunk)
    lock = state_lock(ctx)
    if after is None and total == 0:
        # Direct from here on, before anything is applied: a dead run's next run must
        # not take the targets' rows (ours) for rows to reconcile (the staged path).
        with store.transaction(lock=lock) as conn:
            store.put_snapshot_progress(conn, ctx.pipeline, ent.name, source, status=DIRECT,
                                        position=position, after_key=None, rows=0)
    now = time.time()
    workers = BatchWorkers.for_run(ctx) if all(
        getattr(ctx.endpoints[t], "parallel_apply", False) for t in others) and large_table(
        src, binding, chunk_size) else None
    # Once started, the workers read the chunks of a source that shares its snapshot
    # with other sessions themselves (a chunk's rows then cross no pipe).
    ranged = ranged_source(src)
    try:
        chunk: SnapshotChunk | None = src.snapshot(binding, after, chunk_size)
        while True:
            nxt: SnapshotChunk | Exception | None = None
            if chunk is None:
                assert workers is not None and ranged is not None
                bounds, done = ranged.snapshot_bounds(binding, after, chunk_size,
                                                      len(workers.workers))
                count = 0
                if bounds:
                    count = workers.snapshot_ranges(ent.name, source, after, bounds,
                                                    ranged.shared_snapshot(), now, summary)
                    after = bounds[-1]
                summary.at(ent.name, source, "*").read += count
                saved: Mapping[str, KeyState] = {}  # by the workers, each its part
            else:
                rows = [(r.row, r.row_version) for r in chunk.rows]
                count, done = len(rows), chunk.done
                summary.at(ent.name, source, "*").read += count
                after = dict(chunk.last_key) if chunk.last_key is not None else after
                ahead: Callable[[], SnapshotChunk | Exception] | None = None
                if not done and ranged is None:  # the next chunk, read while workers work
                    ahead = functools.partial(_read, src, binding, after, chunk_size)
                if workers is not None and workers.takes_rows(count, more=not done):
                    nxt = workers.snapshot_rows(ent.name, source, rows, now, summary, ahead)
                    saved = {}
                else:
                    saved = decide_and_apply(ctx, ent, source, rows, now, summary)
            summary.snapshot_rows += count
            total += count
            encoded = store.encode(saved)
            with store.transaction(lock=lock) as conn:
                store.save(conn, ctx.pipeline, ent.name, saved, encoded=encoded)
                store.put_snapshot_progress(conn, ctx.pipeline, ent.name, source,
                                            status=DIRECT, position=position,
                                            after_key=row_to_json(after), rows=total)
            if progress is not None:
                progress(source, count)
            if done:
                return True
            ctx.stop_point()
            if isinstance(nxt, Exception):
                raise nxt  # (after this chunk's progress was saved)
            if nxt is not None:
                chunk = nxt
            elif ranged is not None and workers is not None and workers.takes_ranges():
                chunk = None
            else:
                chunk = src.snapshot(binding, after, chunk_size)
    finally:
        if workers is not None:
            summary.worker_batches += workers.used
            workers.stop()


def ranged_source(src: object) -> RangeSnapshots | None:
    """``src`` if it shares its snapshot with other sessions. (Looked up, not
    ``isinstance`` of the protocol, which ABCMeta caches per class.)"""
    if all(callable(getattr(src, m, None)) for m in (
            "shared_snapshot", "snapshot_bounds", "snapshot_range")):
        return cast(RangeSnapshots, src)
    return None


def large_table(src: Any, binding: Any, chunk_size: int) -> bool:
    """Worth the workers' start (about a second of both cores)? Not for a table under
    two chunks: the first would be done before they are ready, and the next read may
    find nothing. An endpoint that cannot count its rows up to a bound (``rows_up_to``)
    has them start after a full chunk."""
    count = getattr(src, "rows_up_to", None)
    return count is None or count(binding, 2 * chunk_size) >= 2 * chunk_size


def _read(src: Any, binding: Any, after: Mapping[str, Any] | None,
          size: int) -> SnapshotChunk | Exception:
    """A chunk read ahead, or why it could not be (raised once the chunk before it is
    saved, as a read in turn would be)."""
    try:
        chunk: SnapshotChunk = src.snapshot(binding, after, size)
        return chunk
    except Exception as exc:
        return exc


def decide_and_apply(ctx: PipelineContext, ent: EntityContext, source: str,
                     rows: Sequence[tuple[Mapping[str, Any], Any]], now: float,
                     summary: RunSummary) -> dict[str, KeyState]:
    """The states of ``rows`` (``(row, row version)`` read at ``source``), decided and
    applied at every other endpoint, their results recorded: ready to be saved."""
    others = [ep for ep in ent.bindings if ep != source]
    hashed = hashed_versions(ctx, source)
    held = floors(ctx.store.snapshot_progress(ctx.pipeline, ent.name))
    states: dict[str, KeyState] = {}
    template: KeyState | None = None
    for row, version in rows:
        content = typed(ent, row) or {}
        key = {c: content[c] for c in ent.cfg.key}
        read = Edit(endpoint=source, content=content, position=None, committed_at=now,
                    row_version=version,
                    content_hash=known_hash(hashed, content, row, version))
        if template is None:
            # Decided by the protocol once; every other key of the chunk is read the
            # same way (present at the source only), so decides the same.
            st = template = KeyState(key=key)
            reads: dict[str, Edit | None] = {ep: None for ep in others if ep in ent.sources}
            reads[source] = read
            for ep in others:
                if ep not in ent.sources:  # a target only: known to hold nothing
                    st.at(ep).hash = ""
            on_snapshot(st, reads, entity=ent.name, key=key, sinks=ent.sinks,
                        resolve=ent.resolve)
            hold(st, held)  # (copied to the others)
        else:
            st = snapshot_like(template, read, key)
        states[key_text(key)] = st  # (the key columns of the typed row)
    apply_unsaved(ctx, ent, states, summary)
    return states


def save_range(ctx: PipelineContext, entity: str, source: str,
               after: Mapping[str, Any] | None, until: Mapping[str, Any],
               snapshot: str | None, now: float, summary: RunSummary) -> int:
    """A batch worker's part of a chunk that it reads itself: ``source``'s rows after
    ``after`` up to ``until`` in the exported snapshot ``snapshot`` (sync/parallel.py
    ``snapshot_ranges``), then :func:`save_part`. Returns how many rows it read (the
    run counts them)."""
    ent = ctx.entities[entity]
    src = ranged_source(ctx.endpoints[source])
    assert src is not None
    rows = [(r.row, r.row_version)
            for r in src.snapshot_range(ent.bindings[source], after, until, snapshot)]
    if rows:
        save_part(ctx, entity, source, rows, now, summary)
    return len(rows)


def save_part(ctx: PipelineContext, entity: str, source: str,
              rows: Sequence[tuple[Mapping[str, Any], Any]], now: float,
              summary: RunSummary) -> None:
    """A batch worker's part of a chunk (sync/parallel.py): decided, applied and saved;
    the run saves the snapshot's progress past the chunk once every part is."""
    ent = ctx.entities[entity]
    states = decide_and_apply(ctx, ent, source, rows, now, summary)
    encoded = ctx.store.encode(states)
    with ctx.store.transaction(lock=state_lock(ctx)) as conn:
        ctx.store.save(conn, ctx.pipeline, entity, states, encoded=encoded)
