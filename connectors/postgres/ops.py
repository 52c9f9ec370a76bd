"""A batch's ops in endpoint column names, with values prepared for binary COPY.

Built once per binding (:class:`OpPlanner`), so the per-op work is a few dict
lookups and a type check per value (:func:`~.types.preparer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from conflict.canonical import CoercionError
from connectors.base import ApplyOp, Binding, RowRejected, SchemaError
from connectors.postgres.catalog import ColumnInfo, TableInfo
from connectors.postgres.types import preparer


class OpPlan:
    """One op in endpoint column names, with values prepared for the COPY."""

    __slots__ = ("columns", "delete", "expected", "index", "key_names", "key_text", "values")

    def __init__(self, index: int, key_text: str, delete: bool, expected: int | None,
                 key_names: tuple[str, ...], columns: tuple[str, ...],
                 values: dict[str, Any]) -> None:
        self.index = index
        self.key_text = key_text
        self.delete = delete
        self.expected = expected
        self.key_names = key_names
        self.columns = columns
        self.values = values


class OpPlanner:
    """Turns ops of one binding into :class:`OpPlan` values (built once per binding)."""

    def __init__(self, binding: Binding, info: TableInfo) -> None:
        self.binding = binding
        self.info = info
        by_name = info.by_name()
        self.key_names = binding.endpoint_key
        self.key_sorted = tuple(sorted(self.key_names))
        # entity column -> (endpoint column, preparer); None for a column not synchronised
        self.columns: dict[str, tuple[str, Callable[[Any], Any]] | None] = {}
        for ent in {*binding.key, *(binding.columns or {})}:
            self._column(ent, by_name)
        self._by_name = by_name
        self._key_prefix: str | None = None
        if len(binding.key) == 1:
            self._key_prefix = "{" + json.dumps(binding.key[0], ensure_ascii=False) + ":"

    def _column(self, ent: str, by_name: Mapping[str, ColumnInfo]
                ) -> tuple[str, Callable[[Any], Any]] | None:
        b = self.binding
        if not b.synced(ent):
            self.columns[ent] = None
            return None
        col = b.endpoint_column(ent)
        info = by_name.get(col)
        if info is None:
            raise SchemaError(
                f"endpoint {b.endpoint}: table {self.info.qualified} has no column {col}"
                f" (entity {b.entity})"
            )
        entry = (col, preparer(info.ctype))
        self.columns[ent] = entry
        return entry

    def key_text(self, op: ApplyOp) -> str:
        """:func:`conflict.canonical.key_text` of the op's key, quick for one int key."""
        if self._key_prefix is not None:
            (value,) = op.key.values()
            if type(value) is int:
                return f"{self._key_prefix}{value}}}"
        return op.key_text

    def plan(self, index: int, op: ApplyOp) -> OpPlan:
        """The op as values to write.

        Raises:
            RowRejected: a value its column cannot take (out of range, not of its type).
        """
        columns = self.columns
        values: dict[str, Any] = {}
        ent = ""
        try:
            for ent in self.binding.key:
                entry = columns.get(ent) or self._column(ent, self._by_name)
                assert entry is not None  # key columns are always synchronised
                values[entry[0]] = entry[1](op.key[ent])
            if op.row is not None:
                for ent, value in op.row.items():
                    entry = columns[ent] if ent in columns else self._column(ent, self._by_name)
                    if entry is not None:
                        values[entry[0]] = entry[1](value)
        except (CoercionError, TypeError, ValueError, OverflowError) as exc:
            raise RowRejected(f"table {self.info.qualified}, column {ent!r}: a value it cannot"
                              f" take\nkey {op.key_text}: {exc}") from exc
        delete = op.row is None
        names = self.key_sorted if delete else tuple(sorted(values))
        expected = None if op.expected is None else int(op.expected)
        return OpPlan(index, self.key_text(op), delete, expected, self.key_names, names, values)


def groups(plans: list[OpPlan]) -> list[list[OpPlan]]:
    """Ops grouped by column set, in rounds so that no key appears twice in a group."""
    seen: dict[str, int] = {}
    groups: dict[tuple[int, tuple[str, ...]], list[OpPlan]] = {}
    for p in plans:
        rnd = seen.get(p.key_text, 0)
        seen[p.key_text] = rnd + 1
        groups.setdefault((rnd, p.columns), []).append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: k[0])]
