"""``cdcsync daemon`` and ``cdcsync worker``: continuous CDC on dramatiq.

Readers (one per source endpoint, under a lease) decide each micro-batch and
commit it with its checkpoint and outbox; apply messages go to partition
queues (a partition per hash of entity and key, one consumer each); workers
apply and record the results. The outbox is the source of truth for pending
applies: a lost message (a worker killed, Redis restarted) is re-sent by the
sweeper, so nothing depends on the broker keeping anything.
"""

from sync.daemon.main import run_daemon

__all__ = ["run_daemon"]
