"""Waiting for a socket to become readable or writable, on any descriptor number.

``select.select`` cannot watch a descriptor past ``FD_SETSIZE`` (1023): in a
process holding many connections (a daemon with many endpoints, a test run,
an application embedding cdcsync) a replication stream opened late would
fail with ``ValueError: filedescriptor out of range in select()``. ``poll()``
has no such limit; ``select()`` stays only where there is no ``poll()``
(Windows, where descriptors are not small integers anyway).
"""

from __future__ import annotations

import select
from typing import Any


def wait_socket(sock: Any, timeout: float, *, read: bool = True, write: bool = False) -> bool:
    """Whether ``sock`` (a socket or a descriptor) is ready to read (``read``) or to
    write (``write``), waiting up to ``timeout`` seconds (0: do not wait)."""
    if hasattr(select, "poll"):
        mask = (select.POLLIN | select.POLLPRI if read else 0) | (select.POLLOUT if write else 0)
        poller = select.poll()
        poller.register(sock, mask)
        return bool(poller.poll(max(0, int(timeout * 1000 + 0.999))))
    ready = select.select([sock] if read else [], [sock] if write else [], [],
                          max(0.0, timeout))
    return bool(ready[0] or ready[1])
