"""From pgoutput messages to canonical :class:`~sync.change.Change` records.

Shared by the SQL-interface reader (source.py) and the streaming reader
(stream.py): both feed parsed messages to a :class:`ChangeDecoder` in log
order and get back, per message, what it means for the bound tables.

Decisions made here, and why:

* **Positions.** A change's position is ``(commit_lsn, n)``: the LSN of its
  transaction's commit record (known from ``Begin`` already) and its number
  within the transaction, counting every row message of every published table
  (bound or not), so that the number does not depend on the bindings and a
  reader can resume inside a transaction by skipping ``n`` changes.
* **Row version.** ``row_version`` is the transaction's xid: it *is* the xmin
  of the row version that the change produced, which the sink's
  compare-and-set checks (``None`` for deletes). A change made inside a
  subtransaction (SAVEPOINT, a PL/pgSQL EXCEPTION block) leaves the
  subtransaction's xid in xmin, which pgoutput does not send: the sink
  recognises it by commit timestamp where ``track_commit_timestamp`` is on
  (sink.py, ``_CAS_SUBXACT``), else it skips the write as a user edit.
* **Echo suppression by tag.** A transaction whose ``Origin`` (sent right
  after ``Begin``) is one of the pipeline's origins was written by cdcsync's
  sink: it is consumed without producing anything. Content is never compared.
* **Unchanged TOAST values.** An UPDATE that does not touch a large
  out-of-line value sends it as ``u`` (unchanged, not sent). With REPLICA
  IDENTITY FULL (set by setup) the old row carries the value inline, so it is
  copied from there and ``after`` is complete. Without an old value the column
  is left out of ``after``; a sink then does not touch that column for that
  change (see sink.py). A placeholder never reaches a sink.
* **Primary-key changes.** An UPDATE that changes the key becomes a DELETE of
  the old key and an INSERT of the new one, in that order, both at the
  update's position (they are different keys, and positions are compared per
  key).
* **Schema changes.** A ``Relation`` message whose columns differ from the
  last ones known for that table yields :class:`SchemaChanged`; rows are
  always decoded with the columns of the latest ``Relation``, so rows before
  and after an ``ALTER TABLE`` are both right. The first ``Relation`` after
  the catalog was read may be older than the catalog (a backlog from before
  the DDL): there, only columns that it has and the table still has are
  reported, as added. Events are at-least-once: a re-read of an unconfirmed
  part of the log may report a change again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.abc import Transformer

from conflict.canonical import canonical_row
from connectors.base import Binding, Column, SchemaError
from connectors.postgres.catalog import TableInfo
from connectors.postgres.names import Names
from connectors.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Origin,
    PgOutputMessage,
    Relation,
    RelationColumn,
    Truncate,
    TupleValue,
    Update,
)
from connectors.postgres.types import ARRAYS, SCALARS, TEXT_OID, ColumnType, text_loader
from sync.change import Change, Op, SchemaChanged, Truncated


@dataclass(frozen=True, slots=True)
class BoundTable:
    binding: Binding
    info: TableInfo


@dataclass(frozen=True, slots=True)
class TxEnd:
    """A transaction ended: the slot may be confirmed up to ``end_lsn``."""

    commit_lsn: int
    end_lsn: int
    own: bool  # written by the pipeline's sink (skipped)
    changes: int  # row messages it held (all tables)


Item = Change | SchemaChanged | Truncated | TxEnd


@dataclass(slots=True)
class _Plan:
    """How to decode one relation's rows: per column its entity name (``None``: not
    synchronised, not decoded) and loader."""

    bound: BoundTable
    names: list[str | None]
    loads: list[Callable[[bytes], Any] | None]
    key: tuple[str, ...]


def _ctype_of(col: RelationColumn, info: TableInfo) -> ColumnType:
    known = info.column(col.name)
    if known is not None and known.type_oid == col.type_oid:
        return known.ctype
    if col.type_oid in SCALARS:
        return ColumnType(SCALARS[col.type_oid][0], True, col.type_oid, SCALARS[col.type_oid][1])
    if col.type_oid in ARRAYS:
        elem = SCALARS[ARRAYS[col.type_oid]]
        return ColumnType("array", True, col.type_oid, elem[1] + "[]", elem[0])
    return ColumnType("text", False, TEXT_OID, "text")


class ChangeDecoder:
    """Feed parsed pgoutput messages in log order; get changes, events and ends.

    ``tables`` maps ``(schema, table)`` to the bound table; changes of other
    tables are counted but not decoded.
    """

    def __init__(
        self,
        endpoint: str,
        names: Names,
        tables: Mapping[tuple[str, str], BoundTable],
        transformer: Transformer,
        current_columns: Callable[[tuple[str, str]], dict[str, str]] | None = None,
        current_name: Callable[[int], tuple[str, str] | None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.current_columns = current_columns
        self.current_name = current_name
        self.names = names
        self.tables = dict(tables)
        self._by_oid = {b.info.oid: (k, b) for k, b in self.tables.items()}
        self.tx = transformer
        self._plans: dict[int, _Plan | None] = {}
        # Last known column names per table (catalog first, then each Relation).
        self._known: dict[tuple[str, str], tuple[str, ...]] = {
            k: tuple(c.name for c in b.info.columns) for k, b in self.tables.items()
        }
        self._from_catalog: set[tuple[str, str]] = set(self._known)
        self.begin: Begin | None = None
        self.own = False
        self.n = 0  # row messages so far in the current transaction
        #: Row messages of the current transaction numbered below this are counted but
        #: not decoded (already read: a resumed transaction, or one to skip whole).
        self.skip_below = 0

    @property
    def in_transaction(self) -> bool:
        return self.begin is not None

    def feed(self, msg: PgOutputMessage) -> list[Item]:
        if isinstance(msg, Begin):
            self.begin, self.own, self.n, self.skip_below = msg, False, 0, 0
            return []
        if isinstance(msg, Origin):
            self.own = self.names.is_own_origin(msg.name)
            return []
        if isinstance(msg, Commit):
            end = TxEnd(msg.commit_lsn, msg.end_lsn, self.own, self.n)
            self.begin, self.own, self.n, self.skip_below = None, False, 0, 0
            return [end]
        if isinstance(msg, Relation):
            return self._relation(msg)
        if isinstance(msg, Insert | Update | Delete):
            return self._row(msg)
        if isinstance(msg, Truncate):
            return self._truncate(msg)
        return []  # Type, Message: nothing to do

    # --- relations ---------------------------------------------------------------------

    def _relation(self, rel: Relation) -> list[Item]:
        key = (rel.namespace, rel.name)
        bound = self.tables.get(key)
        if bound is None and rel.relid in self._by_oid:
            key, bound = self._by_oid[rel.relid]
            self._renamed(rel, key, bound)
        if bound is None:
            self._plans[rel.relid] = None
            return []
        b = bound.binding
        to_entity = {ep: ent for ent, ep in b.columns.items()}
        plan = _Plan(bound, [], [], b.key)
        for col in rel.columns:
            name = to_entity.get(col.name, col.name)
            if b.synced(name):
                plan.names.append(name)
                plan.loads.append(text_loader(self.tx, _ctype_of(col, bound.info)))
            else:
                plan.names.append(None)
                plan.loads.append(None)
        self._plans[rel.relid] = plan
        cols = tuple(c.name for c in rel.columns)
        before = self._known.get(key, ())
        self._known[key] = cols
        first = key in self._from_catalog
        self._from_catalog.discard(key)
        added = [c for c in rel.columns if c.name not in before]
        now: dict[str, str] = {}
        if added and self.current_columns is not None:
            now = self.current_columns(key)  # the table's columns and types today
            if first:
                # Older than the catalog read? A column the table no longer has was
                # dropped since; only one it has now was added.
                added = [c for c in added if c.name in now]
        dropped = () if first else tuple(c for c in before if c not in cols)
        if not added and not dropped:
            return []
        info = bound.info
        return [SchemaChanged(
            entity=bound.binding.entity, endpoint=self.endpoint, table=bound.binding.table,
            position=self._position(self.n), dropped=dropped, columns=cols,
            added=tuple(Column(c.name, _ctype_of(c, info).logical,
                               now.get(c.name) or _ctype_of(c, info).io_sql) for c in added),
        )]

    def _renamed(self, rel: Relation, key: tuple[str, str], bound: BoundTable) -> None:
        """A bound table under another name: an older name, from before a rename the
        configuration already follows, is the same table; a new one is a rename since the
        run began, whose changes would otherwise be passed over as another table's.

        Raises:
            SchemaError: the bound table was renamed (or dropped) since.
        """
        if self.current_name is not None and self.current_name(rel.relid) == key:
            return
        b = bound.binding
        raise SchemaError(
            f"endpoint {self.endpoint}: table {key[0]}.{key[1]} of entity {b.entity} was"
            f" renamed to {rel.namespace}.{rel.name} (or dropped): set the entity's table at"
            f" {self.endpoint} to its new name, then run again; nothing after the rename was"
            " applied")

    # --- rows --------------------------------------------------------------------------

    def _position(self, n: int) -> tuple[int, int]:
        return (self.begin.final_lsn if self.begin else 0, n)

    @staticmethod
    def _values(plan: _Plan, data: Sequence[TupleValue]) -> dict[str, Any]:
        """A tuple as an entity row (unsynchronised columns left out)."""
        row: dict[str, Any] = {}
        for name, load, raw in zip(plan.names, plan.loads, data, strict=False):
            if name is not None:
                row[name] = load(raw) if type(raw) is bytes else raw  # type: ignore[misc]
        return row

    def _row(self, msg: Insert | Update | Delete) -> list[Item]:
        n = self.n
        self.n += 1
        if self.own or self.begin is None or n < self.skip_below:
            return []
        plan = self._plans.get(msg.relid)
        if plan is None:
            return []
        b = plan.bound.binding
        key_cols = plan.key
        xid = self.begin.xid
        if isinstance(msg, Insert):
            after = self._values(plan, msg.new)
            key = {k: after[k] for k in key_cols}
            return [self._change(b, Op.INSERT, key, None, after, n, xid)]
        if isinstance(msg, Delete):
            image = self._values(plan, msg.old)
            if msg.old_is_key:
                image = {k: image[k] for k in key_cols}
            image = _present(image)
            key = {k: image[k] for k in key_cols}
            return [self._change(b, Op.DELETE, key, image, None, n, None)]
        new = self._values(plan, msg.new)
        old = None if msg.old is None else self._values(plan, msg.old)
        if old is not None:
            for col, value in new.items():
                if value is UNCHANGED and old.get(col, UNCHANGED) is not UNCHANGED:
                    new[col] = old[col]
        after = _present(new)
        key = {k: after[k] for k in key_cols}
        before: dict[str, Any] | None = None
        if old is not None:
            before = {k: old[k] for k in key_cols} if msg.old_is_key else _present(old)
            old_key = {k: before[k] for k in key_cols}
            if old_key != key and canonical_row(old_key) != canonical_row(key):
                return [
                    self._change(b, Op.DELETE, old_key, before, None, n, None),
                    self._change(b, Op.INSERT, key, None, after, n, xid),
                ]
        return [self._change(b, Op.UPDATE, key, before, after, n, xid)]

    def _change(
        self,
        b: Binding,
        op: Op,
        key: dict[str, Any],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        n: int,
        row_version: int | None,
    ) -> Change:
        begin = self.begin
        assert begin is not None
        return Change(
            entity=b.entity, key=key, op=op, before=before, after=after, source=self.endpoint,
            position=(begin.final_lsn, n), committed_at=begin.commit_ts, txid=str(begin.xid),
            row_version=row_version,
        )

    def _truncate(self, msg: Truncate) -> list[Item]:
        n = self.n
        self.n += 1
        if self.own or self.begin is None or n < self.skip_below:
            return []
        out: list[Item] = []
        for relid in msg.relids:
            plan = self._plans.get(relid)
            if plan is None:
                continue
            b = plan.bound.binding
            out.append(Truncated(
                entity=b.entity, endpoint=self.endpoint, table=b.table,
                position=self._position(n), committed_at=self.begin.commit_ts,
                cascade=bool(msg.options & 1), restart_identity=bool(msg.options & 2),
            ))
        return out


def _present(row: dict[str, Any]) -> dict[str, Any]:
    """The row without the values pgoutput did not send."""
    if UNCHANGED not in row.values():
        return row
    return {c: v for c, v in row.items() if v is not UNCHANGED}
