"""An endpoint or an entity renamed in the pipeline file would be read as a new one.

The state store knows each endpoint by its name: its checkpoints, and each key's
version vector and per-endpoint record. Renamed in the pipeline file (``a`` to
``crm``), the endpoint had no checkpoint under its new name: the run snapshotted
it as a new endpoint and read each row edited since the last sync as an edit
made beside what was known, a conflict with its own earlier copy; the policy
then picked, by timestamps, among copies of the same edits, and could keep the
other endpoint's older copy (seen 2026-12-07 through the CLI).

A run now stops when an entity has an endpoint the state store has never seen
and the state store has one the entity no longer names: the shape of a rename.
Give the endpoint its name back; or, if the old one is gone for good and the new
one is another database, forget the old one (``cdcsync resync PIPELINE ENTITY
--forget ENDPOINT``), after which the new one is snapshotted as any new endpoint.

An entity renamed (``clients`` to ``customers``) is the same story one level up:
nothing is known under the new name, so its first run snapshots it as new, and
each row of a two-way entity edited since the last run becomes a conflict
between copies of the same edits. A run stops when an entity the state store
has never seen has the endpoints and key of one the store knows and the
pipeline file no longer names (:func:`check_renamed_entities`).
``cdcsync entity rename`` carries everything known to the new name
(:func:`rename_entity`); ``cdcsync entity forget`` drops what is known of an
entity gone for good (:func:`forget_entity`). Both refuse while anything is
left to settle under the old name (applies due, conflicts, dead letters,
quarantined changes), which only a pipeline file naming it can settle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from connectors.base import SchemaError
from sync.capture import STREAM
from sync.rekey import pending, stored_key
from sync.state import schema
from sync.state.store import StateStore


def known_endpoints(store: StateStore, pipeline: str, entity: str) -> set[str]:
    """The endpoints with a checkpoint of ``entity`` (its snapshot read there)."""
    cp = schema.checkpoints
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(cp.c.endpoint).distinct().where(
            cp.c.pipeline == pipeline, cp.c.entity == entity)).scalars())


def check_renamed(store: StateStore, pipeline: str,
                  entities: Mapping[str, Iterable[str]]) -> None:
    """Stop on an entity whose endpoints look renamed (see the module)."""
    for name, endpoints in entities.items():
        named = set(endpoints)
        known = known_endpoints(store, pipeline, name)
        gone, new = sorted(known - named), sorted(named - known)
        if gone and new:
            raise SchemaError(
                f"entity {name!r}: endpoint {' and '.join(new)} is new to it, and"
                f" {' and '.join(gone)}, which the state store knows it by, is no longer in"
                " the pipeline file. A renamed endpoint would be read as a new one, its"
                " rows taken for edits beside its own earlier copies. If it was renamed,"
                f" give it its old name back. If {' and '.join(gone)} is gone for good,"
                f" `cdcsync resync PIPELINE {name} --forget {gone[0]}` forgets it (the new"
                " one is then read as any new endpoint); nothing was read or applied")


def forget(store: StateStore, pipeline: str, entity: str, endpoint: str,
           configured: Iterable[str]) -> str:
    """Forget ``endpoint``'s checkpoints of ``entity``; a line for the user."""
    if endpoint in set(configured):
        raise SchemaError(f"endpoint {endpoint!r} is still one of entity {entity!r}'s in the"
                          " pipeline file: only an endpoint it no longer names is forgotten")
    cp = schema.checkpoints
    with store.transaction() as conn:
        gone = conn.execute(cp.delete().where(
            cp.c.pipeline == pipeline, cp.c.entity == entity, cp.c.endpoint == endpoint))
        store.audit(conn, pipeline, "cli", "forget endpoint",
                    {"entity": entity, "endpoint": endpoint})
    if not gone.rowcount:
        return f"{entity}: nothing known of endpoint {endpoint}"
    return f"{entity}: endpoint {endpoint} forgotten"


def known_entities(store: StateStore, pipeline: str) -> dict[str, set[str]]:
    """Each entity with a checkpoint, and the endpoints it has them at."""
    cp = schema.checkpoints
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(cp.c.entity, cp.c.endpoint).where(
            cp.c.pipeline == pipeline, cp.c.entity != STREAM)).all()
    known: dict[str, set[str]] = {}
    for entity, endpoint in rows:
        known.setdefault(entity, set()).add(endpoint)
    return known


