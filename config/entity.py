"""An entity: one kind of record kept in step across several endpoints' tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from config.base import (
    ConfigModel,
    Name,
    SubLoc,
    context_of,
    did_you_mean,
    fail,
    issues,
    resolve_path,
)
from config.policy import ConflictConfig, policy_issues

if TYPE_CHECKING:
    from connectors.base import Binding

Direction = Literal["bidirectional", "one-way"]


class EndpointBinding(ConfigModel):
    """Where an entity lives at one endpoint: a table (or API object) and renamed columns.

    A bare string in the file (``crm: customers``) is the table name.
    ``columns`` maps entity column names to endpoint column names; unmapped
    columns have the same name on both sides.
    """

    table: str = Field(min_length=1)
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _bare_table(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"table": data}
        if not isinstance(data, dict):
            shown = "null" if data is None else "a list" if isinstance(data, list) else repr(data)
            raise fail(f"should be a table name or a mapping with 'table', got {shown}")
        return data

    def target_issues(self) -> list[tuple[SubLoc, str]]:
        """Two entity columns mapped onto one endpoint column."""
        found: list[tuple[SubLoc, str]] = []
        first: dict[str, str] = {}
        for column, target in self.columns.items():
            if not target:
                found.append((("columns", column), "should not be empty"))
            elif target in first:
                message = f"endpoint column {target!r} is already the target of {first[target]!r}"
                found.append((("columns", column), message))
            else:
                first[target] = column
        return found


class QualityConfig(ConfigModel):
    """Data-quality gate: a Great Expectations suite (JSON), relative to the pipeline file."""

    suite: Path | None = None

    @field_validator("suite")
    @classmethod
    def _absolute(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)


class EntityConfig(ConfigModel):
    """One entity and how it is synchronised between its endpoints."""

    key: list[str] = Field(min_length=1)
    direction: Direction = "bidirectional"
    source: str | None = None
    endpoints: dict[Name, EndpointBinding]
    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    conflict: ConflictConfig = Field(default_factory=ConflictConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    schema_changes: Literal["add", "ignore", "stop"] = "stop"
    truncate: Literal["propagate", "ignore"] = "ignore"

    @field_validator("key", mode="before")
    @classmethod
    def _bare_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _key_columns(cls, value: list[str]) -> list[str]:
        if any(not c for c in value):
            raise fail("key column names should not be empty")
        if len(set(value)) != len(value):
            raise fail("a key column is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> EntityConfig:
        # Every cross-field rule of an entity is here, so that all of them are
        # reported together (a sub-model's own check would hide the others).
        found: list[tuple[SubLoc, str]] = []
        names = list(self.endpoints)
        if len(names) < 2:
            found.append(
                (("endpoints",), f"an entity needs at least 2 endpoints, got {len(names)}")
            )
        known = context_of(info).endpoint_names
        if known is not None:
            found += [
                (("endpoints", *loc), m) for loc, m in unknown_endpoints(self.endpoints, known)
            ]
        for name, bound in self.endpoints.items():
            found += [(("endpoints", name, *loc), m) for loc, m in bound.target_issues()]
        if self.direction == "one-way":
            if self.source is None:
                found.append((("source",), "required when direction is one-way"))
            elif self.source not in self.endpoints:
                found.append((("source",), self._not_ours(self.source)))
        elif self.source is not None:
            found.append((("source",), "only allowed when direction is one-way"))
        found += [(("conflict", *loc), m) for loc, m in policy_issues(self.conflict)]
        found += self._priority_issues(("conflict", "priority"), self.conflict.priority)
        for column, override in self.conflict.columns.items():
            found += self._priority_issues(
                ("conflict", "columns", column, "priority"), override.priority
            )
        if self.include and self.exclude:
            found.append((("exclude",), "not allowed together with 'include'; use one of them"))
        for i, column in enumerate(self.exclude):
            if column in self.key:
                found.append((("exclude", i), f"key column {column!r} cannot be excluded"))
        if found:
            raise issues(found)
        return self

    def _not_ours(self, name: str) -> str:
        names = list(self.endpoints)
        return (
            f"{name!r} is not an endpoint of this entity"
            f"{did_you_mean(name, names)} (its endpoints: {', '.join(names)})"
        )

    def _priority_issues(self, where: SubLoc, priority: list[str]) -> list[tuple[SubLoc, str]]:
        return [
            ((*where, i), self._not_ours(name))
            for i, name in enumerate(priority)
            if name not in self.endpoints
        ]

    def sources(self) -> list[str]:
        """Endpoints whose changes are read: all of them, or the one-way source."""
        if self.direction == "one-way" and self.source is not None:
            return [self.source]
        return list(self.endpoints)

    def sinks(self) -> list[str]:
        """Endpoints changes are applied to: all of them, or all but the one-way source."""
        if self.direction == "one-way":
            return [e for e in self.endpoints if e != self.source]
        return list(self.endpoints)

    def synced_columns(self) -> frozenset[str] | None:
        """Entity columns synchronised (key included), or ``None`` for all of them."""
        if self.include is None:
            return None
        return frozenset(self.include) | frozenset(self.key)

    def binding(self, entity: str, endpoint: str) -> Binding:
        """The connector contract's view of this entity at ``endpoint``."""
        from connectors.base import Binding

        bound = self.endpoints[endpoint]
        return Binding(
            entity=entity,
            endpoint=endpoint,
            table=bound.table,
            key=tuple(self.key),
            columns=dict(bound.columns),
            only=self.synced_columns(),
            exclude=frozenset(self.exclude),
        )


def unknown_endpoints(
    bindings: dict[str, EndpointBinding], known: frozenset[str]
) -> list[tuple[SubLoc, str]]:
    """Problems for an entity's endpoint names missing from the top-level ``endpoints``."""
    defined = sorted(known)
    return [
        (
            (name,),
            f"unknown endpoint {name!r}{did_you_mean(name, defined)}"
            f" (defined endpoints: {', '.join(defined) or 'none'})",
        )
        for name in bindings
        if name not in known
    ]
