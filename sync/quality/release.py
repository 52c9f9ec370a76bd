"""A steward's decisions on quarantined changes: replay, accept, discard.

Decisions apply to a key's *quarantined* item (the oldest unresolved one);
what was held behind it is then released, in order, through the gate again
(:func:`release`): the changes that pass go through the protocol like any
other batch, the first that fails becomes the key's quarantined item and the
rest stay held.

A change read from a log (insert, update, delete):

* **replay** re-reads the row at its endpoint (``Sink.read``) and validates
  it. If it passes it enters the protocol as an edit from that endpoint, at
  the position of the endpoint's latest held change of the key, so the held
  changes from that endpoint are superseded by it (status ``replayed``); held
  changes from other endpoints are released after it.
* **accept** feeds the change as it was captured, with the steward's reason.
* **discard** drops it: it is applied nowhere and the endpoint keeps its row.
  The service records the row version and content that endpoint now holds
  (its vector does not move), so a later version of the key can be applied
  over it by compare-and-set instead of being refused forever.

A row quarantined by the initial snapshot (op ``read``) was never
reconciled: the decision reconciles the key now, from what every endpoint
holds (replay: the row re-read; accept: the row as quarantined; discard:
without that endpoint, which keeps its row and is not written). Held changes
from endpoints read back now are superseded by those reads.

Every decision is written to the audit log in the transaction that records it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conflict.canonical import row_hash
from conflict.protocol import Edit, Kind, on_snapshot
from sync.apply import apply_pending
from sync.capture import STREAM, process_batch, state_lock, typed
from sync.change import Change, ChangeBatch, Op
from sync.quality.hook import gate_for, key_of, releasing
from sync.quality.store import QuarantineStore, change_from_json, item_row, position_text
from sync.state.store import StateStore
from sync.summary import RunSummary

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from sync.context import EntityContext, PipelineContext

ACTIONS = ("replay", "accept", "discard")

log = logging.getLogger("cdcsync.quality")


class QuarantineError(Exception):
    """The decision does not fit the item (unknown id, not the key's quarantined item...)."""


@dataclass
class Outcome:
    """What a decision did; ``refused`` lists failures when a replayed row still fails."""

    item: int
    entity: str
    key: str
    action: str
    status: str
    refused: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # endpoint -> fails
    released: int = 0  # held changes that went through the protocol
    superseded: int = 0  # held changes made moot by a row read back now
    requarantined: int | None = None  # the held change that became the key's quarantined item
    summary: RunSummary | None = None

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "entity": self.entity, "key": self.key,
                "action": self.action, "status": self.status, "refused": self.refused,
                "released": self.released, "superseded": self.superseded,
                "requarantined": self.requarantined,
                "applied": self.summary.total("applied") if self.summary else 0,
                "skipped": self.summary.total("skipped") if self.summary else 0}


def decide(ctx: PipelineContext, item_id: int, action: str, *, actor: str,
           reason: str = "") -> Outcome:
    """Replay, accept or discard the quarantined item ``item_id`` (module docstring)."""
    if action not in ACTIONS:
        raise QuarantineError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action in ("accept", "discard") and not reason.strip():
        raise QuarantineError(f"{action} needs a reason (--reason), kept in the audit log")
    qs = QuarantineStore(ctx.store.engine)
    item = qs.get(ctx.pipeline, item_id)
    if item is None:
        raise QuarantineError(f"no quarantine item #{item_id} in pipeline {ctx.pipeline!r}")
    ent = ctx.entities.get(item["entity"])
    if ent is None:
        raise QuarantineError(f"entity {item['entity']!r} is no longer in the pipeline")
    summary = RunSummary(pipeline=ctx.pipeline)
    release_orphans(ctx, ent, summary)
    items = qs.unresolved(ctx.pipeline, ent.name, item["key"])
    if not items or items[0]["id"] != item_id:
        status = (qs.get(ctx.pipeline, item_id) or item)["status"]
        if status == "held" and items:
            raise QuarantineError(f"item #{item_id} is held behind #{items[0]['id']} of the "
                                  f"same key; decide #{items[0]['id']} first")
        raise QuarantineError(f"item #{item_id} is already {status}")
    head, rest = items[0], items[1:]
    out = Outcome(item_id, ent.name, head["key"], action, head["status"], summary=summary)
    if head["op"] == str(Op.READ):
        _decide_snapshot_row(ctx, ent, head, rest, out, actor, reason)
    else:
        _decide_change(ctx, ent, head, rest, out, actor, reason)
    return out


