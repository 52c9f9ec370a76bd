"""Re-sends apply work that the broker lost, from the outbox.

The outbox is the truth about pending applies; messages are only a nudge. A
message lost with a Redis restart or a killed worker leaves its keys in the
outbox, and they are sent again once they have waited ``resend_after``
seconds. After a daemon restart everything pending is sent at once; later
sweeps read only the keys whose state has not been saved for that long.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from sync.daemon.runtime import Runtime
from sync.metrics import DLQ_DEPTH, OUTBOX_DEPTH
from sync.state.schema import key_states, outbox


def sweep(rt: Runtime, *, resend_after: float = 15.0) -> int:
    """Send outbox keys not sent recently; return how many were sent.

    The first sweep of a process (before its readers start) reads every pending
    key. Later ones read only keys whose state was saved ``resend_after``
    seconds ago or earlier: a state saved since was just sent (the reader sends
    after its save) or had its result recorded by a worker, and reading a deep
    backlog's whole outbox every round cost the interpreter ~7% for nothing.
    Save stamps are wall-clock time of the saving process: a machine whose
    clock runs ahead delays the re-send of its keys by as much.
    """
    from sync import dlq

    ctx = rt.ctx()
    now = time.time()
    old_enough = [key_states.c.updated_at <= now - resend_after] if rt.swept else []
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.entity, outbox.c.key, outbox.c.endpoint)
            .join(key_states, sa.and_(key_states.c.pipeline == outbox.c.pipeline,
                                      key_states.c.entity == outbox.c.entity,
                                      key_states.c.key == outbox.c.key))
            .where(outbox.c.pipeline == rt.pipeline, key_states.c.parked.is_(None),
                   *old_enough)
        ).all()
    retry_references(rt, now)
    OUTBOX_DEPTH.labels(rt.pipeline).set(ctx.store.outbox_depth(rt.pipeline))
    DLQ_DEPTH.labels(rt.pipeline).set(dlq.depth(ctx.store, rt.pipeline))
    dead: dict[tuple[str, str], set[str]] = {}
    due: dict[str, set[str]] = {}
    for entity, key, target in rows:
        if (entity, target) not in dead:
            dead[(entity, target)] = dlq.dead_keys(ctx.store, rt.pipeline, entity, target)
        if key in dead[(entity, target)]:
            continue
        if now - rt.sent.get((entity, key), 0.0) >= resend_after:
            due.setdefault(entity, set()).add(key)
    with rt._lock:  # a re-send that old counts as none: the map holds recent re-sends only
        for k in [k for k, at in rt.sent.items() if now - at >= resend_after]:
            del rt.sent[k]
    sent = 0
    for entity, keys in due.items():
        rt.send(entity, sorted(keys), remember=True)
        sent += len(keys)
    rt.swept = True
    return sent


#: how often the sweeper requeues a letter of rows refused for a foreign key, and how
#: long after it was written: the row referenced may arrive meanwhile (another
#: partition's work, applied side by side), as at the end of a batch run
REFERENCE_RETRIES = 5
REFERENCE_RETRY_AFTER = 15.0
RETRY_ACTOR = "cdcsync daemon (foreign key retry)"


def retry_references(rt: Runtime, now: float) -> int:
    """Requeue the letters of rows refused for a foreign key (sync/apply.py) that have
    waited :data:`REFERENCE_RETRY_AFTER` seconds, :data:`REFERENCE_RETRIES` times at
    most per key (counted by this process); the sweep then sends their keys again.
    A row refused each time stays in its last letter for an operator. Returns how
    many letters were requeued."""
    from sync import dlq

    ctx = rt.ctx()
    done = 0
    for x in dlq.list_letters(ctx.store, rt.pipeline):
        if (not str(x["error"]).startswith("ReferenceRejected")
                or now - float(x["created_at"]) < REFERENCE_RETRY_AFTER):
            continue
        keys = [(str(x["entity"]), str(x["target"]), str(k)) for k in x["keys"]]
        tries = max((rt.reference_tries.get(k, 0) for k in keys), default=0)
        if tries >= REFERENCE_RETRIES:
            continue
        try:
            dlq.requeue(ctx.store, rt.pipeline, int(x["id"]), RETRY_ACTOR)
        except dlq.DeadLetterNotFound:  # an operator decided meanwhile
            continue
        for k in keys:
            rt.reference_tries[k] = tries + 1
        rt.forget_dead(str(x["entity"]), str(x["target"]))
        done += 1
    return done
