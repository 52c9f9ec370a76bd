"""Endpoint priority: a fixed ranking of endpoints decides."""

from __future__ import annotations

from collections.abc import Sequence

from conflict.case import ConflictCase, Resolution, Winner
from conflict.policies._rows import side_wins
from conflict.policies._words import listing, other


class EndpointPriority:
    """The side whose endpoint comes first in ``order`` wins.

    Endpoints not listed rank below every listed one. When both sides are
    unlisted, or come from the same endpoint, priority cannot tell them apart
    and the answer is ``None``. Deletions take part like any other version.
    """

    name = "priority"

    def __init__(self, order: Sequence[str]) -> None:
        if isinstance(order, str):
            raise TypeError("order must be a sequence of endpoint names, not one string")
        self.order: tuple[str, ...] = tuple(order)
        self._rank: dict[str, int] = {}
        for i, endpoint in enumerate(self.order):
            self._rank.setdefault(endpoint, i)

    def __repr__(self) -> str:
        return f"EndpointPriority({list(self.order)!r})"

    def rank(self, endpoint: str) -> int:
        """Position in the order; every unlisted endpoint shares the last rank."""
        return self._rank.get(endpoint, len(self.order))

    def decide(self, case: ConflictCase) -> Resolution | None:
        r_cur, r_inc = self.rank(case.current.endpoint), self.rank(case.incoming.endpoint)
        if r_cur == r_inc:
            return None
        win = Winner.CURRENT if r_cur < r_inc else Winner.INCOMING
        winner = case.side(win).endpoint
        loser = case.side(other(win)).endpoint
        if loser in self._rank:
            reason = f"{winner} ranks above {loser} in the priority order [{listing(self.order)}]"
        else:
            reason = (
                f"{winner} is in the priority order [{listing(self.order)}] and "
                f"{loser or 'the other side'} is not"
            )
        return side_wins(case, win, policy=self.name, reason=reason)
