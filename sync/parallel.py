"""Worker processes for a batch run on a backlog: a batch's keys decided and applied side by side.

One process decides and applies about 10k changes/s here and leaves the
second core idle (bench/pg_to_pg.py): its work per change is Python (load,
decide, encode, build the apply), under one interpreter lock. On a backlog
``cdcsync run`` therefore starts worker processes. The run's own process goes
on reading and decoding the source logs; it splits each batch by key (a hash
of entity and key values: every change of a key goes to the same worker, in
log order), each worker decides, applies and saves its part as a batch run
does (sync/capture.py ``save_once``), and once every part is saved the run
writes the batch's checkpoint and releases the source's log.

Why nothing is lost: each part is saved (states, outbox, conflicts) before the
checkpoint moves. A run dying with some parts saved and others not reads the
batch again: the saved parts' changes are duplicates (DESIGN.md rule 2), the
rest is decided as if for the first time. That is the daemon's partitioned
workers' argument, made per batch. Workers die with the run (Linux's
``PR_SET_PDEATHSIG``), so a run killed with -9 leaves none still writing.

A direct snapshot (sync/snapshot_direct.py) uses them too: each worker reads
a key range of the chunk itself where the source shares its snapshot (else the
run reads the chunk and splits its rows by key), decides, applies and saves
it, and the run saves the snapshot's progress past the chunk once every part
is saved. A part saved by a run that died before its progress is read again
and applied again: the rows hold our writes (ALREADY), as for a chunk whose
save died in one process.

A staged snapshot (sync/snapshot.py) uses them too: each stages an endpoint's
next chunk, side by side, then each reconciles a key range of the staged
rows (decides, saves, applies); the run only finds the ranges' bounds. So
does a merged one (sync/snapshot_merged.py): each reads a key range of the
round at every endpoint (or is sent its keys' rows), then decides, saves and
applies them.

Workers ignore SIGINT and SIGTERM, which Ctrl-C and service managers send to
every process of the group: the run stops them after the work in hand.

Not used for: a source with a quality gate or a target whose own writes come
back in its log (sync/capture.py ``saves_once``); a target that takes one writer
at a time (a SQLite file: no ``parallel_apply``, connectors/base.py Sink); a
batch with schema events or truncates (they change the run's view of its
entities: the workers are stopped, and started again on a later backlog);
batches under ``batch.parallel_from`` changes, where starting processes (about
a second) costs more than it saves. ``batch.workers`` sets how many: ``auto``
is one per core, at most 4; 1 runs everything in the run's process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import multiprocessing
import os
import pickle
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock

from sync.capture import (
    STREAM,
    save_once,
    saves_once,
    source_entities,
    state_lock,
    sync_batch,
)
from sync.change import Change, ChangeBatch
from sync.context import PipelineContext
from sync.summary import RunSummary

log = logging.getLogger("cdcsync.parallel")
_SPAWN = multiprocessing.get_context("spawn")  # never fork a process holding connections
MAX_AUTO = 4
T = TypeVar("T")
M = TypeVar("M")


def worker_count(cfg: Any) -> int:
    """How many worker processes ``cfg``'s batch runs may start (1: none)."""
    wanted = cfg.batch.workers
    if wanted == "auto":
        return min(os.cpu_count() or 1, MAX_AUTO)
    return int(wanted)


def slot(ch: Change, n: int) -> int:
    """The worker of ``ch``'s key: the same for every change of the key in a run."""
    return key_slot(ch.entity, tuple(ch.key.values()), n)


def key_slot(entity: str, values: tuple[Any, ...], n: int) -> int:
    """The worker of an entity's key (its values in key order), one of ``n``."""
    try:
        return hash((entity, *values)) % n
    except TypeError:  # an unhashable key value (a JSON array)
        return hash((entity, repr(values))) % n


