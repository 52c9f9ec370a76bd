"""A chain of policies: the first that decides, decides."""

from __future__ import annotations

from conflict.case import ConflictCase, Decision, Park
from conflict.policies.policy import Policy

NO_DECISION = "no policy could decide"


class Chain:
    """Asks each policy in turn; the first answer that is not ``None`` is the decision.

    When every policy passes, the record is parked (reason
    :data:`NO_DECISION`): a conflict is never left undecided and never decided
    silently. A chain therefore always decides, which makes
    ``Chain(...).decide`` usable as the protocol's resolver.
    """

    name = "chain"

    def __init__(self, *policies: Policy) -> None:
        self.policies: tuple[Policy, ...] = policies

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.policies))})"

    def decide(self, case: ConflictCase) -> Decision:
        for policy in self.policies:
            decision = policy.decide(case)
            if decision is not None:
                return decision
        return Park(self.name, NO_DECISION)
