"""Retrying transient faults: exponential backoff with jitter, each retry logged."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from connectors.base import RefusedError, RetriableError

log = logging.getLogger("cdcsync.retry")
T = TypeVar("T")

RETRIES = 6


def with_retries(what: str, fn: Callable[[], T], *, tries: int = RETRIES,
                 base_delay: float = 0.05, retry_refused: bool = True) -> T:
    """Run ``fn``, retrying :class:`RetriableError` with exponential backoff and jitter.

    The first retry comes quickly: the commonest retriable error under load is
    a deadlock between two appliers (InnoDB gap locks), which a prompt retry
    resolves; a server that is really away is left to the caller's breaker.
    ``retry_refused=False``: a :class:`RefusedError` is raised at once.
    """
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except RetriableError as exc:
            if attempt == tries or (not retry_refused and isinstance(exc, RefusedError)):
                raise
            delay = base_delay * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, tries - 1,
                        delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
