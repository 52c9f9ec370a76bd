"""Field-level merge: edits of different columns are combined."""

from __future__ import annotations

from conflict.case import ConflictCase, Resolution, Row, Winner
from conflict.policies._rows import cell, columns_of, put, resolution_of, side_wins
from conflict.policies._words import listing, who


class FieldMerge:
    """Merge two edits that changed different columns of the same record.

    ``case.base`` (the incoming endpoint's before-image) is the common
    ancestor. A column is changed by a side when its canonical value differs
    from the base's; a column one row has and another lacks counts as changed,
    so a partial before-image (PostgreSQL's default replica identity holds the
    key only) makes every other column look changed by both sides, and the
    merge falls through rather than guess.

    Columns both sides changed to the same canonical value are agreed, not a
    conflict. Any other column both changed, a missing base, or a deletion on
    either side: ``None``.
    """

    name = "field_merge"

    def __repr__(self) -> str:
        return "FieldMerge()"

    def decide(self, case: ConflictCase) -> Resolution | None:
        base, cur, inc = case.base, case.current.content, case.incoming.content
        if base is None or cur is None or inc is None:
            return None
        by_cur, by_inc, agreed = _changes(base, cur, inc)
        if any(c not in agreed for c in by_cur & by_inc):
            return None
        merged = dict(cur)
        for column in sorted(by_inc - agreed):
            put(merged, column, inc)
        return resolution_of(merged, case, policy=self.name, reason=_reason(case, by_cur, by_inc,
                                                                            agreed))

    def decide_column(self, case: ConflictCase, column: str) -> Resolution | None:
        """The value of the side that changed ``column``; ``None`` if both did, differently."""
        base, cur, inc = case.base, case.current.content, case.incoming.content
        if base is None or cur is None or inc is None:
            return None
        b, c, i = cell(base, column), cell(cur, column), cell(inc, column)
        if c == i:
            win, reason = Winner.CURRENT, f"both sides hold the same {column}"
        elif i == b:
            win, reason = Winner.CURRENT, f"only {who(case, Winner.CURRENT)} changed {column}"
        elif c == b:
            win, reason = Winner.INCOMING, f"only {who(case, Winner.INCOMING)} changed {column}"
        else:
            return None
        return side_wins(case, win, policy=self.name, reason=reason)


def _changes(base: Row, cur: Row, inc: Row) -> tuple[set[str], set[str], set[str]]:
    """Columns changed by current, by incoming, and changed by both to one value."""
    by_cur: set[str] = set()
    by_inc: set[str] = set()
    agreed: set[str] = set()
    for column in columns_of(base, cur, inc):
        b, c, i = cell(base, column), cell(cur, column), cell(inc, column)
        if c != b:
            by_cur.add(column)
        if i != b:
            by_inc.add(column)
        if c != b and c == i:
            agreed.add(column)
    return by_cur, by_inc, agreed


def _reason(case: ConflictCase, by_cur: set[str], by_inc: set[str], agreed: set[str]) -> str:
    parts = []
    for which, changed in ((Winner.CURRENT, by_cur), (Winner.INCOMING, by_inc)):
        own = sorted(changed - agreed)
        if own:
            parts.append(f"{who(case, which)} changed {listing(own)}")
    if agreed:
        parts.append(f"both changed {listing(sorted(agreed))} to the same value")
    if not parts:
        return "neither side changed any column since the common version"
    return "disjoint edits merged: " + "; ".join(parts)
