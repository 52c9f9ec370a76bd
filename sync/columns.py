"""A column taken into an entity by an edit of the pipeline file.

Out of ``exclude:`` or into ``include:``, a column the tables held all along is
synchronised from then on, but only for the rows edited since: the others keep
whatever each endpoint held, which no log will ever bring, and until 2026-12-07
nothing said so (``verify`` found the drift). A column added to a source's table
is another matter: the schema policy adds it at the targets (sync/events.py), and
the log brings the values written to it.

Each run keeps, per entity, the columns it synchronises and those its sources'
tables hold (``entity_columns``). A column synchronised now and not at the last
run, which a source's table held then, stops the run, which names the resync
that copies its values. An entity with a snapshot due is not stopped: that
snapshot copies them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import sqlalchemy as sa

from connectors.base import SchemaError
from sync.state import schema
from sync.state.store import StateStore, dialect_insert


def check_columns(store: StateStore, pipeline: str, name: str, synced: Iterable[str],
                  tables: Iterable[str], *, snapshot_due: bool) -> None:
    """Stop on a column taken into entity ``name`` since its last run (see the module);
    else keep what it synchronises (``synced``) and what its sources hold (``tables``)."""
    now = {"synced": sorted(set(synced)), "tables": sorted(set(tables))}
    ec = schema.entity_columns
    with store.engine.connect() as conn:
        was = conn.execute(sa.select(ec.c.columns).where(
            ec.c.pipeline == pipeline, ec.c.entity == name)).scalar()
    if was == now:
        return
    taken = sorted(c for c in set(now["synced"]) - set(was["synced"])
                   if c in set(was["tables"])) if was is not None else []
    if taken and not snapshot_due:
        cols = ", ".join(taken)
        raise SchemaError(
            f"entity {name!r} synchronises {cols} now, which its tables held before it did"
            " (an edit of the pipeline file): only rows edited from now on would get their"
            f" values, and the others would stay apart. Run `cdcsync resync PIPELINE {name}`"
            " to copy them (where they differ between two endpoints that both write, each"
            " row is a conflict for the entity's policy: `priority` names the endpoint"
            f" that holds them right), or leave {cols} out again; nothing was read or"
            " applied")
    with store.transaction() as conn:  # (an upsert: two daemons may start side by side)
        stmt = dialect_insert(conn, ec).values(pipeline=pipeline, entity=name, columns=now,
                                               updated_at=time.time())
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["pipeline", "entity"],
            set_={"columns": stmt.excluded.columns, "updated_at": stmt.excluded.updated_at}))