def _has_states(store: StateStore, pipeline: str, entity: str) -> bool:
    return stored_key(store, pipeline, entity) is not None


def check_renamed_entities(store: StateStore, pipeline: str,
                           entities: Mapping[str, tuple[Iterable[str], Iterable[str]]]) -> None:
    """Stop on an entity that looks renamed (see the module). ``entities``: each name in
    the pipeline file -> (its endpoints, its key columns)."""
    known = known_entities(store, pipeline)
    gone = {name: (eps, stored_key(store, pipeline, name))
            for name, eps in sorted(known.items()) if name not in entities}
    if not gone:
        return
    for name, (endpoints, key) in entities.items():
        if name in known or _has_states(store, pipeline, name):
            continue
        was = [old for old, (eps, old_key) in gone.items()
               if eps == set(endpoints) and old_key in (None, frozenset(key))]
        if was:
            old = was[0]
            raise SchemaError(
                f"entity {name!r} is new to the state store, which knows {old!r} at the"
                f" same endpoints ({', '.join(sorted(endpoints))}) by the same key, and the"
                f" pipeline file no longer names {old!r}. A renamed entity would be read as"
                " a new one, each row edited since the last run taken for an edit beside"
                f" its own earlier copy. If it was renamed, `cdcsync entity rename PIPELINE"
                f" {old} {name}` carries what is known over to the new name (or give it its"
                f" old name back). If {old!r} is gone for good, `cdcsync entity forget"
                f" PIPELINE {old}` drops what is known of it; nothing was read or applied")


def _tables() -> list[sa.Table]:
    """Every state-store table that names an entity."""
    from sync.quality.store import quarantine

    return [t for t in (*schema.metadata.sorted_tables, quarantine)
            if "entity" in t.c and "pipeline" in t.c]


def _settled(conn: sa.Connection, pipeline: str, entity: str, verb: str) -> None:
    left = pending(conn, pipeline, entity)
    if left:
        raise SchemaError(
            f"entity {entity!r} cannot be {verb} while {', '.join(left)} wait under its"
            f" name: name it in the pipeline file again, settle them, then take it out"
            " and try again (nothing was changed)")


def rename_entity(store: StateStore, pipeline: str, old: str, new: str,
                  configured: Iterable[str]) -> str:
    """Carry everything known of entity ``old`` over to ``new``; a line for the user."""
    named = set(configured)
    if old in named:
        raise SchemaError(f"entity {old!r} is still in the pipeline file: only an entity it"
                          " no longer names is renamed (nothing was changed)")
    if new not in named:
        raise SchemaError(f"entity {new!r} is not in the pipeline file: rename the entity"
                          " there first (nothing was changed)")
    if new in known_entities(store, pipeline) or _has_states(store, pipeline, new):
        raise SchemaError(f"entity {new!r} is known to the state store already: what is"
                          f" known of {old!r} cannot join it (nothing was changed)")
    moved = 0
    with store.transaction() as conn:
        _settled(conn, pipeline, old, "renamed")
        for t in _tables():
            moved += conn.execute(t.update().where(
                t.c.pipeline == pipeline, t.c.entity == old).values(entity=new)).rowcount
        store.audit(conn, pipeline, "cli", "rename entity", {"from": old, "to": new})
    if not moved:
        return f"nothing known of entity {old}"
    return f"entity {old} renamed {new}: what is known of it carried over"


def forget_entity(store: StateStore, pipeline: str, entity: str,
                  configured: Iterable[str]) -> str:
    """Drop the states, checkpoints and snapshot progress of ``entity``, which the
    pipeline file no longer names; a line for the user. The history (runs, conflicts
    decided, quarantine decisions, audit) stays."""
    if entity in set(configured):
        raise SchemaError(f"entity {entity!r} is still in the pipeline file: only an entity"
                          " it no longer names is forgotten (nothing was changed)")
    from sync.quality.store import quarantine

    history = {schema.conflicts.name, schema.dead_letters.name, quarantine.name}
    dropped = 0
    with store.transaction() as conn:
        _settled(conn, pipeline, entity, "forgotten")
        for t in _tables():
            if t.name not in history:
                dropped += conn.execute(t.delete().where(
                    t.c.pipeline == pipeline, t.c.entity == entity)).rowcount
        store.audit(conn, pipeline, "cli", "forget entity", {"entity": entity})
    if not dropped:
        return f"nothing known of entity {entity}"
    return f"entity {entity} forgotten"
