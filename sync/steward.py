"""A data steward's decisions on parked conflicts, applied like any other version."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from conflict.canonical import canonical_value, row_to_json
from conflict.protocol import KeyState, resolve_parked
from conflict.store import ConflictStore
from conflict.vector import VersionVector
from sync.apply import apply_pending
from sync.context import EntityContext, PipelineContext
from sync.state.schema import conflicts
from sync.summary import RunSummary


class StewardError(Exception):
    """The decision does not fit the conflict (unknown side, column...)."""


def sides_seen(sides: Any) -> str:
    """A fingerprint of a conflict's stored sides: a decision made on a page that showed
    them is refused once later edits of the record changed them (:func:`decide`)."""
    text = json.dumps(sides, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def decide(
    ctx: PipelineContext,
    conflict_id: str,
    *,
    pick: str | None = None,
    fields: Mapping[str, str] | None = None,
    actor: str,
    note: str = "",
    seen: str | None = None,
) -> dict[str, Any]:
    """Resolve an open conflict by picking an endpoint's side whole, or column by column.

    ``fields`` maps a column to the endpoint whose value it takes; columns not
    named take ``pick``'s value (without ``pick``, every column whose values
    differ must be named). The decision is recorded under the state lock, with
    the conflict checked open again inside it, so two stewards (or a steward and
    a running daemon) never both decide one conflict or decide on stale sides;
    then the decided version is applied to every endpoint that does not hold it.
    ``seen``: :func:`sides_seen` of the sides the steward was shown; the decision
    is refused if later edits of the record changed them since (a side kept
    "whole" would otherwise be one the steward never saw, a deletion even).
    """
    from sync.capture import state_lock

    rec = ctx.conflicts.get(ctx.pipeline, conflict_id)
    if rec is None:
        raise StewardError(f"no conflict {conflict_id!r} in pipeline {ctx.pipeline!r}")
    ent = ctx.entities.get(rec["entity"])
    if ent is None:
        raise StewardError(f"entity {rec['entity']!r} is no longer in the pipeline")
    with ctx.store.transaction(lock=state_lock(ctx)) as conn:
        if seen is not None:
            now = conn.execute(sa.select(conflicts.c.sides, conflicts.c.status)
                               .where(conflicts.c.id == rec["id"])).one()
            if now.status == "open" and sides_seen(now.sides) != seen:
                raise StewardError("the record was edited again since its sides were shown"
                                   " (they are updated with each later edit): look at them"
                                   " again before deciding")
        st = _record(ctx, conn, rec, ent, pick=pick, fields=fields, actor=actor, note=note)
    summary = RunSummary(pipeline=ctx.pipeline)
    apply_pending(ctx, ent, {rec["key"]: st}, summary)
    return {"conflict": rec["id"], "entity": ent.name, "key": rec["key"],
            "applied": summary.total("applied"), "skipped": summary.total("skipped"),
            "refused": summary.total("rejected"), "pending": sorted(st.outbox)}


#: conflicts decided per transaction (and applied together) by :func:`decide_all`
BULK_CHUNK = 200


def decide_all(ctx: PipelineContext, *, pick: str, entity: str | None = None, actor: str,
               note: str = "", raised_by: float | None = None) -> dict[str, Any]:
    """Resolve every open conflict (of ``entity``) by picking ``pick``'s side whole.

    What a steward does after a first sync whose differing rows were parked, or
    after an outage of one system: one decision for many conflicts. Each is
    decided, recorded and audited as :func:`decide` would (checked open again under
    the state lock, so a conflict decided meanwhile is left as it was decided),
    :data:`BULK_CHUNK` of them per transaction, and their versions are applied
    together. A conflict ``pick`` is no side of, or whose entity is gone from the
    pipeline, stays open: ``left`` says which and why. ``raised_by``: only conflicts
    raised by then (those a steward's page showed, not any raised since).
    """
    from sync.capture import state_lock

    q = sa.select(conflicts.c.id, conflicts.c.entity, conflicts.c.key).where(
        conflicts.c.pipeline == ctx.pipeline, conflicts.c.status == "open")
    if entity is not None:
        q = q.where(conflicts.c.entity == entity)
    if raised_by is not None:
        q = q.where(conflicts.c.created_at <= raised_by)
    with ctx.store.engine.connect() as conn:
        recs = [dict(r) for r in conn.execute(q.order_by(conflicts.c.created_at,
                                                         conflicts.c.id)).mappings()]
    left: dict[str, str] = {}
    decided = 0
    summary = RunSummary(pipeline=ctx.pipeline)
    for name in dict.fromkeys(r["entity"] for r in recs):
        mine = [r for r in recs if r["entity"] == name]
        ent = ctx.entities.get(name)
        if ent is None:
            left.update((r["id"], f"entity {name!r} is no longer in the pipeline") for r in mine)
            continue
        for i in range(0, len(mine), BULK_CHUNK):
            with ctx.store.transaction(lock=state_lock(ctx)) as conn:
                states, why = _record_many(ctx, conn, mine[i:i + BULK_CHUNK], ent, pick=pick,
                                           fields=None, actor=actor, note=note)
            left.update(why)
            decided += len(states)
            apply_pending(ctx, ent, states, summary)
    return {"decided": decided, "applied": summary.total("applied"),
            "skipped": summary.total("skipped"), "left": left}


def _record(ctx: PipelineContext, conn: Connection, rec: dict[str, Any], ent: EntityContext,
            *, pick: str | None, fields: Mapping[str, str] | None, actor: str,
            note: str) -> KeyState:
    """One decision (:func:`_record_many` of one conflict); StewardError if it does not fit."""
    states, left = _record_many(ctx, conn, [rec], ent, pick=pick, fields=fields, actor=actor,
                                note=note)
    if left:
        raise StewardError(left[rec["id"]])
    return states[rec["key"]]


def _record_many(ctx: PipelineContext, conn: Connection, recs: list[dict[str, Any]],
                 ent: EntityContext, *, pick: str | None, fields: Mapping[str, str] | None,
                 actor: str, note: str) -> tuple[dict[str, KeyState], dict[str, str]]:
    """Decide ``recs`` (conflicts of ``ent``) in ``conn``: the states decided, by key, and
    why each conflict that was not decided was not (nothing of it is written). Statuses,
    states, resolutions and audit entries are read and written a statement for all."""
    if pick is None and not fields:
        raise StewardError("say which side wins (--pick ENDPOINT) or field by field (--field)")
    ids = [r["id"] for r in recs]
    statuses = dict(conn.execute(sa.select(conflicts.c.id, conflicts.c.status)
                                 .where(conflicts.c.id.in_(ids))).all())
    loaded = ctx.store.load(ctx.pipeline, ent.name, [r["key"] for r in recs], conn=conn)
    decided: dict[str, KeyState] = {}
    left: dict[str, str] = {}
    resolutions: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    now = time.time()
    for rec in recs:
        try:
            st, content, new_v = _resolve(rec, statuses.get(rec["id"]), loaded[rec["key"]],
                                          ent, pick=pick, fields=fields, when=now)
        except StewardError as exc:
            left[rec["id"]] = str(exc)
            continue
        decided[rec["key"]] = st
        winner = pick or ""
        if fields:
            winner = "fields:" + ",".join(f"{c}={e}" for c, e in sorted(fields.items()))
        resolutions.append({"b_id": rec["id"], "b_resolution": row_to_json(content),
                            "b_winner": winner, "b_vector": new_v.as_dict()})
        entries.append({"conflict": rec["id"], "entity": ent.name, "key": rec["key"],
                        "pick": pick, "fields": dict(fields or {}), "note": note})
    if decided:
        ctx.store.save(conn, ctx.pipeline, ent.name, decided)
        ConflictStore.mark_resolved_many(conn, resolutions, decided_by=actor, reason=note,
                                         at=now)
        ctx.store.audit_many(conn, ctx.pipeline, actor, "conflict.resolve", entries)
    return decided, left


def _resolve(rec: Mapping[str, Any], status: str | None, st: KeyState, ent: EntityContext, *,
             pick: str | None, fields: Mapping[str, str] | None, when: float
             ) -> tuple[KeyState, dict[str, Any] | None, VersionVector]:
    """The decision on one loaded state: (the state, the content decided, its vector)."""
    if status != "open":
        raise StewardError(f"conflict {rec['id']} is already {status}")
    if st.parked is None or not st.parked.conflict_id.startswith(rec["id"]):
        raise StewardError(f"conflict {rec['id']} is not the one parked on its record")
    sides = st.parked.sides
    for ep in [pick, *(fields or {}).values()]:
        if ep is not None and ep not in sides:
            raise StewardError(f"no side {ep!r}; the sides are: {', '.join(sorted(sides))}")
    if pick is None:
        _all_named(sides, fields or {})
    base_side = sides[pick] if pick else next(iter(sides.values()))
    content: dict[str, Any] | None = None if base_side.content is None else dict(base_side.content)
    for col, ep in (fields or {}).items():
        src = sides[ep].content
        if src is None or content is None:
            raise StewardError("field-by-field decisions need both sides present (not deleted)")
        if col not in src:
            raise StewardError(f"no column {col!r} in {ep}'s version")
        content[col] = src[col]
    chosen = pick if not fields else None
    new_v = resolve_parked(st, content, chosen=chosen, sinks=ent.sinks, when=when)
    return st, content, new_v


def _all_named(sides: Mapping[str, Any], fields: Mapping[str, str]) -> None:
    """Column by column without a side whole to take the rest from: every column the
    sides all hold with different values must be named (as the review page asks),
    rather than taken silently from whichever side comes first."""
    contents = [s.content for s in sides.values()]
    if len(contents) < 2 or any(c is None for c in contents):
        return  # (a deleted side: refused with its own message)
    first = contents[0]
    missing = [c for c in first if c not in fields and all(c in o for o in contents[1:])
               and any(canonical_value(o[c]) != canonical_value(first[c]) for o in contents[1:])]
    if missing:
        raise StewardError("choose a version for every column whose values differ: "
                           + ", ".join(missing) + " (--field COLUMN=ENDPOINT), or take the"
                           " columns not named from one side (--pick ENDPOINT)")
