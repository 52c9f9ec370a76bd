"""The canonical change record that flows through the whole pipeline.

Modelled on Debezium's envelope: every connector turns what its log says into
:class:`Change` values, and nothing downstream knows which engine it came from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A connector's resume point: a JSON-safe mapping that only the connector
#: interprets (LSN, binlog file+position or GTID state, a change-table sequence,
#: an API cursor). The engine stores it and hands it back, like Kafka Connect's
#: source offsets.
Checkpoint = Mapping[str, Any]

#: A change's place in its endpoint's log, ordered within that endpoint.
#: Used for the per-key duplicate check (DESIGN.md rule 2).
Position = tuple[int, ...]


class Op(enum.StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"  # a row read by a snapshot

    @property
    def is_delete(self) -> bool:
        return self is Op.DELETE


@dataclass(frozen=True, slots=True)
class Change:
    """One row change at one endpoint, in entity column names.

    ``row_version`` is the endpoint's row version right after this change (PG
    ``xmin``, the SQLite per-key change sequence, ...) or ``None`` where the
    engine has none; the sink's compare-and-set checks against it.
    """

    entity: str
    key: Mapping[str, Any]
    op: Op
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    source: str
    position: Position
    committed_at: float  # seconds since the epoch, UTC
    txid: str | None = None
    row_version: Any = None

    @property
    def content(self) -> Mapping[str, Any] | None:
        """The row as it stands after the change (``None`` once deleted)."""
        return None if self.op is Op.DELETE else self.after

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by the batch of a run's worker processes (sync/parallel.py): as its
        # fields, not through the dataclass's Python-level __getstate__ (2x the cost).
        return (Change, (self.entity, self.key, self.op, self.before, self.after, self.source,
                         self.position, self.committed_at, self.txid, self.row_version))


@dataclass(slots=True)
class ChangeBatch:
    """Changes read from one source, in commit order, and where to resume after them."""

    changes: list[Change]
    checkpoint: Checkpoint | None
    more: bool = False  # the source has more to read right now
    events: list[Any] = field(default_factory=list)  # schema events, truncates


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    key: Mapping[str, Any]
    row: Mapping[str, Any]
    row_version: Any = None


@dataclass(slots=True)
class SnapshotChunk:
    """One chunk of a snapshot, ordered by key; ``last_key`` resumes the next."""

    rows: Sequence[SnapshotRow]
    last_key: Mapping[str, Any] | None
    done: bool


# --- events besides row changes (ChangeBatch.events) ---------------------------------------
# Plain values, the same for every connector, so the engine treats them alike.


@dataclass(frozen=True, slots=True)
class SchemaChanged:
    """A bound table's columns differ from the last ones known, from ``position`` on."""

    entity: str
    endpoint: str
    table: str
    position: Position  # of the first change decoded with the new columns
    added: tuple[Any, ...]  # connectors.base.Column values, endpoint column names
    dropped: tuple[str, ...]
    columns: tuple[str, ...]  # the table's columns from now on


@dataclass(frozen=True, slots=True)
class Truncated:
    """A bound table was emptied (TRUNCATE) at ``position``."""

    entity: str
    endpoint: str
    table: str
    position: Position
    committed_at: float
    cascade: bool = False
    restart_identity: bool = False


@dataclass(frozen=True, slots=True)
class TableDdl:
    """DDL that no row shows: ``kind`` is ``drop``, ``rename``, ``create`` or ``replace``
    (``CREATE OR REPLACE TABLE``)."""

    entity: str
    endpoint: str
    table: str
    kind: str
    statement: str
    position: Position
    committed_at: float


@dataclass(frozen=True, slots=True)
class CascadeRule:
    """A foreign key whose action changes the referencing rows of ``entity`` when a
    referenced row is deleted or its referenced columns change: ``on_delete`` and
    ``on_update`` are ``"cascade"``, ``"set null"`` or ``""`` (no action)."""

    constraint: str
    entity: str
    columns: tuple[str, ...]  # the referencing columns, entity names
    on_delete: str
    on_update: str


#: Per entity, the foreign keys that reference its table at one endpoint: each with
#: the referenced columns in that entity's names (how a chain of actions is followed).
CascadeGraph = Mapping[str, Sequence[tuple[tuple[str, ...], CascadeRule]]]


@dataclass(frozen=True, slots=True)
class Cascaded:
    """Rows of ``rule.entity`` that referenced ``old`` and that the server changed by the
    foreign key's action, where its log does not show them (InnoDB takes these actions
    without logging them: connectors/mysql/cascades.py). ``new``: the referenced row's
    new values (an update), ``None`` when it was deleted. ``position``: just before the
    referenced row's change, after every change before it (the changes made of the
    event are placed right after it)."""

    endpoint: str
    rule: CascadeRule
    old: tuple[Any, ...]
    new: tuple[Any, ...] | None
    position: Position
    committed_at: float
    graph: CascadeGraph  # to follow the action on to the rows that reference these

    @property
    def entity(self) -> str:
        return self.rule.entity
