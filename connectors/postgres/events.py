"""Events a PostgreSQL source puts in ``ChangeBatch.events`` besides row changes.

DDL is not in the logical decoding stream: a new ``Relation`` message whose
columns differ from what was known is the only sign that a table changed, so
that is what :class:`SchemaChanged` reports. ``TRUNCATE`` is its own message:
:class:`Truncated`. Both carry the position of the change they precede, so the
engine can order them among the batch's changes and apply the pipeline's
policy (add the column at the sinks / ignore it / stop; propagate the truncate
or ignore it).

These are plain values; nothing PostgreSQL-specific is in them, so they could
move to ``sync/change.py`` if other connectors emit the same events.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Column
from sync.change import Position


@dataclass(frozen=True, slots=True)
class SchemaChanged:
    entity: str
    endpoint: str
    table: str
    position: Position  # of the first change decoded with the new columns
    added: tuple[Column, ...]  # endpoint column names
    dropped: tuple[str, ...]
    columns: tuple[str, ...]  # the table's columns from now on


@dataclass(frozen=True, slots=True)
class Truncated:
    entity: str
    endpoint: str
    table: str
    position: Position
    committed_at: float
    cascade: bool = False
    restart_identity: bool = False
