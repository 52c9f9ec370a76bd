"""Occupy the descriptors below 1024, so that the next sockets opened get higher numbers."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

#: ``select()`` watches descriptors below this only (FD_SETSIZE)
FD_SETSIZE = 1024


@contextlib.contextmanager
def descriptors_past_select(margin: int = 64) -> Iterator[None]:
    """Inside, every descriptor below ``FD_SETSIZE`` is taken: a socket opened now gets a
    number ``select()`` cannot watch. Raises the soft limit on open files if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_SETSIZE + 4 * margin
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # fails where hard < want
    fillers: list[int] = []
    try:
        fillers.append(os.open(os.devnull, os.O_RDONLY))  # kept open: no hole below
        while fillers[-1] < FD_SETSIZE + margin:
            fillers.append(os.dup(fillers[0]))
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
