"""Leases in the state store: who reads a source, who runs a scheduled sync.

A lease is a row with a holder and an expiry. Taking it is one conditional
statement (free, expired, or already ours), so two daemons racing for a source
cannot both win; renewing it before it expires keeps it; a holder that dies
simply stops renewing, and another takes over once the TTL has passed.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sync.state.schema import leases
from sync.state.store import StateStore


def holder_id() -> str:
    """A name that is unique per process and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(self, store: StateStore, name: str, holder: str, ttl: float = 5.0) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl

    def acquire(self) -> bool:
        """Take or renew the lease; True if we hold it now."""
        now = time.time()
        with self.store.transaction() as conn:
            res = conn.execute(
                leases.update()
                .where(leases.c.name == self.name,
                       sa.or_(leases.c.holder == self.holder, leases.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl,
                        acquired_at=sa.case((leases.c.holder == self.holder,
                                             leases.c.acquired_at), else_=now))
            )
            if res.rowcount == 1:
                return True
            exists = conn.execute(sa.select(leases.c.name).where(leases.c.name == self.name))
            if exists.first() is not None:
                return False
        try:
            with self.store.transaction() as conn:
                conn.execute(leases.insert().values(name=self.name, holder=self.holder,
                                                    expires_at=now + self.ttl, acquired_at=now))
            return True
        except IntegrityError:  # someone inserted it first
            return False

    def release(self) -> None:
        with self.store.transaction() as conn:
            conn.execute(leases.delete().where(leases.c.name == self.name,
                                               leases.c.holder == self.holder))

    def holder_now(self) -> str | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(leases.c.holder, leases.c.expires_at)
                               .where(leases.c.name == self.name)).first()
        if row is None or row[1] < time.time():
            return None
        return str(row[0])


def live_holders(store: StateStore, prefix: str) -> list[tuple[str, str]]:
    """``(name, holder)`` of unexpired leases whose name starts with ``prefix``."""
    return [(name, holder) for name, holder, _, _ in live_leases(store, prefix)]


def live_leases(store: StateStore, prefix: str) -> list[tuple[str, str, float, float]]:
    """``(name, holder, acquired_at, expires_at)`` of unexpired leases whose name starts
    with ``prefix``, by name."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(leases.c.name, leases.c.holder, leases.c.acquired_at,
                                      leases.c.expires_at)
                            .where(leases.c.name.startswith(prefix, autoescape=True),
                                   leases.c.expires_at >= time.time())
                            .order_by(leases.c.name)).all()
    return [(str(n), str(h), float(at), float(ex)) for n, h, at, ex in rows]


def holder_alive(holder: str) -> bool | None:
    """Is the process behind ``holder`` (:func:`holder_id`) still running? Known only on
    its own machine (None elsewhere): a lease outlives a process killed with -9 by its
    TTL, and this tells an operator that it is such a leftover."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process of that pid: alive
        pass
    return True
