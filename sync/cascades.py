"""The changes a foreign key's unlogged action made (:class:`~sync.change.Cascaded`).

A source whose server deletes or changes referencing rows without logging it
(MariaDB/MySQL: connectors/mysql/cascades.py) reports the referenced row's
values instead. The rows that referenced them are the ones the source was
last known to hold (the state store) as this batch's earlier changes leave
them; each gets the change the server made (a delete, or its referencing
columns set to NULL or to the new values), at the referenced row's position
and before its own change, so a target with the same foreign key takes them
in an order it accepts. The changes made are followed on to the rows that
reference them in turn (up to 15 levels, InnoDB's own limit). They are
decided through the protocol like any change: an edit made elsewhere
meanwhile is a conflict, not silently lost.

Finding the referencing rows takes a scan of their entity's key states, once per
batch that has such events: in the store's database where the referenced values
are integers or text (SQLite ``json_extract``, PostgreSQL
``json_extract_path_text``), in Python otherwise (only the referencing columns
of each content decoded).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from conflict.canonical import from_json_value, key_text, row_hash
from sync.capture import hashed_versions, typed
from sync.change import Cascaded, Change, ChangeBatch, Op
from sync.context import EntityContext, PipelineContext
from sync.state.codec import state_from_json
from sync.state.schema import key_states

#: InnoDB stops a chain of foreign-key actions deeper than this
MAX_DEPTH = 15

Row = dict[str, Any]


def with_cascades(ctx: PipelineContext, source: str, batch: ChangeBatch) -> ChangeBatch:
    """``batch`` with its :class:`Cascaded` events turned into the changes they stand
    for, each before the change of the referenced row at its position."""
    cascaded = [ev for ev in batch.events if isinstance(ev, Cascaded)]
    if not cascaded:
        return batch
    made = cascaded_changes(ctx, source, cascaded, batch.changes)
    return ChangeBatch(sorted([*batch.changes, *made], key=lambda c: tuple(c.position)),
                       batch.checkpoint, more=batch.more,
                       events=[ev for ev in batch.events if not isinstance(ev, Cascaded)])


def cascaded_changes(ctx: PipelineContext, source: str, events: Sequence[Cascaded],
                     changes: Sequence[Change]) -> list[Change]:
    """The changes ``events`` stand for, given the batch's ``changes``: those of rows
    further down a chain of foreign keys first, as the server made them (a target
    with the same keys takes them in that order)."""
    levels: list[list[Change]] = []
    pending = list(events)
    for _level in range(MAX_DEPTH + 1):
        if not pending:
            break
        by_entity: dict[str, list[Cascaded]] = {}
        for ev in pending:
            by_entity.setdefault(ev.rule.entity, []).append(ev)
        pending = []
        level: list[Change] = []
        for name, evs in by_entity.items():
            ent = ctx.entities.get(name)
            if ent is None or source not in ent.sources:
                continue
            made, deeper = _act(ctx, ent, source, evs,
                                [*changes, *(ch for lv in levels for ch in lv), *level])
            level.extend(made)
            pending.extend(deeper)
        levels.append(level)
    # Each at a position of its own right after its event's, which the source puts just
    # before the referenced row's change: two changes of one row (two of its foreign
    # keys acting at once) are not taken for one read twice.
    return [dataclasses.replace(ch, position=(*ch.position, n))
            for n, ch in enumerate(ch for level in reversed(levels) for ch in level)]


def _act(ctx: PipelineContext, ent: EntityContext, source: str, events: list[Cascaded],
         seen: Sequence[Change]) -> tuple[list[Change], list[Cascaded]]:
    """The changes of ``ent``'s rows that ``events`` made, and the events they make."""
    wanted = {(ev.rule.columns, ev.old) for ev in events}
    view = _Referencing(wanted)
    for key, content in _held(ctx, ent, source, wanted):
        view.put(key_text(key), key, content)
    mine = [ch for ch in seen if ch.entity == ent.name and ch.source == source]
    # (an event after the changes at its very position: those came before it)
    timeline = sorted([(tuple(ch.position), 0, i) for i, ch in enumerate(mine)]
                      + [(tuple(ev.position), 1, i) for i, ev in enumerate(events)])
    hashed = hashed_versions(ctx, source)
    made: list[Change] = []
    deeper: list[Cascaded] = []
    for _pos, kind, i in timeline:
        if kind == 0:
            ch = mine[i]
            view.put(key_text(typed(ent, ch.key) or {}), dict(ch.key), typed(ent, ch.content))
            continue
        ev = events[i]
        for _k, key, row in view.matching(ev.rule.columns, ev.old):
            after = _acted(ev, row)
            for ch in _as_changes(ent, ev, key, row, after, hashed):
                made.append(ch)
                view.put(key_text(typed(ent, ch.key) or {}), dict(ch.key), typed(ent, ch.after))
            deeper.extend(_onward(ev, row, after))
    return made, deeper


