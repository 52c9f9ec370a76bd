"""The columns of a one-way target table that ``cdcsync setup`` creates from its source.

Every engine's ``create_table`` takes the same columns: those the entity
synchronises, named as the target binds them, ``NOT NULL`` where the source's is
or where they are key columns.
"""

from __future__ import annotations

from collections.abc import Iterator

from connectors.base import Binding, Column, TableSchema


def created_columns(binding: Binding, source: TableSchema, source_binding: Binding, *,
                    source_kind: str | None = None, zero_dates: bool = False
                    ) -> Iterator[tuple[str, Column, bool]]:
    """``(target column name, source column, NOT NULL)`` for each synchronised column.

    ``zero_dates``: the target holds no zero date. A MariaDB/MySQL source reads one
    (``'0000-00-00'``) as NULL even from a NOT NULL column (its own sink writes NULL
    back as the zero date there), so such columns stay nullable at this target.
    """
    rev = source_binding.entity_names
    for col in source.columns:
        entity_col = rev.get(col.name, col.name)
        if not source_binding.synced(entity_col):
            continue
        nullable = col.nullable or (zero_dates and source_kind == "mysql" and col.logical
                                    in ("date", "timestamp", "timestamptz"))
        yield (binding.endpoint_column(entity_col), col,
               entity_col in binding.key or not nullable)
