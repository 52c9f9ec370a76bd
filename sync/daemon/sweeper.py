"""Re-sends apply work that the broker lost, from the outbox.

The outbox is the truth about pending applies; messages are only a nudge. A
message lost with a Redis restart or a killed worker leaves its keys in the
outbox, and they are sent again once they have waited ``resend_after``
seconds. After a daemon restart everything pending is sent at once.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from sync.daemon.runtime import Runtime
from sync.metrics import DLQ_DEPTH, OUTBOX_DEPTH
from sync.state.schema import key_states, outbox


def sweep(rt: Runtime, *, resend_after: float = 15.0) -> int:
    """Send outbox keys not sent recently; return how many were sent."""
    from sync import dlq

    ctx = rt.ctx()
    now = time.time()
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.entity, outbox.c.key, outbox.c.endpoint)
            .join(key_states, sa.and_(key_states.c.pipeline == outbox.c.pipeline,
                                      key_states.c.entity == outbox.c.entity,
                                      key_states.c.key == outbox.c.key))
            .where(outbox.c.pipeline == rt.pipeline, key_states.c.parked.is_(None))
        ).all()
    OUTBOX_DEPTH.labels(rt.pipeline).set(len(rows))
    DLQ_DEPTH.labels(rt.pipeline).set(dlq.depth(ctx.store, rt.pipeline))
    dead: dict[tuple[str, str], set[str]] = {}
    due: dict[str, set[str]] = {}
    live: set[tuple[str, str]] = set()
    for entity, key, target in rows:
        live.add((entity, key))
        if (entity, target) not in dead:
            dead[(entity, target)] = dlq.dead_keys(ctx.store, rt.pipeline, entity, target)
        if key in dead[(entity, target)]:
            continue
        if now - rt.sent.get((entity, key), 0.0) >= resend_after:
            due.setdefault(entity, set()).add(key)
    with rt._lock:  # forget keys that are no longer pending: the map stays bounded
        for k in [k for k in rt.sent if k not in live]:
            del rt.sent[k]
    sent = 0
    for entity, keys in due.items():
        rt.send(entity, sorted(keys))
        sent += len(keys)
    return sent
