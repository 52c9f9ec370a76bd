"""Last writer wins: the later commit, with a tie-break every replica agrees on."""

from __future__ import annotations

from conflict.canonical import row_hash
from conflict.case import ConflictCase, Resolution, Winner
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
    """

    name = "last_writer_wins"

    def __repr__(self) -> str:
        return "LastWriterWins()"

    def decide(self, case: ConflictCase) -> Resolution:
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
