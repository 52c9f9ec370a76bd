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

Not taken with a data-quality suite on the entity: the gate's snapshot hold
works on staged rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from conflict.canonical import key_text, row_from_json, row_to_json
from conflict.protocol import Edit, KeyState, on_snapshot, snapshot_like
from sync.apply import apply_unsaved, replay_outbox
from sync.capture import state_lock, typed
from sync.context import EntityContext, PipelineContext
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
    while True:
        chunk = src.snapshot(binding, after, chunk_size)
        states: dict[str, KeyState] = {}
        template: KeyState | None = None
        for r in chunk.rows:
            content = typed(ent, r.row) or {}
            key = {c: content[c] for c in ent.cfg.key}
            read = Edit(endpoint=source, content=content, position=None, committed_at=now,
                        row_version=r.row_version)
            if template is None:
                # Decided by the protocol once; every other key of the chunk is read the
                # same way (present at the source only), so decides the same.
                st = template = KeyState(key=key)
                reads: dict[str, Edit | None] = {ep: None for ep in others
                                                 if ep in ent.sources}
                reads[source] = read
                for ep in others:
                    if ep not in ent.sources:  # a target only: known to hold nothing
                        st.at(ep).hash = ""
                on_snapshot(st, reads, entity=ent.name, key=key, sinks=ent.sinks,
                            resolve=ent.resolve)
            else:
                st = snapshot_like(template, read, key)
            states[key_text(key)] = st  # (the key columns of the typed row)
        summary.at(ent.name, source, "*").read += len(chunk.rows)
        summary.snapshot_rows += len(chunk.rows)
        total += len(chunk.rows)
        after = dict(chunk.last_key) if chunk.last_key is not None else after
        apply_unsaved(ctx, ent, states, summary)
        encoded = store.encode(states)
        with store.transaction(lock=lock) as conn:
            store.save(conn, ctx.pipeline, ent.name, states, encoded=encoded)
            store.put_snapshot_progress(conn, ctx.pipeline, ent.name, source, status=DIRECT,
                                        position=position, after_key=row_to_json(after),
                                        rows=total)
        if progress is not None:
            progress(source, len(chunk.rows))
        if chunk.done:
            return True
        ctx.stop_point()