def replay_all(ctx: PipelineContext, *, entity: str | None = None, actor: str,
               reason: str = "") -> dict[str, Any]:
    """Replay every quarantined item (of ``entity``), oldest first, as :func:`decide`
    replays one: what a steward does once the cause is fixed at the source (a bad
    import corrected, the suite's expectation loosened). Rows that pass now flow, with
    the changes held behind them; rows that still fail stay quarantined. One pass over
    the items quarantined when it starts: a held change that fails in its turn is
    quarantined for the next look (``requarantined``)."""
    from sync.quality.store import QuarantineStore

    items = QuarantineStore(ctx.store.engine).items(
        ctx.pipeline, statuses=["quarantined"], entity=entity, limit=None)
    out: dict[str, Any] = {"replayed": 0, "failing": [], "requarantined": [], "released": 0,
                           "superseded": 0, "applied": 0, "left": {}}
    for item in items:
        try:
            o = decide(ctx, int(item["id"]), "replay", actor=actor, reason=reason)
        except QuarantineError as exc:  # decided meanwhile, or its entity is gone
            out["left"][int(item["id"])] = str(exc)
            continue
        if o.refused:
            out["failing"].append(o.item)
            continue
        out["replayed"] += 1
        out["released"] += o.released
        out["superseded"] += o.superseded
        out["applied"] += o.summary.total("applied") if o.summary else 0
        if o.requarantined is not None:
            out["requarantined"].append(o.requarantined)
    return out


# --- a change read from a log --------------------------------------------------------------


def _decide_change(ctx: PipelineContext, ent: EntityContext, head: dict[str, Any],
                   rest: list[dict[str, Any]], out: Outcome, actor: str, reason: str) -> None:
    ch = change_from_json(head["change"])
    src = head["endpoint"]
    audit = _audit_detail(head, out.action, reason)
    summary = out.summary or RunSummary(ctx.pipeline)
    if out.action == "replay":
        current, unread = _read_back(ctx, ent, src, head["key"], ch.key)
        fails = _blocking(ctx, ent, [current[0]] if current else [])
        if fails and fails[0]:
            _refuse(ctx, head, {src: fails[0]}, out, actor)
            return
        mine = [it for it in rest if it["endpoint"] == src]
        # Changes of the key still unread in the source's log (the fix itself, usually)
        # are in the row read back: the edit takes their position, so that reading
        # them later is a duplicate; those that fail the suite are recorded as
        # superseded, so that the gate does not quarantine one of them again.
        have = {it["position"] for it in mine} | {head["position"]}
        unread = [c for c in unread if position_text(c.position) not in have]
        changes = [ch, *(change_from_json(it["change"]) for it in mine), *unread]
        edit = Change(entity=ent.name, key=ch.key, op=Op.UPDATE if current else Op.DELETE,
                      before=None, after=current[0] if current else None, source=src,
                      position=max(c.position for c in changes),
                      committed_at=max(c.committed_at for c in changes),
                      row_version=current[1] if current else None)
        why = f"superseded by the row read back at the replay of #{head['id']}"

        def write(conn: Connection) -> None:
            QuarantineStore.decide(conn, [head["id"]], "replayed", reason=reason,
                                   decided_by=actor)
            QuarantineStore.decide(conn, [it["id"] for it in mine], "replayed",
                                   reason=why, decided_by=actor)
            QuarantineStore.add(conn, [
                {**item_row(ctx.pipeline, ent.name, head["key"], c, [], "replayed",
                            ctx.run_id), "reason": why, "decided_by": actor,
                 "decided_at": time.time()} for c in _failing(ctx, ent, unread)])
            StateStore.audit(conn, ctx.pipeline, actor, "quarantine.replay",
                             {**audit, "row": current is not None, "superseded":
                              [it["id"] for it in mine], "unread": len(unread)})

        with releasing(write):
            process_batch(ctx, src, ChangeBatch([edit], None), summary)
        out.status, out.superseded = "replayed", len(mine)
        release(ctx, ent, [it for it in rest if it["endpoint"] != src], out)
    elif out.action == "accept":
        def write(conn: Connection) -> None:
            QuarantineStore.decide(conn, [head["id"]], "accepted", reason=reason,
                                   decided_by=actor)
            StateStore.audit(conn, ctx.pipeline, actor, "quarantine.accept", audit)

        with releasing(write):
            process_batch(ctx, src, ChangeBatch([ch], None), summary)
        out.status = "accepted"
        release(ctx, ent, rest, out)
    else:
        k = head["key"]
        with ctx.store.transaction(lock=state_lock(ctx)) as conn:
            st = ctx.store.load(ctx.pipeline, ent.name, [k], conn=conn)[k]
            if st.key is None:
                st.key = typed(ent, ch.key)
            e = st.at(src)
            e.hash = row_hash(typed(ent, ch.content))
            e.row_version = ch.row_version
            if ch.position and (e.last_pos is None or tuple(ch.position) > e.last_pos):
                e.last_pos = tuple(ch.position)
            ctx.store.save(conn, ctx.pipeline, ent.name, {k: st})
            QuarantineStore.decide(conn, [head["id"]], "discarded", reason=reason,
                                   decided_by=actor)
            StateStore.audit(conn, ctx.pipeline, actor, "quarantine.discard", audit)
        out.status = "discarded"
        release(ctx, ent, rest, out)


