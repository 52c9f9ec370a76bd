"""Rows between the table's storage and the engine's typed entity rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conflict.canonical import CoercionError
from connectors.base import Binding, ConnectorError, SchemaError
from connectors.sqlite._capture import Captured
from connectors.sqlite._types import from_storage, to_storage


def typed(row: Mapping[str, Any], types: Mapping[str, str], where: str) -> dict[str, Any]:
    """Endpoint-named stored values -> their logical types."""
    out: dict[str, Any] = {}
    for col, value in row.items():
        try:
            out[col] = from_storage(value, types.get(col, "any"))
        except CoercionError as exc:
            raise ConnectorError(f"{where}, column {col!r}: {exc}") from exc
    return out


def entity_row(
    binding: Binding, cap: Captured, row: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """A stored row (endpoint names) as the engine sees it: entity names, typed, synced only."""
    return binding.to_entity(typed(row, cap.info.types, where))


def entity_key(
    binding: Binding, cap: Captured, values: Sequence[Any], where: str
) -> dict[str, Any]:
    """Stored key values (in key order) as an entity key dict."""
    types = cap.info.types
    out: dict[str, Any] = {}
    for ent_col, ep_col, value in zip(binding.key, cap.key, values, strict=True):
        try:
            out[ent_col] = from_storage(value, types[ep_col])
        except CoercionError as exc:
            raise ConnectorError(f"{where}, key column {ep_col!r}: {exc}") from exc
    return out


def stored_key(binding: Binding, cap: Captured, key: Mapping[str, Any]) -> tuple[Any, ...]:
    """An entity key dict as the values to bind for the endpoint's key columns."""
    types = cap.info.types
    out = []
    for ent_col, ep_col in zip(binding.key, cap.key, strict=True):
        if ent_col not in key:
            raise ConnectorError(f"key {dict(key)!r} has no value for {ent_col!r}")
        out.append(_store(key[ent_col], types[ep_col], ep_col))
    return tuple(out)


def stored_row(
    binding: Binding, cap: Captured, key: Mapping[str, Any], row: Mapping[str, Any]
) -> dict[str, Any]:
    """An entity row as stored values by endpoint column: synced columns only, key from ``key``."""
    info = cap.info
    ep_row: dict[str, Any] = {}
    for ent_col, value in row.items():
        if binding.synced(ent_col):
            ep_row[binding.endpoint_column(ent_col)] = value
    for ent_col in binding.key:
        ep_row[binding.endpoint_column(ent_col)] = key[ent_col]
    unknown = sorted(c for c in ep_row if c not in info.by_name)
    if unknown:
        raise SchemaError(f"table {info.table!r} has no column(s) {', '.join(map(repr, unknown))}")
    return {c: _store(ep_row[c], info.types[c], c) for c in info.names if c in ep_row}


def _store(value: Any, logical: str, column: str) -> Any:
    try:
        return to_storage(value, logical)
    except (CoercionError, TypeError) as exc:
        raise ConnectorError(f"column {column!r} ({logical}): {exc}") from exc
