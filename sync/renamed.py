"""An endpoint renamed in the pipeline file would be read as a new one.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from connectors.base import SchemaError
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
