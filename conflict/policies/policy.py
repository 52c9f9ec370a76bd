"""What a conflict policy is (DESIGN.md, "Conflicts", rule 6).

A policy looks at a :class:`~conflict.case.ConflictCase` and answers with a
:class:`~conflict.case.Resolution` (the content that wins), a
:class:`~conflict.case.Park` (leave it to a data steward) or ``None``: "I cannot
decide this one", so that the caller asks the next policy of a chain.

Policies are pure: they read the case and nothing else, so every replica of the
service that sees the same case decides the same.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from conflict.case import ConflictCase, Decision


class PolicyError(Exception):
    """A policy cannot be built, or failed while deciding.

    Raised at construction for a configuration that cannot work (a custom
    callable that does not import, an unknown policy name), so that
    ``cdcsync config check`` reports it; raised by :meth:`Policy.decide` when a
    custom callable fails, so that the engine parks the record with this
    message as the reason.

    ``field`` names the configuration field at fault (``"function"``,
    ``"columns.price.policy"``), when known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class Policy(Protocol):
    """A conflict resolution policy."""

    @property
    def name(self) -> str:
        """What the conflict report shows as the policy that decided."""
        ...

    def decide(self, case: ConflictCase) -> Decision | None:
        """Decide the whole record, or ``None`` to let the next policy decide."""
        ...


@runtime_checkable
class ColumnPolicy(Policy, Protocol):
    """A policy that can also decide one column on its own.

    :class:`~conflict.policies.PerColumn` asks a policy for one column through
    :meth:`decide_column` when it has it, and through :meth:`Policy.decide` of
    the whole record otherwise. Field-level merge needs this: a column only one
    side changed is decidable even when another column was changed by both.
    """

    def decide_column(self, case: ConflictCase, column: str) -> Decision | None:
        """Which side's value of ``column`` wins.

        A :class:`~conflict.case.Resolution` names the winning side in
        ``winner`` (its ``content`` is that side's whole row); ``None`` means
        the column cannot be decided by this policy.
        """
        ...
