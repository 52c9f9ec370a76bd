"""Conflict resolution policies (DESIGN.md, "Conflicts", rule 6).

Each policy decides a :class:`~conflict.case.ConflictCase` or passes
(``None``); :class:`Chain` composes them and :func:`build_resolver` makes an
entity's chain from its configuration.
"""

from conflict.policies.build import (
    POLICY_KINDS,
    ColumnSpec,
    PolicyKind,
    ResolverSpec,
    build_resolver,
    policy_of,
)
from conflict.policies.chain import NO_DECISION, Chain
from conflict.policies.custom import Custom
from conflict.policies.delete_rule import DELETE_MODES, DeleteMode, DeleteRule
from conflict.policies.field_merge import FieldMerge
from conflict.policies.last_writer import LastWriterWins
from conflict.policies.manual import Manual
from conflict.policies.per_column import PerColumn
from conflict.policies.policy import ColumnPolicy, Policy, PolicyError
from conflict.policies.priority import EndpointPriority

__all__ = [
    "DELETE_MODES",
    "NO_DECISION",
    "POLICY_KINDS",
    "Chain",
    "ColumnPolicy",
    "ColumnSpec",
    "Custom",
    "DeleteMode",
    "DeleteRule",
    "EndpointPriority",
    "FieldMerge",
    "LastWriterWins",
    "Manual",
    "PerColumn",
    "Policy",
    "PolicyError",
    "PolicyKind",
    "ResolverSpec",
    "build_resolver",
    "policy_of",
]
