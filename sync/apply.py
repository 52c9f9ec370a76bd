"""Applying pending versions to their targets, and recording what happened.

The outbox rows of a key are its pending applies. They are written before
this runs (in the batch transaction that decided them), so a crash at any
point here is repaired by replaying the outbox: compare-and-set makes a
second write of a moved row a skip, and the version token makes a second
write of our own row a no-op.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping

from conflict.canonical import key_from_text
from conflict.protocol import ApplyJob, KeyState, jobs, on_applied, on_skipped, on_stale
from connectors.base import (
    ApplyOp,
    ApplyResult,
    ApplyStatus,
    ConnectorError,
    ReferenceRejected,
    RowRejected,
)
from sync.context import EntityContext, PipelineContext
from sync.dlq import dead_keys, list_letters, record, requeue
from sync.retry import RETRIES, with_retries
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.apply")
#: rounds of applies for keys whose result came back STALE (each round learns
#: the row version a lost write of ours left); a second round normally ends it
STALE_ROUNDS = 3


Result = tuple[str, ApplyJob, ApplyResult, float]  # key, job, result, seconds


def pending_by_target(states: Mapping[str, KeyState]) -> dict[str, list[tuple[str, ApplyJob]]]:
    by_target: dict[str, list[tuple[str, ApplyJob]]] = {}
    for k, st in states.items():
        for job in jobs(st):
            by_target.setdefault(job.target, []).append((k, job))
    return by_target


def apply_to_target(
    ctx: PipelineContext,
    ent: EntityContext,
    target: str,
    items: list[tuple[str, ApplyJob]],
    states: Mapping[str, KeyState],
    *,
    tries: int = RETRIES,
    summary: RunSummary | None = None,
    dead: set[str] | None = None,
) -> list[Result]:
    """Write ``items`` at ``target`` (in chunks of the batch size, one transaction each).

    Keys with a dead letter at ``target`` are left out (their outbox entries stay:
    sync/dlq.py); ``dead``: those keys, where the caller has them (else looked up).
    A chunk the target refuses for a row's data (:class:`RowRejected`) is split
    until the refused rows are alone: the others are written, each refused
    row gets a dead letter (one per error, with its keys) and no result, so its
    apply stays due in the outbox until an operator requeues or drops the letter.
    ``summary`` counts them. Where :data:`SYSTEMATIC` rows are refused (for another
    cause than a foreign key) before any is written, the target is taken to refuse
    them all: ConnectorError, nothing dead-lettered (the run fails, as a schema error).
    """
    sink = ctx.endpoints[target]
    binding = ent.bindings[target]
    size = int(ctx.cfg.batch.size)
    if dead is None:
        dead = dead_keys(ctx.store, ctx.pipeline, ent.name, target)
    if dead:
        items = [(k, job) for k, job in items if k not in dead]
    out: list[Result] = []
    refused: list[tuple[str, str]] = []  # key, error
    kept = 0  # of those, refused for another cause than a foreign key
    for i in range(0, len(items), size):
        todo = [items[i : i + size]]
        while todo:
            part = todo.pop()
            ops = [_op(states[k], job) for k, job in part]
            t0 = time.perf_counter()
            try:
                results = with_retries(
                    f"apply to {target}",
                    lambda ops=ops: sink.apply(binding, ops),  # type: ignore[misc]
                    tries=tries,
                )
            except RowRejected as exc:
                if len(part) == 1:
                    refused.append((part[0][0], f"{type(exc).__name__}: {exc}"))
                    # (a foreign key may refuse every row of a child entity taken before
                    # its parents: sync/engine.py tries those again at the run's end)
                    kept += not isinstance(exc, ReferenceRejected)
                    if kept >= SYSTEMATIC and not out:
                        raise ConnectorError(
                            f"{target} refused {kept} rows of {ent.name} one by one and took"
                            f" none: its schema, rather than the rows, may be at fault (a NOT"
                            f" NULL column the pipeline does not write, a column too narrow)."
                            f" The last: {exc}") from exc
                else:  # each half in a transaction of its own, the first half first
                    todo += [part[len(part) // 2 :], part[: len(part) // 2]]
                continue
            each = (time.perf_counter() - t0) / len(part)
            out.extend((k, job, res, each) for (k, job), res in zip(part, results, strict=True))
    if refused:
        _dead_letter(ctx, ent, target, refused, states, summary)
    return _moved_unedited(ctx, ent, target, out, states)


def _moved_unedited(ctx: PipelineContext, ent: EntityContext, target: str,
                    out: list[Result], states: Mapping[str, KeyState]) -> list[Result]:
    """SKIPPED -> STALE where the row holds the very content the service last knew
    there: its row version moved without an edit.

    A table rewritten at a PostgreSQL target (``ALTER TABLE ... ALTER COLUMN ...
    TYPE``, pg_repack, a dump restored) gives every row a new xmin and puts no
    change in the log. Each apply then failed its compare-and-set and was given up
    for a user edit on its way that never came: the target kept every existing row
    as it was, for good. A column added at a MariaDB table (whose rows are versioned
    by their content) did the same to every row there. The rows the protocol would
    give up (conflict/protocol.py ``on_skipped``) are read again; one whose content
    is the one known there (sync/unedited.py: maybe with columns added since) is
    reported STALE with its version now, and the apply stays due against it. (An
    edit that left the content as it was, read later, is decided as concurrent with
    this write, as it would have been with the apply given up.)
    """
    suspects = [i for i, (k, job, res, _s) in enumerate(out)
                if res.status is ApplyStatus.SKIPPED and res.row_version is not None
                and _given_up(states[k], job)]
    if not suspects:
        return out
    from conflict.canonical import key_text
    from sync.capture import typed
    from sync.unedited import defaults_at, holds_known

    binding = ent.bindings[target]
    found = {key_text(typed(ent, binding.key_of(row)) or {}): (row, version)
             for row, version in ctx.endpoints[target].read(
                 binding, [states[out[i][0]].key or {} for i in suspects]).values()}
    out = list(out)
    defaults = defaults_at(ctx, ent, target)
    for i in suspects:
        k, job, res, seconds = out[i]
        hit = found.get(k)
        known = states[k].at(target).hash or ""
        if hit is not None and holds_known(typed(ent, hit[0]) or {}, known, binding.key,
                                           defaults):
            log.info("%s %s at %s: the row's version moved but it holds what was known"
                     " there (a rewritten table, a column added?): applying again",
                     ent.name, k, target)
            out[i] = (k, job, ApplyResult(res.key_text, ApplyStatus.STALE, hit[1]), seconds)
    return out


def _given_up(st: KeyState, job: ApplyJob) -> bool:
    """Would ``on_skipped`` give the apply up, with the content there known?"""
    e = st.at(job.target)
    return (job.vector == st.vector and e.reads == job.reads
            and job.expected == e.row_version and bool(e.hash))


#: refused rows isolated, with none written, after which a target is taken to refuse
#: every row (its schema, not the data): the apply fails as a whole instead of
#: splitting every batch down to single rows (2n transactions for n rows)
SYSTEMATIC = 256

#: the row's own value in a server's message (MariaDB: "Duplicate entry 'a@x' for key",
#: "Incorrect integer value: 'abc' for column"): left out when refused rows are grouped
_ROW_VALUE = re.compile(r"(entry|value:) '(?:[^'\\]|\\.)*'")


def _dead_letter(ctx: PipelineContext, ent: EntityContext, target: str,
                 refused: list[tuple[str, str]], states: Mapping[str, KeyState],
                 summary: RunSummary | None) -> None:
    """Park rows ``target`` refused: a dead letter per error (its first line: the
    constraint or column; the full text of its first row kept), with its keys."""
    by_error: dict[str, list[tuple[str, str]]] = {}
    for k, error in refused:
        by_error.setdefault(_ROW_VALUE.sub(r"\1 '…'", error.partition("\n")[0]), []).append(
            (k, error))  # (an error's text starts with its class: RowRejected, ReferenceRejected)
    with ctx.store.transaction() as conn:
        for group in by_error.values():
            letter = record(conn, ctx.pipeline, ent.name, target, [k for k, _ in group],
                            group[0][1], 1)
            reference = group[0][1].startswith("ReferenceRejected")
            log.log(logging.WARNING if reference else logging.ERROR,
                    "%s: %d row(s) refused by %s, kept in dead letter %d (cdcsync dlq show"
                    " %s %d)%s: %s", ent.name, len(group), target, letter, ctx.pipeline, letter,
                    "; a batch run tries them again at its end" if reference else "",
                    group[0][1].partition("\n")[0])
    if summary is not None:
        for k, _ in refused:
            summary.at(ent.name, states[k].origin or "?", target).rejected += 1


#: who requeues, in the audit log, what a run's end tries again
RETRY_ACTOR = "cdcsync run (foreign key retry)"


def retry_references(ctx: PipelineContext, summary: RunSummary, since: float) -> None:
    """Try once more, at the end of a batch run, the rows a target refused for a foreign
    key since ``since`` (the run's start; its worker processes' letters included).

    Such a refusal is often a matter of order (an entity's rows applied before those
    of the entity they reference: a first snapshot takes entities one after the
    other, in the configuration's order), which the rest of the run has put right.
    Their letters are requeued (audited as :data:`RETRY_ACTOR`) and their pending
    versions applied; a row refused again gets a letter anew and waits for an
    operator. The run's ``rejected`` counts only those.
    """
    letters = [x for x in list_letters(ctx.store, ctx.pipeline)
               if x["created_at"] >= since and str(x["error"]).startswith("ReferenceRejected")
               and x["entity"] in ctx.entities]
    if not letters:
        return
    retried: dict[str, dict[str, set[str]]] = {}  # entity -> target -> keys
    for x in letters:
        requeue(ctx.store, ctx.pipeline, int(x["id"]), RETRY_ACTOR)
        retried.setdefault(x["entity"], {}).setdefault(x["target"], set()).update(
            str(k) for k in x["keys"])
    for entity, by_target in retried.items():
        ent = ctx.entities[entity]
        keys = sorted(set().union(*by_target.values()))
        log.info("%s: trying %d row(s) refused for a foreign key again", entity, len(keys))
        size = int(ctx.cfg.batch.size)
        for i in range(0, len(keys), size):
            states = ctx.store.load(ctx.pipeline, entity, keys[i : i + size])
            for target, mine in by_target.items():
                for k in mine & states.keys():
                    summary.at(entity, states[k].origin or "?", target).rejected -= 1
            apply_pending(ctx, ent, states, summary)


def record_results(ctx: PipelineContext, ent: EntityContext, results: list[Result],
                   summary: RunSummary, *, mine: Mapping[str, KeyState] | None = None,
                   saved_at: float | Mapping[str, float] | None = None) -> list[str]:
    """Record apply results on freshly loaded states, in one locked transaction.

    Fresh states, because a reader may have decided newer versions of these
    keys while the writes ran (the daemon); the protocol's on_applied knows
    what a superseded result still tells. A caller that saved or loaded the
    states it applied (``mine``, stamped ``saved_at``: one stamp for a batch
    run's save, the stamp of each as loaded for a worker) has them recorded on
    as they are, outside the state lock; those someone else saved since are
    reloaded and recorded on under the lock. ``mine`` is changed either way.

    Returns the keys whose apply is due again at once: a STALE result (the row
    holds a write of ours whose result was lost) taught the row version to
    expect.
    """
    if not results:
        return []
    from sync.capture import state_lock

    keys = [k for k, _, _, _ in results]
    lock = state_lock(ctx)
    if mine is not None and saved_at is not None:
        # Recorded and encoded before the state lock is taken (the reader and the
        # other workers queue on it), written under it unless someone saved one of
        # these states meanwhile: then recorded again on the states as they are now.
        tally: list[Tally] = []
        states = {k: mine[k] for k in keys}
        again = record_on(ent, states, results, summary, tally=tally)
        encoded = ctx.store.encode(states)
        with ctx.store.transaction(lock=lock) as conn:
            moved = ctx.store.moved_since(conn, ctx.pipeline, ent.name, keys, saved_at)
            ctx.store.save(conn, ctx.pipeline, ent.name,
                           {k: st for k, st in states.items() if k not in moved},
                           encoded=encoded)
            count(summary, ent.name, [t for t in tally if t[0] not in moved])
            if not moved:
                return again
            # Saved by someone else meanwhile: these are recorded on again, on their
            # states as they are now (the others' records stand).
            fresh = ctx.store.load(ctx.pipeline, ent.name, moved, conn=conn)
            redone = record_on(ent, fresh, [r for r in results if r[0] in moved], summary)
            ctx.store.save(conn, ctx.pipeline, ent.name, fresh)
        return sorted({k for k in again if k not in moved} | set(redone))
    with ctx.store.transaction(lock=lock) as conn:
        fresh = ctx.store.load(ctx.pipeline, ent.name, keys, conn=conn)
        again = record_on(ent, fresh, results, summary)
        ctx.store.save(conn, ctx.pipeline, ent.name, fresh)
    return again


#: what one result adds to a run's summary: (key, origin, target, seconds, counted as)
Tally = tuple[str, str, str, float, str | None]


def count(summary: RunSummary, entity: str, tally: Iterable[Tally]) -> None:
    """Add results tallied by :func:`record_on` to ``summary``."""
    for _, origin, target, seconds, counted in tally:
        stats = summary.at(entity, origin, target)
        stats.seconds += seconds
        if counted == "skipped":
            stats.skipped += 1
        elif counted == "applied":
            stats.applied += 1


def record_on(ent: EntityContext, states: Mapping[str, KeyState], results: list[Result],
              summary: RunSummary, *, tally: list[Tally] | None = None) -> list[str]:
    """Tell each key's state what its apply did; the keys due again at once (STALE).

    The states may be others than the jobs were made from (reloaded, decided
    again): the protocol's on_applied/on_skipped/on_stale tell what a result
    of a superseded job still says. ``tally``: what each result counts for is
    appended there instead of to ``summary`` (:func:`count` adds it later, for
    the states the caller keeps).
    """
    again: list[str] = []
    mine: list[Tally] = [] if tally is None else tally
    for k, job, res, seconds in results:
        st = states[k]
        origin = st.origin or "?"
        counted: str | None = None
        if res.status is ApplyStatus.SKIPPED:
            if on_skipped(st, job, absent=res.row_version is None):
                log.info("%s %s at %s: the skip tells of no user edit (the row is gone where"
                         " its content is unknown, or the apply expected a row version a"
                         " write of ours has replaced since); applying again", ent.name, k,
                         job.target)
                again.append(k)
            else:
                counted = "skipped"
        elif res.status is ApplyStatus.STALE:
            log.info("%s %s at %s holds an earlier write of ours whose result was lost;"
                     " applying again", ent.name, k, job.target)
            if on_stale(st, job, res.row_version, res.identity):
                again.append(k)
        elif on_applied(st, job, res.row_version, res.identity,
                        # (a target whose log is never read has no edits to place)
                        res.position if job.target in ent.sources else None) and \
                res.status is ApplyStatus.APPLIED:
            counted = "applied"
        mine.append((k, origin, job.target, seconds, counted))
    if tally is None:
        count(summary, ent.name, mine)
    return sorted(set(again))


def apply_pending(
    ctx: PipelineContext,
    ent: EntityContext,
    states: Mapping[str, KeyState],
    summary: RunSummary,
    *,
    saved_at: float | None = None,
) -> None:
    """Apply every pending job of ``states`` and record the results (batch mode: errors raise).

    Keys with a dead letter at a target are not applied there (:func:`apply_to_target`);
    their outbox entries are kept. ``saved_at``: ``states`` are as this caller saved
    them with that stamp (see :func:`record_results`).
    """
    for _ in range(STALE_ROUNDS):
        results = _apply_round(ctx, ent, states, summary)
        again = record_results(ctx, ent, results, summary, mine=states, saved_at=saved_at)
        if not again:
            return
        states = ctx.store.load(ctx.pipeline, ent.name, again)
        saved_at = None
    # Still stale after that: the outbox keeps the work for the next run.


def apply_unsaved(ctx: PipelineContext, ent: EntityContext, states: Mapping[str, KeyState],
                  summary: RunSummary) -> list[Result]:
    """Apply every pending job of ``states`` and record the results on them, saving nothing.

    For states whose applies a dead run redoes from scratch (a direct snapshot's
    chunk, sync/snapshot_direct.py; a batch run's batch, sync/capture.py
    sync_batch): the caller saves them once, results included. What is still
    due after the STALE rounds stays in their outbox. Returns every result, in
    the order recorded (to record again on other states: :func:`record_on`).
    """
    done: list[Result] = []
    todo = states
    for _ in range(STALE_ROUNDS):
        results = _apply_round(ctx, ent, todo, summary)
        done.extend(results)
        again = record_on(ent, states, results, summary)
        if not again:
            break
        todo = {k: states[k] for k in again}
    return done


def _apply_round(ctx: PipelineContext, ent: EntityContext, states: Mapping[str, KeyState],
                 summary: RunSummary) -> list[Result]:
    """Every pending job of ``states`` written at its target (none of the run's fence,
    nor of a dead letter: they stay due)."""
    results: list[Result] = []
    fence = ctx.fence.get(ent.name, {})
    for target, items in sorted(pending_by_target(states).items()):
        fenced = fence.get(target)
        if fenced:
            items = [(k, job) for k, job in items if k not in fenced]
        results.extend(apply_to_target(ctx, ent, target, items, states, summary=summary))
    return results


def _op(st: KeyState, job: ApplyJob) -> ApplyOp:
    if st.key is None:  # a state always learns its key when it is first read
        raise AssertionError("key state without a key")
    # The state's content as it is, not a copy: sinks only read an op's row (Mapping).
    return ApplyOp(key=st.key, row=job.content, expected=job.expected, token=job.token)


#: key -> the targets a dead run marked there
Marks = dict[str, set[str]]


def replay_outbox(ctx: PipelineContext, ent: EntityContext, summary: RunSummary) -> Marks:
    """Finish the applies a previous run decided but may not have completed.

    Keys with a dead letter for a target are not applied there until an
    operator requeues the letter (``cdcsync dlq``).

    Returns the marks runs that died between their applies and their saves left
    (sync/capture.py _mark_read_targets): targets where a write of ours may stand
    that no state knows of, maybe of a version newer than any saved. This run
    writes none of them (``ctx.fence``) before :func:`check_marks`, after its
    catch-up: it would write an older version there, or, deciding from the logs
    afresh, a version over a user's edit it had not read yet (a delete leaves no
    row version to compare with).
    """
    marks = {k: targets & set(ent.sinks)
             for k, targets in ctx.store.marks(ctx.pipeline, ent.name).items()}
    fence = ctx.fence.setdefault(ent.name, {})
    for k, targets in marks.items():
        for t in targets:
            fence.setdefault(t, set()).add(k)
    keys = ctx.store.outbox_keys(ctx.pipeline, ent.name)
    if not keys:
        return marks
    size = int(ctx.cfg.batch.size)
    for i in range(0, len(keys), size):
        states = ctx.store.load(ctx.pipeline, ent.name, keys[i : i + size])
        apply_pending(ctx, ent, states, summary)
    return marks


def check_marks(ctx: PipelineContext, ent: EntityContext, marks: Marks,
                summary: RunSummary) -> None:
    """After a run's catch-up: lift the run's fence and apply each marked key's
    current version at the targets a dead run marked (:func:`replay_outbox`), their
    content unknown.

    The dead run's writes there may be of versions no state knows, and this run,
    deciding from the logs afresh, may have decided otherwise; the targets' edits
    from before those writes, read since, would then pass for what they hold. The
    sink tells what it finds: ALREADY or STALE (a write of ours: the current
    version is written over it, and placed in the log, on_applied), SKIPPED (a
    user's edit, on its way in the log). Done after the catch-up, so that only
    the newest version is written. The marks are cleared as the checks are saved
    (outbox work from then on); a run that dies before leaves them to the next.
    """
    ctx.fence.pop(ent.name, None)
    if not marks:
        return
    from sync.capture import state_lock

    keys = list(marks)
    size = int(ctx.cfg.batch.size)
    for i in range(0, len(keys), size):
        states = ctx.store.load(ctx.pipeline, ent.name, keys[i : i + size])
        due: dict[str, KeyState] = {}
        unchecked: set[str] = set()
        for k, st in states.items():
            if st.key is None:  # never saved: nothing was decided for it
                st.key = key_from_text(k)
                if st.key is None:
                    log.warning("%s %s: a target a dead run wrote cannot be checked (its key"
                                " type is not told back from its text)", ent.name, k)
                    unchecked.add(k)  # its mark stays, until a run has saved the key
                    continue
            if not marks[k]:
                continue
            for t in marks[k]:
                st.at(t).hash = None
                if st.parked is None:  # else written when a steward decides (the hash
                    st.outbox.add(t)  # it holds is unknown: resolve_parked writes it)
            due[k] = st
        if due:
            log.info("%s: checking %d keys at targets a dead run may have written",
                     ent.name, len(due))
        # The checks are due work in the outbox from here on: the marks can go with it.
        with ctx.store.transaction(lock=state_lock(ctx)) as conn:
            ctx.store.save(conn, ctx.pipeline, ent.name, due)
            ctx.store.clear_marks(conn, ctx.pipeline, ent.name,
                                  [k for k in states if k not in unchecked],
                                  run_id=ctx.run_id, mine=False)
        if due:
            apply_pending(ctx, ent, due, summary)
