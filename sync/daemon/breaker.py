"""A circuit breaker per target endpoint.

While a target is down its backlog stays in the outbox (not dropped, not
spinning): after ``threshold`` consecutive failures the breaker opens and
applies to that target are skipped; after ``cooldown`` one probe is let
through (half-open); its success closes the breaker, and the sweeper re-sends
the backlog. Contention (``ContentionError``: a deadlock, a lock timeout) is
no failure here: the target answered (sync/daemon/worker.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sync.metrics import BreakerState, set_breaker


class Breaker:
    def __init__(self, pipeline: str, target: str, *, threshold: int = 3,
                 cooldown: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline, self.target = pipeline, target
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self._lock = threading.Lock()
        set_breaker(pipeline, target, BreakerState.CLOSED)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self.probing else BreakerState.OPEN

    def allow(self) -> bool:
        """May an apply to the target go ahead now?"""
        with self._lock:
            if self.opened_at is None:
                return True
            if not self.probing and self.clock() - self.opened_at >= self.cooldown:
                self.probing = True
                set_breaker(self.pipeline, self.target, BreakerState.HALF_OPEN)
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self.probing = 0, None, False
            set_breaker(self.pipeline, self.target, BreakerState.CLOSED)

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.probing or self.failures >= self.threshold:
                self.opened_at, self.probing = self.clock(), False
                set_breaker(self.pipeline, self.target, BreakerState.OPEN)
