"""Stopping on SIGTERM/SIGINT: at a durable point, and without deadlocking.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds the internal lock of a :class:`threading.Event` it is
waiting on (``Event.wait`` re-acquires it before returning). ``Event.set`` from
the handler then waits for that lock forever: a SIGTERM that hangs the process
instead of stopping it. The handler hands the work to a short-lived thread.

A long piece of work (a snapshot, a catch-up) asked to stop ends at its next
durable point (everything read so far saved, see
:meth:`sync.context.PipelineContext.stop_point`) by raising :class:`Interrupted`;
the next run resumes from there.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("cdcsync")


class Interrupted(Exception):
    """A stop was asked for (SIGTERM/SIGINT) and reached at a durable point."""


def from_handler(fn: Callable[[], object]) -> None:
    """Run ``fn`` soon, in a thread of its own (see the module docstring)."""
    threading.Thread(target=fn, name="signal", daemon=True).start()


@contextmanager
def stop_on_signals(stop: Callable[[], object], what: str) -> Iterator[None]:
    """The first SIGTERM/SIGINT calls ``stop`` (``what``: what is let finish, for the
    log line); a second one acts as it did before (the default: end the process now,
    which loses nothing either, only the work since the last durable point)."""

    def _handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("%s: stopping after %s (send it again to interrupt)",
                    signal.Signals(signum).name, what)
        for sig, old in previous.items():
            signal.signal(sig, old)
        from_handler(stop)

    previous = {sig: signal.getsignal(sig) or signal.SIG_DFL
                for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
