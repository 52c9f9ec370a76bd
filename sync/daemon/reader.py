"""A reader: tails one source endpoint while it holds that source's lease.

Each micro-batch is whatever the log has now, up to the batch size: small
batches at low load (low latency), full ones under load (throughput). A
batch is decided and committed with its checkpoint and outbox in one locked
transaction, then its keys are sent to the partition queues. The source's log
is released (``confirm``) by low watermark: only up to the last batch none of
whose keys still waits in the outbox (parked keys do not hold it back).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

from connectors.base import ConnectorError, RetriableError, UnreadableValue
from sync.capture import STREAM, decide_and_commit, prune_log, source_entities
from sync.change import ChangeBatch
from sync.daemon.runtime import Runtime
from sync.events import expand
from sync.logs import log_context, new_batch_id
from sync.metrics import (
    ECHOES_DROPPED,
    RETRIES,
    SOURCE_BLOCKED,
    observe_read,
    observe_stage,
    record_conflict,
    set_lag,
    set_lease,
)
from sync.state.leases import Lease, live_holders
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.reader")

IDLE_FLUSH = 1.0  # seconds between writes of a checkpoint that moved without changes
#: seconds between prunes of a log its endpoint keeps itself (SQLite's change table):
#: each is a write transaction on the user's database file
PRUNE_EVERY = 10.0
_UNREAD: Any = object()


class Reader(threading.Thread):
    def __init__(self, rt: Runtime, source: str) -> None:
        super().__init__(name=f"reader-{source}", daemon=True)
        self.rt = rt
        self.source = source
        self.error: BaseException | None = None
        self.pending: collections.deque[tuple[Any, dict[str, list[str]]]] = collections.deque()
        self.held = False
        self.backlog, self.backlog_checked, self.confirm_checked = 0, 0.0, 0.0
        self.confirmed: Any = None  # the last checkpoint confirmed
        #: why the source's next change cannot be read (a user's value its column's type
        #: cannot read), while the reader waits for the row's fix; None when reading
        self.blocked: str | None = None
        self.pruned_at = time.monotonic()

    def run(self) -> None:
        try:
            self._run()
        except ConnectorError as exc:  # a fault an operator must see and fix: the message
            self.error = exc           # says what and how (a traceback would hide it)
            log.error("reader of %s stopped: %s", self.source, exc)
            self.rt.stop.set()
        except BaseException as exc:  # reported by the daemon's health check
            self.error = exc
            log.exception("reader of %s stopped", self.source)
            self.rt.stop.set()

    def _run(self) -> None:
        rt, cfg = self.rt, self.rt.cfg
        ctx = rt.ctx()
        ttl = float(cfg.daemon.lease_ttl_s)
        lease = Lease(ctx.store, f"read:{rt.pipeline}:{self.source}", rt.holder, ttl=ttl)
        poll = int(cfg.daemon.poll_ms) / 1000
        wait = int(cfg.batch.max_wait_ms) / 1000
        size = int(cfg.batch.size)
        # A source that can stream (PostgreSQL's replication protocol, MariaDB's
        # binlog connection) waits for changes itself, up to poll_ms: polling
        # PostgreSQL's SQL interface would cost the source most of a core
        # (SERVICES.md), asking MariaDB for its binlog's end a round trip per poll.
        # Others (SQLite, REST) are polled every poll_ms.
        stream = getattr(ctx.endpoints[self.source], "use_streaming", None)
        if stream is not None:
            stream(True, wait=poll)
        renewed = 0.0
        backoff = 0.2
        bindings = [e.bindings[self.source] for e in source_entities(ctx, self.source)]
        cp: Any = _UNREAD
        flushed = time.monotonic()
        unflushed = False  # cp moved past what the store holds, with no change to decide
        try:
            while not rt.stop.is_set():
                try:
                    if time.monotonic() - renewed > ttl / 3:
                        # A batch run of the pipeline holds its run lock: wait for it.
                        batch_run = live_holders(ctx.store, f"run:{rt.pipeline}")
                        was, self.held = self.held, not batch_run and lease.acquire()
                        renewed = time.monotonic()
                        if was != self.held:
                            set_lease(rt.pipeline, self.source, self.held)
                            log.info("%s the lease of source %s",
                                     "took" if self.held else "lost", self.source)
                    if not self.held:
                        cp, unflushed = _UNREAD, False  # whoever holds it now moves it
                        self.blocked = None  # (its holder says so now)
                        rt.stop.wait(ttl / 3)
                        continue
                    if self._backlog(ctx) > int(cfg.daemon.max_pending):
                        self.backlog_checked = 0.0  # look again next time
                        self._confirm_done(ctx)
                        rt.stop.wait(poll)  # backpressure: workers catch up first
                        continue
                    if cp is _UNREAD:  # the lease was just taken: start where the store says
                        cp = ctx.store.checkpoint(ctx.pipeline, self.source, STREAM)
                    with observe_stage(rt.pipeline, "read", endpoint=self.source):
                        batch = self._read(ctx, bindings, cp, size, wait)
                    if batch.changes or batch.events:
                        self._decide(ctx, batch)
                        cp, flushed, unflushed = batch.checkpoint, time.monotonic(), False
                    elif batch.checkpoint != cp:
                        # Only the position moved (heartbeats, other tables, our own
                        # writes): keep it in memory, write it at most once a second.
                        cp, unflushed = batch.checkpoint, True
                    if unflushed and time.monotonic() - flushed > IDLE_FLUSH \
                            and cp is not None:
                        # (also once the source went quiet: the log's tail, often the
                        # echoes of our own last writes, is then confirmed and pruned)
                        with ctx.store.transaction() as conn:
                            ctx.store.put_checkpoint(conn, ctx.pipeline, self.source,
                                                     STREAM, cp)
                        self.pending.append((cp, {}))
                        flushed, unflushed = time.monotonic(), False
                    self._confirm_done(ctx)
                    backoff = 0.2
                    if self.blocked is not None:
                        log.info("reading %s goes on: the row was fixed", self.source)
                        self.blocked = None
                        SOURCE_BLOCKED.labels(rt.pipeline, self.source).set(0)
                except UnreadableValue as exc:  # a user's value: the row's fix, a later
                    # change, supersedes it. Wait for it; the other sources read on.
                    if str(exc) != self.blocked:
                        log.error("reading %s waits for a row to be fixed at the source: %s",
                                  self.source, exc)
                    self.blocked = str(exc)
                    SOURCE_BLOCKED.labels(rt.pipeline, self.source).set(1)
                    RETRIES.labels(rt.pipeline, self.source).inc()
                    rt.stop.wait(min(backoff, ttl / 3))
                    backoff = min(backoff * 2, 5.0)
                    continue
                except RetriableError as exc:  # the source (or the state store) is away:
                    # keep the lease, wait
                    RETRIES.labels(rt.pipeline, self.source).inc()
                    log.warning("reading %s failed (%s); retrying in %.1fs", self.source, exc,
                                backoff)
                    rt.stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    renewed = 0.0  # renew the lease before the next try
                    continue
                if not batch.more:
                    for ent in ctx.entities.values():
                        if self.source in ent.sources:
                            set_lag(rt.pipeline, self.source, ent.name, None)
                    if stream is None:
                        rt.stop.wait(poll)
        finally:
            if self.held:
                lease.release()
                set_lease(rt.pipeline, self.source, False)

    def _read(self, ctx: Any, bindings: list[Any], cp: Any, size: int, wait: float) -> Any:
        """One micro-batch: what the source has now, and more while it keeps coming.

        At low load the first read holds a change or two and the next one finds
        nothing: the batch goes at once (low latency). Under load every read finds
        more, and the batch grows until ``size`` changes or ``wait`` seconds
        (throughput: the per-batch costs are paid once for many changes).
        """
        ep = ctx.endpoints[self.source]
        batch = ep.changes(bindings, cp, size)
        if not batch.changes:
            return batch
        deadline = time.monotonic() + wait
        while (len(batch.changes) < size and batch.more is False
               and time.monotonic() < deadline and not self.rt.stop.is_set()):
            nxt = ep.changes(bindings, batch.checkpoint, size - len(batch.changes))
            if not nxt.changes and not nxt.events:
                # The source is quiet: no reason to wait. Keep where it read up to (our
                # own writes, other tables): handing back an older checkpoint made the
                # next read start over from there, which for MariaDB is a new replica
                # connection (~0.3 s while the server finds the GTID in its binlog).
                batch = ChangeBatch(batch.changes, nxt.checkpoint, nxt.more, batch.events)
                break
            batch = ChangeBatch([*batch.changes, *nxt.changes], nxt.checkpoint, nxt.more,
                                [*batch.events, *nxt.events])
        return batch

    def _decide(self, ctx: Any, batch: Any) -> None:
        rt = self.rt
        summary = RunSummary(pipeline=rt.pipeline)
        with log_context(batch_id=new_batch_id(), pipeline=rt.pipeline, endpoint=self.source):
            # Sent inside the span, so that each apply's trace continues this batch's.
            # Saved and handed over inside rt.saving(): see Runtime.recorded.
            with observe_stage(rt.pipeline, "resolve", endpoint=self.source), rt.saving():
                decided = decide_and_commit(ctx, self.source, expand(ctx, self.source, batch),
                                            batch.checkpoint, summary)
                touched = self._send(ctx, batch, decided)
            for (entity, _, _), st in summary.directions.items():
                observe_read(rt.pipeline, self.source, entity, st.read,
                             max((c.committed_at for c in batch.changes if c.entity == entity),
                                 default=None))
                ECHOES_DROPPED.labels(rt.pipeline, self.source, entity).inc(st.echoes)
                record_conflict(rt.pipeline, entity, "resolved", st.resolved)
                record_conflict(rt.pipeline, entity, "parked", st.parked)
            log.debug("batch of %d changes from %s decided", len(batch.changes), self.source)
        self.pending.append((batch.checkpoint, touched))

    def _send(self, ctx: Any, batch: Any, decided: Any) -> dict[str, list[str]]:
        touched: dict[str, list[str]] = {}
        for entity, states in decided.states.items():
            keys = [k for k, st in states.items() if st.outbox and st.parked is None]
            if keys:
                touched[entity] = keys
                if decided.saved_at is not None:
                    self.rt.hand_over(entity, {k: states[k] for k in keys}, decided.saved_at)
                self.rt.send(entity, keys, _commit_times(ctx, batch.changes, entity))
        return touched

    def _backlog(self, ctx: Any) -> int:
        """The outbox's depth, looked up at most every 0.25 s (it is a count query)."""
        if time.monotonic() - self.backlog_checked > 0.25:
            self.backlog = ctx.store.outbox_depth(self.rt.pipeline)
            self.backlog_checked = time.monotonic()
        return self.backlog

    def _confirm_done(self, ctx: Any) -> None:
        """Release the source's log up to the last batch whose applies are all done.

        Checked at most every 0.1 s: confirming is not urgent, only bounded.
        """
        if time.monotonic() - self.confirm_checked < 0.1:
            return
        self.confirm_checked = time.monotonic()
        last = None
        with ctx.store.engine.connect() as conn:
            while self.pending:
                checkpoint, touched = self.pending[0]
                if any(ctx.store.any_pending(conn, self.rt.pipeline, e, keys)
                       for e, keys in touched.items()):
                    break
                last = checkpoint
                self.pending.popleft()
        ep = ctx.endpoints[self.source]
        if last is not None:
            ep.confirm(last)
            self.confirmed = last
        # Where confirming releases nothing (a SQLite log, which the endpoint keeps in
        # the user's database), the log is pruned up to it, as a batch run does after
        # its catch-up: a daemon's log grew without end.
        if self.confirmed is not None and time.monotonic() - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = time.monotonic()
            try:
                prune_log(ctx, self.source, self.confirmed)
            except RetriableError as exc:  # the file busy: the next prune catches up
                log.warning("pruning the log of %s failed (%s); trying again in %.0fs",
                            self.source, exc, PRUNE_EVERY)


def _commit_times(ctx: Any, changes: list[Any], entity: str) -> dict[str, float]:
    """Source commit time of the last change of each key (for commit-to-apply latency)."""
    from conflict.canonical import key_text
    from sync.capture import typed

    ent = ctx.entities[entity]
    return {key_text(typed(ent, ch.key) or {}): ch.committed_at
            for ch in changes if ch.entity == entity}
