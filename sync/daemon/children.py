"""Apply workers the daemon starts on its own machine (``daemon.worker_processes``).

One interpreter lock serialises a daemon's readers and appliers: on a backlog
the process is busy on one core while the other has room. With a shared
broker, ``cdcsync worker`` processes apply beside it; this starts N of them
as children, so one command uses the machine's cores.

The children are ordinary ``cdcsync worker`` processes (member leases share
the partitions among them, as with workers started by hand). The daemon
starts a child again when one dies (with backoff, in case it dies at once),
asks them to stop on SIGTERM and kills what is still there when its shutdown
budget ends. A child whose daemon died (kill -9) stops by itself: the daemon's
pid is in ``CDCSYNC_PARENT_PID`` (:func:`orphaned`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("cdcsync.daemon")

PARENT_ENV = "CDCSYNC_PARENT_PID"
CHECK_EVERY = 0.5  # seconds between looks at the children
FIRST_BACKOFF = 1.0  # before a dead child is started again; doubled while they keep dying
MAX_BACKOFF = 30.0
STEADY = 60.0  # a child that lived this long resets the backoff


def orphaned() -> bool:
    """Is this a worker the daemon started, whose daemon is gone?"""
    parent = os.environ.get(PARENT_ENV)
    return bool(parent) and str(os.getppid()) != parent


def child_port(base: int, index: int) -> int:
    """The metrics port of child ``index`` (0-based): the ones after the daemon's, or 0
    (any free port) when the daemon has none fixed."""
    return base + 1 + index if base else 0


def _command() -> list[str]:
    """This interpreter running cdcsync: through the ``cdcsync`` script where the daemon
    was started by it (the children then read ``cdcsync worker`` in ``ps``)."""
    script = Path(sys.argv[0])
    if script.name == "cdcsync" and script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "sync.cli"]


class LocalWorkers:
    """``count`` supervised ``cdcsync worker`` children of this process."""

    def __init__(self, pipeline: Path, count: int, metrics_port: int,
                 options: tuple[str, ...] = ()) -> None:
        """``options``: the daemon's own global options (``--debug``, ``--log-json``)."""
        self.pipeline = pipeline
        self.options = options
        self.count = count
        self.metrics_port = metrics_port
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._started_at = [0.0] * count
        self._backoff = [FIRST_BACKOFF] * count
        self._due = [0.0] * count  # when a dead child may be started again
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="cdcsync-local-workers",
                                        daemon=True)

    def start(self) -> None:
        with self._lock:
            for i in range(self.count):
                self._spawn(i)
        self._thread.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def _spawn(self, i: int) -> None:
        argv = [*_command(), *self.options, "worker", "--metrics-port",
                str(child_port(self.metrics_port, i)), str(self.pipeline)]
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self._started_at[i] = time.monotonic()
        try:  # stdout/stderr are the daemon's: their logs go where its logs go
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:  # no process to be had now (memory, process limits)
            self._retry_later(i, f"could not be started ({exc})", 0.0)
            return
        self.procs[i] = proc
        log.info("started local worker %d (pid %d)", i + 1, proc.pid)

    def _retry_later(self, i: int, what: str, lived: float) -> None:
        """Start child ``i`` again after its backoff (reset by a child that lived long)."""
        if lived >= STEADY:
            self._backoff[i] = FIRST_BACKOFF
        wait = self._backoff[i]
        self._backoff[i] = min(MAX_BACKOFF, wait * 2)
        self._due[i] = time.monotonic() + wait
        self.procs[i] = None
        log.warning("local worker %d %s; starting it again in %.1f s", i + 1, what, wait)

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_EVERY):
            with self._lock:
                if self._stopping.is_set():
                    return
                for i, proc in enumerate(self.procs):
                    self._check(i, proc)

    def _check(self, i: int, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            if time.monotonic() >= self._due[i]:
                self._spawn(i)
            return
        code = proc.poll()
        if code is not None:
            lived = time.monotonic() - self._started_at[i]
            self._retry_later(i, f"(pid {proc.pid}) exited with {code} after {lived:.1f} s",
                              lived)

    def terminate(self) -> None:
        """Ask every child to stop (SIGTERM) and start no more; :meth:`wait` for them."""
        self._stopping.set()
        with self._lock:
            for p in self.procs:
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait for the children until ``deadline`` (monotonic); kill what is left."""
        with self._lock:
            procs = [p for p in self.procs if p is not None]
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("local worker pid %d did not stop in time: killed", p.pid)
                p.kill()
                p.wait()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
