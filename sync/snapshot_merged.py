"""The first snapshot of endpoints that already hold rows, merged by key as it is read.

The staged path (sync/snapshot.py) writes every endpoint's rows to the state
store and reads them back to match them by key: about half of its work. Where
every engine orders the key alike (integer key columns) and the entity has no
key state yet (its first sync), the endpoints' chunks are read side by side
and merged by key instead. Each round reads every endpoint on past its last
key read; the rows of every key up to the smallest of those last keys (the
round's bound; an endpoint read to its end sets none) are then complete at
every endpoint, and are decided exactly as the reconcile decides staged rows
(sync/snapshot.py ``decide_key``), saved and applied. The progress (status
``merged``, the bound) is saved after them. Rows read past the bound wait for
the next round.

Resumed after a crash, every endpoint is read again after the saved bound, in a
snapshot taken then, whose position the keys decided from there on hold as
read (:func:`_read_anew`). A key decided past it before the crash has a state
(none existed when the snapshot began): it stays as decided, as in a reconcile
started over.

Consistency is the staged path's: each endpoint's log position is taken
before anything is read, and what changed after it is read again from its log.

On a table of two chunks or more, a batch run's worker processes
(sync/parallel.py) take each round. Where every endpoint reads key ranges
(PostgreSQL, MariaDB: connectors/base.py ``RangeSnapshots``), the run asks
each endpoint's key index where the round's ranges end and each worker reads
its range at every endpoint (in the snapshot the endpoint shares, else in one
of its own), then decides, saves and applies it; otherwise the run reads the
round and sends each worker its keys' rows, reading the next round meanwhile.

Not taken with a quality gate on the entity (its hold works on staged rows),
for keys other than integers (text keys order by each server's collation),
nor where an endpoint is a SQLite file (its columns may hold any type).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from conflict.canonical import key_text, row_from_json, row_hash, row_to_json
from conflict.protocol import ConflictRecord
from connectors.base import RangeSnapshots
from sync.capture import hashed_versions, known_hash, state_lock, typed
from sync.change import SnapshotRow
from sync.context import EntityContext, PipelineContext
from sync.parallel import BatchWorkers
from sync.snapshot import (
    Read,
    decide_key,
    save_and_apply,
    ungated_servers,
    with_commit_times,
)
from sync.snapshot_direct import Progress, large_table, ranged_source
from sync.snapshot_floor import floors, from_stream, stream_position
from sync.summary import RunSummary

MERGED = "merged"
#: one key's rows by endpoint: (row, row version) as its endpoint read them
KeyRows = dict[str, tuple[Mapping[str, Any], Any]]


def mergeable(ctx: PipelineContext, ent: EntityContext) -> bool:
    """Can ``ent``'s endpoints be merged by key as they are read (see the module)?"""
    return ungated_servers(ctx, ent) and all(ent.types.get(c) == "int" for c in ent.cfg.key)


def merged_snapshot(ctx: PipelineContext, ent: EntityContext, summary: RunSummary,
                    progress: Progress | None = None) -> bool:
    """Snapshot ``ent`` merged by key, or resume such a snapshot; False (nothing done)
    where it cannot be (the caller stages)."""
    store = ctx.store
    prog = store.snapshot_progress(ctx.pipeline, ent.name)
    if not prog or set(prog) != set(ent.bindings):
        return False
    lock = state_lock(ctx)
    if any(p["status"] == MERGED for p in prog.values()):
        first = prog[next(iter(ent.bindings))]
        after = row_from_json(first["after_key"])
        total = int(first["rows"])
        prog = _read_anew(ctx, ent, prog, after, total)
    else:
        if any(p["status"] != "reading" or p["after_key"] is not None for p in prog.values()):
            return False  # a staged snapshot under way
        if not mergeable(ctx, ent) or store.count_keys(ctx.pipeline, ent.name):
            return False
        after, total = None, 0
        with store.transaction(lock=lock) as conn:
            for ep, p in prog.items():
                store.put_snapshot_progress(conn, ctx.pipeline, ent.name, ep, status=MERGED,
                                            position=p["position"], after_key=None, rows=0)
    chunk_size = int(ctx.cfg.batch.snapshot_chunk)
    workers = BatchWorkers.for_run(ctx) if any(
        large_table(ctx.endpoints[ep], b, chunk_size) for ep, b in ent.bindings.items()
    ) else None
    if workers is not None:
        workers.start()
    ranged = _ranged_all(ctx, ent)
    reader: _Merger | None = None
    try:
        while True:
            now = time.time()
            if ranged is not None and workers is not None and workers.takes_ranges():
                # the workers read the round's key ranges themselves, at every endpoint
                read_before = {ep: summary.at(ent.name, ep, "*").read for ep in ent.sources}
                bounds, finished = _round_bounds(ent, ranged, after, chunk_size,
                                                 len(workers.workers))
                if bounds:
                    total += workers.merged_ranges(
                        ent.name, after, bounds,
                        {ep: r.shared_snapshot() for ep, r in ranged.items()}, now, summary)
                    after = bounds[-1]
                counts = {ep: summary.at(ent.name, ep, "*").read - n
                          for ep, n in read_before.items()}
                bound = None if finished else _key(ent, after or {})
                reader = None  # (what it read ahead is behind the workers' ranges)
            else:
                if reader is None:
                    reader = _Merger(ctx, ent, after, chunk_size)
                    reader.fill()
                keys, bound, counts = reader.take()
                if workers is not None and keys and workers.takes_ranges():
                    workers.merged_parts(ent.name, keys, now, summary,
                                         None if bound is None else reader.fill)
                else:
                    decide_merged(ctx, ent, keys, now, summary)
                    if bound is not None:
                        reader.fill()
                total += sum(counts.values())
                if bound is not None:
                    after = dict(zip(ent.cfg.key, bound, strict=True))
            with store.transaction(lock=lock) as conn:
                for ep, p in prog.items():
                    store.put_snapshot_progress(
                        conn, ctx.pipeline, ent.name, ep, status=MERGED,
                        position=p["position"], after_key=row_to_json(after), rows=total)
            if progress is not None:
                for ep, n in counts.items():
                    progress(ep, n)
            if bound is None:
                return True
            ctx.stop_point()
    finally:
        if workers is not None:
            summary.worker_batches += workers.used
            workers.stop()


