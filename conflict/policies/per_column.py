"""Per-column policies: each differing column decided by its own policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conflict.case import ConflictCase, Decision, Park, Resolution, Winner
from conflict.policies._rows import differing_columns, put, resolution_of, side_wins
from conflict.policies._words import listing, who
from conflict.policies.chain import NO_DECISION, Chain
from conflict.policies.policy import ColumnPolicy, Policy


class PerColumn:
    """Decide each column whose values differ by that column's policy (or ``default``).

    A column's policy decides the whole case (or just that column, if it is a
    :class:`~conflict.policies.policy.ColumnPolicy`; a :class:`Chain` is asked
    member by member the same way) and the column takes its
    value from the winning side, or from the merged content. A column policy
    that answers ``None`` hands the column to ``default``; if ``default``
    cannot decide it either, neither can this policy (``None``). A column
    policy that parks parks the whole record. When either side is a deletion
    there are no columns to choose between: ``default`` decides alone.

    The result is a resolution named ``per_column`` whose winner is told by
    comparing the combined content with both sides.
    """

    name = "per_column"

    def __init__(self, default: Policy, columns: Mapping[str, Policy]) -> None:
        self.default = default
        self.columns: dict[str, Policy] = dict(columns)

    def __repr__(self) -> str:
        return f"PerColumn({self.default!r}, {self.columns!r})"

    def decide(self, case: ConflictCase) -> Decision | None:
        cur, inc = case.current.content, case.incoming.content
        if cur is None or inc is None:
            return self.default.decide(case)
        differing = differing_columns(cur, inc)
        if not differing:
            return side_wins(case, Winner.CURRENT, policy=self.name,
                             reason="both sides hold the same content")
        ask = _Asker(case)
        merged: dict[str, Any] = dict(cur)
        picks: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        for column in differing:
            policy = self.columns.get(column, self.default)
            decision = ask(policy, column)
            if decision is None and policy is not self.default:
                decision = ask(self.default, column)
            if decision is None:
                return None
            if isinstance(decision, Park):
                return Park(decision.policy, f"column {column}: {decision.reason}")
            source = _source(case, decision)
            if source is None:
                return Park(
                    decision.policy,
                    f"column {column}: {decision.policy} chose to delete the record, "
                    "which a column's policy cannot do",
                )
            put(merged, column, source)
            origin = "a merge" if decision.winner is Winner.MERGED else who(case, decision.winner)
            columns, reasons = picks.setdefault((origin, decision.policy), ([], []))
            columns.append(column)
            if decision.reason and decision.reason not in reasons:
                reasons.append(decision.reason)
        reason = "; ".join(
            f"{listing(columns)} from {origin} by {policy}"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            for (origin, policy), (columns, reasons) in picks.items()
        )
        return resolution_of(merged, case, policy=self.name, reason=reason)


def _source(case: ConflictCase, decision: Resolution) -> Mapping[str, Any] | None:
    if decision.winner is Winner.MERGED:
        return decision.content
    return case.side(decision.winner).content


class _Asker:
    """Asks policies about one case, each whole-record policy only once."""

    def __init__(self, case: ConflictCase) -> None:
        self.case = case
        self._whole: dict[int, tuple[Policy, Decision | None]] = {}

    def __call__(self, policy: Policy, column: str) -> Decision | None:
        if isinstance(policy, Chain):  # column by column, down the chain
            for member in policy.policies:
                decision = self(member, column)
                if decision is not None:
                    return decision
            return Park(policy.name, NO_DECISION)
        if isinstance(policy, ColumnPolicy):
            return policy.decide_column(self.case, column)
        cached = self._whole.get(id(policy))
        if cached is None:
            cached = self._whole[id(policy)] = (policy, policy.decide(self.case))
        return cached[1]
