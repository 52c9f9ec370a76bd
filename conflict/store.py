"""The conflict store: every conflict, how it was decided, by whom and when.

The one module of ``conflict/`` that does I/O. It writes inside the caller's
transaction, so a conflict is recorded atomically with the key state and the
checkpoint of the batch that raised it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from conflict.canonical import row_to_json
from conflict.case import Park, Resolution
from conflict.protocol import ConflictRecord, ParkedConflict
from sync.state.codec import side_to_json
from sync.state.schema import conflicts as table
from sync.state.store import dialect_insert


def _sides(rec: ConflictRecord) -> dict[str, Any]:
    return {
        "current": side_to_json(rec.case.current),
        "incoming": side_to_json(rec.case.incoming),
    }


class ConflictStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def record(conn: Connection, pipeline: str, key: str, rec: ConflictRecord,
               run_id: int | None) -> None:
        """Insert a conflict just decided by policy, or just parked for a steward."""
        ConflictStore.record_all(conn, pipeline, [(key, rec)], run_id)

    @staticmethod
    def record_all(conn: Connection, pipeline: str,
                   records: Iterable[tuple[str, ConflictRecord]], run_id: int | None) -> None:
        """:meth:`record` of each ``(key, conflict)``, as one insert per kind (resolved,
        parked): a first sync of two systems that drifted apart decides a conflict for
        most of its keys, and a query or two for each cost a round trip each."""
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for key, rec in records:
            now = time.time()  # (each its own: the steward's lists are in this order)
            d = rec.decision
            values: dict[str, Any] = dict(
                id=rec.conflict_id, pipeline=pipeline, entity=rec.case.entity, key=key,
                policy=d.policy, reason=d.reason, sides=_sides(rec),
                base=row_to_json(rec.case.base), created_at=now, run_id=run_id,
            )
            if isinstance(d, Resolution):
                values.update(status="resolved", winner=str(d.winner),
                              resolution=row_to_json(d.content), decided_at=now,
                              decided_by=f"policy:{d.policy}",
                              vector=rec.new_vector.as_dict() if rec.new_vector else None)
            else:
                assert isinstance(d, Park)
                values.update(status="open")
            by_kind.setdefault(values["status"], []).append(values)
        for rows in by_kind.values():
            # A conflict id is derived from the two vectors: a replayed batch records
            # the same conflict again, which must not duplicate it.
            conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(
                index_elements=[table.c.id]), rows)

    @staticmethod
    def update_parked(conn: Connection, parked: ParkedConflict) -> None:
        """Later edits of a parked key update its sides (the conflict stays open)."""
        sides = {name: side_to_json(s) for name, s in parked.sides.items()}
        conn.execute(table.update().where(table.c.id == parked.conflict_id)
                     .values(sides={"by_endpoint": sides}))

    @staticmethod
    def mark_resolved_many(conn: Connection, rows: list[dict[str, Any]], *, decided_by: str,
                           reason: str, at: float) -> None:
        """Conflicts decided by one person at once: ``rows`` of ``b_id`` (the conflict),
        ``b_resolution`` (the content's JSON form), ``b_winner`` and ``b_vector``; one
        statement for all (a bulk decision records thousands)."""
        if rows:
            conn.execute(table.update().where(table.c.id == sa.bindparam("b_id")).values(
                status="resolved", resolution=sa.bindparam("b_resolution"),
                winner=sa.bindparam("b_winner"), vector=sa.bindparam("b_vector"),
                decided_by=decided_by, decided_at=at, reason=reason), rows)

    def list(self, pipeline: str, *, status: str | None = None, entity: str | None = None,
             limit: int | None = 200) -> list[dict[str, Any]]:
        """The oldest ``limit`` conflicts (None: every one) of that status and entity."""
        q = sa.select(table).where(table.c.pipeline == pipeline)
        if status:
            q = q.where(table.c.status == status)
        if entity:
            q = q.where(table.c.entity == entity)
        q = q.order_by(table.c.created_at, table.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(q if limit is None else q.limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def get(self, pipeline: str, conflict_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(
                table.c.pipeline == pipeline,
                table.c.id.startswith(conflict_id, autoescape=True))).mappings().all()
        return dict(row[0]) if len(row) == 1 else None

    def count(self, pipeline: str, status: str | None, entity: str | None = None) -> int:
        """How many conflicts of that status (None: any) and entity (None: any)."""
        with self.engine.connect() as conn:
            return int(conn.execute(self._of(sa.func.count(), pipeline, status,
                                             entity)).scalar_one())

    def newest(self, pipeline: str, status: str | None,
               entity: str | None = None) -> float | None:
        """When the latest of those conflicts was raised, by the clock of the run that
        raised it (None: there is none)."""
        with self.engine.connect() as conn:
            at = conn.execute(self._of(sa.func.max(table.c.created_at), pipeline, status,
                                       entity)).scalar_one()
        return None if at is None else float(at)

    @staticmethod
    def _of(column: Any, pipeline: str, status: str | None,
            entity: str | None) -> sa.Select[Any]:
        q = sa.select(column).select_from(table).where(table.c.pipeline == pipeline)
        if status:
            q = q.where(table.c.status == status)
        if entity:
            q = q.where(table.c.entity == entity)
        return q
