"""What the threads of one daemon or worker process share."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from sync.context import PipelineContext, open_pipeline
from sync.daemon.breaker import Breaker
from sync.daemon.partitions import actor_name, partition_of, queue_name
from sync.logs import current_context
from sync.state.leases import holder_id
from sync.state.store import new_stamp
from sync.tracing import inject

log = logging.getLogger("cdcsync.daemon")


class Runtime:
    """Broker, actors, breakers and per-thread pipeline contexts of one process.

    Endpoint connections are not shared between threads: each thread (a reader,
    a partition's consumer) opens its own :class:`PipelineContext` on first use.
    """

    def __init__(self, cfg: Any, broker: dramatiq.Broker,
                 handler: Callable[[Runtime, str, list[str], dict[str, Any]], None],
                 stop: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.pipeline = str(cfg.pipeline)
        self.broker = broker
        self.stop = stop or threading.Event()
        self.holder = holder_id()
        self.partitions = int(cfg.daemon.partitions)
        self._local = threading.local()
        self._stacks: list[contextlib.ExitStack] = []
        self._lock = threading.Lock()
        self._breakers: dict[str, Breaker] = {}
        self._dead: dict[tuple[str, str], tuple[float, set[str]]] = {}
        self.sent: dict[tuple[str, str], float] = {}
        # States the reader just saved, for this process's own appliers to take instead of
        # loading them again (hand_over/take); only where every message stays in the process.
        # At most one batch's worth waits: a backlog of applies (up to daemon.max_pending
        # keys) must not hold its states in memory too (the RSS target, docs/daemon.md).
        self._handed: dict[tuple[str, str], tuple[Any, float]] | None = (
            {} if isinstance(broker, StubBroker) else None)
        self._hand_cap = int(cfg.batch.size)
        # While a reader is between its save and its hand-over (``saving``), the keys an
        # applier records results on, and when: a hand-over of a state saved before that
        # is stale (see :meth:`recorded`). Empty whenever no reader is saving.
        self._saving = 0
        self._recorded: dict[tuple[str, str], float] = {}
        self.swept = False  # the first sweep sends every pending key (sync/daemon/sweeper.py)
        #: (entity, target, key) -> times the sweeper requeued its foreign-key letter
        self.reference_tries: dict[tuple[str, str, str], int] = {}
        self.actors = []
        for p in range(self.partitions):
            def consume(entity: str, keys: list[str], meta: dict[str, Any]) -> None:
                handler(self, entity, keys, meta)

            consume.__name__ = actor_name(self.pipeline, p)
            decorate = dramatiq.actor(broker=broker, actor_name=actor_name(self.pipeline, p),
                                      queue_name=queue_name(self.pipeline, p), max_retries=0)
            self.actors.append(decorate(consume))

    # --- per-thread contexts -------------------------------------------------------------

    def ctx(self) -> PipelineContext:
        ctx: PipelineContext | None = getattr(self._local, "ctx", None)
        if ctx is None:
            stack = contextlib.ExitStack()
            ctx = stack.enter_context(open_pipeline(self.cfg))
            self._local.ctx = ctx
            with self._lock:
                self._stacks.append(stack)
        return ctx

    def close(self) -> None:
        with self._lock:
            stacks, self._stacks = self._stacks, []
        for stack in stacks:
            try:
                stack.close()
            except Exception:  # closing another thread's connections is best effort
                log.debug("closing a pipeline context failed", exc_info=True)

    def dead_keys(self, entity: str, target: str) -> set[str]:
        """Keys with a dead letter at ``target``, looked up at most once a second."""
        from sync import dlq

        now = time.monotonic()
        with self._lock:
            hit = self._dead.get((entity, target))
        if hit is not None and now - hit[0] < 1.0:
            return hit[1]
        keys = dlq.dead_keys(self.ctx().store, self.pipeline, entity, target)
        with self._lock:
            self._dead[(entity, target)] = (now, keys)
        return keys

    def forget_dead(self, entity: str, target: str) -> None:
        """Look the dead keys of ``entity`` at ``target`` up again at the next ask."""
        with self._lock:
            self._dead.pop((entity, target), None)

    def breaker(self, target: str) -> Breaker:
        with self._lock:
            br = self._breakers.get(target)
            if br is None:
                br = self._breakers[target] = Breaker(self.pipeline, target)
            return br

    # --- states handed from the reader to the appliers -----------------------------------

    @contextlib.contextmanager
    def saving(self) -> Any:
        """Around a reader's save and the hand-over of what it saved."""
        with self._lock:
            self._saving += 1
        try:
            yield
        finally:
            with self._lock:
                self._saving -= 1
                if not self._saving:
                    self._recorded.clear()

    def hand_over(self, entity: str, states: Mapping[str, Any], saved_at: float) -> None:
        """Key states the reader saved with stamp ``saved_at`` and is sending apply work
        for: this process's appliers take them (:meth:`take`) rather than loading them
        again, with the stamp, so that a save by anyone since is still noticed
        (record_results). Only with the in-process broker, whose messages never reach
        another process; a newer hand-over of a key replaces the older. Not the states
        an applier recorded results on after ``saved_at`` (:meth:`recorded`).

        At most ``batch.size`` states wait: past that, keys not waiting already are
        left out (their applier loads them), as many as do not fit. A key that is
        waiting already is always replaced, so no older state of it is taken."""
        handed = self._handed
        if handed is None:
            return
        with self._lock:
            recorded = self._recorded
            room = self._hand_cap - len(handed)
            for k, st in states.items():
                if recorded.get((entity, k), 0.0) > saved_at:
                    continue
                if (entity, k) not in handed:
                    if room <= 0:
                        continue
                    room -= 1
                handed[(entity, k)] = (st, saved_at)

    def recorded(self, entity: str, keys: Iterable[str], at: float | None = None) -> None:
        """An applier saved ``keys`` with apply results, by ``at`` (a save stamp taken
        after that save; by default now): a state of them handed over from an earlier
        save is stale. Its jobs expect the rows as they were before those writes of ours
        (an insert expecting no row would go in over a user's delete made since;
        PostgreSQL keeps nothing of a deleted row), so it is dropped, and so is one a
        reader saved earlier but hands over only now.

        Save stamps (:func:`new_stamp`) only grow within a process, so ``at`` is after
        every ``saved_at`` of a save that came before this record even if the wall
        clock stepped back in between (``time.time()`` would not be)."""
        handed = self._handed
        if handed is None:
            return
        if at is None:
            at = new_stamp()
        with self._lock:
            for k in keys:
                hit = handed.get((entity, k))
                if hit is not None and hit[1] < at:
                    handed.pop((entity, k), None)
                if self._saving:
                    self._recorded[(entity, k)] = at

    def take(self, entity: str, keys: Iterable[str]) -> tuple[dict[str, Any], dict[str, float]]:
        """The handed-over states of ``keys`` (removed: each is taken once) and their
        stamps; keys not handed over are left out."""
        states: dict[str, Any] = {}
        stamps: dict[str, float] = {}
        handed = self._handed
        if not handed:
            return states, stamps
        with self._lock:  # against recorded()/hand_over() of another applier or reader
            for k in keys:
                hit = handed.pop((entity, k), None)
                if hit is not None:
                    states[k], stamps[k] = hit
        return states, stamps

    # --- sending apply work --------------------------------------------------------------

    def send(self, entity: str, keys: Iterable[str],
             commits: Mapping[str, float] | None = None, *, remember: bool = False) -> int:
        """Queue apply work for ``keys`` of ``entity``, one message per partition.

        ``remember``: note the time in ``sent`` (the sweeper's re-sends; the reader's
        sends follow a save of the keys' states, which the sweeper sees instead)."""
        by_part: dict[int, list[str]] = {}
        for k in keys:
            by_part.setdefault(partition_of(entity, k, self.partitions), []).append(k)
        now = time.time()
        meta_base = {"log": current_context(), "trace": inject()}
        sent = 0
        for p, part in by_part.items():
            meta = dict(meta_base)
            if commits:
                meta["commits"] = {k: commits[k] for k in part if k in commits}
            try:
                self.actors[p].send(entity, part, meta)
            except Exception as exc:  # the broker is down: the keys wait in the outbox
                log.warning("could not queue %d keys of %s (%s: %s); the sweeper will "
                            "re-send them", len(part), entity, type(exc).__name__, exc)
                continue
            sent += 1
            if remember:
                with self._lock:
                    for k in part:
                        self.sent[(entity, k)] = now
        return sent
