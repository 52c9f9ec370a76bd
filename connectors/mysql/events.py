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
* :class:`TableDdl` for DDL that no row shows: ``DROP``, ``RENAME``, ``CREATE`` or
  ``CREATE OR REPLACE`` of a bound table (a renamed table's rows stop arriving; a
  replaced one's rows went without a row event).
"""

from __future__ import annotations

from sync.change import SchemaChanged, TableDdl, Truncated

__all__ = ["SchemaChanged", "TableDdl", "Truncated"]
