"""Acting on a signal without deadlocking the thread it interrupted.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds the internal lock of a :class:`threading.Event` it is
waiting on (``Event.wait`` re-acquires it before returning). ``Event.set`` from
the handler then waits for that lock forever: a SIGTERM that hangs the process
instead of stopping it. The handler hands the work to a short-lived thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def from_handler(fn: Callable[[], object]) -> None:
    """Run ``fn`` soon, in a thread of its own (see the module docstring)."""
    threading.Thread(target=fn, name="signal", daemon=True).start()
