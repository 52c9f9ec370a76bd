"""The quarantine table: changes the gate stopped, and what stewards decided about them.

Writes happen inside the caller's transaction (the batch's), so a change is
quarantined atomically with the checkpoint that moves past it: it is never
both skipped and lost. A change is identified by (entity, key, endpoint,
position); a source that delivers it again finds it here and it is dropped,
whatever was decided about it.

Migration ``0004`` creates the table; it is declared on the state store's
``metadata`` so that Alembic's comparisons see it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from conflict.canonical import from_json_value, row_from_json, row_to_json, to_json_value
from sync.change import Change, Op
from sync.state.schema import metadata

UNRESOLVED = ("quarantined", "held")
FINAL = ("replayed", "accepted", "discarded")
STATUSES = UNRESOLVED + FINAL
CHUNK = 500

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(128), nullable=False),
    sa.Column("entity", sa.String(128), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("endpoint", sa.String(128), nullable=False),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("position", sa.Text, nullable=True),  # JSON list; NULL for a snapshot row
    sa.Column("change", sa.JSON, nullable=False),
    sa.Column("failures", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("decided_by", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.UniqueConstraint("pipeline", "entity", "key", "endpoint", "position",
                        name="uq_quarantine_change"),
)
sa.Index("ix_quarantine_key", quarantine.c.pipeline, quarantine.c.entity, quarantine.c.key)
sa.Index("ix_quarantine_status", quarantine.c.pipeline, quarantine.c.status)
sa.Index("ix_quarantine_open", quarantine.c.pipeline, quarantine.c.entity, quarantine.c.status)


def position_text(position: Sequence[int] | None) -> str | None:
    return None if position is None else json.dumps([int(p) for p in position])


def change_to_json(ch: Change) -> dict[str, Any]:
    """The change as the source delivered it, losslessly (conflict.canonical's JSON)."""
    return {
        "entity": ch.entity, "key": row_to_json(ch.key), "op": str(ch.op),
        "before": row_to_json(ch.before), "after": row_to_json(ch.after), "source": ch.source,
        "position": list(ch.position), "committed_at": ch.committed_at, "txid": ch.txid,
        "row_version": to_json_value(ch.row_version),
    }


def change_from_json(d: Mapping[str, Any]) -> Change:
    return Change(
        entity=d["entity"], key=row_from_json(d["key"]) or {}, op=Op(d["op"]),
        before=row_from_json(d["before"]), after=row_from_json(d["after"]), source=d["source"],
        position=tuple(d["position"]), committed_at=float(d["committed_at"]), txid=d["txid"],
        row_version=from_json_value(d["row_version"]),
    )


def item_row(pipeline: str, entity: str, key: str, ch: Change, failures: list[dict[str, Any]],
             status: str, run_id: int | None, *, snapshot: bool = False) -> dict[str, Any]:
    return dict(pipeline=pipeline, entity=entity, key=key, endpoint=ch.source, op=str(ch.op),
                position=None if snapshot else position_text(ch.position),
                change=change_to_json(ch), failures=failures, status=status, reason="",
                created_at=time.time(), run_id=run_id)


class QuarantineStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- writes (inside the caller's transaction) --------------------------------------

    @staticmethod
    def add(conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(quarantine.insert(), rows)

    @staticmethod
    def decide(conn: Connection, ids: Iterable[int], status: str, *, reason: str = "",
               decided_by: str | None = None) -> None:
        ids = list(ids)
        if not ids:
            return
        if status not in STATUSES:
            raise ValueError(f"unknown quarantine status {status!r}")
        final = status in FINAL
        conn.execute(quarantine.update().where(quarantine.c.id.in_(ids)).values(
            status=status, reason=reason, decided_by=decided_by if final else None,
            decided_at=time.time() if final else None))

    @staticmethod
    def requarantine(conn: Connection, item_id: int, failures: list[dict[str, Any]]) -> None:
        """A held change that still fails when released becomes its key's quarantined item."""
        conn.execute(quarantine.update().where(quarantine.c.id == item_id).values(
            status="quarantined", failures=failures))

    @staticmethod
    def set_failures(conn: Connection, item_id: int, failures: list[dict[str, Any]]) -> None:
        conn.execute(quarantine.update().where(quarantine.c.id == item_id)
                     .values(failures=failures))

    # --- reads -------------------------------------------------------------------------

    def for_keys(self, pipeline: str, entity: str, keys: Iterable[str], *,
                 with_failures: bool = False,
                 conn: Connection | None = None) -> list[dict[str, Any]]:
        """Every item (any status) of ``keys``: identities and statuses (and failures)."""
        wanted = list(dict.fromkeys(keys))
        q = quarantine.c
        cols = [q.id, q.key, q.endpoint, q.position, q.op, q.status]
        if with_failures:
            cols.append(q.failures)
        out: list[dict[str, Any]] = []

        def _read(c: Connection) -> None:
            for i in range(0, len(wanted), CHUNK):
                rows = c.execute(sa.select(*cols).where(
                    q.pipeline == pipeline, q.entity == entity,
                    q.key.in_(wanted[i:i + CHUNK]))).mappings().all()
                out.extend(dict(r) for r in rows)

        if conn is not None:
            _read(conn)
        else:
            with self.engine.connect() as c:
                _read(c)
        return out

    def open_keys(self, pipeline: str, entity: str,
                  conn: Connection | None = None) -> set[str]:
        """Keys of the entity with a quarantined or held change (few, normally none)."""
        q = quarantine.c
        stmt = sa.select(q.key).where(q.pipeline == pipeline, q.entity == entity,
                                      q.status.in_(UNRESOLVED)).distinct()
        if conn is not None:
            return {r[0] for r in conn.execute(stmt)}
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(stmt)}

    def unresolved(self, pipeline: str, entity: str, key: str) -> list[dict[str, Any]]:
        """The key's quarantined and held items, oldest first."""
        q = quarantine.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(quarantine).where(
                q.pipeline == pipeline, q.entity == entity, q.key == key,
                q.status.in_(UNRESOLVED)).order_by(q.id)).mappings().all()
        return [dict(r) for r in rows]

    def get(self, pipeline: str, item_id: int) -> dict[str, Any] | None:
        q = quarantine.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(quarantine).where(
                q.pipeline == pipeline, q.id == item_id)).mappings().first()
        return None if row is None else dict(row)

    def items(self, pipeline: str, *, statuses: Sequence[str] | None = UNRESOLVED,
              entity: str | None = None, limit: int | None = 200) -> list[dict[str, Any]]:
        """The oldest ``limit`` items (None: every one) of those statuses and entity."""
        q = quarantine.c
        stmt = sa.select(quarantine).where(q.pipeline == pipeline)
        if statuses:
            stmt = stmt.where(q.status.in_(list(statuses)))
        if entity:
            stmt = stmt.where(q.entity == entity)
        stmt = stmt.order_by(q.id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt if limit is None else stmt.limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def count_open(self, pipeline: str, entity: str | None = None,
                   conn: Connection | None = None) -> int:
        q = quarantine.c
        stmt = sa.select(sa.func.count()).select_from(quarantine).where(
            q.pipeline == pipeline, q.status.in_(UNRESOLVED))
        if entity:
            stmt = stmt.where(q.entity == entity)
        if conn is not None:
            return int(conn.execute(stmt).scalar_one())
        with self.engine.connect() as c:
            return int(c.execute(stmt).scalar_one())

    def orphaned_keys(self, pipeline: str, entity: str) -> list[str]:
        """Keys whose oldest unresolved item is ``held``: a release that did not finish."""
        q = quarantine.c
        first = (sa.select(q.key, sa.func.min(q.id).label("first"))
                 .where(q.pipeline == pipeline, q.entity == entity, q.status.in_(UNRESOLVED))
                 .group_by(q.key).subquery())
        stmt = (sa.select(quarantine.c.key).join(first, quarantine.c.id == first.c.first)
                .where(quarantine.c.status == "held").order_by(quarantine.c.key))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]
