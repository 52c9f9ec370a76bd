"""The rule for a deletion concurrent with an update."""

from __future__ import annotations

from typing import Literal, get_args

from conflict.case import ConflictCase, Resolution, Winner
from conflict.policies._rows import side_wins
from conflict.policies._words import edit_at, other
from conflict.policies.policy import PolicyError

DeleteMode = Literal["policy", "delete_wins", "update_wins"]
DELETE_MODES: tuple[str, ...] = get_args(DeleteMode)


class DeleteRule:
    """Decides "delete vs update" conflicts, when exactly one side is a deletion.

    ``delete_wins``: the deleting side wins; ``update_wins``: the updating side
    wins; ``policy``: no rule (``None``), the entity's policy decides as for
    any other conflict. Cases where both or neither side deleted: ``None``.
    The policy's name is its mode.
    """

    def __init__(self, mode: str) -> None:
        if mode not in DELETE_MODES:
            raise PolicyError(
                f"unknown delete rule {mode!r}; expected one of {', '.join(DELETE_MODES)}"
            )
        self.mode = mode
        self.name = mode

    def __repr__(self) -> str:
        return f"DeleteRule({self.mode!r})"

    def decide(self, case: ConflictCase) -> Resolution | None:
        if self.mode == "policy" or case.current.deleted == case.incoming.deleted:
            return None
        deleting = Winner.CURRENT if case.current.deleted else Winner.INCOMING
        win = deleting if self.mode == "delete_wins" else other(deleting)
        reason = (
            f"{edit_at(case, deleting)} is concurrent with {edit_at(case, other(deleting))}; "
            f"on_delete is {self.mode}"
        )
        return side_wins(case, win, policy=self.name, reason=reason)