def _read_anew(ctx: PipelineContext, ent: EntityContext, prog: dict[str, dict[str, Any]],
               after: Mapping[str, Any] | None, total: int) -> dict[str, dict[str, Any]]:
    """A merged snapshot resumed in a new process: the snapshot its rounds read in is
    gone. The rounds left read in one taken now at every endpoint whose log is read,
    whose position the keys they decide hold as read there (sync/snapshot_floor.py):
    the stream, read on from where the snapshot began, then drops the changes these
    reads already hold. (Read in current data, an edit made while the run was stopped
    was decided twice: by its round, which may have written another endpoint's row
    over it, and again from the log, as an edit made after that decision.)"""
    positions = {ep: from_stream(ctx.endpoints[ep], stream_position(p["position"]))
                 for ep, p in prog.items() if ep in ent.sources}
    if not positions:
        return prog
    store = ctx.store
    with store.transaction(lock=state_lock(ctx)) as conn:
        for ep, position in positions.items():
            store.put_snapshot_progress(conn, ctx.pipeline, ent.name, ep, status=MERGED,
                                        position=position, after_key=row_to_json(after),
                                        rows=total)
    return store.snapshot_progress(ctx.pipeline, ent.name)


def _key(ent: EntityContext, key: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(int(key[c]) for c in ent.cfg.key)


def _ranged_all(ctx: PipelineContext, ent: EntityContext) -> dict[str, RangeSnapshots] | None:
    """Every endpoint of ``ent``, if each reads key ranges (PostgreSQL, MariaDB): the
    workers then read a round themselves, and no row crosses a pipe (pickling rows
    cost the run as much as reading them)."""
    out = {}
    for ep in ent.bindings:
        r = ranged_source(ctx.endpoints[ep])
        if r is None:
            return None
        out[ep] = r
    return out


def _round_bounds(ent: EntityContext, ranged: Mapping[str, RangeSnapshots],
                  after: Mapping[str, Any] | None, size: int,
                  parts: int) -> tuple[list[dict[str, Any]], bool]:
    """A round's key ranges (the last key of each) and whether it is the last round.

    Each endpoint says where its next ``size`` rows split into ``parts`` (from its key
    index). The round ends at the smallest last bound of the endpoints not at their
    end, whose ranges hold every row up to it at every endpoint; where all are at
    their end, at the largest."""
    said = {ep: r.snapshot_bounds(ent.bindings[ep], after, size, parts)
            for ep, r in ranged.items()}
    going = {ep: b for ep, (b, end) in said.items() if b and not end}
    if going:
        return min(going.values(), key=lambda b: _key(ent, b[-1])), False
    ending = [b for b, _ in said.values() if b]
    if not ending:
        return [], True
    return max(ending, key=lambda b: _key(ent, b[-1])), True


class _Merger:
    """Every endpoint's chunks of one entity, read on and merged by key."""

    def __init__(self, ctx: PipelineContext, ent: EntityContext,
                 after: Mapping[str, Any] | None, chunk_size: int) -> None:
        self.ctx, self.ent, self.size = ctx, ent, chunk_size
        self.read: dict[str, list[SnapshotRow]] = {ep: [] for ep in ent.bindings}
        self.last: dict[str, Mapping[str, Any] | None] = dict.fromkeys(ent.bindings, after)
        self.done: dict[str, bool] = dict.fromkeys(ent.bindings, False)

    def fill(self) -> None:
        """Read a chunk of every endpoint that has less than one waiting."""
        for ep, rows in self.read.items():
            if not self.done[ep] and len(rows) < self.size:
                chunk = self.ctx.endpoints[ep].snapshot(self.ent.bindings[ep], self.last[ep],
                                                        self.size)
                rows.extend(chunk.rows)
                if chunk.last_key is not None:
                    self.last[ep] = chunk.last_key
                self.done[ep] = chunk.done

    def take(self) -> tuple[list[KeyRows], tuple[int, ...] | None, dict[str, int]]:
        """The rows of every key up to the bound (complete at every endpoint), merged
        by key in key order; the bound (None: every endpoint was read to its end); the
        rows taken from each endpoint."""
        open_ = []
        for ep, last in self.last.items():
            if not self.done[ep]:
                assert last is not None, "fill() reads every endpoint not read to its end"
                open_.append(_key(self.ent, last))
        bound = min(open_) if open_ else None
        merged: dict[tuple[int, ...], KeyRows] = {}
        counts: dict[str, int] = {}
        for ep, rows in self.read.items():
            n = 0
            for r in rows:
                k = _key(self.ent, r.key)
                if bound is not None and k > bound:
                    break
                merged.setdefault(k, {})[ep] = (r.row, r.row_version)
                n += 1
            counts[ep] = n
            del rows[:n]
        return [merged[k] for k in sorted(merged)], bound, counts


def decide_merged(ctx: PipelineContext, ent: EntityContext, keys: list[KeyRows], now: float,
                  summary: RunSummary) -> None:
    """Decide, save and apply merged keys (their rows by endpoint, read at ``now``), as
    the reconcile does staged ones; a key that has a state already was decided by this
    snapshot before a crash and stays as it was."""
    found: dict[str, dict[str, Read]] = {}
    hashed = {ep: hashed_versions(ctx, ep) for ep in ent.bindings}
    for rows in keys:
        reads: dict[str, Read] = {}
        by_text: dict[str, tuple[dict[str, Any], str]] = {}
        for ep, (row, version) in rows.items():
            content = typed(ent, row) or {}
            h = known_hash(hashed[ep], content, row, version) or row_hash(content)
            content, h = by_text.setdefault(h, (content, h))  # alike rows: one content
            reads[ep] = (content, h, version, now, False)
        content = next(iter(reads.values()))[0]
        found[key_text({c: content[c] for c in ent.cfg.key})] = reads
        summary.snapshot_rows += len(rows)
    with_commit_times(ctx, ent, found)
    states = ctx.store.load(ctx.pipeline, ent.name, found)
    held = floors(ctx.store.snapshot_progress(ctx.pipeline, ent.name))
    records: list[tuple[str, ConflictRecord]] = []
    for k, reads in found.items():
        st = states[k]
        if not st.is_new:
            continue  # decided before a crash (its applies still due are made below)
        records += [(k, rec) for rec in decide_key(ent, st, reads, summary, held=held)]
    save_and_apply(ctx, ent, states, records, summary)


def merged_part(ctx: PipelineContext, entity: str, keys: list[KeyRows], now: float,
                summary: RunSummary) -> None:
    """A batch worker's part of a merged round (sync/parallel.py ``merged_parts``)."""
    decide_merged(ctx, ctx.entities[entity], keys, now, summary)


def merged_range(ctx: PipelineContext, entity: str, after: Mapping[str, Any] | None,
                 until: Mapping[str, Any], snapshots: Mapping[str, str | None], now: float,
                 summary: RunSummary) -> None:
    """A batch worker's part of a merged round that it reads itself: every endpoint's
    rows after ``after`` up to ``until``, in the snapshot each shares (``snapshots``;
    None: current data), merged by key, then decided, saved and applied."""
    ent = ctx.entities[entity]
    merged: dict[tuple[int, ...], KeyRows] = {}
    for ep, name in snapshots.items():
        src = ranged_source(ctx.endpoints[ep])
        assert src is not None
        for r in src.snapshot_range(ent.bindings[ep], after, until, name):
            merged.setdefault(_key(ent, r.key), {})[ep] = (r.row, r.row_version)
    if merged:
        decide_merged(ctx, ent, [merged[k] for k in sorted(merged)], now, summary)
