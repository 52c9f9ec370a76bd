"""The run lock: never two batch runs of one pipeline at once, on any machine.

A batch run (``cdcsync run``, or a tick of ``cdcsync schedule``) holds the
lease ``run:<pipeline>`` in the state store for as long as it lasts. The lease
has a short TTL and a background thread renews it, so a run that crashes or is
killed with -9 frees it by expiry (at most :data:`RUN_LOCK_TTL` seconds later)
rather than blocking the pipeline forever, and a live run keeps it however
long it takes. The state store is the one thing every run of a pipeline
shares, so the lock works across processes and machines without another
coordination service.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sync.state.leases import Lease, holder_id, live_holders
from sync.state.store import StateStore

log = logging.getLogger("cdcsync.runlock")

RUN_LOCK_TTL = 30.0  # seconds a crashed holder keeps the lock
RUN_LOCK_RENEW = 10.0  # renewal period: two renewals may fail before the lease expires


def lock_name(pipeline: str) -> str:
    return f"run:{pipeline}"


class RunLocked(Exception):
    """Another run of the pipeline holds the run lock."""

    def __init__(self, pipeline: str, holder: str | None) -> None:
        self.pipeline = pipeline
        self.holder = holder
        super().__init__(f"another run of {pipeline} is in progress "
                         f"(holder {holder or 'unknown'})")


class RunLockLost(RuntimeError):
    """The lock expired during the run (renewals failed) and someone else took it."""


class RunLock:
    """Context manager holding ``run:<pipeline>`` with a renewing thread.

    ``__enter__`` raises :class:`RunLocked` when another holder has it, or when a
    daemon's readers stream the pipeline, unless ``beside_readers`` (a daemon's
    initial snapshot: the readers pause while the lock is held).
    ``__exit__`` stops the renewals and releases the lease; if the lease was
    lost meanwhile (another run took it after it expired), it raises
    :class:`RunLockLost` so that the run is reported as failed: its work is
    still protected by compare-and-set, but two runs overlapped.
    """

    def __init__(self, store: StateStore, pipeline: str, *, ttl: float = RUN_LOCK_TTL,
                 renew_every: float | None = None, holder: str | None = None,
                 beside_readers: bool = False) -> None:
        self.pipeline = pipeline
        self.beside_readers = beside_readers
        self.lease = Lease(store, lock_name(pipeline), holder or holder_id(), ttl)
        self.renew_every = renew_every if renew_every is not None else min(RUN_LOCK_RENEW,
                                                                           ttl / 3)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holder(self) -> str:
        return self.lease.holder

    def __enter__(self) -> RunLock:
        if not self.lease.acquire():
            holder = self.lease.holder_now()
            # Released between our attempt and the look-up: one more try.
            if holder is not None or not self.lease.acquire():
                raise RunLocked(self.pipeline, holder or self.lease.holder_now())
        # A daemon streaming this pipeline: a batch run beside it would read the
        # same logs from the same checkpoints. Readers, in turn, wait for this lock.
        readers = [] if self.beside_readers else live_holders(
            self.lease.store, f"read:{self.pipeline}:")
        if readers:
            self.lease.release()
            raise RunLocked(self.pipeline, f"daemon {readers[0][1]}")
        self._thread = threading.Thread(target=self._renew, name=f"runlock-{self.pipeline}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost:
            try:
                self.lease.release()
            except Exception:  # it expires by itself; the run's own outcome matters more
                log.warning("could not release the run lock of %s; it expires in %.0fs",
                            self.pipeline, self.lease.ttl, exc_info=True)
        if self.lost and exc_type is None:
            raise RunLockLost(
                f"the run lock of {self.pipeline} expired during the run and was taken by "
                f"{self.lease.holder_now() or 'another run'}; two runs overlapped")

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                held = self.lease.acquire()
            except Exception as exc:  # a state-store hiccup: try again before the TTL ends
                log.warning("renewing the run lock of %s failed: %s", self.pipeline, exc)
                continue
            if not held:
                self.lost = True
                log.error("lost the run lock of %s to %s: another run may be in progress",
                          self.pipeline, self.lease.holder_now() or "another holder")
                return

