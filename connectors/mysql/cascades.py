"""Foreign-key actions that MariaDB and MySQL take without logging them.

InnoDB carries out ``ON DELETE CASCADE`` / ``SET NULL`` and ``ON UPDATE CASCADE`` /
``SET NULL`` inside the storage engine: the referencing rows it deletes or
changes are not written to the binlog (MariaDB, and MySQL before 9.x, whose
SQL layer took the actions over). A reader of the binlog sees the referenced
row's delete and nothing of its children, which stayed at every target for
ever (`cdcsync verify` showed them as extra rows).

So the reader learns the database's foreign keys with such actions
(:func:`load_foreign_keys`), decodes the rows of every table they reference
(bound or not), and reports each referenced row deleted or re-keyed as a
:class:`sync.change.Cascaded` event at that row's position; the engine turns
it into the changes the server made (sync/cascades.py), from the rows the
state store and the batch know. Foreign keys into another database, and
referencing columns an entity does not synchronise, cannot be followed: they
are logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import Binding
from sync.change import CascadeGraph, CascadeRule

log = logging.getLogger("cdcsync.mysql")

_ACTIONS = {"CASCADE": "cascade", "SET NULL": "set null"}


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """A foreign key of the database with an action InnoDB takes unlogged."""

    name: str
    table: str  # the referencing table
    columns: tuple[str, ...]
    parent: str  # the referenced table
    referenced: tuple[str, ...]
    on_delete: str  # "cascade", "set null" or ""
    on_update: str


def load_foreign_keys(cursor: Any, database: str) -> list[ForeignKey]:
    """The foreign keys of ``database`` whose delete or update action changes rows
    (CASCADE, SET NULL), referencing a table of the same database."""
    cursor.execute(
        "SELECT rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, rc.DELETE_RULE,"
        " rc.UPDATE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA"
        " FROM information_schema.REFERENTIAL_CONSTRAINTS rc"
        " JOIN information_schema.KEY_COLUMN_USAGE k"
        " ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA"
        " AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME"
        " WHERE rc.CONSTRAINT_SCHEMA = %s"
        " AND (rc.DELETE_RULE IN ('CASCADE', 'SET NULL')"
        " OR rc.UPDATE_RULE IN ('CASCADE', 'SET NULL'))"
        " ORDER BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        (database,),
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name, table, parent, on_delete, on_update, col, ref, ref_db in cursor.fetchall():
        fk = found.setdefault((str(table), str(name)), {
            "parent": str(parent), "on_delete": _ACTIONS.get(str(on_delete), ""),
            "on_update": _ACTIONS.get(str(on_update), ""), "columns": [], "referenced": [],
            "elsewhere": str(ref_db) != database})
        fk["columns"].append(str(col))
        fk["referenced"].append(str(ref))
    out = []
    for (table, name), fk in found.items():
        if fk["elsewhere"]:
            log.warning("foreign key %s of %s.%s references another database: its %s"
                        " actions are not in the binlog and cdcsync cannot follow them",
                        name, database, table, "/".join(filter(None, (fk["on_delete"],
                                                                       fk["on_update"]))))
            continue
        out.append(ForeignKey(name, table, tuple(fk["columns"]), fk["parent"],
                              tuple(fk["referenced"]), fk["on_delete"], fk["on_update"]))
    return out


@dataclass(frozen=True, slots=True)
class Cascades:
    """The foreign keys a reader follows for its bindings.

    ``by_parent``: per referenced table, its foreign keys with the rules of the
    entities bound to their referencing table (what the reader reports from a
    referenced row's image, in the table's own column names); ``graph``: the same
    per referenced entity, in entity column names (what the engine follows on
    from the rows an action changed)."""

    by_parent: Mapping[str, Sequence[tuple[ForeignKey, tuple[CascadeRule, ...]]]]
    graph: CascadeGraph

    @property
    def tables(self) -> frozenset[str]:
        """The referenced tables whose rows the reader must decode."""
        return frozenset(self.by_parent)


def cascades_for(fks: Sequence[ForeignKey], by_table: Mapping[str, Sequence[Binding]],
                 describable: Callable[[str], bool]) -> Cascades:
    """What of ``fks`` the reader of ``by_table``'s bindings follows: foreign keys whose
    referencing table is bound, on a referenced table the reader can decode
    (``describable``: it has a primary key)."""
    by_parent: dict[str, list[tuple[ForeignKey, tuple[CascadeRule, ...]]]] = {}
    graph: dict[str, list[tuple[tuple[str, ...], CascadeRule]]] = {}
    for fk in fks:
        rules = []
        for b in by_table.get(fk.table, ()):
            rev = b.entity_names
            names = tuple(rev.get(c, c) for c in fk.columns)
            if not all(b.synced(n) for n in names):
                log.warning("foreign key %s of %s: entity %s does not synchronise all of"
                            " %s, so the rows its %s action changes are not followed",
                            fk.name, fk.table, b.entity, ", ".join(fk.columns),
                            fk.on_delete or fk.on_update)
                continue
            rules.append(CascadeRule(fk.name, b.entity, names, fk.on_delete, fk.on_update))
        if not rules or not describable(fk.parent):
            continue
        by_parent.setdefault(fk.parent, []).append((fk, tuple(rules)))
        for pb in by_table.get(fk.parent, ()):
            rev = pb.entity_names
            refs = tuple(rev.get(c, c) for c in fk.referenced)
            if all(pb.synced(n) for n in refs):
                graph.setdefault(pb.entity, []).extend((refs, r) for r in rules)
    return Cascades(by_parent, graph)
