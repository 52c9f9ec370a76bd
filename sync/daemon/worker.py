"""Apply workers: one consumer per partition queue, so one apply in flight per key.

A message names keys, not versions: the worker applies whatever each key's
state says is pending *now*, so a re-delivered, re-ordered or duplicated
message is harmless (nothing pending: nothing done), and a message lost with
a Redis restart is re-sent by the sweeper from the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from connectors.base import ConnectorError, ContentionError, RetriableError
from sync.apply import (
    STALE_ROUNDS,
    Result,
    apply_to_target,
    pending_by_target,
    record_results,
)
from sync.daemon.partitions import queue_name
from sync.daemon.runtime import Runtime
from sync.logs import log_context
from sync.metrics import RETRIES, observe_applied, observe_stage
from sync.state.leases import Lease, live_holders
from sync.summary import RunSummary
from sync.tracing import extract

log = logging.getLogger("cdcsync.worker")

APPLY_TRIES = 3  # inside the actor; the breaker and the sweeper take over after
#: messages of a partition fetched ahead and applied together (see _consume_once)
COALESCE = 64


def handle(rt: Runtime, entity: str, keys: list[str], meta: dict[str, Any]) -> None:
    """Apply the pending versions of ``keys`` (a dramatiq actor's body)."""
    ctx = rt.ctx()
    ent = ctx.entities.get(entity)
    if ent is None:
        log.warning("apply message for unknown entity %r dropped", entity)
        return
    with log_context(**meta.get("log", {})), extract(meta.get("trace")):
        for _ in range(STALE_ROUNDS):
            keys = _apply_keys(rt, entity, keys, meta)
            if not keys:
                return
        # still stale: the outbox keeps them and the sweeper sends them again


def _apply_keys(rt: Runtime, entity: str, keys: list[str], meta: dict[str, Any]) -> list[str]:
    """One round of :func:`handle`; returns the keys due again at once (STALE results)."""
    from sync import dlq

    ctx = rt.ctx()
    ent = ctx.entities[entity]
    states, stamps = rt.take(entity, keys)  # as the reader saved them, in this process
    rest = [k for k in keys if k not in states]
    if rest:
        states.update(ctx.store.load(ctx.pipeline, entity, rest, stamps=stamps))
    results: list[Result] = []
    for target, items in sorted(pending_by_target(states).items()):
        br = rt.breaker(target)
        if not br.allow():
            continue  # the backlog stays in the outbox until the target is back
        dead = rt.dead_keys(entity, target)
        items = [(k, j) for k, j in items if k not in dead]
        if not items:
            continue
        try:
            with observe_stage(ctx.pipeline, "apply", entity=entity, target=target):
                done = apply_to_target(ctx, ent, target, items, states, tries=APPLY_TRIES,
                                       dead=dead)
        except RetriableError as exc:
            RETRIES.labels(ctx.pipeline, target).inc()
            if isinstance(exc, ContentionError):
                br.success()  # the target answered: other transactions won, it is not down
            else:
                br.failure()
            log.warning("apply to %s failed, kept for later: %s", target, exc)
            continue
        except (ConnectorError, Exception) as exc:  # permanent: park the keys in the DLQ
            br.success()  # the target answered; the data is at fault
            log.error("apply to %s failed permanently: %s", target, exc)
            with ctx.store.transaction() as conn:
                dlq.record(conn, ctx.pipeline, entity, target, [k for k, _ in items],
                           f"{type(exc).__name__}: {exc}", APPLY_TRIES)
            continue
        br.success()
        log.debug("applied %d keys of %s to %s", len(done), entity, target)
        results.extend(done)
    summary = RunSummary(pipeline=ctx.pipeline)
    # Recorded on the states loaded above unless the reader saved them since.
    again = record_results(ctx, ent, results, summary, mine=states, saved_at=stamps)
    if results:  # a state handed over before this record is stale now
        rt.recorded(entity, {k for k, _, _, _ in results})
    commits = meta.get("commits") or {}
    for (_, _, target), st in summary.directions.items():
        if st.applied:
            applied = [commits[k] for k, job, r, _ in results
                       if job.target == target and k in commits
                       and r.status.value == "applied"]
            observe_applied(ctx.pipeline, target, entity, applied, count=st.applied)
    return again


class PartitionConsumers:
    """Consumes each partition queue this process owns with exactly one thread.

    One consumer per partition, and each partition applied by one thread of a
    small pool (``daemon.apply_threads``; a partition goes to the applier with
    the fewest and stays with it while this process holds it), is what gives
    per-key order and one apply in flight per key. Partitions are the unit of
    work across processes: with a shared broker (Redis, RabbitMQ) a lease per
    partition keeps each queue to one consumer, and the processes share the
    partitions evenly (see :meth:`_balance`). Appliers are the concurrency
    inside one process: every thread that applies competes for the
    interpreter, and on a small machine a few appliers taking several
    partitions' messages together keep latency lower than one per partition
    (docs/daemon.md). With the in-process broker this process owns every
    partition.
    """

    def __init__(self, rt: Runtime, *, shared: bool) -> None:
        self.rt = rt
        self.shared = shared
        self.threads: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self.leaving: dict[int, threading.Thread] = {}  # handed back, finishing its messages
        self.leases: dict[int, Lease] = {}
        count = min(int(rt.cfg.daemon.apply_threads), rt.partitions)
        self.appliers = [_Applier(rt, i) for i in range(count)]
        self.assigned: dict[int, _Applier] = {}  # partition -> its applier
        self._lock = threading.Lock()
        self.member: Lease | None = None
        self._thread = threading.Thread(target=self._loop, name="partitions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _lease(self, name: str) -> Lease:
        return Lease(self.rt.ctx().store, name, self.rt.holder,
                     ttl=float(self.rt.cfg.daemon.lease_ttl_s))

    def _own(self, p: int) -> bool:
        if not self.shared:
            return True
        lease = self.leases.get(p)
        if lease is None:
            lease = self.leases[p] = self._lease(f"apply:{self.rt.pipeline}:{p}")
        return lease.acquire()

    def _share(self) -> int:
        """How many partitions this process should consume: all of them with the
        in-process broker; with a shared one, an even share among the processes
        consuming (each keeps a member lease while it lives)."""
        partitions = self.rt.partitions
        if not self.shared:
            return partitions
        prefix = f"members:{self.rt.pipeline}:"
        if self.member is None:
            self.member = self._lease(prefix + self.rt.holder)
        self.member.acquire()
        members = max(1, len(live_holders(self.rt.ctx().store, prefix)))
        return -(-partitions // members)

    def _loop(self) -> None:
        ttl = float(self.rt.cfg.daemon.lease_ttl_s)
        while not self.rt.stop.is_set():
            try:
                self._balance()
            except Exception as exc:  # the store is briefly away: the leases run on
                log.warning("partition leases not renewed (%s: %s); retrying",
                            type(exc).__name__, exc)
            self.rt.stop.wait(ttl / 3)

    def _balance(self) -> None:
        """Renew the partitions held, take free ones up to this process's share, and
        hand back those over it (another process has joined) once their messages are
        applied: a partition is released only after its consumer has finished."""
        share = self._share()
        for p, consumer in list(self.leaving.items()):
            if consumer.is_alive():
                self._own(p)  # still ours until its last message is applied
            else:
                del self.leaving[p]
                with self._lock:
                    self.assigned.pop(p, None)
                self.leases.pop(p).release()
        for p in range(self.rt.partitions):
            if p in self.threads:
                if len(self.threads) > share:
                    t, quit_ = self.threads.pop(p)
                    quit_.set()
                    self.leaving[p] = t
                    log.info("partition %d handed back (share %d)", p, share)
                elif not self._own(p):  # lost (we stalled past the TTL): stop at once
                    self.threads.pop(p)[1].set()
            elif p not in self.leaving and len(self.threads) < share and self._own(p):
                quit_ = threading.Event()
                t = threading.Thread(target=self._consume, args=(p, quit_),
                                     name=f"partition-{p}", daemon=True)
                self.threads[p] = (t, quit_)
                t.start()

    def _consume(self, p: int, quit_: threading.Event) -> None:
        """Consume partition ``p`` until told to quit, reconnecting with backoff."""
        delay = 0.2
        while not (quit_.is_set() or self.rt.stop.is_set()):
            try:
                self._consume_once(p, quit_)
                return
            except Exception as exc:  # the broker went away: the outbox keeps the work
                log.warning("partition %d: broker error (%s: %s); reconnecting in %.1fs",
                            p, type(exc).__name__, exc, delay)
                if quit_.wait(delay) or self.rt.stop.is_set():
                    return
                delay = min(delay * 2, 5.0)

    def _consume_once(self, p: int, quit_: threading.Event) -> None:
        """Fetch partition ``p``'s messages here; its applier applies them.

        Acks are sent from this thread, the consumer's own (RabbitMQ's channel is
        not thread-safe), once the applier hands each message back. On quitting,
        the messages handed over are waited for (the applier finishes them).
        """
        rt = self.rt
        timeout = int(rt.cfg.daemon.worker_timeout_ms)
        applier = self._assign(p)
        consumer = rt.broker.consume(queue_name(rt.pipeline, p), prefetch=COALESCE,
                                     timeout=timeout)
        handled: queue.SimpleQueue[Any] = queue.SimpleQueue()
        given = 0
        back = [0]  # messages the applier handed back, acked or not (see _ack_all)
        try:
            while not (quit_.is_set() or rt.stop.is_set()):
                if not applier.alive():  # _consume starts over (with backoff), restarting it
                    raise RuntimeError(f"the applier of partition {p} stopped")
                _ack_all(consumer, handled, back)
                msg = next(consumer)
                if msg is not None:
                    applier.put(msg, handled)
                    given += 1
        finally:
            # A partition handed back is released once this returns, so wait for every
            # message given to the applier (unless it died: then nothing of them runs);
            # a process stopping has a budget. Acks that fail now (the broker is away)
            # leave messages to be redelivered, and found done.
            deadline = time.monotonic() + 8.0
            while back[0] < given and applier.alive() and (
                    not rt.stop.is_set() or time.monotonic() < deadline):
                try:
                    done = handled.get(timeout=0.05)
                except queue.Empty:
                    continue
                back[0] += 1
                with contextlib.suppress(Exception):
                    consumer.ack(done)
            with contextlib.suppress(Exception):
                _ack_all(consumer, handled, back)
            try:
                consumer.close()
            except Exception:  # closing a consumer of a dead broker
                log.debug("closing the consumer failed", exc_info=True)

    def _assign(self, p: int) -> _Applier:
        """The applier of partition ``p``: the one with the fewest partitions, and the
        same one for as long as this process holds ``p`` (an applier started again
        after dying still has messages of ``p`` in its inbox: they must stay first)."""
        with self._lock:
            applier = self.assigned.get(p)
            if applier is None:
                load = {id(a): 0 for a in self.appliers}
                for a in self.assigned.values():
                    load[id(a)] += 1
                applier = self.assigned[p] = min(self.appliers, key=lambda a: load[id(a)])
        applier.ensure_running()
        return applier

    def stop(self, timeout: float = 8.0) -> None:
        """Let each consumer finish the messages in hand, then release the partitions."""
        deadline = time.monotonic() + timeout
        if self._thread.is_alive():  # no more balancing: rt.stop is set
            self._thread.join(timeout=1.0)
        for _, quit_ in self.threads.values():
            quit_.set()
        consumers = [t for t, _ in self.threads.values()] + list(self.leaving.values())
        for t in consumers:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        self.threads.clear()
        self.leaving.clear()
        for applier in self.appliers:
            applier.stop(timeout=max(0.1, deadline - time.monotonic()))
        for lease in [*self.leases.values(), *([self.member] if self.member else [])]:
            lease.release()


class _Applier:
    """A thread applying the messages its partitions' consumers hand it, in their order.

    Under load messages arrive faster than one apply takes: it takes the messages
    handed over meanwhile at once (up to COALESCE of them and about
    ``batch.size`` keys), so one load, one write per target and one record of
    results serve them all (they only name keys, and the keys' states say what
    is due). Each message goes back to its consumer's ``handled`` queue to be acked.
    """

    def __init__(self, rt: Runtime, index: int) -> None:
        self.rt = rt
        self.index = index
        self.inbox: queue.SimpleQueue[tuple[Any, queue.SimpleQueue[Any]] | None] = \
            queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._thread is not None:
                log.warning("applier %d stopped; starting it again", self.index)
            self._thread = threading.Thread(target=self._loop, name=f"apply-{self.index}",
                                            daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, msg: Any, handled: queue.SimpleQueue[Any]) -> None:
        self.inbox.put((msg, handled))

    def stop(self, timeout: float) -> None:
        if self._thread is not None:
            self.inbox.put(None)
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            first = self.inbox.get()
            if first is None:
                return
            batch = [first]
            taken = _size(first[0])
            # Bounded by keys too: a backlog's messages are batch-sized, and the states
            # of every key taken are in memory at once.
            cap = int(self.rt.cfg.batch.size)
            while len(batch) < COALESCE and taken < cap:
                try:
                    more = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.inbox.put(None)  # stop after this batch
                    break
                batch.append(more)
                taken += _size(more[0])
            try:
                for entity, keys, meta in _merged([m for m, _ in batch]):
                    try:
                        handle(self.rt, entity, keys, meta)
                    except RetriableError as exc:  # e.g. a target down while connecting
                        log.warning("apply of %d keys postponed (%s); the sweeper re-sends "
                                    "them", len(keys), exc)
                    except Exception:  # the outbox keeps the work; the sweeper re-sends it
                        log.exception("apply message failed; it will be re-sent")
            finally:
                for msg, handled in batch:
                    handled.put(msg)


def _ack_all(consumer: Any, handled: queue.SimpleQueue[Any], back: list[int]) -> None:
    """Ack every message handed back so far, counting each in ``back[0]`` as it is taken:
    an ack that raises (the broker went away) must not lose the count of the others."""
    while True:
        try:
            msg = handled.get_nowait()
        except queue.Empty:
            return
        back[0] += 1
        consumer.ack(msg)


def _size(msg: Any) -> int:
    """How many keys a message names (0 for a malformed one: _merged drops it)."""
    try:
        return len(msg.args[1])
    except (IndexError, TypeError):
        return 0


def _merged(batch: list[Any]) -> list[tuple[str, list[str], dict[str, Any]]]:
    """Messages taken together: one (entity, keys, meta) per entity, keys in first-seen
    order; the log and trace context of the entity's first message, every commit time."""
    out: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for msg in batch:
        try:
            entity, keys, meta = msg.args
            keys, meta = [str(k) for k in keys], dict(meta)
        except (TypeError, ValueError):  # not one of ours: the others still go
            log.error("malformed apply message dropped: %r", msg.args)
            continue
        if entity not in out:
            out[entity] = ([], {**meta, "commits": dict(meta.get("commits") or {})})
        else:
            out[entity][1]["commits"].update(meta.get("commits") or {})
        out[entity][0].extend(keys)
    return [(e, list(dict.fromkeys(keys)), meta) for e, (keys, meta) in out.items()]