def release(ctx: PipelineContext, ent: EntityContext, items: Sequence[Mapping[str, Any]],
            out: Outcome | None = None) -> None:
    """Let held ``items`` (oldest first) flow, up to the first one that still fails."""
    summary = out.summary if out and out.summary else RunSummary(ctx.pipeline)
    if not items:
        return
    stop = next((i for i, it in enumerate(items) if it["op"] == str(Op.READ)), len(items))
    changes = [change_from_json(it["change"]) for it in items[:stop]]
    verdict = gate_for(ent).validate(ent, changes)
    bad = min(verdict.failures) if verdict.failures else None
    go = list(zip(items, changes, strict=False))[:bad if bad is not None else stop]
    for src, run in itertools.groupby(go, key=lambda pair: pair[0]["endpoint"]):
        members = list(run)
        ids = [it["id"] for it, _ in members]

        def write(conn: Connection, ids: list[int] = ids) -> None:
            QuarantineStore.decide(conn, ids, "replayed", reason="released: the change it was "
                                   "held behind was decided", decided_by="cdcsync")

        with releasing(write):
            process_batch(ctx, src, ChangeBatch([c for _, c in members], None), summary)
        if out is not None:
            out.released += len(members)
    nxt = bad if bad is not None else (stop if stop < len(items) else None)
    if nxt is not None:
        failures = verdict.failures.get(nxt) if bad is not None else items[nxt]["failures"]
        with ctx.store.transaction() as conn:
            QuarantineStore.requarantine(conn, int(items[nxt]["id"]), list(failures or []))
        if out is not None:
            out.requarantined = int(items[nxt]["id"])


def release_orphans(ctx: PipelineContext, ent: EntityContext, summary: RunSummary) -> int:
    """Finish releases a crash interrupted: keys whose oldest unresolved item is held."""
    qs = QuarantineStore(ctx.store.engine)
    keys = qs.orphaned_keys(ctx.pipeline, ent.name)
    for k in keys:
        release(ctx, ent, qs.unresolved(ctx.pipeline, ent.name, k),
                Outcome(0, ent.name, k, "release", "held", summary=summary))
    return len(keys)


# --- a row quarantined by the initial snapshot ------------------------------------------------