@dataclass(frozen=True)
class SnapshotPart:
    """A worker's part of a direct snapshot's chunk: ``(row, row version)`` read at
    ``source`` (sync/snapshot_direct.py ``save_part``)."""

    entity: str
    source: str
    rows: list[tuple[Any, Any]]
    now: float
    run_id: int | None


@dataclass(frozen=True)
class SnapshotRange:
    """A worker's part of a direct snapshot's chunk, read by the worker itself: the
    source's rows after ``after`` up to ``until``, in the exported snapshot named
    ``snapshot`` (sync/snapshot_direct.py ``save_range``)."""

    entity: str
    source: str
    after: dict[str, Any] | None
    until: dict[str, Any]
    snapshot: str | None
    now: float
    run_id: int | None


@dataclass(frozen=True)
class StageChunk:
    """A worker's part of staging a snapshot: the next chunk of ``endpoint``'s rows,
    staged where its progress says (sync/snapshot.py ``stage_endpoint``)."""

    entity: str
    endpoint: str


@dataclass(frozen=True)
class ReconcileRange:
    """A worker's part of a reconcile: the staged keys after ``after`` up to ``until``
    (sync/snapshot.py ``reconcile_range``)."""

    entity: str
    after: str | None
    until: str
    began: float | None
    run_id: int | None


@dataclass(frozen=True)
class MergedPart:
    """A worker's part of a merged snapshot's round: keys' rows by endpoint
    (sync/snapshot_merged.py ``merged_part``)."""

    entity: str
    keys: list[dict[str, tuple[Any, Any]]]
    now: float
    run_id: int | None


@dataclass(frozen=True)
class MergedRange:
    """A worker's part of a merged snapshot's round, read by the worker itself: every
    endpoint's rows after ``after`` up to ``until`` (sync/snapshot_merged.py
    ``merged_range``), each in the snapshot named in ``snapshots``."""

    entity: str
    after: dict[str, Any] | None
    until: dict[str, Any]
    snapshots: dict[str, str | None]
    now: float
    run_id: int | None


class WorkerDied(RuntimeError):
    """A worker process ended without answering (killed, out of memory)."""


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False


