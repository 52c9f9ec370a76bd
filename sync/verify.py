"""``cdcsync verify``: compare every entity across its endpoints, row by row.

Rows are compared in their canonical form (the same one the protocol
hashes), so a DECIMAL(10,2) '1.50' in one engine and a REAL 1.5 in another
are equal, and a timestamp is compared as UTC microseconds. Arrays are compared
as JSON reads them back (the form MariaDB and SQLite hold them in).

Every endpoint is read a chunk at a time in key order. Where the key is
integers (which every engine orders alike), the endpoints are merged by key as
they are read: memory stays at a chunk per endpoint however large the table
(500k rows of 8 columns PostgreSQL vs PostgreSQL: 101 MB, as much as for 5k;
with the reference's key hashes held, 359 MB, growing with the table: tens of
millions of rows would exhaust the machine). Other keys (text orders by each server's
collation), or an endpoint whose keys turn out not to ascend (a SQLite column
may hold any type), are compared against the reference's keys and content
hashes held in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from conflict.canonical import exact_json, key_text, parse_json, row_hash
from sync.capture import typed
from sync.context import EntityContext, PipelineContext


@dataclass
class EntityDrift:
    entity: str
    reference: str
    rows: dict[str, int] = field(default_factory=dict)  # endpoint -> row count
    missing: dict[str, list[str]] = field(default_factory=dict)  # in reference, not here
    extra: dict[str, list[str]] = field(default_factory=dict)  # here, not in reference
    differing: dict[str, list[str]] = field(default_factory=dict)
    #: how the rows were matched: "merged" (by key as read) or "held" (the reference's)
    method: str = "held"
    #: endpoint -> columns one of it and the reference has and the other lacks: not
    #: compared (a column dropped at the source stays at the targets: never drift)
    uncompared: dict[str, list[str]] = field(default_factory=dict)

    @property
    def in_sync(self) -> bool:
        return not any([*self.missing.values(), *self.extra.values(), *self.differing.values()])

    def to_json(self, sample: int = 20) -> dict[str, Any]:
        def cut(d: dict[str, list[str]]) -> dict[str, Any]:
            return {ep: {"count": len(ks), "keys": ks[:sample]} for ep, ks in d.items() if ks}

        return {"entity": self.entity, "reference": self.reference, "rows": self.rows,
                "method": self.method, "in_sync": self.in_sync, "missing": cut(self.missing),
                "extra": cut(self.extra), "differing": cut(self.differing),
                "uncompared": {ep: cols for ep, cols in self.uncompared.items() if cols}}


def _rows(ctx: PipelineContext, ent: EntityContext, ep: str, only: frozenset[str] | None
          ) -> Iterator[tuple[dict[str, Any], str]]:
    """(typed key, content hash) of every row at ``ep`` in its key order, a chunk at a
    time; ``only``: the hash of these columns alone."""
    src = ctx.endpoints[ep]
    binding = ent.bindings[ep]
    after = None
    size = min(int(ctx.cfg.batch.snapshot_chunk), CHUNK)
    while True:
        chunk = src.snapshot(binding, after, size)
        for r in chunk.rows:
            row = r.row if only is None else {c: v for c, v in r.row.items() if c in only}
            yield typed(ent, r.key) or {}, row_hash(_compared(ent, row))
        after = chunk.last_key
        if chunk.done:
            return


def _compared(ent: EntityContext, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The row typed, with each array as JSON reads it back: a PostgreSQL ``numeric[]``
    or ``timestamptz[]`` is held as a JSON document at MariaDB and SQLite, whose
    elements are numbers and text (conflict.canonical.exact_json), and means the same."""
    out = typed(ent, row)
    if out is not None:
        for c, v in out.items():
            if isinstance(v, list) and ent.types.get(c) == "array":
                with contextlib.suppress(TypeError, ValueError):  # (no JSON: as it is)
                    out[c] = parse_json(exact_json(v))
    return out


#: rows read at a time: a chunk of each endpoint is what a merged verify holds (50k rows
#: of 8 columns, the default snapshot chunk, took 100 MB an endpoint; 5k: 10 MB, and no
#: slower for it)
CHUNK = 5000


class _Unordered(Exception):
    """An endpoint's keys did not come in ascending order as Python compares them."""


def _ascending(ent: EntityContext, rows: Iterator[tuple[dict[str, Any], str]]
               ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any], str]]:
    """(key as compared, typed key, content hash), each key past the one before. (The
    key's text is made only for a key reported: most are not.)"""
    last: tuple[Any, ...] | None = None
    names = ent.cfg.key
    for key, digest in rows:
        at = tuple([key[c] for c in names])
        if last is not None and not at > last:
            raise _Unordered
        last = at
        yield at, key, digest


