"""What the engine does with the events a source reports besides row changes.

* :class:`~sync.change.SchemaChanged` — by the entity's ``schema_changes``:
  ``add`` adds the new columns at every other endpoint of the entity (where the
  connector can: PostgreSQL; elsewhere a clear error says what to add by hand),
  with the default whose value the rows already there hold at the source (a
  PostgreSQL fast default; a MariaDB constant default), so they hold it at the
  targets too; where the source cannot tell one value (a volatile default, an
  expression), they keep NULL at the targets until each is edited or the
  entity resynced: a warning says so,
  ``ignore`` leaves them out of the sync, ``stop`` stops the run before the
  batch is committed, with a message saying what changed and what to do. A
  dropped column is never dropped elsewhere: other endpoints keep their data.
* :class:`~sync.change.Truncated` — by the entity's ``truncate``: ``propagate``
  turns it into a delete of every key the source was known to hold, decided
  through the protocol like any delete (so an edit made elsewhere meanwhile is
  a conflict, not silently lost); ``ignore`` leaves the other endpoints alone.
* :class:`~sync.change.Cascaded` — rows a foreign key's action changed that the
  source's log does not show: the changes are made from what the state store
  knows (sync/cascades.py).
* :class:`~sync.change.TableDdl` — a bound table dropped or renamed stops the
  run (unless ``schema_changes: ignore``): its rows would silently stop coming; so
  does one made anew over itself (``CREATE OR REPLACE TABLE``), whose old rows
  went without a change in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from connectors.base import Column, SchemaError
from sync.cascades import with_cascades
from sync.change import Change, ChangeBatch, Op, SchemaChanged, TableDdl, Truncated
from sync.context import EntityContext, PipelineContext
from sync.state.codec import state_from_json

log = logging.getLogger("cdcsync.events")


def expand(ctx: PipelineContext, source: str, batch: ChangeBatch) -> list[Change]:
    """The changes to decide for ``batch``, after applying its events' policies."""
    if not batch.events:
        return batch.changes
    batch = with_cascades(ctx, source, batch)
    extra: list[Change] = []
    for ev in batch.events:
        ent = ctx.entities.get(getattr(ev, "entity", ""))
        if ent is None or source not in ent.sources:
            continue
        if isinstance(ev, SchemaChanged):
            schema_changed(ctx, ent, ev)
        elif isinstance(ev, Truncated):
            if ent.cfg.truncate == "propagate":
                extra.extend(truncate_deletes(ctx, ent, ev))
            else:
                log.warning("%s.%s was truncated at %s; entity %s ignores truncates "
                            "(truncate: ignore): the other endpoints keep their rows",
                            ev.endpoint, ev.table, ev.position, ent.name)
        elif (isinstance(ev, TableDdl) and ev.kind == "replace"
              and ent.cfg.schema_changes != "ignore"):
            # (until 2026-12-07 passed by: the rows it held stayed at every target)
            raise SchemaError(
                f"table {ev.table} at {ev.endpoint} was made anew"
                f" ({ev.statement.strip()[:200]}): the rows it held went without a change in"
                f" the log, and the other endpoints still hold them. Run `cdcsync resync"
                f" PIPELINE {ent.name} --reset-stream` to take the table as it is now"
                f"{_READ_ON}")
        elif (isinstance(ev, TableDdl) and ev.kind in ("drop", "rename")
              and ent.cfg.schema_changes != "ignore"):
            what = "dropped" if ev.kind == "drop" else "renamed"
            raise SchemaError(
                f"table {ev.table} at {ev.endpoint} was {what} ({ev.statement.strip()[:200]}); "
                f"entity {ent.name} can no longer be read from it. Fix the table or the "
                f"pipeline's binding, then run `cdcsync resync PIPELINE {ent.name}"
                f" --reset-stream`{_READ_ON}")
    if not extra:
        return batch.changes
    return sorted([*batch.changes, *extra], key=lambda c: tuple(c.position))


#: why a DDL's stop names ``--reset-stream``: a resync alone reads the endpoint's log on
#: from where it stands, before the DDL, which stopped the run again (until 2026-12-07)
_READ_ON = (" (the log is then read on from its current end, past this statement; every"
            " entity read at that endpoint is snapshotted again).")


def align_schemas(ctx: PipelineContext) -> None:
    """Before any apply: columns a source has and a sink lacks (added while cdcsync was
    not running, so no log event will tell) get the entity's schema policy too.

    Unless the entity's rows held them already: then the sink's table lost them (a
    column dropped there), and adding them back would undo that, as the policy
    ``add`` did until 2026-12-07, with a warning that the source had "gained" them.
    The run stops instead (but with ``schema_changes: ignore``), naming both ways out."""
    for ent in ctx.entities.values():
        known: frozenset[str] | None = None
        for source in ent.sources:
            have = ent.columns_at(source)
            for target in ent.sinks:
                if target == source or target not in ent.schemas:
                    continue
                missing = [(n, c) for n, c in have.items() if n not in ent.columns_at(target)
                           and n not in ent.ignored]
                if not missing:
                    continue
                if ent.cfg.schema_changes != "ignore":
                    known = _synced_columns(ctx, ent) if known is None else known
                    _stop_on_dropped(ent, target, [n for n, _ in missing if n in known])
                _added(ctx, ent, source, ent.bindings[source].table, missing, [target])