def _decide_snapshot_row(ctx: PipelineContext, ent: EntityContext, head: dict[str, Any],
                         rest: list[dict[str, Any]], out: Outcome, actor: str,
                         reason: str) -> None:
    ch = change_from_json(head["change"])
    src = head["endpoint"]
    now = time.time()
    reads: dict[str, tuple[dict[str, Any], Any, float] | None] = {}
    current_src: tuple[dict[str, Any], Any] | None = None
    # Changes of the key not read by any run yet, at each source read back now: in the
    # row read, so superseded by it (see _decide_change).
    unread: dict[str, list[Change]] = {}
    for ep in ent.bindings:
        if ep in ent.sources and (ep != src or out.action == "replay"):
            cur, unread[ep] = _read_back(ctx, ent, ep, head["key"], ch.key)
        else:
            cur = read_current(ctx, ent, ep, ch.key)
        if ep == src:
            current_src = cur
            if out.action == "accept":
                reads[ep] = (dict(ch.after or {}), ch.row_version, ch.committed_at)
                continue
            if out.action == "discard":
                continue
        reads[ep] = None if cur is None else (cur[0], cur[1], now)
    judged = [ep for ep, r in reads.items() if r is not None and ep in ent.sources
              and not (ep == src and out.action == "accept")]
    fails = _blocking(ctx, ent, [reads[ep][0] for ep in judged])  # type: ignore[index]
    refused = {ep: f for ep, f in zip(judged, fails, strict=True) if f}
    if refused:
        _refuse(ctx, head, refused, out, actor)
        return
    # Read back now: every held change of an endpoint whose current row was read is moot.
    fresh = {ep for ep in reads if ep != src or out.action == "replay"}
    moot = [it for it in rest if it["endpoint"] in fresh]
    later = [it for it in rest if it["endpoint"] not in fresh]
    status = {"replay": "replayed", "accept": "accepted", "discard": "discarded"}[out.action]
    audit = _audit_detail(head, out.action, reason)
    k = head["key"]
    summary = out.summary or RunSummary(ctx.pipeline)
    from conflict.store import ConflictStore

    with ctx.store.transaction(lock=state_lock(ctx)) as conn:
        st = ctx.store.load(ctx.pipeline, ent.name, [k], conn=conn)[k]
        if st.key is None:
            st.key = typed(ent, ch.key)
        edits: dict[str, Edit | None] = {}
        for ep, r in reads.items():
            seen = [c.position for c in unread.get(ep, [])]
            edit = None if r is None else Edit(endpoint=ep, content=typed(ent, r[0]),
                                               position=max(seen) if seen else None,
                                               committed_at=r[2], row_version=r[1])
            if r is None and seen:  # absent now: later reads of its deletion are moot
                last = st.at(ep).last_pos
                st.at(ep).last_pos = max(seen) if last is None else max(last, max(seen))
            if ep in ent.sources:
                edits[ep] = edit
            else:  # a one-way target: what it holds is known, but it is no edit
                st.at(ep).hash = row_hash(edit.content) if edit else ""
                st.at(ep).row_version = edit.row_version if edit else None
        outs = on_snapshot(st, edits, entity=ent.name, key=st.key or {}, sinks=ent.sinks,
                           resolve=ent.resolve)
        if out.action == "discard":  # the endpoint keeps its row: known, not overwritten
            e = st.at(src)
            e.hash = row_hash(typed(ent, current_src[0])) if current_src else ""
            e.row_version = current_src[1] if current_src else None
            st.outbox.discard(src)
        ctx.store.save(conn, ctx.pipeline, ent.name, {k: st})
        for o in outs:
            if o.conflict is not None:
                ConflictStore.record(conn, ctx.pipeline, k, o.conflict, ctx.run_id)
                stats = summary.at(ent.name, o.conflict.case.incoming.endpoint, "*")
                if o.kind is Kind.PARKED:
                    stats.parked += 1
                else:
                    stats.resolved += 1
        QuarantineStore.decide(conn, [head["id"]], status, reason=reason, decided_by=actor)
        why = f"superseded by the rows read back at the decision on #{head['id']}"
        QuarantineStore.decide(conn, [it["id"] for it in moot], "replayed", reason=why,
                               decided_by=actor)
        have = {(it["endpoint"], it["position"]) for it in moot}
        QuarantineStore.add(conn, [
            {**item_row(ctx.pipeline, ent.name, k, c, [], "replayed", ctx.run_id),
             "reason": why, "decided_by": actor, "decided_at": time.time()}
            for ep, changes in unread.items() for c in _failing(ctx, ent, changes)
            if (ep, position_text(c.position)) not in have])
        StateStore.audit(conn, ctx.pipeline, actor, f"quarantine.{out.action}",
                         {**audit, "reconciled": sorted(reads),
                          "superseded": [it["id"] for it in moot]})
    apply_pending(ctx, ent, {k: st}, summary)
    out.status, out.superseded = status, len(moot)
    release(ctx, ent, later, out)


