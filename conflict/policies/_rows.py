"""Row comparisons shared by the policies, always through canonical values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from conflict.canonical import CanonicalValue, canonical_value, rows_equal
from conflict.case import ConflictCase, Resolution, Row, Winner


class _Absent:
    """A column a row does not have: distinct from every value, NULL included."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Final = _Absent()


def cell(row: Row, column: str) -> CanonicalValue | _Absent:
    """The canonical value of ``column`` in ``row``, or :data:`ABSENT`."""
    return canonical_value(row[column]) if column in row else ABSENT


def columns_of(*rows: Row) -> list[str]:
    """Every column of the given rows, in a stable order."""
    seen: set[str] = set()
    for row in rows:
        seen.update(row)
    return sorted(seen)


def differing_columns(a: Row, b: Row) -> list[str]:
    """Columns whose canonical values differ (a column one row lacks differs)."""
    return [c for c in columns_of(a, b) if cell(a, c) != cell(b, c)]


def put(row: dict[str, Any], column: str, source: Row) -> None:
    """Set ``row[column]`` to ``source``'s value, or drop it if ``source`` lacks it."""
    if column in source:
        row[column] = source[column]
    else:
        row.pop(column, None)


def resolution_of(
    content: Mapping[str, Any] | None, case: ConflictCase, *, policy: str, reason: str
) -> Resolution:
    """A resolution to ``content``, its winner told by canonical comparison.

    Content equal to a side's (current first) *is* that side's version: the
    side's own row is returned, so that the endpoints holding it need no write.
    Anything else is ``MERGED``.
    """
    for which in (Winner.CURRENT, Winner.INCOMING):
        side = case.side(which)
        if rows_equal(content, side.content):
            return Resolution(side.content, which, policy, reason)
    return Resolution(None if content is None else dict(content), Winner.MERGED, policy, reason)


def side_wins(case: ConflictCase, which: Winner, *, policy: str, reason: str) -> Resolution:
    """A resolution that keeps one side as it is."""
    return Resolution(case.side(which).content, which, policy, reason)
