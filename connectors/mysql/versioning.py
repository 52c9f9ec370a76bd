"""System-versioned tables (MariaDB ``WITH SYSTEM VERSIONING``) in the binlog.

Such a table keeps the old versions of its rows in itself, as history rows
whose row end is the moment (or the transaction) that ended them; a query reads
only the current rows, whose row end is its type's largest value. The binlog
logs the history as rows: an ``UPDATE`` logs the row's update and the insert
of a history row holding the old values, a ``DELETE`` logs an update that ends
the row, ``DELETE HISTORY`` deletes history rows. Read as they are, the history
row's insert undid every update at the targets (it carries the old values under
the same key) and a deleted row stayed at every target, without a word (until
2026-12-07; the implicit period columns also stopped a SQLite target). Here an
image is read as what it does to the current rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.mysql.binlog import RowImage

#: the row end of a current row: TIMESTAMP(6)'s largest value (before MariaDB 11.5, and
#: from it), or BIGINT UNSIGNED's (a table versioned by transaction id)
_CURRENT: frozenset[Any] = frozenset({
    dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC),
    dt.datetime(2106, 2, 7, 6, 28, 15, 999999, tzinfo=dt.UTC),
    2**64 - 1,
})


def current_rows(img: RowImage, row_end: str) -> RowImage | None:
    """``img`` as a change of the table's current rows, or None for a history row's own
    event (its insert when a row is updated or deleted, its purge).

    An image without the row end (``binlog_row_image`` MINIMAL) is returned as it is:
    the reader refuses such images, naming the setting."""
    before, after = img.before, img.after
    if (before is not None and row_end not in before) or (
            after is not None and row_end not in after):
        return img
    was = before is not None and before[row_end] in _CURRENT
    now = after is not None and after[row_end] in _CURRENT
    if img.kind == 1 and was != now:
        # A row ended (deleted), or a history row made current again (by hand, with
        # system_versioning_insert_history): a delete, or an insert
        return RowImage(img.table, 2, before, None) if was else RowImage(img.table, 0, None,
                                                                          after)
    return img if (was if img.kind == 2 else now) else None
