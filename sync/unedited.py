"""Does a row whose version moved still hold what the service last knew there?

Asked of a row whose compare-and-set failed, where the protocol would take the
failure for a user edit on its way (sync/apply.py ``_moved_unedited``). Two
things move a row's version without an edit and without a change in the log:

- a table rewritten at a PostgreSQL target gives every row a new ``xmin``;
- a column added to a table whose rows are versioned by their content (MariaDB)
  gives every row one more value: NULL, or the column's default.

The first is the content known there, as it is. The second is the known content
plus columns at the table's end (``ADD COLUMN`` appends them) that hold what the
``ALTER TABLE`` gave every row. A column added elsewhere (``AFTER``, ``FIRST``)
is not recognised: that row is given up for an edit, as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conflict.canonical import CoercionError, canonical_row, coerce_row, row_hash
from sync.context import EntityContext, PipelineContext

log = logging.getLogger("cdcsync.apply")

#: entity column -> the value ``ALTER TABLE ... ADD COLUMN`` gave the rows already
#: there, typed as the entity's (None: NULL); a column whose value is unknown is absent
Defaults = Callable[[Sequence[str]], Mapping[str, Any]]


def holds_known(row: Mapping[str, Any], known: str, key: Sequence[str],
                defaults: Defaults) -> bool:
    """Is ``row`` (typed, in its table's column order) the content whose hash is
    ``known``, maybe with columns added since at the table's end?"""
    if row_hash(row) == known:
        return True
    trimmed = dict(row)
    tail = [c for c in reversed(list(row)) if c not in key]
    told = defaults(tail)
    for col in tail:
        value = trimmed.pop(col)
        if col not in told or canonical_row({col: told[col]}) != canonical_row({col: value}):
            return False
        if row_hash(trimmed) == known:
            return True
    return False


def defaults_at(ctx: PipelineContext, ent: EntityContext, target: str) -> Defaults:
    """What columns added to ``target``'s table gave its rows, asked only if needed and
    once per column: an endpoint that cannot tell (``prior_values``) tells nothing,
    and a row with a column it cannot tell about is not taken for the known content."""
    asked: set[str] = set()
    memo: dict[str, Any] = {}
    ask = getattr(ctx.endpoints[target], "prior_values", None)
    binding = ent.bindings[target]

    def tell(columns: Sequence[str]) -> Mapping[str, Any]:
        names = {binding.endpoint_column(c): c for c in columns if c not in asked}
        asked.update(names.values())
        if names and ask is not None:
            try:
                got = ask(binding, list(names))
            except Exception as exc:  # a hint only: without it, the row is given up
                log.debug("reading the column defaults at %s failed: %s", target, exc)
                got = {}
            for col, text in got.items():
                with contextlib.suppress(CoercionError):
                    memo.update(coerce_row({names[col]: text}, ent.types))
        return memo

    return tell
