"""Two glibc malloc arenas for cdcsync's long-running processes, trimmed now and then.

glibc gives each new thread a malloc arena of its own, up to eight per core;
memory freed in one arena is not reused by another, so each of the daemon's
threads (readers, each partition's fetcher and applier, the HTTP server)
keeps a high-water mark of its own. ``MALLOC_ARENA_MAX=2`` in the environment
is the usual remedy (the image sets it), but it is read when the process
starts and easily forgotten outside the image: :func:`limit` makes the same
setting from inside (``mallopt(M_ARENA_MAX, 2)``) before the daemon starts
its threads, unless the environment already chose. A no-op where glibc is
not the C library. Measured in docs/daemon.md.

glibc returns freed memory to the system only from the top of an arena's
heap; a burst (a catch-up after a stall: larger batches, more in flight)
leaves the pages it used resident, free but scattered, and the process's
RSS stays at the burst's height. :func:`trim` (``malloc_trim(0)``, which
also gives back free pages inside the heaps) is called by the daemon's and
workers' main loop every :data:`TRIM_EVERY` seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Any

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2
TRIM_EVERY = 30.0  # seconds between trims in a long-running process


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit(arenas: int = ARENAS) -> bool:
    """Limit the process to ``arenas`` malloc arenas; False if not done (the environment
    sets ``MALLOC_ARENA_MAX``, or the C library is not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the operator's choice, already in force
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the free memory of every malloc arena back to the system; False where the C
    library has no ``malloc_trim`` (not glibc) or nothing was given back."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return False
    return bool(malloc_trim(0))