# --- shared -----------------------------------------------------------------------------------


def read_current(ctx: PipelineContext, ent: EntityContext, endpoint: str,
                 key: Mapping[str, Any]) -> tuple[dict[str, Any], Any] | None:
    """The row of ``key`` at ``endpoint`` now, with its row version (``None``: absent)."""
    found = ctx.endpoints[endpoint].read(ent.bindings[endpoint], [dict(key)])
    if not found:
        return None
    want = key_of(ent, key)
    for row, version in found.values():
        if key_of(ent, {c: row.get(c) for c in ent.cfg.key}) == want:
            return dict(row), version
    row, version = next(iter(found.values()))
    return dict(row), version


def unread_changes(ctx: PipelineContext, ent: EntityContext, endpoint: str,
                   key: str) -> list[Change]:
    """The changes of ``key`` in ``endpoint``'s log after its stream checkpoint: made
    since the last batch read it (read only; no checkpoint moves)."""
    ep = ctx.endpoints[endpoint]
    cp: Any = ctx.store.checkpoint(ctx.pipeline, endpoint, STREAM)
    size = int(ctx.cfg.batch.size)
    found: list[Change] = []
    while True:
        batch = ep.changes([ent.bindings[endpoint]], cp, size)
        found += [c for c in batch.changes if c.entity == ent.name and key_of(ent, c.key) == key]
        if not batch.more or batch.checkpoint == cp:
            return found
        cp = batch.checkpoint


def _read_back(ctx: PipelineContext, ent: EntityContext, endpoint: str, key: str,
               key_row: Mapping[str, Any], tries: int = 5
               ) -> tuple[tuple[dict[str, Any], Any] | None, list[Change]]:
    """The row of ``key`` at ``endpoint`` now, and exactly the unread changes it includes.

    The log is read before and after the row; an edit of the key in between makes
    the two differ, and the read is taken again. A log that cannot be read now (a
    PostgreSQL slot a running daemon streams from, which reads the key's changes
    itself and holds them) leaves only what was read already to supersede.
    """
    try:
        before = unread_changes(ctx, ent, endpoint, key)
    except Exception as exc:
        log.warning("cannot read the log of %s for %s (%s): the replay supersedes only the "
                    "changes already read", endpoint, key, exc)
        return read_current(ctx, ent, endpoint, key_row), []
    for _ in range(tries):
        current = read_current(ctx, ent, endpoint, key_row)
        after = unread_changes(ctx, ent, endpoint, key)
        if [c.position for c in after] == [c.position for c in before]:
            return current, after
        before = after
    raise QuarantineError(f"the row of {key} at {endpoint} keeps changing; try the replay "
                          "again")


def _failing(ctx: PipelineContext, ent: EntityContext,
             changes: Sequence[Change]) -> list[Change]:
    """The ``changes`` that fail a critical expectation (versions of one key are no
    duplicates of each other; a deletion never fails)."""
    if not changes:
        return []
    return [c for c, _ in gate_for(ent).validate(ent, changes).quarantined]


def _blocking(ctx: PipelineContext, ent: EntityContext,
              rows: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    verdicts = gate_for(ent).check_rows(rows)
    return [[f for f in v if f["severity"] == "critical"] for v in verdicts]


def _refuse(ctx: PipelineContext, head: Mapping[str, Any],
            refused: dict[str, list[dict[str, Any]]], out: Outcome, actor: str) -> None:
    """The row still fails: the item stays quarantined with what was observed now."""
    with ctx.store.transaction() as conn:
        if head["endpoint"] in refused:
            QuarantineStore.set_failures(conn, int(head["id"]), refused[head["endpoint"]])
        StateStore.audit(conn, ctx.pipeline, actor, f"quarantine.{out.action}.refused",
                         {**_audit_detail(head, out.action, ""), "failures": refused})
    out.refused = refused
    out.status = "quarantined"


def _audit_detail(head: Mapping[str, Any], action: str, reason: str) -> dict[str, Any]:
    return {"item": head["id"], "entity": head["entity"], "key": head["key"],
            "endpoint": head["endpoint"], "op": head["op"], "action": action,
            "reason": reason, "position": head["position"]}


__all__ = ["ACTIONS", "Outcome", "QuarantineError", "decide", "release"]