class BatchWorkers:
    """The worker processes of one batch run, started on the first backlog that wants them."""

    def __init__(self, ctx: PipelineContext, count: int) -> None:
        self.ctx = ctx
        self.count = count
        self.workers: list[_Worker] = []
        self.off = False  # a worker could not start or died: the rest of the run is serial
        self.used = 0  # batches they took
        self.seen = 0  # changes read before they started
        self.ready = False
        self.started_at = 0.0

    @classmethod
    def for_run(cls, ctx: PipelineContext) -> BatchWorkers | None:
        n = worker_count(ctx.cfg)
        return cls(ctx, n) if n > 1 else None

    def eligible(self, source: str) -> bool:
        return saves_once(self.ctx, source) and all(
            getattr(self.ctx.endpoints[t], "parallel_apply", False)
            for e in source_entities(self.ctx, source) for t in e.sinks)

    def takes(self, source: str, batch: ChangeBatch) -> bool:
        """Should the workers take ``batch`` (else the caller syncs it itself)?

        Starts them on a backlog (``batch.parallel_from`` changes read, more behind
        them); until they are all ready the caller goes on alone.
        """
        if batch.events:
            self.stop()  # the batch changes the run's view of its entities
            return False
        if self.off or not self.eligible(source):
            return False
        if not self.workers:
            self.seen += len(batch.changes)
            if batch.more and self.seen >= int(self.ctx.cfg.batch.parallel_from):
                self._start()
            return False
        return self._all_ready()

    def start(self) -> None:
        """Start them now (the caller knows a large table is ahead); until they are all
        ready (:meth:`takes_ranges`) the caller goes on alone."""
        if not self.workers and not self.off:
            self._start()

    def takes_rows(self, count: int, *, more: bool) -> bool:
        """Should the workers take a direct snapshot's chunk of ``count`` rows (else the
        caller does it)? Started, as for :meth:`takes`, after ``batch.parallel_from``
        rows with more behind them."""
        if self.off:
            return False
        if not self.workers:
            self.seen += count
            if more and self.seen >= int(self.ctx.cfg.batch.parallel_from):
                self._start()
            return False
        return self._all_ready()

    def snapshot_rows(self, entity: str, source: str, rows: list[tuple[Any, Any]], now: float,
                      summary: RunSummary, meanwhile: Callable[[], T] | None = None) -> T | None:
        """A direct snapshot's chunk (sync/snapshot_direct.py ``save_part``), split by
        key: each worker decides, applies and saves its part. The caller saves the
        snapshot's progress past the chunk once this returns (every part saved).

        ``meanwhile`` runs while the workers work (the next chunk's read); its result
        is returned. A worker that died has the chunk done again by the caller's
        process (the saved parts' rows hold our writes: ALREADY).
        """
        n = len(self.workers)
        key = self.ctx.entities[entity].cfg.key
        parts: list[list[tuple[Any, Any]]] = [[] for _ in range(n)]
        for row in rows:
            parts[key_slot(entity, tuple(row[0][c] for c in key), n)].append(row)
        msgs = [SnapshotPart(entity, source, part, now, self.ctx.run_id) if part else None
                for part in parts]
        alone = functools.partial(self._snapshot_alone, entity, source, rows, now, summary)
        _replies, ahead, failed_meanwhile = self._parts(msgs, summary, meanwhile, alone)
        return _then(ahead, failed_meanwhile)

    def takes_ranges(self) -> bool:
        """Are the workers there and ready to read a direct snapshot's chunks themselves
        (:meth:`snapshot_ranges`)?"""
        return not self.off and bool(self.workers) and self._all_ready()

    def snapshot_ranges(self, entity: str, source: str, after: dict[str, Any] | None,
                        bounds: list[dict[str, Any]], snapshot: str | None, now: float,
                        summary: RunSummary) -> int:
        """A direct snapshot's chunk that the workers read themselves: worker ``i`` the
        source's rows after ``bounds[i - 1]`` (``after`` for the first) up to
        ``bounds[i]``, then decides, applies and saves them (``save_range``). Read
        where they are decided, the rows cross no pipe, and the run's process only
        finds the bounds (from the key's index) and saves the progress. A worker that
        died has the whole chunk done again by the caller's process. Returns how many
        rows the chunk had."""
        msgs = self._per_range(after, bounds, lambda lo, hi: SnapshotRange(
            entity, source, lo, hi, snapshot, now, self.ctx.run_id))
        read: list[int] = []
        alone = functools.partial(self._range_alone, entity, source, after, bounds[-1],
                                  snapshot, now, summary, read)
        replies, _, _ = self._parts(msgs, summary, None, alone)
        if replies is None:
            return sum(read)
        return _rows_of(replies)

    def stage_chunks(self, entity: str, endpoints: list[str]) -> None:
        """The next chunk of each of ``endpoints`` (at most one per worker) staged, each
        by its worker, side by side. A worker that died has them staged by the caller's
        process (staging resumes where each endpoint's progress says)."""
        msgs = self._padded([StageChunk(entity, ep) for ep in endpoints])
        self._parts(msgs, RunSummary(pipeline=self.ctx.pipeline), None,
                    functools.partial(self._stage_alone, entity, endpoints))

    def _stage_alone(self, entity: str, endpoints: list[str]) -> None:
        from sync.snapshot import stage_endpoint

        for ep in endpoints:
            stage_endpoint(self.ctx, self.ctx.entities[entity], ep, chunks=1)

    def reconcile_ranges(self, entity: str, after: str | None, bounds: list[str],
                         began: float | None, summary: RunSummary) -> None:
        """Staged keys reconciled by the workers: worker ``i`` those after
        ``bounds[i - 1]`` (``after`` for the first) up to ``bounds[i]``. A worker that
        died has them all reconciled again by the caller's process (the keys already
        decided keep their decision)."""
        msgs = self._per_range(after, bounds, lambda lo, hi: ReconcileRange(
            entity, lo, hi, began, self.ctx.run_id))
        replies, _, _ = self._parts(msgs, summary, None, functools.partial(
            self._reconcile_alone, entity, after, bounds[-1], began, summary))
        if replies is not None:  # (done alone, they were counted in ``summary``)
            summary.snapshot_rows += _rows_of(replies)

    def _reconcile_alone(self, entity: str, after: str | None, until: str,
                         began: float | None, summary: RunSummary) -> None:
        from sync.snapshot import reconcile_range

        reconcile_range(self.ctx, entity, after, until, began, summary)

    def merged_parts(self, entity: str, keys: list[dict[str, tuple[Any, Any]]], now: float,
                     summary: RunSummary, meanwhile: Callable[[], T] | None = None) -> T | None:
        """A merged snapshot's round (sync/snapshot_merged.py), split by key: each worker
        decides, saves and applies its part while ``meanwhile`` runs (the next round's
        read). A worker that died has the round done again by the caller's process (the
        keys decided already keep their decision)."""
        n = len(self.workers)
        cols = self.ctx.entities[entity].cfg.key
        parts: list[list[dict[str, tuple[Any, Any]]]] = [[] for _ in range(n)]
        for rows in keys:
            row = next(iter(rows.values()))[0]
            parts[key_slot(entity, tuple(row[c] for c in cols), n)].append(rows)
        msgs = [MergedPart(entity, part, now, self.ctx.run_id) if part else None
                for part in parts]
        replies, ahead, failed = self._parts(msgs, summary, meanwhile, functools.partial(
            self._merged_alone, entity, keys, now, summary))
        if replies is not None:  # (done alone, they were counted in ``summary``)
            summary.snapshot_rows += _rows_of(replies)
        return _then(ahead, failed)

    def merged_ranges(self, entity: str, after: dict[str, Any] | None,
                      bounds: list[dict[str, Any]], snapshots: dict[str, str | None],
                      now: float, summary: RunSummary) -> int:
        """A merged snapshot's round that the workers read themselves: worker ``i`` every
        endpoint's rows after ``bounds[i - 1]`` (``after`` for the first) up to
        ``bounds[i]``. A worker that died has the whole round done again by the caller's
        process. Returns how many rows the round had."""
        msgs = self._per_range(after, bounds, lambda lo, hi: MergedRange(
            entity, lo, hi, snapshots, now, self.ctx.run_id))
        before = summary.snapshot_rows
        replies, _, _ = self._parts(msgs, summary, None, functools.partial(
            self._merged_range_alone, entity, after, bounds[-1], snapshots, now, summary))
        if replies is None:  # done alone: counted in ``summary``
            return summary.snapshot_rows - before
        rows = _rows_of(replies)
        summary.snapshot_rows += rows
        return rows

    def _merged_range_alone(self, entity: str, after: dict[str, Any] | None,
                            until: dict[str, Any], snapshots: dict[str, str | None],
                            now: float, summary: RunSummary) -> None:
        from sync.snapshot_merged import merged_range

        merged_range(self.ctx, entity, after, until, snapshots, now, summary)

    def _merged_alone(self, entity: str, keys: list[dict[str, tuple[Any, Any]]], now: float,
                      summary: RunSummary) -> None:
        from sync.snapshot_merged import merged_part

        merged_part(self.ctx, entity, keys, now, summary)

    def _per_range(self, after: Any, bounds: list[Any],
                   make: Callable[[Any, Any], M]) -> list[M | None]:
        """Worker ``i``'s message for the range after ``bounds[i - 1]`` (``after`` for the
        first) up to ``bounds[i]``, made by ``make(low, high)``; None for the workers
        left without one."""
        lows = [after, *bounds[:-1]]
        return self._padded([make(lo, hi) for lo, hi in zip(lows, bounds, strict=True)])

    def _padded(self, msgs: list[M]) -> list[M | None]:
        """``msgs``, one per worker from the first, None for the rest."""
        return [*msgs, *[None] * (len(self.workers) - len(msgs))]

    def _range_alone(self, entity: str, source: str, after: dict[str, Any] | None,
                     until: dict[str, Any], snapshot: str | None, now: float,
                     summary: RunSummary, read: list[int]) -> None:
        from sync.snapshot_direct import save_range

        read.append(save_range(self.ctx, entity, source, after, until, snapshot, now,
                               summary))

    def _snapshot_alone(self, entity: str, source: str, rows: list[tuple[Any, Any]],
                        now: float, summary: RunSummary) -> None:
        from sync.snapshot_direct import save_part

        save_part(self.ctx, entity, source, rows, now, summary)

    def sync_batch(self, source: str, batch: ChangeBatch, summary: RunSummary,
                   meanwhile: Callable[[], T] | None = None) -> T | None:
        """:func:`sync.capture.sync_batch`, each worker deciding, applying and saving its
        keys; the checkpoint written and the source confirmed once all parts are saved.

        ``meanwhile`` runs while the workers work (the next read of the source);
        its result is returned, or its error raised once the parts are back.
        """
        n = len(self.workers)
        parts: list[list[Change]] = [[] for _ in range(n)]
        for ch in batch.changes:
            parts[slot(ch, n)].append(ch)
        msgs = [(source, part, self.ctx.run_id, self.ctx.fence) if part else None
                for part in parts]
        # a worker died: the saved parts read as duplicates
        alone = functools.partial(sync_batch, self.ctx, source, batch, summary)
        replies, ahead, failed_meanwhile = self._parts(msgs, summary, meanwhile, alone)
        if replies is None:  # done alone, checkpoint and all
            return _then(ahead, failed_meanwhile)
        if batch.checkpoint is not None:
            with self.ctx.store.transaction(lock=state_lock(self.ctx)) as conn:
                self.ctx.store.put_checkpoint(conn, self.ctx.pipeline, source, STREAM,
                                              batch.checkpoint)
        failed = [err for _, _, err in replies if err is not None]
        if failed:
            raise failed[0]  # saved with what is still due in the outbox (save_once)
        if batch.checkpoint is not None:
            self.ctx.endpoints[source].confirm(batch.checkpoint)
        return _then(ahead, failed_meanwhile)

    def _parts(self, msgs: list[Any], summary: RunSummary, meanwhile: Callable[[], T] | None,
               alone: Callable[[], object]
               ) -> tuple[list[tuple[str, RunSummary | None, Exception | None]] | None,
                          T | None, Exception | None]:
        """Send worker ``i`` ``msgs[i]`` (None: nothing), run ``meanwhile``, and collect
        the replies, their summaries added to ``summary``; raises the first part that was
        not saved. A worker that died stops them all, and ``alone()`` does the whole work
        in this process instead (the replies are then None)."""
        busy: list[tuple[_Worker, bool]] = []  # (worker, took its part)
        for w, msg in zip(self.workers, msgs, strict=True):
            if msg is not None:
                try:
                    w.conn.send(msg)
                    busy.append((w, True))
                except OSError:  # it is gone (its reply says how)
                    busy.append((w, False))
        ahead: T | None = None
        failed_meanwhile: Exception | None = None
        if meanwhile is not None:
            try:
                ahead = meanwhile()
            except Exception as exc:  # raised once the parts are back (and saved)
                failed_meanwhile = exc
        replies = [self._reply(w) if took else self._died(w) for w, took in busy]
        for _status, part_summary, _err in replies:
            if part_summary is not None:
                summary.add(part_summary)
        self.used += 1
        if any(status == "died" for status, _, _ in replies):
            log.warning("a batch worker of %s died (%s); the run goes on in one process",
                        self.ctx.pipeline, next(e for s, _, e in replies if s == "died"))
            self.stop()
            self.off = True
            alone()
            return None, ahead, failed_meanwhile
        unsaved = [err or RuntimeError(f"a batch worker's part was {status}")
                   for status, _, err in replies if status != "saved"]
        if unsaved:
            raise unsaved[0]  # nothing moves on: the next run reads the work again
        return replies, ahead, failed_meanwhile

    def _start(self) -> None:
        from sync.logs import handoff

        ctx = self.ctx
        runtime = {name: (e.types, e.ignored, e.schemas) for name, e in ctx.entities.items()}
        # the SQLite state store's one writer: queue here, not in SQLite's busy handler
        # (it sleeps up to 100 ms between tries)
        lock = lock_path(ctx.cfg.state.url)
        for i in range(self.count):
            mine, theirs = _SPAWN.Pipe()
            p = _SPAWN.Process(target=serve, name=f"cdcsync-batch-{i}", daemon=True,
                               args=(ctx.cfg, theirs, lock, runtime, handoff(), os.getpid()))
            p.start()
            theirs.close()
            self.workers.append(_Worker(p, mine))
        self.started_at = time.monotonic()
        log.info("starting %d batch workers for %s", self.count, ctx.pipeline)

    def _all_ready(self) -> bool:
        if self.ready:
            return True
        for w in self.workers:
            if w.ready:
                continue
            if not w.conn.poll():
                return False
            status, _, err = self._reply(w)
            if status != "ready":
                log.warning("a batch worker of %s could not start (%s); the run goes on in"
                            " one process", self.ctx.pipeline, err)
                self.stop()
                self.off = True
                return False
            w.ready = True
        self.ready = True
        log.info("%d batch workers of %s ready after %.1f s", len(self.workers),
                 self.ctx.pipeline, time.monotonic() - self.started_at)
        return True

    def _reply(self, w: _Worker) -> tuple[str, RunSummary | None, Exception | None]:
        try:
            reply: tuple[str, RunSummary | None, Exception | None] = w.conn.recv()
            return reply
        except (EOFError, OSError):
            return self._died(w)

    @staticmethod
    def _died(w: _Worker) -> tuple[str, RunSummary | None, Exception | None]:
        w.process.join(5)
        return "died", None, WorkerDied(
            f"batch worker {w.process.pid} ended with exit code {w.process.exitcode}")

    def stop(self) -> None:
        """Stop the workers (they finish the part they hold)."""
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in self.workers:
            w.process.join(10)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(5)
            w.conn.close()
        self.workers = []
        self.ready = False


