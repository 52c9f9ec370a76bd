"""Events a PostgreSQL source puts in ``ChangeBatch.events`` besides row changes.

DDL is not in the logical decoding stream: a new ``Relation`` message whose
columns differ from what was known is the only sign that a table changed, so
that is what :class:`SchemaChanged` reports. ``TRUNCATE`` is its own message:
:class:`Truncated`. Both carry the position of the change they precede, so the
engine can order them among the batch's changes and apply the pipeline's
policy (add the column at the sinks / ignore it / stop; propagate the truncate
or ignore it).

These are plain values; nothing PostgreSQL-specific is in them, so they live in
``sync/change.py``, shared by every connector.
"""

from __future__ import annotations

from sync.change import SchemaChanged, Truncated

__all__ = ["SchemaChanged", "Truncated"]
