"""Where the engine calls the gate: a batch of changes, a snapshot chunk, a reconcile.

The engine calls these only for entities whose config names a suite, so a
pipeline without suites never imports this module's heavy dependencies (GX,
pandas): they are imported when the first gate is built.

* :func:`screen` — in ``sync.capture.decide``, before the protocol: returns
  the batch's changes without the quarantined and held ones, and a writer
  that ``sync.capture.commit`` calls inside the batch's own transaction.
* :func:`screen_snapshot` — in ``sync.snapshot.stage_endpoint``: failing rows
  are quarantined (in the chunk's staging transaction).
* :func:`hold_snapshot_keys` — in ``sync.snapshot.reconcile``: keys with an
  unresolved item are left out of the reconcile (every endpoint's row of them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conflict.canonical import coerce_row, from_json_value, key_text, row_from_json
from sync.change import Change, Op
from sync.quality.store import UNRESOLVED, QuarantineStore, item_row, position_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from sync.context import EntityContext, PipelineContext
    from sync.quality.gate import QualityGate
    from sync.summary import RunSummary

Writer = Callable[["Connection"], None]

# Changes released from quarantine by a steward's decision were validated by
# the release itself; while this is set, screen() lets them through and adds
# the release's status updates to their batch's transaction.
_RELEASE: ContextVar[Writer | None] = ContextVar("cdcsync_quality_release", default=None)
_gates: dict[tuple[Any, ...], QualityGate] = {}


@contextmanager
def releasing(write: Writer) -> Iterator[None]:
    """Run ``process_batch`` on released changes: no gate, ``write`` in its transaction."""
    token = _RELEASE.set(write)
    try:
        yield
    finally:
        _RELEASE.reset(token)


def synced_columns(ent: EntityContext) -> set[str] | None:
    """The entity's synchronised columns (what a change row can hold), if known."""
    if not ent.types:
        return None
    return {c for c in ent.types if any(b.synced(c) for b in ent.bindings.values())}


def gate_for(ent: EntityContext) -> QualityGate:
    """The entity's gate, loaded once per process (and again if the suite file changes)."""
    from sync.quality.gate import QualityGate
    from sync.quality.suite import SuiteError, load_suite

    path = Path(ent.cfg.quality.suite)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise SuiteError([f"{path}: suite file of entity {ent.name!r} not found: "
                          f"{exc.strerror or exc}"]) from exc
    cols = synced_columns(ent)
    key = (str(path), stamp, tuple(sorted(ent.types.items())), tuple(sorted(cols or ())))
    gate = _gates.get(key)
    if gate is None:
        suite = load_suite(path, cols, ent.types or None)
        gate = _gates[key] = QualityGate(suite, ent.types)
    return gate


def key_of(ent: EntityContext, key: Mapping[str, Any]) -> str:
    """The key text the protocol uses for ``key`` (typed like ``sync.capture`` does)."""
    return key_text(coerce_row(key, ent.types))


def _count(summary: RunSummary, ent: str, counts: Mapping[str, int]) -> None:
    stats = summary.quality_at(ent)
    for label, n in counts.items():
        stats.failures[label] = stats.failures.get(label, 0) + int(n)


def screen(ctx: PipelineContext, source: str, changes: list[Change],
           summary: RunSummary, conn: Connection | None = None) -> tuple[list[Change], Writer]:
    """Validate a batch read from ``source``; return what may reach the protocol, in order.

    Changes of entities without a suite pass untouched. The writer records the
    quarantined and held changes inside the batch's transaction; ``conn`` is
    that transaction when the caller already holds it (the quarantine is read
    in it, so a steward's decision cannot slip in between).
    """
    release = _RELEASE.get()
    if release is not None:
        return changes, release
    by_entity: dict[str, list[int]] = {}
    for i, ch in enumerate(changes):
        ent = ctx.entities.get(ch.entity)
        if ent is not None and source in ent.sources and ent.cfg.quality.suite is not None:
            by_entity.setdefault(ch.entity, []).append(i)
    stopped: set[int] = set()
    rows: list[dict[str, Any]] = []
    for name, idx in by_entity.items():
        held_back, items = _screen_entity(ctx, ctx.entities[name], [changes[i] for i in idx],
                                          summary, conn)
        stopped.update(idx[j] for j in held_back)
        rows.extend(items)

    def write(conn: Connection) -> None:
        QuarantineStore.add(conn, rows)

    return [ch for i, ch in enumerate(changes) if i not in stopped], write


