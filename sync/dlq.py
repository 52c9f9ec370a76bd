"""The dead-letter queue: applies that failed for good, waiting for an operator.

When an apply to a target fails permanently (a non-retriable error, or
retriable errors past the last try while the target's circuit breaker does not
consider it down), the daemon's worker calls :func:`record` for the batch's
keys, inside the transaction that records the attempt. The keys' outbox
entries stay where they are: the dead letter only says "do not try this
target for these keys again until someone decides". Whoever replays the outbox
(the daemon's sweeper, and :func:`sync.apply.replay_outbox` in batch runs)
skips the keys :func:`dead_keys` returns for that target.

An operator then either

* **requeues** a letter (:func:`requeue`): the letter is deleted, so the next
  sweep (or the next ``cdcsync run``) applies the keys' pending versions again,
  from the outbox entries that were kept; or
* **drops** it (:func:`drop`): the letter is deleted AND the target is removed
  from those keys' outbox, so nothing is retried. The target then stays behind
  on those keys (``cdcsync verify`` shows the drift) until the record changes
  again at a source, which makes a new version that is applied as usual.

Both decisions are written to the audit log with who made them.

A key may be in two letters for one target (a later version failed again); it
stays dead for that target until both are requeued or dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.state.schema import dead_letters, outbox
from sync.state.store import StateStore


class DeadLetterNotFound(LookupError):
    """No dead letter with that id in that pipeline."""

    def __init__(self, pipeline: str, letter_id: int) -> None:
        self.pipeline = pipeline
        self.letter_id = letter_id
        super().__init__(f"no dead letter {letter_id} in pipeline {pipeline}")


def record(conn: Connection, pipeline: str, entity: str, target: str, keys: Iterable[str],
           error: str, attempts: int) -> int:
    """Add a dead letter inside the caller's transaction; returns its id.

    ``keys`` are the store's key texts (:func:`conflict.canonical.key_text`).
    """
    res = conn.execute(dead_letters.insert().values(
        pipeline=pipeline, entity=entity, target=target, keys=list(dict.fromkeys(keys)),
        error=error, attempts=int(attempts), created_at=time.time()))
    pk = res.inserted_primary_key
    if pk is None:  # pragma: no cover - every backend returns the new id
        raise AssertionError("insert returned no id")
    return int(pk[0])


def dead_keys(store: StateStore, pipeline: str, entity: str, target: str) -> set[str]:
    """Keys of ``entity`` that must not be applied to ``target`` (they have a dead letter)."""
    t = dead_letters
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.c["keys"]).where(
            t.c.pipeline == pipeline, t.c.entity == entity, t.c.target == target))
        return {str(k) for (keys,) in rows for k in keys}


def depth(store: StateStore, pipeline: str) -> int:
    """How many dead letters wait for a decision (letters, not keys)."""
    t = dead_letters
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t)
                                .where(t.c.pipeline == pipeline)).scalar_one())


def list_letters(store: StateStore, pipeline: str) -> list[dict[str, Any]]:
    """Every dead letter of ``pipeline``, oldest first."""
    t = dead_letters
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.pipeline == pipeline)
                            .order_by(t.c.id)).mappings().all()
    return [dict(r) for r in rows]


def get(store: StateStore, pipeline: str, letter_id: int) -> dict[str, Any] | None:
    """One dead letter, with ``pending``: those of its keys still in the target's outbox."""
    with store.engine.connect() as conn:
        letter = _letter(conn, pipeline, letter_id)
        if letter is None:
            return None
        letter["pending"] = sorted(_pending(conn, letter))
    return letter


def requeue(store: StateStore, pipeline: str, letter_id: int, actor: str) -> dict[str, Any]:
    """Delete the letter so that its keys are applied again; returns the letter.

    The keys' outbox entries were kept, so the daemon's sweeper (or the next
    ``cdcsync run``) re-applies their pending versions; ``pending`` in the
    result lists the keys that still have one. Raises
    :class:`DeadLetterNotFound`.
    """
    with store.transaction() as conn:
        letter = _take(conn, pipeline, letter_id)
        letter["pending"] = sorted(_pending(conn, letter))
        store.audit(conn, pipeline, actor, "dlq.requeue", _detail(letter))
    return letter


def drop(store: StateStore, pipeline: str, letter_id: int, actor: str,
         reason: str) -> dict[str, Any]:
    """Delete the letter and give up on its keys at its target; returns the letter.

    The target is removed from the keys' outbox in the same transaction, so
    nothing retries them: the target stays behind on those keys until their
    record changes again. ``dropped`` in the result lists the keys whose
    pending apply was discarded. Raises :class:`DeadLetterNotFound`.
    """
    # The state lock of the pipeline, as the daemon's reader and workers take it
    # around their load-decide-save: none of them can overwrite this update.
    with store.transaction(lock=state_lock(pipeline)) as conn:
        letter = _take(conn, pipeline, letter_id)
        entity, target = letter["entity"], letter["target"]
        keys = sorted(_pending(conn, letter))
        if keys:
            states = store.load(pipeline, entity, keys, conn=conn)
            for st in states.values():
                st.outbox.discard(target)
            store.save(conn, pipeline, entity, states)
        letter["dropped"] = keys
        store.audit(conn, pipeline, actor, "dlq.drop", {**_detail(letter), "reason": reason})
    return letter


# --- helpers ---------------------------------------------------------------------------


def state_lock(pipeline: str) -> str:
    """The name :func:`sync.capture.state_lock` gives the pipeline's key-state lock."""
    return f"cdcsync-state:{pipeline}"


def _letter(conn: Connection, pipeline: str, letter_id: int) -> dict[str, Any] | None:
    t = dead_letters
    row = conn.execute(sa.select(t).where(t.c.pipeline == pipeline, t.c.id == int(letter_id))
                       ).mappings().first()
    return None if row is None else dict(row)


def _take(conn: Connection, pipeline: str, letter_id: int) -> dict[str, Any]:
    """Delete a letter and return it (raise if it is not there).

    A no-op update comes first: it takes SQLite's write lock (and the row's lock
    on PostgreSQL) before anything is read, so that a concurrent decision on the
    same letter waits and then finds it gone, and what this transaction reads
    next is current.
    """
    t = dead_letters
    mine = (t.c.pipeline == pipeline) & (t.c.id == int(letter_id))
    if conn.execute(t.update().where(mine).values(attempts=t.c.attempts)).rowcount != 1:
        raise DeadLetterNotFound(pipeline, letter_id)
    letter = _letter(conn, pipeline, letter_id)
    assert letter is not None
    conn.execute(t.delete().where(mine))
    return letter


def _pending(conn: Connection, letter: dict[str, Any]) -> set[str]:
    """Those of the letter's keys whose outbox still holds its target."""
    keys = [str(k) for k in letter["keys"]]
    ob = outbox
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        rows = conn.execute(sa.select(ob.c.key).where(
            ob.c.pipeline == letter["pipeline"], ob.c.entity == letter["entity"],
            ob.c.endpoint == letter["target"], ob.c.key.in_(keys[i : i + 500])))
        found.update(r[0] for r in rows)
    return found


def _detail(letter: dict[str, Any]) -> dict[str, Any]:
    return {"id": letter["id"], "entity": letter["entity"], "target": letter["target"],
            "keys": list(letter["keys"]), "error": letter["error"],
            "attempts": letter["attempts"]}
