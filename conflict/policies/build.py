"""Build the resolver of an entity from its configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, get_args

from conflict.policies.chain import Chain
from conflict.policies.custom import Custom
from conflict.policies.delete_rule import DeleteRule
from conflict.policies.field_merge import FieldMerge
from conflict.policies.last_writer import LastWriterWins
from conflict.policies.manual import Manual
from conflict.policies.per_column import PerColumn
from conflict.policies.policy import Policy, PolicyError
from conflict.policies.priority import EndpointPriority

PolicyKind = Literal["last_writer_wins", "priority", "field_merge", "manual", "custom"]
POLICY_KINDS: tuple[str, ...] = get_args(PolicyKind)


class ColumnSpec(Protocol):
    """The policy of one column (as the configuration gives it)."""

    @property
    def policy(self) -> str: ...

    @property
    def priority(self) -> Sequence[str]: ...

    @property
    def function(self) -> str | None: ...


class ResolverSpec(ColumnSpec, Protocol):
    """An entity's conflict settings (as the configuration gives them)."""

    @property
    def fallback(self) -> str: ...

    @property
    def on_delete(self) -> str: ...

    @property
    def columns(self) -> Mapping[str, ColumnSpec]: ...

    @property
    def timestamp_column(self) -> str | None: ...


def build_resolver(spec: ResolverSpec) -> Chain:
    """The entity's resolver: ``Chain(DeleteRule, main policy, fallback)``.

    With per-column policies the middle is a :class:`PerColumn` whose default
    is ``Chain(main, fallback)``, so that the fallback decides only the columns
    the main policy cannot, and each configured column keeps its own policy
    even then. A column with policy ``priority`` and no list of its own uses the
    entity's list. The chain always decides (it parks when nothing else does).

    Raises:
        PolicyError: with ``field`` set to the configuration field at fault.
    """
    try:
        delete_rule = DeleteRule(spec.on_delete)
    except PolicyError as exc:
        raise PolicyError(exc.message, field="on_delete") from None
    stamp = spec.timestamp_column
    main = policy_of(spec.policy, spec.priority, spec.function, where="", column=stamp)
    fallback = policy_of(spec.fallback, spec.priority, spec.function, where="", role="fallback",
                         column=stamp)
    if not spec.columns:
        return Chain(delete_rule, main, fallback)
    columns = {
        name: policy_of(col.policy, col.priority or spec.priority, col.function,
                        where=f"columns.{name}.", column=stamp)
        for name, col in spec.columns.items()
    }
    return Chain(delete_rule, PerColumn(Chain(main, fallback), columns))


def policy_of(
    kind: str,
    priority: Sequence[str],
    function: str | None,
    *,
    where: str,
    role: str = "policy",
    column: str | None = None,
) -> Policy:
    """One policy by its configuration name; ``where`` prefixes the error's field.
    ``column``: last_writer_wins's timestamp column (the entity's ``timestamp_column``)."""
    if kind == "last_writer_wins":
        return LastWriterWins(column)
    if kind == "field_merge":
        return FieldMerge()
    if kind == "manual":
        return Manual()
    if kind == "priority":
        if not priority:
            raise PolicyError(f"policy 'priority' needs a list of endpoints ({role})",
                              field=f"{where}priority")
        return EndpointPriority(priority)
    if kind == "custom":
        if not function:
            raise PolicyError(f"policy 'custom' needs a function ({role})",
                              field=f"{where}function")
        try:
            return Custom(function)
        except PolicyError as exc:
            raise PolicyError(exc.message, field=f"{where}function") from exc.__cause__
    raise PolicyError(
        f"unknown conflict policy {kind!r}; expected one of {', '.join(POLICY_KINDS)}",
        field=f"{where}{role}",
    )
