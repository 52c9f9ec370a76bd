"""Turning a batch of changes read from one source endpoint into decided versions.

A source endpoint has one log for all its tables (a SQLite change table, a
PostgreSQL slot, a binlog), so it is read as one stream in commit order and
checkpointed once (entity ``*``); its changes are routed to their entities.

One batch is one transaction in the state store: the key states it touched,
their outbox rows, the conflicts it raised and the checkpoint it reached are
written together. The daemon writes them before anything is applied and its
workers apply from the outbox (:func:`decide_and_commit`); ``cdcsync run``
applies first and writes them once, results included (:func:`sync_batch`).
Either way the source's log is released (``confirm``) only after the batch
and its applies are durable.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from conflict.canonical import CoercionError, coerce_row, key_text
from conflict.protocol import ConflictRecord, Edit, KeyState, Kind, ParkedConflict, on_change
from connectors.base import UnreadableValue
from sync.apply import Result, apply_pending, apply_unsaved, record_on
from sync.change import Change, ChangeBatch, Checkpoint
from sync.context import EntityContext, PipelineContext
from sync.state.store import new_stamp
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.capture")

STREAM = "*"  # the checkpoint "entity" of an endpoint's whole log


def typed(ent: EntityContext, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A row in the entity's logical types, so that every endpoint's copy compares alike.

    A value its column's entity type cannot read (``'abc'`` from a PostgreSQL column
    altered from integer to text, while the targets' columns stay integer) goes on as
    it is, said once per column: the endpoints that cannot take it refuse it, each
    row a dead letter with the reason, instead of the whole run stopping on it.
    """
    if row is None:
        return None
    if ent.ignored:
        row = {c: v for c, v in row.items() if c not in ent.ignored}
    try:
        return coerce_row(row, ent.types)
    except CoercionError:
        return _leniently_typed(ent, row)


