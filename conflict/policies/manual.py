"""Manual: every conflict goes to a data steward."""

from __future__ import annotations

from conflict.case import ConflictCase, Park, Winner
from conflict.policies._words import edit_at


class Manual:
    """Always parks the record; the rest of the batch keeps flowing."""

    name = "manual"

    def __repr__(self) -> str:
        return "Manual()"

    def decide(self, case: ConflictCase) -> Park:
        return Park(
            self.name,
            f"left to a data steward: {edit_at(case, Winner.CURRENT)} and "
            f"{edit_at(case, Winner.INCOMING)} are concurrent",
        )
