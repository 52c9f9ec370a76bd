"""Last writer wins: the later commit, with a tie-break every replica agrees on."""

from __future__ import annotations

import datetime as dt
from typing import Any

from conflict.canonical import row_hash
from conflict.case import ConflictCase, Resolution, Side, Winner
from conflict.policies._rows import side_wins
from conflict.policies._words import at, edit_at, micros, other, when, who


class LastWriterWins:
    """The side with the later ``committed_at`` wins.

    Commit times are compared in whole microseconds (the precision the
    canonical timestamps have). Ties go to the lexicographically greater
    endpoint name, then to the greater :func:`~conflict.canonical.row_hash` of
    the content, so that every replica decides the same whichever side it sees
    as current. A deletion takes part like any other version (its hash is
    ``""``, so it loses a full tie). Never returns ``None``.

    ``column``: the rows' own last-modified column (an application's
    ``updated_at``), compared before the commit times: the row with the later
    value there wins. It decides where commit times cannot (a first sync's
    snapshot reads carry none) or should not (servers whose clocks drift apart,
    SQLite's whole milliseconds). Where a side is a deletion, either value is
    NULL, the two are equal or cannot be ordered, commit times decide as without it.
    """

    name = "last_writer_wins"

    def __init__(self, column: str | None = None) -> None:
        self.column = column

    def __repr__(self) -> str:
        return f"LastWriterWins(column={self.column!r})" if self.column else "LastWriterWins()"

    def decide(self, case: ConflictCase) -> Resolution:
        if self.column is not None:
            by_column = self._by_column(case, self.column)
            if by_column is not None:
                return by_column
        return self._by_commit(case)

    def _by_column(self, case: ConflictCase, column: str) -> Resolution | None:
        v_cur, v_inc = _stamp(case.current, column), _stamp(case.incoming, column)
        if v_cur is None or v_inc is None or v_cur == v_inc:
            return None
        try:
            later = v_cur > v_inc
        except TypeError:  # values of two kinds (an aware and a naive datetime)
            return None
        win = Winner.CURRENT if later else Winner.INCOMING
        lose = other(win)
        shown = {Winner.CURRENT: v_cur, Winner.INCOMING: v_inc}
        reason = (f"{who(case, win)}'s row has {column} {_shown(shown[win])}, later than"
                  f" {who(case, lose)}'s {_shown(shown[lose])}")
        return side_wins(case, win, policy=self.name, reason=reason)

    def _by_commit(self, case: ConflictCase) -> Resolution:
        cur, inc = case.current, case.incoming
        t_cur, t_inc = micros(cur.committed_at), micros(inc.committed_at)
        if t_cur != t_inc:
            win = Winner.CURRENT if t_cur > t_inc else Winner.INCOMING
            lose = other(win)
            reason = (
                f"{edit_at(case, win)} is later than {who(case, lose)}'s "
                f"{at(case.side(lose))}"
            )
        elif cur.endpoint != inc.endpoint:
            win = Winner.CURRENT if cur.endpoint > inc.endpoint else Winner.INCOMING
            lose = other(win)
            both = (f"both rows were read by a snapshot at {when(cur.committed_at)}, which"
                    " tells no commit times" if cur.snapshot_read and inc.snapshot_read
                    else f"both committed at {when(cur.committed_at)}")
            reason = (
                f"{who(case, win)} and {who(case, lose)}: {both}; tie broken by endpoint"
                f" name: {case.side(win).endpoint!r} > {case.side(lose).endpoint!r}"
            )
        else:
            h_cur, h_inc = row_hash(cur.content), row_hash(inc.content)
            if h_cur == h_inc:
                return side_wins(
                    case,
                    Winner.CURRENT,
                    policy=self.name,
                    reason=(
                        f"both sides come from {cur.endpoint or 'an unknown endpoint'} at "
                        f"{when(cur.committed_at)} with the same content; kept the current one"
                    ),
                )
            win = Winner.CURRENT if h_cur > h_inc else Winner.INCOMING
            reason = (
                f"both sides come from {cur.endpoint or 'an unknown endpoint'} at "
                f"{when(cur.committed_at)}; tie broken by content hash: the {win.value} "
                f"side's is greater"
            )
        return side_wins(case, win, policy=self.name, reason=reason)


def _stamp(side: Side, column: str) -> Any:
    """The side's value in ``column``; None for a deletion or NULL."""
    return None if side.content is None else side.content.get(column)


def _shown(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return repr(value) if isinstance(value, str) else str(value)