def _leniently_typed(ent: EntityContext, row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c, v in row.items():
        try:
            out[c] = coerce_row({c: v}, ent.types)[c]
        except CoercionError as exc:
            out[c] = v
            if (ent.name, c) not in _UNTYPED:
                _UNTYPED.add((ent.name, c))
                declared = sorted(ep for ep, sch in ent.schemas.items()
                                  for col in sch.columns if col.logical == ent.types.get(c)
                                  and ent.bindings[ep].endpoint_column(c) == col.name)
                who = (f"as {', '.join(declared)} declare{'s' if len(declared) == 1 else ''}"
                       " it" if declared else "as an endpoint declares it")
                log.warning(
                    "entity %s, column %s: a value the column's type %s (%s) cannot read goes"
                    " on as it is (%s); the endpoints whose column cannot take it refuse those"
                    " rows (`cdcsync dlq list`). Did the column's type change at one"
                    " endpoint? Change it at the others too, then `cdcsync dlq requeue`.",
                    ent.name, c, ent.types.get(c), who, exc)
    return out


#: (entity, column) whose values were found their type could not read: said once each
_UNTYPED: set[tuple[str, str]] = set()


def edit_of(ent: EntityContext, ch: Change, *, hashed: bool = False) -> Edit:
    """``ch`` as the protocol reads it. ``hashed``: its source's row versions are
    content hashes (:func:`hashed_versions`)."""
    content = typed(ent, ch.content)
    return Edit(
        endpoint=ch.source,
        content=content,
        position=tuple(ch.position),
        committed_at=ch.committed_at,
        row_version=ch.row_version,
        before=typed(ent, ch.before),
        content_hash=known_hash(hashed, content, ch.content, ch.row_version),
    )


def hashed_versions(ctx: PipelineContext, endpoint: str) -> bool:
    """Are ``endpoint``'s row versions :func:`row_hash` of the rows it reads
    (connectors.base ``Source.hashed_versions``: MariaDB)?"""
    return bool(getattr(ctx.endpoints[endpoint], "hashed_versions", False))


def known_hash(hashed: bool, content: Mapping[str, Any] | None,
               read: Mapping[str, Any] | None, version: Any) -> str | None:
    """``row_hash(content)`` without making it: ``version``, where it is the hash of the
    row ``read`` (``hashed``) and :func:`typed` made ``content`` of that row's very
    values; else None (the caller hashes)."""
    if not hashed or content is None or read is None or len(content) != len(read):
        return None
    return version if all(content.get(c, _ABSENT) is v for c, v in read.items()) else None


_ABSENT = object()


@dataclass
class Decided:
    """What deciding one batch produced, per entity: states to persist and apply."""

    states: dict[str, dict[str, KeyState]] = field(default_factory=dict)
    records: list[tuple[str, str, ConflictRecord]] = field(default_factory=list)
    parked: list[ParkedConflict] = field(default_factory=list)
    parked_keys: list[tuple[str, str]] = field(default_factory=list)  # (entity, key) of each
    oldest_commit: float | None = None
    quarantine: Any = None  # sync/quality: writes the changes the gate held back
    saved_at: float | None = None  # the states' stamp in the store (StateStore.moved_since)


def source_entities(ctx: PipelineContext, source: str) -> list[EntityContext]:
    return [e for e in ctx.entities.values() if source in e.sources]


def prune_log(ctx: PipelineContext, source: str, checkpoint: Checkpoint) -> None:
    """Let ``source`` drop what its log holds at or before ``checkpoint`` of the tables
    this pipeline reads there (where the endpoint keeps such a log: SQLite's change
    table). Only those tables: another pipeline may read the file's other tables, and
    their rows before our checkpoint are not ours to drop."""
    prune = getattr(ctx.endpoints[source], "prune", None)
    if prune is not None:
        prune([checkpoint], tables=sorted(
            {e.bindings[source].table for e in source_entities(ctx, source)}))


def _gated(ctx: PipelineContext, source: str) -> bool:
    """Does an entity read from ``source`` have a data-quality suite (sync/quality)?"""
    return any(e.cfg.quality.suite is not None for e in source_entities(ctx, source))


def _moved(conn: Connection, ctx: PipelineContext, decided: Decided,
           stamps: Mapping[str, Mapping[str, float]]) -> dict[str, set[str]]:
    """Per entity, the keys of ``decided`` saved by someone else since they were loaded
    with ``stamps`` (StateStore.moved_since)."""
    return {name: ctx.store.moved_since(conn, ctx.pipeline, name, states, stamps.get(name, {}))
            for name, states in decided.states.items()}


#: what deciding one change adds to a run's summary: (entity, key, what the protocol
#: made of it, whether it raised a conflict, the change)
Tally = tuple[str, str, Kind, bool, Change]


def count_decided(summary: RunSummary, source: str, tally: Iterable[Tally]) -> None:
    """Add changes tallied by :func:`decide` to ``summary``."""
    for name, _, kind, conflict, _ in tally:
        stats = summary.at(name, source, "*")
        stats.read += 1
        if kind is Kind.DUPLICATE:
            stats.duplicates += 1
        elif kind is Kind.ECHO:
            stats.echoes += 1
        elif kind is Kind.RESOLVED:
            stats.resolved += 1
        elif kind is Kind.PARKED and conflict:
            stats.parked += 1


def decide(
    ctx: PipelineContext, source: str, changes: list[Change], summary: RunSummary,
    conn: Connection | None = None, stamps: dict[str, dict[str, float]] | None = None,
    *, tally: list[Tally] | None = None,
) -> Decided:
    """Run the protocol over ``changes`` (rules 1-3); nothing is written yet.

    Pass the locked transaction that will :func:`commit` the result as ``conn``
    when workers may record apply results concurrently (the daemon), or collect
    the loaded states' save stamps per entity in ``stamps`` and check them under
    the lock before committing (:func:`decide_and_commit`). ``tally``: what each
    change counts for is appended there instead of to ``summary``
    (:func:`count_decided` adds it later, for the keys the caller keeps).
    """
    out = Decided()
    mine: list[Tally] = [] if tally is None else tally
    # --- data-quality gate (sync/quality): validate before the protocol sees anything ---
    if _gated(ctx, source):
        from sync.quality.hook import screen

        changes, out.quarantine = screen(ctx, source, changes, summary, conn)
    # ---------------------------------------------------------------------------------------
    by_entity: dict[str, list[tuple[str, dict[str, Any], Change]]] = {}
    for ch in changes:
        ent = ctx.entities.get(ch.entity)
        if ent is None or source not in ent.sources:
            continue  # a table this endpoint only receives, or no longer synced
        key = typed(ent, ch.key) or {}
        by_entity.setdefault(ch.entity, []).append((key_text(key), key, ch))
        if out.oldest_commit is None or ch.committed_at < out.oldest_commit:
            out.oldest_commit = ch.committed_at
    for name, keyed in by_entity.items():
        ent = ctx.entities[name]
        hashed = hashed_versions(ctx, source)
        states = ctx.store.load(ctx.pipeline, name, (k for k, _, _ in keyed), conn=conn,
                                stamps=None if stamps is None else stamps.setdefault(name, {}))
        touched = out.states.setdefault(name, {})
        for k, key, ch in keyed:
            st = states[k]
            if st.key is None:
                st.key = key
            res = on_change(st, edit_of(ent, ch, hashed=hashed), entity=name, key=key,
                            sinks=ent.sinks, resolve=ent.resolve)
            touched[k] = st
            mine.append((name, k, res.kind, res.conflict is not None, ch))
            if res.kind is Kind.PARKED and res.conflict is None and st.parked is not None:
                out.parked.append(st.parked)
                out.parked_keys.append((name, k))
            if res.conflict is not None:
                out.records.append((name, k, res.conflict))
    if tally is None:
        count_decided(summary, source, mine)
    return out


def state_lock(ctx: PipelineContext) -> str:
    return f"cdcsync-state:{ctx.pipeline}"


def decide_and_commit(ctx: PipelineContext, source: str, changes: list[Change],
                      checkpoint: Mapping[str, Any] | None, summary: RunSummary) -> Decided:
    """Load, decide and persist a batch with its checkpoint, as if in ONE locked transaction.

    The daemon's workers record apply results under the same state lock, so the
    lock is held for the writes only: the batch is loaded, decided and encoded
    before it is taken, and committed under it; the changes of keys whose state
    someone saved meanwhile (their save stamps tell) are decided again under the
    lock, on the states as they are now. A source with a quality gate is
    decided under the lock throughout (the gate reads quarantine state that a
    steward may change).
    """
    if not _gated(ctx, source):
        return _commit_decided(ctx, source, changes, checkpoint, summary)
    with ctx.store.transaction(lock=state_lock(ctx)) as conn:
        decided = decide(ctx, source, changes, summary, conn)
        commit(conn, ctx, source, decided, checkpoint)
    return decided


def _commit_decided(ctx: PipelineContext, source: str, changes: list[Change],
                    checkpoint: Mapping[str, Any] | None, summary: RunSummary) -> Decided:
    """Decide and encode outside the state lock; under it, decide again the changes of
    the keys whose state was saved meanwhile (a worker recorded results on them), then
    commit. Each change is counted in ``summary`` once, by the decision committed."""
    stamps: dict[str, dict[str, float]] = {}
    tally: list[Tally] = []
    first = decide(ctx, source, changes, summary, stamps=stamps, tally=tally)
    encoded = {name: ctx.store.encode(states) for name, states in first.states.items()}
    scratch = RunSummary(pipeline=ctx.pipeline)
    with ctx.store.transaction(lock=state_lock(ctx)) as conn:
        moved = {name: keys for name, keys in _moved(conn, ctx, first, stamps).items() if keys}
        if moved:
            redo = decide(ctx, source, [t[4] for t in tally if t[1] in moved.get(t[0], ())],
                          scratch, conn)
            _replace(first, redo, moved, encoded, ctx)
            tally = [t for t in tally if t[1] not in moved.get(t[0], ())]
        count_decided(scratch, source, tally)
        commit(conn, ctx, source, first, checkpoint, encoded=encoded)
    summary.add(scratch)
    return first


def _replace(first: Decided, redo: Decided, moved: Mapping[str, set[str]],
             encoded: dict[str, dict[str, str]], ctx: PipelineContext) -> None:
    """Put ``redo``'s decisions of the ``moved`` keys in place of ``first``'s."""
    for name, keys in moved.items():
        fresh = {k: redo.states[name][k] for k in keys}
        first.states[name].update(fresh)
        encoded[name].update(ctx.store.encode(fresh))
    first.records = [r for r in first.records if r[1] not in moved.get(r[0], ())]
    first.records += redo.records
    kept = [i for i, (name, k) in enumerate(first.parked_keys) if k not in moved.get(name, ())]
    first.parked = [first.parked[i] for i in kept] + redo.parked
    first.parked_keys = [first.parked_keys[i] for i in kept] + redo.parked_keys


def commit(conn: Connection, ctx: PipelineContext, source: str, decided: Decided,
           checkpoint: Mapping[str, Any] | None,
           encoded: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Persist a decided batch and the checkpoint it reached inside ``conn``'s transaction.

    ``encoded``: the states' stored form per entity, made beforehand (StateStore.encode).
    """
    from conflict.store import ConflictStore

    stamp = new_stamp()
    for name, states in decided.states.items():
        ctx.store.save(conn, ctx.pipeline, name, states, stamp=stamp,
                       encoded=None if encoded is None else encoded[name])
    decided.saved_at = stamp
    ConflictStore.record_all(conn, ctx.pipeline, ((k, rec) for _name, k, rec in decided.records),
                             ctx.run_id)
    for parked in decided.parked:
        ConflictStore.update_parked(conn, parked)
    if checkpoint is not None:
        ctx.store.put_checkpoint(conn, ctx.pipeline, source, STREAM, checkpoint)
    if decided.quarantine is not None:  # sync/quality, atomically with the checkpoint
        decided.quarantine(conn)


def process_batch(ctx: PipelineContext, source: str, batch: ChangeBatch,
                  summary: RunSummary) -> None:
    """Decide, persist, apply and confirm one batch read from ``source`` (batch mode)."""
    from sync.events import expand

    decided = decide_and_commit(ctx, source, expand(ctx, source, batch), batch.checkpoint,
                                summary)
    for name, states in decided.states.items():
        apply_pending(ctx, ctx.entities[name], states, summary, saved_at=decided.saved_at)
    if batch.checkpoint is not None:
        ctx.endpoints[source].confirm(batch.checkpoint)


def sync_batch(ctx: PipelineContext, source: str, batch: ChangeBatch,
               summary: RunSummary) -> None:
    """Decide, apply, then save one batch of a batch run: each key state saved once.

    :func:`process_batch` saves a batch's states with their outbox before the
    applies and again with the results (two encodes and two writes of every
    key). A batch run can apply first: it holds the run lock, so nothing but a
    steward's decision saves key states meanwhile, and a run dying before the
    save has advanced nothing. The next run reads the batch again from the
    source (its checkpoint and the source's confirmed position are where they
    were), and the sinks report the rows holding our writes as ours
    (ALREADY/STALE); none of them comes back as an edit, since every endpoint
    kind suppresses the service's own writes by identity. If someone saved
    one of the batch's keys meanwhile (a steward's decision; a daemon's reader
    or worker still running), the batch is decided again, under the state
    lock, on the states as they are now, told what our writes did (or, for the
    keys saved meanwhile, that their targets are due again: :func:`_due_again`),
    saved with its outbox, and what is due is applied as process_batch does.
    An apply that fails (after its retries) has the batch saved as process_batch
    would have it, with the failed applies in the outbox, before it is raised.

    A source with a quality gate takes :func:`process_batch` (the gate reads
    quarantine state under the state lock), and so does one with a target whose
    own writes come back in its log (no ``own_writes_tagged``, connectors.base.Sink):
    a run dying before the save would not know them when they are read.
    """
    from sync.events import expand

    if not saves_once(ctx, source):
        process_batch(ctx, source, batch, summary)
        return
    failed = save_once(ctx, source, expand(ctx, source, batch), summary, batch.checkpoint)
    if failed is not None:
        raise failed
    if batch.checkpoint is not None:
        ctx.endpoints[source].confirm(batch.checkpoint)


def saves_once(ctx: PipelineContext, source: str) -> bool:
    """Can batches of ``source`` be applied before they are saved (:func:`sync_batch`)?"""
    return not _gated(ctx, source) and all(
        getattr(ctx.endpoints[t], "own_writes_tagged", False)
        for e in source_entities(ctx, source) for t in e.sinks)


def save_once(ctx: PipelineContext, source: str, changes: list[Change], summary: RunSummary,
              checkpoint: Mapping[str, Any] | None) -> Exception | None:
    """Decide ``changes``, apply them, then save their states once with ``checkpoint``
    (None: none). :func:`sync_batch`'s steps up to the source's confirm; a batch
    run's worker processes (sync/parallel.py) run them on their part of a batch.

    Returns an apply's error (after its retries) once the states are saved with
    what is still due in their outbox; raises anything that leaves them unsaved.
    """
    stamps: dict[str, dict[str, float]] = {}
    scratch = RunSummary(pipeline=ctx.pipeline)
    first = decide(ctx, source, changes, scratch, stamps=stamps)
    marked = _mark_read_targets(ctx, first)
    done: dict[str, list[Result]] = {}
    failed: Exception | None = None
    try:
        for name, states in first.states.items():
            done[name] = apply_unsaved(ctx, ctx.entities[name], states, scratch)
    except Exception as exc:
        # Saved all the same, with what is still due in its outbox, before the error
        # is raised: a target refusing some rows for good must not hold the source's
        # checkpoint (and every change behind it) back; an operator can dead-letter
        # those keys (sync/dlq.py) and the next run replays the rest.
        failed = exc
    encoded = {name: ctx.store.encode(states) for name, states in first.states.items()}
    again: Decided | None = None
    with ctx.store.transaction(lock=state_lock(ctx)) as conn:
        moved = _moved(conn, ctx, first, stamps)
        if not any(moved.values()):
            commit(conn, ctx, source, first, checkpoint, encoded=encoded)
        else:
            scratch = RunSummary(pipeline=ctx.pipeline)
            again = decide(ctx, source, changes, scratch, conn)
            for name, results in done.items():
                ent = ctx.entities[name]
                record_on(ent, again.states[name],
                          [r for r in results if r[0] not in moved[name]], scratch)
                _due_again(again.states[name], [r for r in results if r[0] in moved[name]])
            commit(conn, ctx, source, again, checkpoint)
        for name, keys in marked.items():  # saved with what their applies did
            ctx.store.clear_marks(conn, ctx.pipeline, name, keys, run_id=ctx.run_id,
                                  mine=True)
    summary.add(scratch)
    if failed is not None:
        return failed
    if again is not None:
        for name, states in again.states.items():
            apply_pending(ctx, ctx.entities[name], states, summary, saved_at=again.saved_at)
    return None


def _mark_read_targets(ctx: PipelineContext, decided: Decided) -> dict[str, set[str]]:
    """Before :func:`save_once` applies: a mark for each apply to a target whose log is
    also read (StateStore.add_marks); returns the keys marked, by entity, for the
    save to clear.

    Such a target never shows our writes in its log (own_writes_tagged). If the
    process dies between an apply and the save, the next run decides from the
    log again, maybe otherwise (the logs have grown meanwhile), and may never
    write that row again; it would then take the target's edits from before our
    lost write, read later, for what the target holds. The mark makes a later
    run apply the key's current version there after its catch-up (sync/apply.py
    replay_outbox, check_marks): the target says the row holds a write of ours
    (ALREADY, STALE), and where it stands in its log. The save of the batch clears
    them; left by a run that died, they stay until a later run has checked them,
    whatever saves the key meanwhile.
    A target that is only written needs none: the next run re-decides the same
    changes the same way and writes them again.
    """
    rows = [(name, k, t) for name, states in decided.states.items()
            for k, st in states.items() if st.parked is None
            for t in st.outbox if t in ctx.entities[name].sources]
    marked: dict[str, set[str]] = {}
    for name, k, _ in rows:
        marked.setdefault(name, set()).add(k)
    if rows:
        with ctx.store.transaction() as conn:
            ctx.store.add_marks(conn, ctx.pipeline, ctx.run_id, rows)
    return marked


def _due_again(states: Mapping[str, KeyState], results: list[Result]) -> None:
    """Our writes to keys someone else saved while they ran: content unknown, due again.

    Their results are not recorded: whoever saved the key may be applying an
    older version of it (a daemon's worker, from a decision made before ours)
    and may write it over ours after it learnt our row version, which a
    recorded result would hide for good. The key's current version is applied
    to those targets once more instead, against the row version the store now
    knows: compare-and-set and STALE find out the rest.
    """
    for k, job, _res, _seconds in results:
        st = states[k]
        st.at(job.target).hash = None
        if st.parked is None:
            st.outbox.add(job.target)


def read_batch(ctx: PipelineContext, source: str, limit: int) -> tuple[ChangeBatch, Any]:
    """The next batch of ``source``'s log after its stream checkpoint."""
    return read_from(ctx, source, ctx.store.checkpoint(ctx.pipeline, source, STREAM), limit)


def read_from(ctx: PipelineContext, source: str, cp: Any,
              limit: int) -> tuple[ChangeBatch, Any]:
    """The batch of ``source``'s log after checkpoint ``cp``, and ``cp``."""
    bindings = [e.bindings[source] for e in source_entities(ctx, source)]
    return ctx.endpoints[source].changes(bindings, cp, limit), cp


def catch_up(ctx: PipelineContext, summary: RunSummary, *, max_rounds: int = 100_000,
             progress: Callable[[str, int], None] | None = None) -> None:
    """Read every source endpoint from its checkpoint until none has more to say.

    Sources take turns, one batch each, so that edits from both sides of a
    bidirectional entity meet in the order they were read. ``progress(source, n)``
    is told of each batch read.

    A source whose next change cannot be read (connectors.base ``UnreadableValue``:
    a user's value its column cannot read, until the row is fixed) stops there; the
    others read on to their end, and the first such error is raised then.
    """
    from sync.cascades import with_cascades
    from sync.parallel import BatchWorkers

    active = [name for name in ctx.endpoints if source_entities(ctx, name)]
    size = int(ctx.cfg.batch.size)
    rounds = 0
    workers = BatchWorkers.for_run(ctx)  # on a backlog, processes side by side
    ahead: tuple[ChangeBatch, Any] | None = None  # the next batch, read while they worked
    blocked: list[UnreadableValue] = []
    try:
        while active and rounds < max_rounds:
            rounds += 1
            still: list[str] = []
            for source in active:
                try:
                    if ahead is not None:
                        (batch, cp), ahead = ahead, None
                    else:
                        batch, cp = read_batch(ctx, source, size)
                    # here, not in the workers: they take batches without events
                    batch = with_cascades(ctx, source, batch)
                    if batch.changes or batch.checkpoint != cp:
                        if workers is not None and workers.takes(source, batch):
                            # One source left with more to read: its next batch is read
                            # from this one's checkpoint while the workers apply this one
                            # (a read that failed is raised once this batch is saved).
                            nxt = None if len(active) > 1 or not batch.more else \
                                functools.partial(read_from, ctx, source, batch.checkpoint, size)
                            ahead = workers.sync_batch(source, batch, summary, nxt)
                        else:
                            sync_batch(ctx, source, batch, summary)
                except UnreadableValue as exc:  # this source waits for the row's fix
                    blocked.append(exc)
                    continue
                if progress is not None and batch.changes:
                    progress(source, len(batch.changes))
                ctx.stop_point()
                if batch.more:
                    still.append(source)
            active = still
    finally:
        if workers is not None:
            summary.worker_batches += workers.used
            workers.stop()
    if blocked:
        raise blocked[0]
