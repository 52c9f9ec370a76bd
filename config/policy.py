"""Conflict-resolution settings of an entity, and per-column overrides."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator

from config.base import ConfigModel, SubLoc, fail

Policy = Literal["last_writer_wins", "priority", "field_merge", "manual", "custom"]
#: What a field merge (or a custom function) falls back to; never ``field_merge`` itself.
Fallback = Literal["last_writer_wins", "priority", "manual", "custom"]
#: Policies a single column can have (a field merge is about several columns).
ColumnPolicyName = Literal["last_writer_wins", "priority", "manual", "custom"]
OnDelete = Literal["policy", "delete_wins", "update_wins"]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_FUNCTION = re.compile(rf"{_DOTTED}:{_DOTTED}|{_IDENT}(?:\.{_IDENT})+")


def _check_function(value: str | None) -> str | None:
    if value is not None and not _FUNCTION.fullmatch(value):
        raise fail(
            f"should be 'package.module:callable' or 'package.module.callable', got {value!r}"
        )
    return value


def policy_issues(conflict: ConflictConfig) -> list[tuple[SubLoc, str]]:
    """What is missing or superfluous for the chosen policies, per entity and per column.

    Checked by :class:`config.EntityConfig` rather than here, so an entity's
    other problems are reported in the same run (a model's own checks only run
    when all of its fields are valid).
    """
    found = _choice_issues(
        {"policy": conflict.policy, "fallback": conflict.fallback},
        conflict.priority,
        conflict.function,
    )
    for column, override in conflict.columns.items():
        found += [
            (("columns", column, *loc), message)
            for loc, message in _choice_issues(
                {"policy": override.policy}, override.priority, override.function
            )
        ]
    lww = "last_writer_wins"
    if conflict.timestamp_column is not None and lww not in (
            conflict.policy, conflict.fallback, *(c.policy for c in conflict.columns.values())):
        found.append((("timestamp_column",), f"used only by {lww}, which is not the"
                      " policy, the fallback or a column's policy here"))
    return found


def _choice_issues(
    chosen: Mapping[str, str], priority: list[str], function: str | None
) -> list[tuple[SubLoc, str]]:
    """Problems of one policy choice; ``chosen`` maps "policy"/"fallback" to its value."""

    def because(value: str) -> str | None:
        return next((f"{k} is {value}" for k, v in chosen.items() if v == value), None)

    found: list[tuple[SubLoc, str]] = []
    reason = because("priority")
    if reason and not priority:
        found.append((("priority",), f"required (non-empty) when {reason}"))
    reason = because("custom")
    if reason and function is None:
        found.append((("function",), f"required when {reason}"))
    if not reason and function is not None:
        found.append((("function",), f"only allowed when {' or '.join(chosen)} is custom"))
    seen: set[str] = set()
    for i, name in enumerate(priority):
        if name in seen:
            found.append((("priority", i), f"endpoint {name!r} is listed twice"))
        seen.add(name)
    return found


class ColumnPolicy(ConfigModel):
    """How conflicts on one column are decided, overriding the entity's policy."""

    policy: ColumnPolicyName
    priority: list[str] = Field(default_factory=list)
    function: str | None = None

    _function = field_validator("function")(_check_function)


class ConflictConfig(ConfigModel):
    """How concurrent edits of one record are decided (DESIGN.md, rule 6).

    ``fallback`` decides what ``field_merge`` (or a ``custom`` function) cannot.
    Consistency (a priority list for ``priority``, a function for ``custom``) is
    checked by the entity: see :func:`policy_issues`.
    """

    policy: Policy = "last_writer_wins"
    fallback: Fallback = "manual"
    priority: list[str] = Field(default_factory=list)
    function: str | None = None
    on_delete: OnDelete = "policy"
    columns: dict[str, ColumnPolicy] = Field(default_factory=dict)
    #: last_writer_wins compares the rows' values in this column (an application's
    #: ``updated_at``) before their commit times (conflict/policies/last_writer.py)
    timestamp_column: str | None = None

    _function = field_validator("function")(_check_function)
