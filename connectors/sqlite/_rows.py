"""Rows between the table's storage and the engine's typed entity rows.

A :class:`Codec` is built once per call for one binding of one table: which
columns are synchronised, their entity names, and a reader and writer per
column, so that the per-row work is one dict comprehension.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conflict.canonical import CoercionError
from connectors.base import Binding, ConnectorError, RowRejected, SchemaError
from connectors.sqlite._capture import Captured
from connectors.sqlite._types import from_logged, reader, writer

Convert = Callable[[Any], Any]


class Codec:
    def __init__(self, binding: Binding, cap: Captured) -> None:
        self.binding = binding
        self.cap = cap
        types = cap.info.types
        rev = binding.entity_names
        #: synchronised endpoint columns, in table order (the key included)
        self.columns = [c for c in cap.info.names if binding.synced(rev.get(c, c))]
        self._read: list[tuple[str, str, Convert]] = [
            (c, rev.get(c, c), reader(types[c])) for c in self.columns
        ]
        self._key_pos = [self.columns.index(c) for c in cap.key]
        self._key_read = [reader(types[c]) for c in cap.key]
        self._write: dict[str, tuple[str, Convert]] = {
            rev.get(c, c): (c, writer(types[c])) for c in self.columns
        }
        self._key_write = [(e, writer(types[c])) for e, c in zip(binding.key, cap.key, strict=True)]

    # --- reading -------------------------------------------------------------------------

    def row(self, values: Sequence[Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(key, row)`` in entity names from values in :attr:`columns` order (values
        after those, such as a row version, are ignored)."""
        try:
            key = {
                e: f(values[i])
                for e, i, f in zip(self.binding.key, self._key_pos, self._key_read, strict=True)
            }
            row = {e: f(v) for (_c, e, f), v in zip(self._read, values, strict=False)}
        except CoercionError:
            self._blame(dict(zip(self.columns, values, strict=False)), where)
            raise
        return key, row

    def logged_row(self, obj: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A row parsed from the log's JSON (endpoint names, maybe partial) in entity names."""
        stored = {c: from_logged(obj[c]) for c, _e, _f in self._read if c in obj}
        try:
            return {e: f(stored[c]) for c, e, f in self._read if c in stored}
        except CoercionError:
            self._blame(stored, where)
            raise

    def logged_key(self, values: Sequence[Any], where: str) -> dict[str, Any]:
        stored = [from_logged(v) for v in values]
        try:
            return {
                e: f(v) for e, f, v in zip(self.binding.key, self._key_read, stored, strict=True)
            }
        except CoercionError:
            self._blame(dict(zip(self.cap.key, stored, strict=True)), where)
            raise

    def _blame(self, stored: Mapping[str, Any], where: str) -> None:
        """Raise a ConnectorError naming the column whose value does not read as its type."""
        types = self.cap.info.types
        for c, v in stored.items():
            try:
                reader(types[c])(v)
            except CoercionError as exc:
                raise ConnectorError(f"{where}, column {c!r}: {exc}") from exc

    # --- writing -------------------------------------------------------------------------

    def stored_key(self, key: Mapping[str, Any]) -> tuple[Any, ...]:
        """An entity key dict as the values to bind for the endpoint's key columns."""
        try:
            return tuple(f(key[e]) for e, f in self._key_write)
        except KeyError as exc:
            raise ConnectorError(f"key {dict(key)!r} has no value for {exc.args[0]!r}") from exc
        except (CoercionError, TypeError) as exc:
            raise ConnectorError(f"key {dict(key)!r}: {exc}") from exc

    def stored_row(
        self, key: Mapping[str, Any], row: Mapping[str, Any]
    ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """``(columns, values)`` to write: synced columns only, the key taken from ``key``."""
        out: dict[str, Any] = {}
        e = ""
        try:
            for e, v in row.items():
                w = self._write.get(e)
                if w is not None:
                    out[w[0]] = w[1](v)
                elif self.binding.synced(e):
                    raise SchemaError(f"table {self.cap.info.table!r} has no column for {e!r}")
            for (e, f), c in zip(self._key_write, self.cap.key, strict=True):
                out[c] = f(key[e])
        except (CoercionError, TypeError, KeyError) as exc:
            raise RowRejected(f"table {self.cap.info.table!r}, column {e!r}: a value it cannot"
                              f" take\nrow {dict(key)!r}: {exc!r}") from exc
        return tuple(out), tuple(out.values())