def _rows_of(replies: list[tuple[str, RunSummary | None, Exception | None]]) -> int:
    """The rows the parts of a snapshot's chunk or round had: each part's count comes
    back as its summary's snapshot rows."""
    return sum(part.snapshot_rows for _, part, _ in replies if part is not None)


def _then(ahead: T | None, failed: Exception | None) -> T | None:
    if failed is not None:
        raise failed
    return ahead


def _die_with_parent(parent: int) -> None:
    """Linux: be killed with the run's process, whatever kills it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's end stops the worker
        pass
    if os.getppid() != parent:  # the run ended before the signal was asked for
        os._exit(0)


def _portable(exc: Exception | None) -> Exception | None:
    """``exc``, or a RuntimeError with its text where it does not survive pickling."""
    if exc is None:
        return None
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def lock_path(url: str) -> str:
    """Where the workers' write lock of the state store at ``url`` lives: beside a SQLite
    file (``<file>-cdcsync-lock``, with SQLite's own ``-wal`` and ``-shm``), else in the
    temporary directory under a name made from the URL and the user.

    One file per store, never removed: a run killed with -9 leaves nothing new behind
    (a file per run did), and a file unlinked while another run waits on it would
    split the lock in two. Runs of other pipelines that share the store queue on it
    too, as SQLite would have them do anyway."""
    sqlite_file = url.removeprefix("sqlite:///").split("?", 1)[0]
    if sqlite_file != url and sqlite_file and sqlite_file != ":memory:":
        return str(Path(sqlite_file).resolve()) + "-cdcsync-lock"
    digest = hashlib.blake2b(url.encode(), digest_size=8).hexdigest()
    user = getattr(os, "getuid", lambda: 0)()
    return str(Path(tempfile.gettempdir()) / f"cdcsync-state-lock-{user}-{digest}")


def write_lock(path: str) -> FileLock:
    """The state store's write lock that a run's worker processes share: an ``flock`` of
    ``path``, which the kernel lets go when its holder dies. (A multiprocessing lock
    held by a worker that was killed stayed held: the other worker waited for it, and
    the run for that worker, forever.)"""
    return FileLock(path)


def serve(cfg: Any, conn: Connection, lock: str, runtime: dict[str, Any],
          logs: dict[str, Any], parent: int) -> None:
    """A worker process: open the pipeline, then decide, apply and save the parts it is
    sent until the run says stop (None) or ends."""
    _die_with_parent(parent)
    for sig in (signal.SIGINT, signal.SIGTERM):  # sent to the whole process group (Ctrl-C,
        signal.signal(sig, signal.SIG_IGN)  # systemd): the run stops us at a saved point
    from sync.context import open_pipeline
    from sync.gctune import tune
    from sync.logs import take_on
    from sync.snapshot import reconcile_range, stage_endpoint
    from sync.snapshot_direct import save_part, save_range
    from sync.snapshot_merged import merged_part, merged_range

    take_on(logs)
    tune()
    try:
        with open_pipeline(cfg, with_types=False) as ctx:
            for name, (types, ignored, schemas) in runtime.items():
                ent = ctx.entities[name]
                ent.types, ent.ignored, ent.schemas = types, ignored, schemas
            ctx.store.share_write_lock(write_lock(lock))
            conn.send(("ready", None, None))
            while True:
                try:
                    msg = conn.recv()
                except EOFError:
                    return
                if msg is None:
                    return
                summary = RunSummary(pipeline=ctx.pipeline)
                try:
                    if isinstance(msg, SnapshotPart):
                        ctx.run_id = msg.run_id
                        save_part(ctx, msg.entity, msg.source, msg.rows, msg.now, summary)
                        err = None
                    elif isinstance(msg, SnapshotRange):
                        ctx.run_id = msg.run_id
                        summary.snapshot_rows = save_range(
                            ctx, msg.entity, msg.source, msg.after, msg.until,
                            msg.snapshot, msg.now, summary)
                        err = None
                    elif isinstance(msg, MergedPart):
                        ctx.run_id = msg.run_id
                        merged_part(ctx, msg.entity, msg.keys, msg.now, summary)
                        err = None
                    elif isinstance(msg, MergedRange):
                        ctx.run_id = msg.run_id
                        merged_range(ctx, msg.entity, msg.after, msg.until, msg.snapshots,
                                     msg.now, summary)
                        err = None
                    elif isinstance(msg, StageChunk):
                        stage_endpoint(ctx, ctx.entities[msg.entity], msg.endpoint, chunks=1)
                        err = None
                    elif isinstance(msg, ReconcileRange):
                        ctx.run_id = msg.run_id
                        reconcile_range(ctx, msg.entity, msg.after, msg.until, msg.began,
                                        summary)
                        err = None
                    else:
                        source, changes, ctx.run_id, ctx.fence = msg
                        err = save_once(ctx, source, changes, summary, None)
                except Exception as exc:
                    log.debug("batch part failed", exc_info=True)
                    conn.send(("failed", summary, _portable(exc)))
                else:
                    conn.send(("saved", summary, _portable(err)))
    except Exception as exc:  # cannot open the pipeline: the run goes on without workers
        with contextlib.suppress(OSError):
            conn.send(("broken", None, _portable(exc)))
