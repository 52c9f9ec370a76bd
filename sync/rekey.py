"""An entity's key changed in the pipeline file: its stored states moved to the new key.

Each key's state (conflict/protocol.py ``KeyState``) is stored under the text of its
key (conflict.canonical ``key_text``). Once the pipeline file names other key
columns, every change is read under a key no state is stored under, and until
2026-12-07 nothing said so: each row looked new to the protocol (a target's
copy was then taken for a row it must not overwrite), and the resync that
followed reconciled the endpoints' copies knowing nothing of them, so that the
copy read last won over an edit still on its way to the others.

Every run now stops on the mismatch (:func:`check_keys`), and the resync moves
each state to the key its known content has under the new columns
(:func:`rekey`): the snapshot that follows then tells the rows edited meanwhile
from the copies that merely lag, as any resync does. A state whose content does
not hold the new key (a deleted row) is dropped: there is nothing left to match.
Changes logged under the old key are not read (the resync is one with
``--reset-stream``): a SQLite log holds their keys as the old columns' values, a
PostgreSQL delete holds the old key alone; the snapshot reads their rows instead.

What refers to keys elsewhere (applies still due, open conflicts, dead letters,
quarantined changes, a dead run's marks) must be settled under the old key
first: the resync refuses to move the states while any is left, and says how.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from conflict.protocol import KeyState
from connectors.base import SchemaError
from sync.state import schema
from sync.state.store import StateStore

CHUNK = 5000  # states moved per read


def stored_key(store: StateStore, pipeline: str, entity: str) -> frozenset[str] | None:
    """The columns of the key ``entity``'s states are stored under; None without states."""
    ks = schema.key_states
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(ks.c.key).where(
            ks.c.pipeline == pipeline, ks.c.entity == entity).limit(1)).scalar()
    if text is None:
        return None
    return frozenset(json.loads(text))


def _cols(names: Sequence[str] | frozenset[str]) -> str:
    return ", ".join(sorted(names))


def check_keys(store: StateStore, pipeline: str, entities: dict[str, Sequence[str]]) -> None:
    """Stop when an entity's key (``entities``: name -> key columns) is not the one its
    stored states are kept under."""
    for name, key in entities.items():
        was = stored_key(store, pipeline, name)
        if was is not None and was != frozenset(key):
            raise SchemaError(
                f"entity {name!r} is keyed by ({_cols(key)}) in the pipeline file, but its"
                f" states in the state store by ({_cols(was)}): every row would look new,"
                " and edits on their way could be lost. Run `cdcsync resync PIPELINE"
                f" {name} --reset-stream` (after `cdcsync setup` where the new key needs"
                " it): it moves the states to the new key and reads the rows as they are"
                f" (or put the key back to ({_cols(was)}))")


def pending(conn: sa.Connection, pipeline: str, entity: str) -> list[str]:
    """What still refers to ``entity``'s keys: each with its count and how to settle it."""
    from sync.quality.store import UNRESOLVED, quarantine

    def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.pipeline == pipeline, table.c.entity == entity, *where)).scalar_one())

    found = [
        (count(schema.outbox), "applies still due (`cdcsync run`)"),
        (count(schema.marks), "writes of a run that died unchecked (`cdcsync run`)"),
        (count(schema.conflicts, schema.conflicts.c.status == "open"),
         "open conflicts (`cdcsync conflicts`)"),
        (count(schema.dead_letters), "dead letters (`cdcsync dlq`)"),
        (count(quarantine, quarantine.c.status.in_(UNRESOLVED)),
         "quarantined changes (`cdcsync quarantine`)"),
    ]
    return [f"{n} {what}" for n, what in found if n]


def refuse_pending(conn: sa.Connection, pipeline: str, entity: str,
                   was: frozenset[str], key: Sequence[str]) -> None:
    """Raise SchemaError while anything else refers to ``entity``'s old keys."""
    left = pending(conn, pipeline, entity)
    if left:
        raise SchemaError(
            f"entity {entity!r}: its states cannot move from key ({_cols(was)}) to"
            f" ({_cols(key)}) while {', '.join(left)} refer to the old keys. Put"
            f" the key back to ({_cols(was)}) in the pipeline file, settle them, then"
            " change it and resync again (nothing was changed)")


def pages(conn: sa.Connection, pipeline: str, entity: str,
          chunk: int = CHUNK) -> Iterator[list[KeyState]]:
    """``entity``'s stored states, a page at a time, read on ``conn`` (in the transaction
    that changes them: keyset pages, so that states written meanwhile are not met)."""
    from conflict.canonical import parse_json
    from sync.state.codec import state_from_json

    ks = schema.key_states
    after = ""
    while True:
        page = conn.execute(sa.select(ks.c.key, sa.type_coerce(ks.c.state, sa.Text)).where(
            ks.c.pipeline == pipeline, ks.c.entity == entity, ks.c.key > after)
            .order_by(ks.c.key).limit(chunk)).all()
        if not page:
            return
        after = page[-1][0]
        yield [state_from_json(parse_json(text) if isinstance(text, str | bytes) else text)
               for _, text in page]


def rekey(conn: sa.Connection, pipeline: str, entity: str, key: Sequence[str],
          was: frozenset[str]) -> str:
    """Move ``entity``'s states from key ``was`` to ``key`` in ``conn``'s transaction; a
    line for the user.

    Raises SchemaError while anything else refers to the old keys (see the module).
    """
    from conflict.canonical import key_text

    ks = schema.key_states
    moving = f"~rekey:{entity}"[:128]  # no entity's name: pipeline files refuse "~"
    moved = dropped = 0
    refuse_pending(conn, pipeline, entity, was, key)
    conn.execute(ks.delete().where(ks.c.pipeline == pipeline, ks.c.entity == moving))
    for page in pages(conn, pipeline, entity):  # the moved states go elsewhere
        states: dict[str, KeyState] = {}
        for st in page:
            row = st.content
            if row is None or any(row.get(c) is None for c in key):
                dropped += 1
                continue
            st.key = {c: row[c] for c in key}
            states[key_text(st.key)] = st
        moved += len(states)  # (a new key held twice: the later state kept)
        StateStore.save(conn, pipeline, moving, states)
    conn.execute(ks.delete().where(ks.c.pipeline == pipeline, ks.c.entity == entity))
    conn.execute(ks.update().where(ks.c.pipeline == pipeline, ks.c.entity == moving)
                 .values(entity=entity))
    StateStore.audit(conn, pipeline, "cli", "rekey",
                     {"entity": entity, "from": sorted(was), "to": list(key),
                      "moved": moved, "dropped": dropped})
    gone = f"; {dropped} of deleted rows dropped (nothing to match)" if dropped else ""
    return (f"{entity}: {moved} state(s) moved from key ({_cols(was)}) to"
            f" ({_cols(key)}){gone}")
