"""Two glibc malloc arenas for cdcsync's long-running processes.

glibc gives each new thread a malloc arena of its own, up to eight per core;
memory freed in one arena is not reused by another, so each of the daemon's
threads (readers, each partition's fetcher and applier, the HTTP server)
keeps a high-water mark of its own. ``MALLOC_ARENA_MAX=2`` in the environment
is the usual remedy (the image sets it), but it is read when the process
starts and easily forgotten outside the image: :func:`limit` makes the same
setting from inside (``mallopt(M_ARENA_MAX, 2)``) before the daemon starts
its threads, unless the environment already chose. A no-op where glibc is
not the C library. Measured in docs/daemon.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit(arenas: int = ARENAS) -> bool:
    """Limit the process to ``arenas`` malloc arenas; False if not done (the environment
    sets ``MALLOC_ARENA_MAX``, or the C library is not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the operator's choice, already in force
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