def _synced_columns(ctx: PipelineContext, ent: EntityContext, sample: int = 20
                    ) -> frozenset[str]:
    """The columns the entity's latest stored rows hold (their known content)."""
    import sqlalchemy as sa

    from conflict.canonical import parse_json
    from sync.state import schema

    ks = schema.key_states
    with ctx.store.engine.connect() as conn:
        texts = conn.execute(sa.select(sa.type_coerce(ks.c.state, sa.Text)).where(
            ks.c.pipeline == ctx.pipeline, ks.c.entity == ent.name)
            .order_by(ks.c.updated_at.desc()).limit(sample)).scalars().all()
    out: set[str] = set()
    for text in texts:
        content = parse_json(text).get("c") if isinstance(text, str | bytes) else None
        out.update(content or ())
    return frozenset(out)


def _stop_on_dropped(ent: EntityContext, target: str, dropped: list[str]) -> None:
    if not dropped:
        return
    table = ent.bindings[target].table
    names = ", ".join(ent.bindings[target].endpoint_column(n) for n in dropped)
    raise SchemaError(
        f"table {table} at {target} has no column {names}, which entity {ent.name}"
        f" synchronises and its rows held: dropped at {target}? cdcsync neither adds it"
        " back there nor drops it elsewhere by itself. Add it back at"
        f" {target}, or leave it out of the entity (`exclude: [{', '.join(dropped)}]`),"
        " then run again: nothing was read or applied.")


def schema_changed(ctx: PipelineContext, ent: EntityContext, ev: SchemaChanged) -> None:
    binding = ent.bindings[ev.endpoint]
    rev = binding.entity_names
    added = [(rev.get(c.name, c.name), c) for c in ev.added]
    added = [(name, c) for name, c in added if binding.synced(name) and name not in ent.types]
    if ev.dropped:
        log.warning("%s.%s dropped columns %s: the other endpoints keep theirs",
                    ev.endpoint, ev.table, ", ".join(ev.dropped))
    if added:
        _added(ctx, ent, ev.endpoint, ev.table, added,
               [t for t in ent.sinks if t != ev.endpoint])


def _added(ctx: PipelineContext, ent: EntityContext, source: str, table: str,
           added: list[tuple[str, Column]], targets: list[str]) -> None:
    names = ", ".join(name for name, _ in added)
    policy = ent.cfg.schema_changes
    if policy == "ignore":
        ent.ignored.update(name for name, _ in added)
        log.warning("%s.%s has columns %s that %s lacks: ignored (schema_changes: ignore)",
                    source, table, names, ", ".join(targets))
        return
    if policy != "add":
        raise SchemaError(
            f"table {table} at {source} gained columns {names}; entity {ent.name} "
            "stops on schema changes (schema_changes: stop). Add the columns at "
            f"{', '.join(targets)} (or set schema_changes: add or ignore), then run again: "
            "nothing after this change was applied.")
    kind = getattr(ctx.cfg.endpoints[source], "kind", None)
    prior = _prior_values(ctx, ent, source, added)
    for target in targets:
        tb = ent.bindings[target]
        cols = [Column(tb.endpoint_column(name), c.logical, c.native, True) for name, c in added]
        add = getattr(ctx.endpoints[target], "add_columns", None)
        if add is None:
            raise SchemaError(
                f"table {table} at {source} gained columns {names}, and endpoint "
                f"{target} cannot add columns itself: add "
                f"{', '.join(c.name for c in cols)} to {tb.table} at {target} (then rerun "
                "`cdcsync setup` for a SQLite endpoint), and run again.")
        defaults = {tb.endpoint_column(name): v for name, v in prior.items() if v is not None}
        for line in add(tb, cols, source_kind=kind, defaults=defaults):
            log.warning("%s: %s", target, line)
    # A column added with a default fills the rows already there without a change in
    # any log (PostgreSQL's fast default, MariaDB's instant ADD COLUMN). Where the
    # source tells the one value they hold, the targets' column gets it as its default,
    # so their rows hold it too; otherwise those rows hold NULL at the targets until
    # they change, and only a new snapshot reads them again.
    unknown = [name for name, _ in added if name not in prior]
    if unknown:
        log.warning("%s.%s gained %s, now added at %s: rows that were there before may hold"
                    " other values at %s than NULL at %s until each is edited (`cdcsync"
                    " verify` shows them); `cdcsync resync %s %s` brings the values over",
                    source, table, ", ".join(unknown), ", ".join(targets), source,
                    ", ".join(targets), ctx.pipeline, ent.name)
    for name, c in added:
        ent.types[name] = c.logical


def _prior_values(ctx: PipelineContext, ent: EntityContext, source: str,
                  added: list[tuple[str, Column]]) -> dict[str, str | None]:
    """By entity column, the one value ``source``'s rows older than the column hold in
    it, where the source tells it (``prior_values`` of PostgreSQL and MariaDB
    endpoints, as PostgreSQL text: only PostgreSQL targets add columns; None: NULL).
    Columns left out may hold anything."""
    tell = getattr(ctx.endpoints[source], "prior_values", None)
    if tell is None:
        return {}
    got: dict[str, str | None] = tell(ent.bindings[source], [c.name for _, c in added])
    return {name: got[c.name] for name, c in added if c.name in got}


def truncate_deletes(ctx: PipelineContext, ent: EntityContext, ev: Truncated) -> Iterator[Change]:
    """A delete, at the truncate's position, of every key the source was known to hold."""
    for state in ctx.store.scan(ctx.pipeline, ent.name):
        st = state_from_json(state)
        held = st.endpoints.get(ev.endpoint)
        if st.key is None or held is None or not held.hash:
            continue  # the source did not hold this key
        yield Change(entity=ent.name, key=dict(st.key), op=Op.DELETE, before=st.content,
                     after=None, source=ev.endpoint, position=tuple(ev.position),
                     committed_at=ev.committed_at, row_version=None)