def _merged(ctx: PipelineContext, ent: EntityContext, drift: EntityDrift,
            others: list[str], only: frozenset[str] | None) -> None:
    """The reference and ``others`` read side by side, matched by key as read (the module
    docstring), their rows compared on ``only`` (None: every column).

    Raises:
        _Unordered: an endpoint's keys do not ascend (nothing is reported then).
    """
    ref = drift.reference
    reads = {ep: _ascending(ent, _rows(ctx, ent, ep, only)) for ep in [ref, *others]}
    heads: dict[str, tuple[tuple[Any, ...], dict[str, Any], str] | None] = {
        ep: next(it, None) for ep, it in reads.items()}
    counts = dict.fromkeys(reads, 0)
    missing: dict[str, list[str]] = {ep: [] for ep in others}
    extra: dict[str, list[str]] = {ep: [] for ep in others}
    differing: dict[str, list[str]] = {ep: [] for ep in others}
    try:
        while True:
            live = [h[0] for h in heads.values() if h is not None]
            if not live:
                break
            at = min(live)
            mine = heads[ref]
            want = mine if mine is not None and mine[0] == at else None
            for ep in others:
                head = heads[ep]
                here = head if head is not None and head[0] == at else None
                if want is None:
                    if here is not None:
                        extra[ep].append(key_text(here[1]))
                elif here is None:
                    missing[ep].append(key_text(want[1]))
                elif here[2] != want[2]:
                    differing[ep].append(key_text(want[1]))
            for ep, head in heads.items():
                if head is not None and head[0] == at:
                    counts[ep] += 1
                    heads[ep] = next(reads[ep], None)
    except TypeError as exc:  # keys of types that do not compare
        raise _Unordered from exc
    drift.rows.update(counts)
    drift.missing.update(missing)
    drift.extra.update(extra)
    drift.differing.update(differing)


def _held(ctx: PipelineContext, ent: EntityContext, drift: EntityDrift,
          others: list[str], only: frozenset[str] | None) -> None:
    """The reference's rows held as key and content hash (not as rows: 1.5 GB for 500k
    rows of 8 columns, when every endpoint's rows were held whole); ``others`` compared
    with them as they are read, on ``only`` (None: every column)."""
    reference = drift.reference
    ref: Mapping[str, str] = {key_text(k): d for k, d in _rows(ctx, ent, reference, only)}
    drift.rows[reference] = len(ref)
    for ep in others:
        seen: set[str] = set()
        extra: list[str] = []
        differing: list[str] = []
        for k, digest in _rows(ctx, ent, ep, only):
            key = key_text(k)
            want = ref.get(key)
            if want is None:
                extra.append(key)
                continue
            seen.add(key)
            if want != digest:
                differing.append(key)
        drift.rows[ep] = len(seen) + len(extra)
        drift.missing[ep] = sorted(k for k in ref if k not in seen)
        drift.extra[ep] = sorted(extra)
        drift.differing[ep] = sorted(differing)


def verify_entity(ctx: PipelineContext, ent: EntityContext) -> EntityDrift:
    """Merged by key where the key is integers, else against the reference's rows held.

    Endpoints are compared with the reference on the columns both have: a column one
    of them lacks (dropped at the source, which other endpoints keep) is not drift,
    and is listed in :attr:`EntityDrift.uncompared`. Endpoints with the same columns
    as each other are read in one pass."""
    reference = ent.sources[0]
    drift = EntityDrift(ent.name, reference)
    passes: dict[frozenset[str] | None, list[str]] = {}
    mine = set(ent.columns_at(reference))
    for ep in ent.bindings:
        if ep == reference:
            continue
        theirs = set(ent.columns_at(ep))
        apart = sorted(mine ^ theirs) if mine and theirs else []
        drift.uncompared[ep] = apart
        passes.setdefault(frozenset(mine & theirs) if apart else None, []).append(ep)
    ordered = all(ent.types.get(c) == "int" for c in ent.cfg.key)
    for only, others in (passes or {None: []}).items():
        part = EntityDrift(ent.name, reference, method="merged" if ordered else "held")
        if ordered:
            try:
                _merged(ctx, ent, part, others, only)
            except _Unordered:
                part = EntityDrift(ent.name, reference)
        if part.method == "held":
            _held(ctx, ent, part, others, only)
        drift.method = part.method
        drift.rows.update(part.rows)
        drift.missing.update(part.missing)
        drift.extra.update(part.extra)
        drift.differing.update(part.differing)
    return drift


def verify(ctx: PipelineContext, entities: list[str] | None = None) -> list[EntityDrift]:
    return [verify_entity(ctx, e) for n, e in ctx.entities.items()
            if not entities or n in entities]
