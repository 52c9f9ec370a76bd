"""Running a daemon (readers + workers + sweeper) or workers alone, until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sync.daemon.broker import make_broker
from sync.daemon.children import LocalWorkers, orphaned
from sync.daemon.reader import Reader
from sync.daemon.runtime import Runtime
from sync.daemon.sweeper import sweep
from sync.daemon.worker import PartitionConsumers, handle
from sync.events import align_schemas
from sync.gctune import settle
from sync.signals import Interrupted
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.daemon")

SWEEP_EVERY = 2.0
SHUTDOWN_BUDGET = 8.0  # seconds: SIGTERM to exit stays within 10 s


#: seconds between tries of a snapshot held by a row it cannot read
UNREADABLE_RETRY = 2.0


def _initial_snapshots(rt: Runtime, state: dict[str, Any]) -> None:
    """Snapshot entities that need it, one daemon at a time, before streaming starts.

    A row the snapshot cannot read (connectors.base ``UnreadableValue``) holds it until
    the row is fixed at the source: said once, shown in ``/readyz`` as
    ``snapshot_blocked``, tried again every few seconds, resumed after its last saved
    chunk (a restart would not help)."""
    from connectors.base import UnreadableValue
    from sync.runlock import RunLock, RunLocked, RunLockLost
    from sync.snapshot import needs_snapshot

    ctx = rt.ctx()
    todo = [e for e in ctx.entities.values() if needs_snapshot(ctx, e)]
    if not todo:
        return
    # The pipeline's run lock, renewed while the snapshot lasts: one snapshot at a time
    # (another daemon waits), no batch run beside it, and other daemons' readers pause.
    ttl = max(float(rt.cfg.daemon.lease_ttl_s), 1.0)
    while not rt.stop.is_set():
        try:
            with RunLock(ctx.store, rt.pipeline, ttl=ttl, holder=rt.holder,
                         beside_readers=True):
                _snapshot_all(rt, ctx, todo)
            state.pop("snapshot_blocked", None)
            return
        except RunLocked:  # a batch run, or another daemon's snapshot: wait for it
            rt.stop.wait(1.0)
        except RunLockLost as exc:  # its renewals failed; compare-and-set kept it harmless
            log.warning("%s", exc)
            return
        except UnreadableValue as exc:
            if str(exc) != state.get("snapshot_blocked"):
                log.error("the snapshot waits for a row to be fixed at the source: %s", exc)
            state["snapshot_blocked"] = str(exc)
            rt.stop.wait(UNREADABLE_RETRY)


def _snapshot_all(rt: Runtime, ctx: Any, todo: list[Any]) -> None:
    from sync.snapshot import needs_snapshot, snapshot_entity

    ctx.stop = rt.stop  # SIGTERM ends a snapshot after its last saved chunk
    try:
        align_schemas(ctx)  # the snapshot writes the columns a source gained
        summary = RunSummary(pipeline=rt.pipeline)
        for ent in todo:
            if needs_snapshot(ctx, ent):  # another daemon may have done it meanwhile
                log.info("snapshot of %s", ent.name)
                snapshot_entity(ctx, ent, summary)
    except Interrupted:
        log.warning("stopped during the snapshot of %s, after its last saved chunk; the"
                    " next start resumes it", rt.pipeline)
    finally:
        ctx.stop = None


def _finish_dead_batch_run(rt: Runtime) -> None:
    """A batch run that died between its applies and its saves left marks: targets a
    write of its may stand at that no state knows of (sync/capture.py save_once).
    They are checked after a catch-up of every source (sync/apply.py check_marks),
    which the readers never finish as such: one batch run does it, before they start.
    """
    from sync.engine import run_pipeline
    from sync.runlock import RunLocked

    if not rt.ctx().store.any_marks(rt.pipeline):
        return
    log.warning("a batch run of %s died mid-batch: catching up as a batch run first, to"
                " check the targets it may have written", rt.pipeline)
    try:
        summary = run_pipeline(rt.cfg, stop=rt.stop)
    except RunLocked:  # another process does it; the readers wait for its run lock
        return
    except Interrupted:
        log.warning("stopped during the catch-up, after its last saved batch; its marks"
                    " stay for the next run or start")
        return
    except Exception as exc:  # the marks stay for the next run or start
        log.warning("the catch-up failed (%s: %s); its marks stay for the next run",
                    type(exc).__name__, exc)
        return
    log.info("caught up: %d changes read, %d rows applied", summary.total("read"),
             summary.total("applied"))


class SharedBrokerNeeded(ValueError):
    """Readers and workers asked to run apart on the in-process broker (a usage error)."""


class MetricsAddressTaken(ValueError):
    """The metrics address cannot be bound (a usage error: choose another port)."""


def run_daemon(cfg: Any, *, readers: bool = True, workers: bool = True,
               stop: threading.Event | None = None,
               on_ready: Callable[[dict[str, Any]], None] | None = None,
               options: tuple[str, ...] = ()) -> int:
    """Run until ``stop`` is set (SIGTERM/SIGINT in the CLI); return an exit code.

    ``readers=False`` is ``cdcsync worker``: apply workers only, for more
    capacity on other machines (a shared broker is needed for that). A daemon
    with ``daemon.worker_processes`` starts that many workers as its children
    and leaves applying to them (sync/daemon/children.py); ``options`` are the
    global options they get.
    """
    from sync.http import serve

    shared = not str(cfg.broker.url).startswith("memory")
    local_count = int(cfg.daemon.worker_processes) if readers else 0
    if not shared and not (readers and workers and not local_count):
        raise SharedBrokerNeeded(
            f"broker.url is {cfg.broker.url!r}, the in-process broker, which runs readers "
            "and workers in one process: set a redis:// or amqp:// broker to run them apart")
    if local_count:
        workers = False  # the children apply; this process reads
    broker = make_broker(cfg.broker.url)
    rt = Runtime(cfg, broker, handle, stop)
    started: list[Reader] = []
    state: dict[str, Any] = {"ready": False}
    consumers = PartitionConsumers(rt, shared=shared) if workers else None
    local = (LocalWorkers(cfg.path, local_count, int(cfg.daemon.metrics_port), options)
             if local_count else None)

    def health() -> dict[str, Any]:
        dead = [r.source for r in started if not r.is_alive()]
        return {"ok": not dead and not rt.stop.is_set(), "dead_readers": dead}

    def ready() -> dict[str, Any]:
        return {"ok": bool(state["ready"]) and not rt.stop.is_set(),
                "sources_held": [r.source for r in started if r.held],
                # (a restart would not help: the reader goes on once the row is fixed)
                "sources_blocked": {r.source: r.blocked for r in started if r.blocked},
                **({"snapshot_blocked": state["snapshot_blocked"]}
                   if "snapshot_blocked" in state else {}),
                "partitions_held": sorted(consumers.threads) if consumers else [],
                "local_workers": local.pids() if local else []}

    server = None
    port = int(cfg.daemon.metrics_port)
    if port or on_ready is not None:
        try:
            server = serve(cfg.daemon.metrics_host, port, health=health, ready=ready)
        except OSError as exc:
            rt.close()
            broker.close()
            where = f"{cfg.daemon.metrics_host}:{port}"
            raise MetricsAddressTaken(
                f"cannot serve metrics on {where} ({exc.strerror or exc}): choose another "
                "daemon.metrics_port (or --metrics-port; 0: any free port) or "
                "daemon.metrics_host") from exc
    try:
        if consumers is not None:
            consumers.start()
        if local is not None:
            local.start()
        if readers:
            _initial_snapshots(rt, state)
            if not rt.stop.is_set():
                _finish_dead_batch_run(rt)
            if rt.stop.is_set():  # SIGTERM during the start: nothing started to stop
                return 0
            ctx = rt.ctx()
            align_schemas(ctx)
            for ent in ctx.entities.values():  # load GX now, not under the first batch's lock
                if ent.cfg.quality.suite is not None:
                    from sync.quality.hook import gate_for

                    gate_for(ent)
            try:  # what an earlier process left pending goes first, read in full
                sweep(rt)
            except Exception as exc:
                log.warning("first sweep failed (%s: %s); the next one retries",
                            type(exc).__name__, exc)
            for name in ctx.endpoints:
                if any(name in e.sources for e in ctx.entities.values()):
                    r = Reader(rt, name)
                    started.append(r)
                    r.start()
        state["ready"] = True
        settle()  # the pipeline, connectors and quality suites live as long as we do
        if on_ready is not None:
            on_ready({"port": server.port if server else None, "holder": rt.holder})
        log.info("cdcsync %s running for pipeline %s", "daemon" if readers else "worker",
                 rt.pipeline)
        while not rt.stop.wait(SWEEP_EVERY if readers else 1.0):
            if not readers and orphaned():
                log.warning("the daemon that started this worker is gone: stopping")
                break
            if readers:
                try:
                    sweep(rt)
                except Exception as exc:  # the store or broker is briefly away: next round
                    log.warning("sweep failed (%s: %s); retrying", type(exc).__name__, exc)
        failed = [r for r in started if r.error is not None]
        return 1 if failed else 0
    finally:
        deadline = time.monotonic() + SHUTDOWN_BUDGET
        rt.stop.set()
        if local is not None:  # they stop beside the readers, each on its own budget
            local.terminate()
        for r in started:
            r.join(timeout=max(0.1, deadline - time.monotonic() - 3))
        if consumers is not None:
            consumers.stop(timeout=max(0.5, deadline - time.monotonic() - 0.5))
        if local is not None:
            local.wait(deadline + 1.0)
        if server is not None:
            server.close()
        rt.close()
        broker.close()