def _screen_entity(ctx: PipelineContext, ent: EntityContext, changes: list[Change],
                   summary: RunSummary, conn: Connection | None
                   ) -> tuple[set[int], list[dict[str, Any]]]:
    """Indexes of ``changes`` held back from the protocol, and their quarantine rows.

    The common case (a clean batch, nothing open in the quarantine) costs one
    small query beyond the validation: key texts and per-key lookups are only
    computed when something failed or something is open.
    """
    qs = QuarantineStore(ctx.store.engine)
    result = gate_for(ent).validate(ent, changes)
    first = ent.name not in summary.quality
    stats = summary.quality_at(ent.name)
    if first:
        stats.open = qs.count_open(ctx.pipeline, ent.name, conn=conn)
    stats.validated += sum(1 for ch in changes if ch.content is not None)
    _count(summary, ent.name, result.counts)
    blocked = qs.open_keys(ctx.pipeline, ent.name, conn=conn)
    if not result.failures and not blocked:
        return set(), []
    keys = [key_of(ent, ch.key) for ch in changes]
    suspects = blocked | {keys[i] for i in result.failures}
    # Changes about to be held back may have been delivered before: find them.
    known = qs.for_keys(ctx.pipeline, ent.name, (k for k in keys if k in suspects), conn=conn)
    seen = {(r["key"], r["endpoint"], r["position"]) for r in known}
    stopped: set[int] = set()
    rows: list[dict[str, Any]] = []
    for i, (k, ch) in enumerate(zip(keys, changes, strict=True)):
        if k not in suspects:
            continue
        ident = (k, ch.source, position_text(ch.position))
        direction = summary.at(ent.name, ch.source, "*")
        if ident in seen:  # delivered again: it is in the quarantine already
            stopped.add(i)
            direction.read += 1
            direction.duplicates += 1
            continue
        seen.add(ident)
        fails = result.failures.get(i, [])
        if k in blocked:
            rows.append(item_row(ctx.pipeline, ent.name, k, ch, fails, "held", ctx.run_id))
            stats.held += 1
        elif fails:
            rows.append(item_row(ctx.pipeline, ent.name, k, ch, fails, "quarantined",
                                 ctx.run_id))
            blocked.add(k)
            stats.quarantined += 1
        else:
            continue  # an earlier change of a key that fails later in this batch
        stopped.add(i)
        direction.read += 1
    stats.open += len(rows)
    return stopped, rows


def screen_snapshot(ctx: PipelineContext, ent: EntityContext, endpoint: str,
                    rows: list[dict[str, Any]]) -> Writer:
    """Judge a chunk of rows about to be staged; returns a writer that quarantines failures.

    ``rows`` are ``snapshot_rows`` records (typed content as canonical JSON).
    They are all staged still: :func:`hold_snapshot_keys` leaves every key
    with a quarantined row out of the reconcile, at every endpoint, and counts
    the rows for the run summary. Only a source's rows are judged: a one-way
    target's rows are no edits.
    """
    items: list[dict[str, Any]] = []

    def write(conn: Connection) -> None:
        QuarantineStore.add(conn, items)

    if endpoint not in ent.sources or not rows:
        return write
    contents = [row_from_json(r["row"]) or {} for r in rows]
    verdicts = gate_for(ent).check_rows(contents)
    failing = {i for i, v in enumerate(verdicts) if any(f["severity"] == "critical" for f in v)}
    if not failing:
        return write
    qs = QuarantineStore(ctx.store.engine)
    blocked = {r["key"] for r in qs.for_keys(ctx.pipeline, ent.name,
                                             (rows[i]["key"] for i in failing))
               if r["status"] in UNRESOLVED}
    for i in sorted(failing):
        r, content = rows[i], contents[i]
        ch = Change(entity=ent.name, key={c: content.get(c) for c in ent.cfg.key}, op=Op.READ,
                    before=None, after=content, source=endpoint, position=(),
                    committed_at=float(r["committed_at"]),
                    row_version=from_json_value(r["row_version"]))
        fails = [f for f in verdicts[i] if f["severity"] == "critical"]
        status = "held" if r["key"] in blocked else "quarantined"
        items.append(item_row(ctx.pipeline, ent.name, r["key"], ch, fails, status, ctx.run_id,
                              snapshot=True))
        blocked.add(r["key"])
    return write


def hold_snapshot_keys(ctx: PipelineContext, ent: EntityContext,
                       by_key: dict[str, dict[str, dict[str, Any]]],
                       summary: RunSummary) -> None:
    """Leave keys with an unresolved quarantine item out of a reconcile chunk (in place)."""
    qs = QuarantineStore(ctx.store.engine)
    open_keys = qs.open_keys(ctx.pipeline, ent.name)
    if not open_keys:
        return
    known = qs.for_keys(ctx.pipeline, ent.name, (k for k in by_key if k in open_keys),
                        with_failures=True)
    stats = summary.quality_at(ent.name)
    for r in known:
        if r["status"] not in UNRESOLVED:
            continue
        by_key.pop(r["key"], None)
        if r["op"] == str(Op.READ):  # quarantined by this snapshot's staging: count it now
            stats.quarantined += r["status"] == "quarantined"
            stats.held += r["status"] == "held"
            stats.validated += 1
            counts: dict[str, int] = {}
            for f in r["failures"]:
                counts[f["expectation_label"]] = counts.get(f["expectation_label"], 0) + 1
            _count(summary, ent.name, counts)
    stats.open = qs.count_open(ctx.pipeline, ent.name)
