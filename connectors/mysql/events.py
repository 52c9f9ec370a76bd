"""Events a MySQL/MariaDB source puts in ``ChangeBatch.events`` besides row changes.

Field for field the same as the PostgreSQL connector's
(``connectors/postgres/events.py``), so that the engine treats both alike:

* :class:`SchemaChanged` when a bound table's columns differ from the last
  ones known for it, at the first change decoded with the new columns. The
  binlog says which columns each row has (the table-map event written before
  it, with ``binlog_row_metadata = FULL``), so the event is exact even when
  the DDL is read long after it ran; the last known columns travel in the
  checkpoint (``"columns"``), so a restart does not forget them.
* :class:`Truncated` for ``TRUNCATE`` of a bound table.
* :class:`TableDdl` for DDL that no row shows: ``DROP``, ``RENAME`` or
  ``CREATE`` of a bound table (a renamed table's rows stop arriving).
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


@dataclass(frozen=True, slots=True)
class TableDdl:
    """``kind`` is ``drop``, ``rename`` or ``create``; ``statement`` the DDL as logged."""

    entity: str
    endpoint: str
    table: str
    kind: str
    statement: str
    position: Position
    committed_at: float