class _Referencing:
    """Rows by their values of the referencing columns, for the values looked for."""

    def __init__(self, wanted: set[tuple[tuple[str, ...], tuple[Any, ...]]]) -> None:
        self.wanted = wanted
        self.column_sets = {cols for cols, _ in wanted}
        self.rows: dict[str, tuple[Row, Row, list[tuple[Any, ...]]]] = {}
        self.by_value: dict[tuple[Any, ...], dict[str, None]] = {}  # (cols, values) -> keys

    def put(self, k: str, key: Row, content: Row | None) -> None:
        held = self.rows.pop(k, None)
        if held is not None:
            for was in held[2]:
                self.by_value[was].pop(k, None)
        if content is None:
            return
        refs = [ref for ref in ((cols, _of(content, cols)) for cols in self.column_sets)
                if ref in self.wanted]
        if refs:
            self.rows[k] = (key, content, refs)
            for ref in refs:
                self.by_value.setdefault(ref, {})[k] = None

    def matching(self, cols: tuple[str, ...], values: tuple[Any, ...]
                 ) -> list[tuple[str, Row, Row]]:
        return [(k, self.rows[k][0], self.rows[k][1])
                for k in list(self.by_value.get((cols, values), ()))]


def _of(row: Mapping[str, Any], cols: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in cols)


def _held(ctx: PipelineContext, ent: EntityContext, source: str,
          wanted: set[tuple[tuple[str, ...], tuple[Any, ...]]]) -> Iterable[tuple[Row, Row]]:
    """The key and content of each row of ``ent`` that ``source`` was last known to
    hold and that references one of ``wanted``: every state is read, only the
    referencing columns of its content decoded until one matches."""
    column_sets = {cols for cols, _ in wanted}
    narrower = _narrowing(ctx.store.engine.dialect.name, wanted)
    for raw in ctx.store.scan(ctx.pipeline, ent.name, narrower):
        content = raw.get("c")
        if not content or not any(
                (cols, tuple(from_json_value(content.get(c)) for c in cols)) in wanted
                for cols in column_sets):
            continue
        st = state_from_json(raw)
        held = st.endpoints.get(source)
        if st.key is None or st.content is None or held is None or not held.hash:
            continue  # the source did not hold this row
        yield dict(st.key), dict(st.content)


def _narrowing(dialect: str, wanted: set[tuple[tuple[str, ...], tuple[Any, ...]]]
               ) -> sa.ColumnElement[bool] | None:
    """A condition the store's database checks, which every state holding one of
    ``wanted`` meets (on the first referencing column's plain values: integers and
    text, compared in the stored JSON), or None where it cannot tell. The rows it
    keeps are checked again exactly."""
    parts = []
    for cols in {cols for cols, _ in wanted}:
        firsts = {vals[0] for cs, vals in wanted if cs == cols}
        if any(type(v) not in (int, str) for v in firsts) or '"' in cols[0]:
            return None
        if dialect == "sqlite":
            held = sa.func.json_extract(key_states.c.state, f'$.c."{cols[0]}"')
            parts.append(held.in_(sorted(firsts, key=repr)))
        elif dialect == "postgresql":
            held = sa.func.json_extract_path_text(key_states.c.state, "c", cols[0])
            parts.append(held.in_(sorted({str(v) for v in firsts})))
        else:
            return None
    return sa.or_(*parts)


def _acted(ev: Cascaded, row: Row) -> Row | None:
    """``row`` after the action (None: deleted)."""
    action = ev.rule.on_delete if ev.new is None else ev.rule.on_update
    if action == "cascade" and ev.new is None:
        return None
    values = ev.new if action == "cascade" and ev.new is not None else (None,) * len(ev.old)
    return {**row, **dict(zip(ev.rule.columns, values, strict=True))}


def _as_changes(ent: EntityContext, ev: Cascaded, key: Row, row: Row, after: Row | None,
                hashed: bool) -> list[Change]:
    def change(op: Op, k: Row, before: Row | None, aft: Row | None) -> Change:
        return Change(entity=ent.name, key=k, op=op, before=before, after=aft,
                      source=ev.endpoint, position=tuple(ev.position),
                      committed_at=ev.committed_at,
                      row_version=row_hash(aft) if hashed and aft is not None else None)

    if after is None:
        return [change(Op.DELETE, key, row, None)]
    new_key = {c: after[c] for c in key}
    if new_key != key:  # the referencing columns are part of the key: a new row
        return [change(Op.DELETE, key, row, None), change(Op.INSERT, new_key, None, after)]
    return [change(Op.UPDATE, key, row, after)]


def _onward(ev: Cascaded, row: Row, after: Row | None) -> list[Cascaded]:
    """The actions of the foreign keys that reference ``row``, deleted or changed."""
    out = []
    for refs, rule in ev.graph.get(ev.rule.entity, ()):
        old = _of(row, refs)
        if any(v is None for v in old):
            continue
        if after is None:
            if rule.on_delete:
                out.append(Cascaded(ev.endpoint, rule, old, None, ev.position,
                                    ev.committed_at, ev.graph))
            continue
        new = _of(after, refs)
        if new != old and rule.on_update:
            out.append(Cascaded(ev.endpoint, rule, old, new, ev.position, ev.committed_at,
                                ev.graph))
    return out
